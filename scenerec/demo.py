"""The end-to-end demo behind ``scenerec demo`` and ``make demo``: the whole pipeline on a dataset (by default the
bundled two-scene sample), printed step by step.

:func:`run_demo` rebuilds the store (with text embeddings), explores it with Cypher, a 2-hop neighbourhood and a
semantic search, aligns the two first scenes, trains the transfer ablation of ``benchmarks/transfer.py`` and
evaluates it per scene, writes the recommendations back into the graph, explains a few of them, serves them with
one Cypher query and writes the HTML report. It returns a :class:`DemoResult` holding every table it printed and
the steps with their timings.

What the demo says about its dataset (the target scene, the queries, the search texts) is a :class:`DemoPreset`;
:data:`SAMPLE_PRESET` describes the bundled sample :data:`SAMPLE`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import pandas as pd

from scenerec import __version__
from scenerec.console import Progress, print_frame, print_paths, print_rebuild, print_write_back

if TYPE_CHECKING:
    from scenerec.kg.rebuild import RebuildReport

#: One Cypher query that serves a user's written-back recommendations in a scene (parameters ``user``, ``scene``).
SERVE_QUERY = (
    "MATCH (u:User {id: $user})-[r:RECOMMENDED]->(i:Item) WHERE i.scene = $scene "
    "RETURN r.rank AS rank, i.id AS item, r.score AS score ORDER BY rank LIMIT 5"
)


def transfer_ablation(target: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The models the demo trains, as ``(variant, model, Engine.fit keywords)``: the transfer ablation of
    ``benchmarks/transfer.py`` with ``target`` as the target scene. The full model comes last, so it is the one
    saved, written back and explained."""
    return [
        ("most popular", "pop", {}),
        ("target scene only (no transfer)", "crossscene", {"scenes": [target], "options": {"gate": False}}),
        ("shared users", "crossscene", {"alignment": False, "options": {"gate": False}}),
        ("+ entity alignment", "crossscene", {"options": {"gate": False}}),
        ("+ gate: crossscene (full transfer)", "crossscene", {}),
    ]


@dataclass(frozen=True)
class DemoPreset:
    """What the demo says about one dataset (``name``, as the first line of the demo calls it).

    ``target`` is the scene of the transfer ablation, of the semantic search and of the explained and served
    recommendations; ``search`` is the text searched among its items, ``hint_search`` the one suggested at the end.
    ``queries`` are ``(title, cypher, parameters)`` run on the fresh graph: a query that names ``$brand`` gets the
    brand that the scenes share most, and the brand is added to its title. Training uses ``seed`` and at most
    ``epochs`` epochs.
    """

    name: str
    target: str
    search: str
    hint_search: str
    queries: tuple[tuple[str, str, dict[str, Any]], ...]
    seed: int = 2020
    epochs: int = 50

    @property
    def variants(self) -> list[tuple[str, str, dict[str, Any]]]:
        """:func:`transfer_ablation` of :attr:`target`."""
        return transfer_ablation(self.target)


# ---------------------------------------------------------------------------------------------------------------
# The bundled sample: 700 users with interactions in two Amazon scenes, "arts" (Arts, Crafts & Sewing) and "office"
# (Office Products), with brand and category entities (scenerec/sample_data/amazon_arts_office/SOURCE.md).

#: The bundled sample's folder (generic format).
SAMPLE = Path(__file__).resolve().parent / "sample_data" / "amazon_arts_office"

