"""Printing shared by the CLI and the demo: tables, a rebuild's summary, a write-back, explanation paths, and the
progress bars of a rebuild.

Every printer writes to ``file`` (default: ``sys.stdout`` at the time of the call, so redirections and pytest's
capture see it); progress bars go to stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd

if TYPE_CHECKING:
    from scenerec.kg.rebuild import RebuildReport


def print_frame(df: pd.DataFrame, fmt: str, file: TextIO | None = None) -> None:
    """``df`` as a table (``"table"``: aligned text, ``(no rows)`` when empty), ``"json"`` (one array of records)
    or ``"csv"``."""
    out = sys.stdout if file is None else file
    if fmt == "json":
        print(df.to_json(orient="records", force_ascii=False), file=out)
    elif fmt == "csv":
        out.write(df.to_csv(index=False))
    elif df.empty:
        print("(no rows)", file=out)
    else:
        with pd.option_context("display.max_colwidth", 60, "display.width", 160):
            print(df.to_string(index=False), file=out)


class Progress:
    """Progress bars on stderr for a rebuild: texts embedded, then graph rows loaded (off with --quiet or when
    stderr is not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars: dict[str, Any] = {}

    def _bar(self, phase: str, total: int, desc: str, unit: str) -> Any:
        if phase not in self.bars:
            from tqdm import tqdm

            for other in self.bars.values():
                other.close()
            self.bars[phase] = tqdm(
                total=total, unit=unit, unit_scale=True, desc=desc, disable=self.quiet or None, leave=False
            )
        return self.bars[phase]

    def __call__(self, stage: str, rows: int, total: int) -> None:
        if stage == "read":
            if not self.quiet and sys.stderr.isatty():
                print("reading and cleaning the dataset ...", file=sys.stderr)
        elif stage == "embed":  # rows = texts encoded so far
            bar = self._bar("embed", total, "embedding texts", "texts")
            bar.update(rows - bar.n)
        else:  # rows = graph rows written by this stage
            bar = self._bar("graph", total, "loading graph", "rows")
            bar.set_postfix_str(stage)
            bar.update(rows)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def print_rebuild(report: RebuildReport, file: TextIO | None = None) -> None:
    """A rebuild's summary: counts per label and scene, the text
    features, the timings and the rejects by reason."""
    out = sys.stdout if file is None else file
    res = report.load
    ds = res.dataset
    print(f"rebuilt {report.store} from {res.path} (format {res.format}, backend {report.backend})", file=out)
    print(f"  generation {report.generation}", file=out)
    print("nodes:   " + ", ".join(f"{k} {v:,}" for k, v in report.counts["nodes"].items()), file=out)
    print("edges:   " + ", ".join(f"{k} {v:,}" for k, v in report.counts["edges"].items()), file=out)
    print("per scene:", file=out)
    print_frame(pd.DataFrame(report.scenes), "table", file=out)
    if report.features:
        f = report.features
        print(
            f"text:    {sum(f['texts'].values()):,} texts embedded with {f['model']} ({f['dim']} dims): "
            f"{sum(f['cached'].values()):,} from the cache, {f['encoded']:,} encoded in {f['seconds']:.1f} s",
            file=out,
        )
    else:
        print("text:    not embedded (--no-embed)", file=out)
    rate = report.stats.total_rows / max(report.stats.total_seconds, 1e-9)
    times = ", ".join(f"{k} {v:.2f}s" for k, v in report.seconds.items())
    print(f"time:    {times} (bulk load {report.stats.total_rows:,} rows at {rate:,.0f} rows/s)", file=out)
    print(f"rejects: {len(res.rejects):,} rows -> {report.rejects_file}", file=out)
    for line in res.rejects.summary_lines():
        print("  " + line, file=out)
    if ds.meta.get("inferred_entities"):
        print(
            f"note:    {ds.meta['inferred_entities']:,} entities were known only from triples (no entities row)",
            file=out,
        )


def print_write_back(w: dict[str, Any], file: TextIO | None = None) -> None:
    """One line for a write-back (``Engine.write_back``'s or ``Engine.last_write_back``'s dict)."""
    print(
        f"written:    {w['edges']:,} RECOMMENDED edges (top {w['k']} per user in {', '.join(w['scenes'])}), "
        f"{w['property']} ({w['dim']} dims) on {w['users']:,} users and {w['items']:,} items "
        f"in {w['seconds']:.1f} s",
        file=sys.stdout if file is None else file,
    )


def node_text(node: dict[str, Any]) -> str:
    """``item 12 "title"``, ``entity brand:sakura``, ``user A7PV`` (long titles cut)."""
    text = f"{node['label'].lower()} {node['id']}"
    if node["label"] == "Item" and node["name"]:
        name = node["name"] if len(node["name"]) <= 50 else node["name"][:47] + "..."
        text += f' "{name}"'
    return text


def path_text(path: dict[str, Any]) -> str:
    """One explanation path on one line: ``user A -INTERACTED-> item 12 "..." -RELATED:brand- entity brand:x``
    (``INTERACTED`` points from the user to the item; ``RELATED`` and ``SAME_AS`` are shown without a direction)."""
    nodes = path["nodes"]
    parts = [node_text(nodes[0])]
    for prev, rel, node in zip(nodes, path["relations"], nodes[1:], strict=False):
        if rel == "INTERACTED":
            parts.append(f"-{rel}->" if prev["label"] == "User" else f"<-{rel}-")
        else:
            parts.append(f"-{rel}-")
        parts.append(node_text(node))
    return " ".join(parts)


def print_paths(paths: list[dict[str, Any]], indent: str = "", file: TextIO | None = None) -> None:
    """Explanation paths (``Engine.explain``'s), numbered, one per line with its score and kind."""
    out = sys.stdout if file is None else file
    if not paths:
        print(f"{indent}(no path in the graph)", file=out)
    for n, path in enumerate(paths, 1):
        via = f" (and {path['support'] - 1} more users)" if path.get("support", 1) > 1 else ""
        print(f"{indent}{n}. {path['score']:.4f} {path['kind']}: {path_text(path)}{via}", file=out)
