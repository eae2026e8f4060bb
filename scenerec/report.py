"""A self-contained HTML report of a store: its data, the runs logged on it and its entity alignment.

:func:`write_report` writes ``<out>/report.html``, one file with inline CSS and the plots (matplotlib, Agg) embedded
as base64 PNG data URIs: nothing external, no JavaScript. Sections, each with its figure and the numbers as a table:

* dataset statistics per scene (the store's :meth:`~scenerec.kg.GraphStore.scene_counts` and ``counts``);
* evaluation metrics per scene and per model: the latest ``"evaluate"`` record of each (label, scene) in the run
  log (:mod:`scenerec.runlog`);
* the transfer ablation: the evaluated ``crossscene`` variants, target scene only -> shared users -> + alignment ->
  + gate;
* alignment quality: the aligner's ``SAME_AS`` pairs between two scenes against the gold pairs (method ``gold``),
  precision and recall at each score threshold (without gold pairs, the accepted pairs per threshold);
* training curves: loss and validation NDCG per epoch of every ``"fit"`` record.

A section without data says so in words instead of showing a figure.

>>> write_report("stores/shop", "out")                         # doctest: +SKIP
PosixPath('out/report.html')
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scenerec.errors import ConfigError, require_extra
from scenerec.kg import RELS, GraphStore, current_generation, open_store, read_manifest
from scenerec.kg.schema import PROTECTED_ALIGNMENT_METHODS
from scenerec.runlog import RunLog

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: File name of the report inside the output folder.
REPORT_FILE = "report.html"

#: Score thresholds at which alignment precision, recall and accepted pairs are measured.
THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.0, 1.0, 11))

#: The ``crossscene`` variants of the transfer ablation, in the order the report shows them.
ABLATION_STAGES = ("target scene only", "shared users", "+ alignment", "+ gate", "gate without alignment", "other")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
p.none { color: #8a5a00; background: #fff7e0; padding: 0.5em 0.8em; border-left: 4px solid #e0b000; }
.meta td:first-child { font-weight: 600; }
nav ul { padding-left: 1.2em; }
div.wide { overflow-x: auto; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
"""


# ---------------------------------------------------------------------------------------------------- structure
@dataclass
class Section:
    """One part of the report: a title, paragraphs, figures (alt text, PNG bytes) and tables; ``empty`` when there
    was no data for it (then ``paragraphs`` say why)."""

    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    empty: bool = False

    @property
    def summary(self) -> str:
        """A one-line description (for the CLI)."""
        if self.empty:
            return "no data"
        images = f"{len(self.figures)} image{'s' if len(self.figures) != 1 else ''}"
        rows = sum(len(t) for _, t in self.tables)
        return f"{images}, {rows} table row{'s' if rows != 1 else ''}"

    def html(self) -> str:
        out = [f'<section id="{_e(self.key)}">', f"<h2>{_e(self.title)}</h2>"]
        for text in self.paragraphs:
            out.append(f'<p class="none">{_e(text)}</p>' if self.empty else f"<p>{_e(text)}</p>")
        for alt, png in self.figures:
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">')
        for caption, frame in self.tables:
            out.append(_table(frame, caption))
        out.append("</section>")
        return "\n".join(out)