#: The demo on :data:`SAMPLE`: office is the target scene; its pens and paper make the search texts.
SAMPLE_PRESET = DemoPreset(
    name="the bundled sample",
    target="office",
    search="blue gel pens",
    hint_search="watercolor paper",
    queries=(
        (
            "Users active in both scenes (shared users)",
            "MATCH (u:User)-[:INTERACTED]->(i:Item) WITH u, count(DISTINCT i.scene) AS scenes "
            "WHERE scenes > 1 RETURN count(u) AS shared_users",
            {},
        ),
        (
            "Most connected items (users who interacted)",
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN i.id AS item, i.scene AS scene, i.title AS title, "
            "count(u) AS users ORDER BY users DESC, item LIMIT $k",
            {"k": 5},
        ),
        (
            "Office items of the brand most shared between the scenes",
            "MATCH (i:Item)-[:RELATED {relation: 'brand'}]->(b:Entity) WHERE b.id = $brand AND i.scene = $scene "
            "RETURN i.id AS item, i.title AS title ORDER BY item LIMIT 5",
            {"scene": "office"},
        ),
    ),
)
# ---------------------------------------------------------------------------------------------------------------


class DemoStep(NamedTuple):
    """One row of the demo's summary table."""

    step: str
    seconds: float
    what: str


@dataclass
class DemoResult:
    """What :func:`run_demo` did: the ``store`` folder, the ``report`` file it wrote (``report.html``), the
    ``rebuild``'s report and the ``steps`` of the summary table.

    ``tables`` holds every table it printed, by name: ``scenes`` (the rebuild's counts per scene),
    ``shared_entities``, one per query of the preset (its title, without the brand), ``neighbourhood`` (nodes per
    hop and label around a user), ``search`` (only when the texts were embedded), ``alignment`` (the most confident
    pairs; absent when none was accepted), ``ablation`` (variant x scene metrics), ``served`` (the Cypher-served
    recommendations; absent without a user active in two scenes) and ``summary`` (the steps). ``recommendations``
    holds, per explained user, ``Engine.recommend(..., explain=True)``'s frame.
    """

    store: Path
    report: Path
    rebuild: RebuildReport
    steps: list[DemoStep]
    tables: dict[str, pd.DataFrame]
    recommendations: dict[str, pd.DataFrame]

    @property
    def seconds(self) -> float:
        """The steps' seconds, summed."""
        return sum(s.seconds for s in self.steps)


class _Printer:
    """Prints to ``out`` and keeps every table it prints."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tables: dict[str, pd.DataFrame] = {}

    def __call__(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def table(self, name: str, df: pd.DataFrame) -> None:
        self.tables[name] = df
        print_frame(df, "table", file=self.out)


def run_demo(
    sample: str | Path = SAMPLE,
    store: str | Path = "demo-store",
    report: str | Path = "demo-report",
    *,
    preset: DemoPreset = SAMPLE_PRESET,
    quiet: bool = False,
    out: TextIO | None = None,
) -> DemoResult:
    """Run the demo on ``sample`` (described by ``preset``): rebuild ``store``, explore, align, train and evaluate
    the transfer ablation, write back, explain, serve, and write the HTML report into the folder ``report``.

    Prints to ``out`` (default ``sys.stdout``); ``quiet`` hides the progress bars (stderr). A dataset needs at least
    two scenes, one of them ``preset.target``.
    """
    say = _Printer(sys.stdout if out is None else out)
    sample, store = Path(sample), str(store)
    say(
        f"scenerec {__version__} demo: the whole pipeline on {preset.name} (rebuild, query, align, train with "
        "and without transfer, evaluate, write back, explain, report)",
        f"sample:  {sample}",
    )
    built, seconds = _rebuild(sample, store, quiet, say)
    steps = [DemoStep("rebuild + embed", seconds, _counts_line(built))]
    _explore(store, bool(built.features), preset, say)
    steps.append(_align(store, preset, say))
    recommendations: dict[str, pd.DataFrame] = {}
    steps += _recommenders(store, preset, say, recommendations)
    page, step = _report(store, report)
    steps.append(step)
    result = DemoResult(Path(store), page, built, steps, say.tables, recommendations)
    say(f"\n== Summary: what the demo did ({result.seconds:.0f} s)")
    say.table("summary", pd.DataFrame(steps, columns=list(DemoStep._fields)).round({"seconds": 1}))
    _print_hints(store, page, preset, say)
    return result


def _rebuild(sample: Path, store: str, quiet: bool, say: _Printer) -> tuple[RebuildReport, float]:
    """Build the store with text embeddings; print the rebuild's summary."""
    from scenerec.pipeline import build

    t0 = time.perf_counter()
    progress = Progress(quiet)
    try:
        built = build(sample, store, progress=progress)
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    say(f"\n== rebuild ({seconds:.1f} s)")
    say.tables["scenes"] = pd.DataFrame(built.scenes)
    print_rebuild(built, file=say.out)
    return built, seconds


def _explore(store: str, embedded: bool, preset: DemoPreset, say: _Printer) -> None:
    """Shared entities, the preset's Cypher queries, a user's 2-hop neighbourhood and (with text) a search."""
    from scenerec.kg import open_store

    with open_store(store) as graph:
        shared = graph.shared_entities(limit=8)
        say("\n== Entities that both scenes share (items of each scene point to them)")
        say.table("shared_entities", shared)
        brand = next((e for e, t in zip(shared["entity"], shared["type"], strict=True) if t == "brand"), "")
        for title, cypher, params in preset.queries:
            p, heading = dict(params), title
            if "$brand" in cypher:
                p["brand"] = brand
                heading += f" ({brand})"
            say(f"\n== {heading}\n   {cypher}")
            say.table(title, graph.query(cypher, **p))
        user = str(graph.query("MATCH (u:User) RETURN u.id AS id ORDER BY id LIMIT 1")["id"].iloc[0])
        hood = graph.k_hop(user, k=2, label="User")
        say(f"\n== 2-hop neighbourhood of user {user}: nodes per label and distance")
        say.table("neighbourhood", hood.groupby(["hops", "label"]).size().rename("nodes").reset_index())
    if embedded:
        from scenerec.engine import Engine

        with Engine.open(store) as engine:
            say(f"\n== Semantic search (text embeddings): '{preset.search}' among {preset.target} items")
            say.table("search", engine.search_items(preset.search, scene=preset.target, k=5))


def _align(store: str, preset: DemoPreset, say: _Printer) -> DemoStep:
    """Align the first two scenes (no gold pairs: training-free text + structure, CSLS, mutual nearest)."""
    from scenerec.engine import Engine

    t0 = time.perf_counter()
    with Engine.open(store, read_only=False) as engine:
        left, right = engine.store.scene_ids()[:2]
        result = engine.align(left, right, seed_fraction=0.0, seed=preset.seed)
        pairs = result.pairs
    say(f"\n== Entity alignment {left} <-> {right}: the same things under different ids (SAME_AS edges)")
    summary = result.summary
    say(
        f"   {summary['pairs']} pairs accepted (calibrated score >= {summary.get('threshold', 0.5)}), "
        f"{summary['written']} written as SAME_AS, {len(result.review)} below the threshold listed for review; "
        f"{summary['shared_users']} users are shared by the scenes"
    )
    if len(pairs):
        show = pairs.sort_values("score", ascending=False).head(5)
        say.table("alignment", show[["kind_left", "name_left", "name_right", "score"]].round({"score": 3}))
    seconds = time.perf_counter() - t0
    return DemoStep("align", seconds, f"{summary['written']} SAME_AS pairs between {left} and {right}")