@dataclass
class Report:
    """The report of a store: header facts and its :class:`Section` list. :meth:`html` renders it,
    :meth:`write` saves it as ``<out>/report.html``."""

    store: Path
    generation: str
    dataset: str
    created: str
    sections: list[Section]

    @property
    def images(self) -> int:
        return sum(len(s.figures) for s in self.sections)

    def html(self) -> str:
        meta = pd.DataFrame(
            {
                "": ["store", "generation", "dataset", "report written"],
                "value": [str(self.store), self.generation, self.dataset, self.created],
            }
        )
        toc = "".join(
            f'<li><a href="#{_e(s.key)}">{_e(s.title)}</a>{" (no data)" if s.empty else ""}</li>' for s in self.sections
        )
        body = "\n".join(s.html() for s in self.sections)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>scenerec report: {_e(self.dataset)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>scenerec report: {_e(self.dataset)}</h1>\n"
            f'<table class="meta">{_rows(meta, header=False)}</table>\n'
            f"<nav><ul>{toc}</ul></nav>\n{body}\n</body>\n</html>\n"
        )

    def write(self, out: str | Path) -> Path:
        """Write ``<out>/report.html`` (the folder is created; an earlier report is replaced whole)."""
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} is a file; give a folder for the report")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / REPORT_FILE
        tmp = folder / f".{REPORT_FILE}.tmp-{os.getpid()}"
        tmp.write_text(self.html(), encoding="utf-8")
        os.replace(tmp, target)
        return target


def write_report(store: str | Path, out: str | Path) -> Path:
    """Write the HTML report of the store folder ``store`` to ``<out>/report.html``; returns that path."""
    return make_report(store).write(out)


def make_report(store: str | Path) -> Report:
    """Read the live generation of ``store`` (graph read-only, run log, manifest) and build the :class:`Report`.

    Needs matplotlib (the extra ``scenerec[report]``): without it, :class:`~scenerec.errors.MissingExtraError`
    before anything is read."""
    _matplotlib_figure()
    path = Path(store)
    generation = current_generation(path)
    manifest = read_manifest(path)
    log = RunLog.for_store(path)
    records = log.read()
    fits = [r for r in records if r["kind"] == "fit"]
    info = manifest.get("dataset") or {}
    dataset = str(info.get("name") or Path(str(info.get("path", path))).name)
    if info.get("format"):
        dataset += f" ({info['format']})"
    with open_store(path, read_only=True) as graph:
        scenes = graph.scene_counts()
        counts = graph.counts()
        alignment = alignment_quality(graph)
    latest = latest_evaluations(records)
    sections = [
        _dataset_section(scenes, counts),
        _evaluation_section(latest),
        _ablation_section(latest, scenes["scene"].astype(str).tolist()),
        _alignment_section(alignment),
        _training_section(fits),
    ]
    return Report(
        store=path.resolve(),
        generation=generation.name,
        dataset=dataset,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        sections=sections,
    )