def _recommenders(
    store: str, preset: DemoPreset, say: _Printer, recommendations: dict[str, pd.DataFrame]
) -> list[DemoStep]:
    """Train the transfer ablation, compare it per scene, write back, recommend with explanations, serve."""
    from scenerec.engine import Engine

    steps: list[DemoStep] = []
    target, variants = preset.target, preset.variants
    columns = ["variant", "scene", "users", "recall@10", "ndcg@10", "recall@20", "ndcg@20"]
    with Engine.open(store, read_only=False) as engine:
        scenes = engine.store.scene_ids()
        rows = []
        t0 = time.perf_counter()
        for variant, name, kw in variants:
            result = engine.fit(name, seed=preset.seed, epochs=preset.epochs, **kw)
            rows += [{"variant": variant, **engine.evaluate(scene)} for scene in scenes]
        steps.append(
            DemoStep("train + evaluate", time.perf_counter() - t0, f"{len(variants)} models x {len(scenes)} scenes")
        )
        say(
            f"\n== Transfer into recommendation, target scene {target}: with and without transfer "
            f"(seed {preset.seed}; full model: best epoch {result.best_epoch} of {len(result.history)}, "
            f"{result.seconds_total:.1f} s)",
            "   test split, full ranking of each scene's items, the user's train and valid items left out",
        )
        say.table("ablation", pd.DataFrame(rows)[columns].round(4))
        t0 = time.perf_counter()
        written = engine.write_back(k=10)
        steps.append(DemoStep("write back", time.perf_counter() - t0, f"{written['edges']} RECOMMENDED edges"))
        say("\n== Write-back: the recommendations and the learnt vectors go into the graph for Cypher users")
        print_write_back(written, file=say.out)
        users = engine.store.query(
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE r.split = 'train' "
            "WITH u, count(DISTINCT i.scene) AS scenes, count(i) AS n WHERE scenes > 1 "
            "RETURN u.id AS user, n ORDER BY n DESC, user LIMIT 2"
        )["user"].astype(str)
        titles = engine.items().set_index("item_id")["title"]
        t0 = time.perf_counter()
        for user in users:
            recs = recommendations[user] = engine.recommend(user, target, k=3, explain=True, max_paths=2)
            say(f"\n== Top 3 {target} items for user {user}, and why (Engine.recommend(..., explain=True))")
            for row in recs.itertuples(index=False):
                say(f"  {row.rank}. item {row.item_id} ({row.score:.4f}) {titles.get(row.item_id, '')}")
                print_paths(list(row.explanation), indent="       ", file=say.out)
        steps.append(
            DemoStep("explain", time.perf_counter() - t0, f"top 3 with their best 2 paths for {len(users)} users")
        )
        if len(users):
            user = users.iloc[-1]
            say(f"\n== Served from the graph, one Cypher query (user {user}, scene {target})\n   {SERVE_QUERY}")
            say.table("served", engine.store.query(SERVE_QUERY, user=user, scene=target).round({"score": 4}))
    return steps


def _report(store: str, folder: str | Path) -> tuple[Path, DemoStep]:
    """Write the HTML report; its path and the step."""
    from scenerec.report import make_report

    t0 = time.perf_counter()
    page = make_report(store)
    path = page.write(folder)
    return path, DemoStep("report", time.perf_counter() - t0, f"{page.images} plots in {path}")


def _print_hints(store: str, report: Path, preset: DemoPreset, say: _Printer) -> None:
    """Where the results are and the commands to go on with."""
    say(
        f"\nThe store is {store}; the report is {report.resolve()} (open it in a browser).",
        f'\nQuery it yourself:  scenerec query --store {store} "MATCH (s:Scene) RETURN s.id, s.name"',
        f'Search by meaning:  scenerec search --store {store} "{preset.hint_search}" -k 5',
        f"Serve from Cypher:  scenerec query --store {store} '{SERVE_QUERY}' --param user=USER "
        f"--param scene={preset.target}",
        f"Similar items:      scenerec similar --store {store} --item ITEM -k 5",
        f"Why an item:        scenerec explain --store {store} --user USER --item ITEM",
        f"Add new data:       scenerec update --store {store} NEW_DATA_FOLDER",
    )


def _counts_line(built: RebuildReport) -> str:
    """``4146 nodes, 15941 relationships, 3446 texts embedded`` for a rebuild's report."""
    nodes = sum(built.counts.get("nodes", {}).values())
    edges = sum(built.counts.get("edges", {}).values())
    texts = built.features.get("texts", 0)
    texts = sum(texts.values()) if isinstance(texts, dict) else texts
    return f"{nodes} nodes, {edges} relationships, {texts} texts embedded"