# ---------------------------------------------------------------------------------------------------- data
def latest_evaluations(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last ``"evaluate"`` record of each (label, scene) among the run log's ``records`` (in the order they
    were written), in the order of their first evaluation; each a copy with ``"fit"``: the last ``"fit"`` record
    of the same label written before it (the run that trained the evaluated model), or None."""
    fits: dict[str, dict[str, Any]] = {}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        label = str(rec.get("label") or rec.get("model") or "?")
        if rec.get("kind") == "fit":
            fits[label] = rec
        elif rec.get("kind") == "evaluate":
            latest[(label, str(rec.get("scene")))] = {**rec, "fit": fits.get(label)}
    return list(latest.values())


def alignment_quality(graph: GraphStore, thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """Quality of the aligner's ``SAME_AS`` pairs between two scenes at each score threshold.

    For every (method, left scene, right scene) of the predicted pairs (methods other than ``gold`` and ``seed``;
    left -> right as written), at each threshold ``t``: ``accepted`` (pairs with score >= t), ``with_gold`` (those
    whose left node has a gold partner in the right scene), ``correct`` (those that are a gold pair), ``precision``
    (correct / with_gold; NaN when none), ``recall`` (correct / ``gold``, the gold pairs between the two scenes in
    either direction; NaN without gold pairs). Nodes are keyed by label and id; users (no scene) are left out.
    """
    pred, gold = _same_as(graph, predicted=True), _same_as(graph, predicted=False)
    columns = ["method", "left", "right", "threshold", "accepted", "with_gold", "correct", "gold"]
    rows: list[dict[str, Any]] = []
    for (method, left, right), part in pred.groupby(["method", "scene_left", "scene_right"], sort=True):
        forward = gold[(gold["scene_left"] == left) & (gold["scene_right"] == right)]
        backward = gold[(gold["scene_left"] == right) & (gold["scene_right"] == left)]
        pairs = set(zip(forward["a"], forward["b"], strict=True)) | set(zip(backward["b"], backward["a"], strict=True))
        partnered = {a for a, _ in pairs}
        keys = list(zip(part["a"], part["b"], strict=True))
        has_gold = np.fromiter((a in partnered for a, _ in keys), dtype=bool, count=len(keys))
        is_gold = np.fromiter((k in pairs for k in keys), dtype=bool, count=len(keys))
        score = pd.to_numeric(part["score"], errors="coerce").to_numpy(np.float64)
        for t in thresholds:
            ok = score >= t
            rows.append(
                {
                    "method": str(method),
                    "left": str(left),
                    "right": str(right),
                    "threshold": float(t),
                    "accepted": int(ok.sum()),
                    "with_gold": int((ok & has_gold).sum()),
                    "correct": int((ok & is_gold).sum()),
                    "gold": len(pairs),
                }
            )
    out = pd.DataFrame(rows, columns=columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["precision"] = np.where(out["with_gold"] > 0, out["correct"] / out["with_gold"].clip(lower=1), np.nan)
        out["recall"] = np.where(out["gold"] > 0, out["correct"] / out["gold"].clip(lower=1), np.nan)
    return out


def _same_as(graph: GraphStore, *, predicted: bool) -> pd.DataFrame:
    """``SAME_AS`` edges between nodes of two different (non-empty) scenes: the aligners' (``predicted``) or the
    gold ones; ``a`` and ``b`` are ``"Label:id"`` keys."""
    condition = "NOT r.method IN $protected" if predicted else "r.method = $gold"
    frames = []
    for src, dst in RELS["SAME_AS"].pairs:
        if "User" in (src, dst):
            continue
        df = graph.query(
            f"MATCH (a:{src})-[r:SAME_AS]->(b:{dst}) "
            f"WHERE {condition} AND a.scene <> '' AND b.scene <> '' AND a.scene <> b.scene "
            "RETURN a.id AS a, a.scene AS scene_left, b.id AS b, b.scene AS scene_right, r.score AS score, "
            "r.method AS method",
            **({"protected": sorted(PROTECTED_ALIGNMENT_METHODS)} if predicted else {"gold": "gold"}),
        )
        if len(df):
            df["a"] = src + ":" + df["a"].astype(str)
            df["b"] = dst + ":" + df["b"].astype(str)
            frames.append(df)
    cols = ["a", "scene_left", "b", "scene_right", "score", "method"]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.concat(frames, ignore_index=True)
    out["method"] = out["method"].fillna("").astype(str)
    return out


def ablation_stage(fit: dict[str, Any] | None, all_scenes: Sequence[str]) -> str:
    """Which :data:`ABLATION_STAGES` step the ``crossscene`` run logged as ``fit`` is."""
    if fit is None:
        return "other"
    from scenerec.registry import MODELS

    scenes = fit.get("scenes")
    gate = bool((fit.get("options") or {}).get("gate", MODELS["crossscene"].preset["gate"]))
    links = fit.get("alignment")
    if scenes and set(scenes) != set(all_scenes):
        return "target scene only"
    if not links:
        return "gate without alignment" if gate else "shared users"
    return "+ gate" if gate else "+ alignment"


# ---------------------------------------------------------------------------------------------------- sections
def _dataset_section(scenes: pd.DataFrame, counts: dict[str, dict[str, int]]) -> Section:
    sec = Section("dataset", "Dataset statistics per scene")
    totals = pd.DataFrame(
        [{"kind": "node", "type": k, "count": v} for k, v in counts["nodes"].items()]
        + [{"kind": "relationship", "type": k, "count": v} for k, v in counts["edges"].items()]
    )
    if scenes.empty:
        sec.empty = True
        sec.paragraphs.append("The graph has no scenes, so there are no per-scene statistics.")
        sec.tables.append(("Nodes and relationships in the whole graph", totals))
        return sec
    sec.paragraphs.append(
        f"{len(scenes)} scene{'s' if len(scenes) != 1 else ''}; users are counted in a scene when they have an "
        "interaction with one of its items (a user of several scenes counts in each)."
    )
    shown = [
        c
        for c in ("users", "items", "interactions", "item_facts", "own_entities")
        if c in scenes.columns and (c in ("users", "items", "interactions") or scenes[c].astype(bool).any())
    ]

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
        names = scenes["scene"].astype(str).tolist()
        colors = [f"C{i % 10}" for i in range(len(names))]
        for ax, col in zip(axes, shown, strict=True):
            values = scenes[col].to_numpy(np.int64)
            bars = ax.bar(names, values, color=colors)
            ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
            ax.set_title(col.replace("_", " "))
            ax.tick_params(axis="x", labelrotation=30 if len(names) > 3 else 0)
            ax.margins(y=0.15)

    sec.figures.append(
        ("dataset statistics: " + ", ".join(shown) + " per scene", _png(draw, (3.0 * len(shown) + 1, 3.6)))
    )
    sec.tables.append(("Per scene", scenes))
    sec.tables.append(("Nodes and relationships in the whole graph", totals))
    return sec


def _cutoff(records: Sequence[dict[str, Any]]) -> int:
    """The k shown in the figures: 10 when any record has it, else the smallest one recorded."""
    ks = sorted(
        {int(key.split("@")[1]) for r in records for key in (r.get("metrics") or {}) if key.startswith("ndcg@")}
    )
    return 10 if 10 in ks or not ks else ks[0]


def _metric_table(records: Sequence[dict[str, Any]], first: dict[str, Callable[[dict[str, Any]], Any]]) -> pd.DataFrame:
    keys: list[str] = []
    for rec in records:
        keys += [k for k, v in (rec.get("metrics") or {}).items() if "@" in k and k not in keys and _is_number(v)]
    rows = []
    for rec in records:
        metrics = rec.get("metrics") or {}
        row = {name: get(rec) for name, get in first.items()}
        row["users"] = metrics.get("users")
        row.update({k: metrics.get(k) for k in keys})
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


def _bars_per_scene(
    fig: Figure, records: Sequence[dict[str, Any]], names: Callable[[dict[str, Any]], str], k: int
) -> None:
    """One horizontal bar chart per scene: NDCG@k and Recall@k of each record (one bar pair per name)."""
    scene_names = list(dict.fromkeys(str(r["scene"]) for r in records))
    axes = fig.subplots(1, len(scene_names), squeeze=False, sharex=True)[0]
    for ax, scene in zip(axes, scene_names, strict=True):
        part = [r for r in records if str(r["scene"]) == scene]
        labels = [names(r) for r in part]
        y = np.arange(len(part))
        for offset, metric, name, color in ((-0.2, f"ndcg@{k}", "NDCG", "C0"), (0.2, f"recall@{k}", "Recall", "C1")):
            values = np.array([_number((r.get("metrics") or {}).get(metric)) for r in part], dtype=np.float64)
            bars = ax.barh(y + offset, np.nan_to_num(values), height=0.4, color=color, label=f"{name}@{k}")
            ax.bar_label(bars, labels=["n/a" if math.isnan(v) else f"{v:.4f}" for v in values], fontsize=7, padding=2)
        ax.set_yticks(y, [_wrap(t) for t in labels], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"scene {scene}")
        ax.margins(x=0.25)
        ax.legend(fontsize=8, loc="lower right")


def _evaluation_section(latest: list[dict[str, Any]]) -> Section:
    sec = Section("evaluation", "Evaluation metrics per scene and model")
    if not latest:
        sec.empty = True
        sec.paragraphs.append(
            "No evaluation has been logged on this generation yet: train and evaluate a model "
            "(scenerec fit --store PATH, then scenerec evaluate --store PATH --scene S) and write the report again."
        )
        return sec
    k = _cutoff(latest)
    sec.paragraphs.append(
        f"The latest evaluation of each model variant in each scene (test split, full ranking over the scene's "
        f"items); {len(latest)} evaluation{'s' if len(latest) != 1 else ''}. The figure shows NDCG@{k} and Recall@{k}."
    )
    sec.figures.append(
        (
            f"NDCG@{k} and Recall@{k} per scene and model",
            _png(
                lambda fig: _bars_per_scene(fig, latest, lambda r: str(r.get("label") or r.get("model")), k),
                _bar_size(latest),
            ),
        )
    )
    table = _metric_table(
        latest,
        {
            "model": lambda r: r.get("label") or r.get("model"),
            "scene": lambda r: r.get("scene"),
        },
    )
    table["evaluated (UTC)"] = [_when(r.get("time")) for r in latest]
    sec.tables.append(("Test metrics (latest evaluation per model variant and scene)", table))
    return sec


def _ablation_section(latest: list[dict[str, Any]], all_scenes: list[str]) -> Section:
    sec = Section("ablation", "Transfer ablation (crossscene variants)")
    runs = [r for r in latest if r.get("model") == "crossscene"]
    if not runs:
        sec.empty = True
        sec.paragraphs.append(
            "No crossscene variant has been evaluated on this generation. The ablation trains, on the same store: "
            "fit('crossscene', scenes=[target], options={'gate': False}) (target scene only), "
            "fit('crossscene', alignment=False, options={'gate': False}) (shared users), "
            "fit('crossscene', options={'gate': False}) (+ alignment) and fit('crossscene') (+ gate), "
            "evaluating each in the target scene."
        )
        return sec
    stage = {id(r): ablation_stage(r.get("fit"), all_scenes) for r in runs}
    runs.sort(key=lambda r: (str(r["scene"]), ABLATION_STAGES.index(stage[id(r)]), str(r.get("label"))))
    present = [s for s in ABLATION_STAGES if s in stage.values()]
    sec.paragraphs.append(
        "Each step adds one part of the transfer: target scene only (trained on the scene's own interactions), "
        "shared users (the joint graph of all scenes), + alignment (SAME_AS item links between scenes), + gate (the "
        f"per-scene transfer gate, the full crossscene model). Present: {', '.join(present)}."
    )
    k = _cutoff(runs)
    sec.figures.append(
        (
            f"transfer ablation: NDCG@{k} and Recall@{k} of the crossscene variants per scene",
            _png(
                lambda fig: _bars_per_scene(fig, runs, lambda r: f"{stage[id(r)]}: {r.get('label')}", k),
                _bar_size(runs),
            ),
        )
    )
    table = _metric_table(
        runs,
        {
            "scene": lambda r: r.get("scene"),
            "step": lambda r: stage[id(r)],
            "model": lambda r: r.get("label"),
            "SAME_AS links": lambda r: (r.get("fit") or {}).get("alignment"),
        },
    )
    sec.tables.append(("Test metrics of the crossscene variants", table))
    return sec


def _alignment_section(quality: pd.DataFrame) -> Section:
    sec = Section("alignment", "Alignment quality")
    if quality.empty:
        sec.empty = True
        sec.paragraphs.append(
            "The store holds no SAME_AS pairs written by an aligner between two scenes: run "
            "scenerec align --store PATH --left SCENE --right SCENE and write the report again."
        )
        return sec
    groups = list(quality.groupby(["method", "left", "right"], sort=True))
    with_gold = [g for g in groups if int(g[1]["gold"].iloc[0]) > 0]
    sec.paragraphs.append(
        "The aligner's SAME_AS pairs (score: calibrated probability) at each score threshold. Precision: among the "
        "accepted pairs (score >= threshold) whose left node has a gold partner in the right scene, the share that "
        "is that gold pair. Recall: the accepted gold pairs over all gold pairs between the two scenes (seed pairs "
        "given to the aligner count in the denominator, so after a seeded alignment recall stays below "
        "1 - seed fraction)."
    )
    if len(with_gold) < len(groups):
        sec.paragraphs.append(
            "Precision needs gold pairs (SAME_AS with method 'gold' between the two scenes); where there are none, "
            "the figure shows the number of accepted pairs at each threshold."
        )

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(groups), squeeze=False)[0]
        for ax, ((method, left, right), part) in zip(axes, groups, strict=True):
            t = part["threshold"].to_numpy(np.float64)
            ax.set_title(f"{method}: {left} -> {right}", fontsize=10)
            ax.set_xlabel("score threshold")
            if int(part["gold"].iloc[0]) > 0:
                ax.plot(t, part["precision"], marker="o", label="precision", color="C0")
                ax.plot(t, part["recall"], marker="s", label="recall", color="C2")
                ax.set_ylim(-0.02, 1.05)
                ax.set_ylabel("precision / recall")
                twin = ax.twinx()
                twin.plot(t, part["accepted"], linestyle=":", color="C7", label="accepted pairs")
                twin.set_ylabel("accepted pairs", color="C7")
                lines = ax.get_lines() + twin.get_lines()
                ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=8, loc="lower left")
            else:
                ax.plot(t, part["accepted"], marker="o", color="C7", label="accepted pairs")
                ax.set_ylabel("accepted pairs (no gold pairs: no precision)")
                ax.legend(fontsize=8)

    sec.figures.append(
        (
            "alignment quality: precision and recall (or accepted pairs) per score threshold",
            _png(draw, (5.2 * len(groups) + 0.6, 3.8)),
        )
    )
    sec.tables.append(("Per threshold", quality))
    return sec


def _training_section(fits: list[dict[str, Any]]) -> Section:
    sec = Section("training", "Training curves")
    if not fits:
        sec.empty = True
        sec.paragraphs.append(
            "No training run has been logged on this generation yet (scenerec fit --store PATH logs one)."
        )
        return sec
    names = _run_names(fits)
    curves: list[tuple[str, list[tuple[float, float]], list[tuple[float, float]], str]] = []
    for fit, name in zip(fits, names, strict=True):
        history = [h for h in fit.get("history") or [] if isinstance(h, dict) and _is_number(h.get("epoch"))]
        monitor = next((k for h in history for k in h if k.startswith("valid_")), "valid_ndcg@10")
        loss = [(float(h["epoch"]), float(h["loss"])) for h in history if _is_number(h.get("loss"))]
        valid = [(float(h["epoch"]), float(h[monitor])) for h in history if _is_number(h.get(monitor))]
        if loss or valid:
            curves.append((name, loss, valid, monitor))
    table = pd.DataFrame(
        [
            {
                "run": name,
                "seed": fit.get("seed"),
                "epochs": len(fit.get("history") or []),
                "best epoch": fit.get("best_epoch"),
                "seconds": fit.get("seconds_total"),
                **{f"valid {k}": v for k, v in (fit.get("valid") or {}).items() if k.startswith(("ndcg@", "recall@"))},
                "trained (UTC)": _when(fit.get("time")),
            }
            for fit, name in zip(fits, names, strict=True)
        ],
        dtype=object,
    )
    if not curves:
        sec.empty = True
        sec.paragraphs.append(
            f"{len(fits)} training run{'s' if len(fits) != 1 else ''} logged, none with epochs to plot "
            "(the most-popular baseline trains no parameters)."
        )
        sec.tables.append(("Training runs", table))
        return sec
    sec.paragraphs.append(
        f"{len(fits)} training run{'s' if len(fits) != 1 else ''} in the order they ran; {len(curves)} with epochs "
        "(the most-popular baseline has none). Validation NDCG is measured every eval_every epochs."
    )

    def draw(fig: Figure) -> None:
        ax_loss, ax_valid = fig.subplots(1, 2)
        for i, (name, loss, valid, _) in enumerate(curves):
            color = f"C{i % 10}"
            if loss:
                ax_loss.plot(*zip(*loss, strict=True), color=color, label=_wrap(name, 40))
            if valid:
                ax_valid.plot(*zip(*valid, strict=True), color=color, marker=".", label=_wrap(name, 40))
        losses = [v for _, loss, _, _ in curves for _, v in loss]
        if losses and min(losses) > 0:
            ax_loss.set_yscale("log")  # BPR and softmax losses differ by an order of magnitude
        ax_loss.set_title("training loss" + (" (log scale)" if ax_loss.get_yscale() == "log" else ""))
        ax_loss.set_xlabel("epoch")
        ax_valid.set_title(curves[0][3].replace("_", " ", 1))
        ax_valid.set_xlabel("epoch")
        for ax in (ax_loss, ax_valid):
            if ax.get_lines():
                ax.legend(fontsize=7)

    sec.figures.append(("training curves: loss and validation NDCG per epoch", _png(draw, (11.0, 4.2))))
    sec.tables.append(("Training runs", table))
    return sec


# ---------------------------------------------------------------------------------------------------- helpers
def _run_names(fits: Sequence[dict[str, Any]]) -> list[str]:
    """The label of each fit, numbered (``#2``, ...) where a label repeats."""
    seen: dict[str, int] = {}
    out = []
    for fit in fits:
        label = str(fit.get("label") or fit.get("model") or "?")
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _png(draw: Callable[[Figure], None], size: tuple[float, float]) -> bytes:
    """The PNG of a new figure of ``size`` inches that ``draw`` fills (Agg, no pyplot state)."""
    fig = _matplotlib_figure().Figure(figsize=size, dpi=100, layout="constrained")
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _matplotlib_figure() -> ModuleType:
    """``matplotlib.figure``, imported on first use (the optional extra ``scenerec[report]``); raises
    :class:`~scenerec.errors.MissingExtraError` naming the extra when matplotlib is not installed."""
    return require_extra("matplotlib.figure", "report", "the HTML report")


def _bar_size(records: Sequence[dict[str, Any]]) -> tuple[float, float]:
    scenes = len({str(r["scene"]) for r in records})
    per_scene = max(sum(1 for r in records if str(r["scene"]) == s) for s in {str(r["scene"]) for r in records})
    return (min(5.5 * scenes + 1.5, 16.0), 1.4 + 0.55 * per_scene)


def _wrap(text: str, width: int = 28) -> str:
    """``text`` broken at ``, `` and spaces into lines of about ``width`` characters."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if isinstance(value, bool | np.bool_):
        return f"<td>{_e(value)}</td>"
    if isinstance(value, int | np.integer):
        return f'<td class="num">{int(value):,}</td>'
    if isinstance(value, float | np.floating):
        v = float(value)
        text = f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"
        return f'<td class="num">{text}</td>'
    return f"<td>{_e(value)}</td>"


def _rows(frame: pd.DataFrame, header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in frame.columns) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in frame.astype(object).itertuples(index=False)
    )
    return head + body


def _table(frame: pd.DataFrame, caption: str) -> str:
    return f'<div class="wide"><table><caption>{_e(caption)}</caption>{_rows(frame)}</table></div>'


def _when(stamp: Any) -> str:
    """An ISO time of the run log as ``YYYY-MM-DD HH:MM:SS`` (as given when it is not one)."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "" if stamp is None else str(stamp)
