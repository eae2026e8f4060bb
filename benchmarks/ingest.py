"""Ingestion benchmark: rows/s per stage, and scenerec's graph load against LadybugDB's own raw COPY.

    .venv/bin/python benchmarks/ingest.py [--repeats 5] [--shared ../shared/data]

For each dataset (MovieLens-100K + Freebase KG in RecBole files; Amazon Arts–Office) it times, ``--repeats`` times:
read+clean (the loader and the cleaning), tables (canonical tables -> graph rows), scenerec's bulk load into a fresh
LadybugDB (``GraphStore.load_tables``: Arrow conversion, COPY, row-count checks), a raw COPY of the very same
rows into a fresh database with a bare ``ladybug`` connection (the peer), and a whole ``rebuild``. It prints medians
and the ratio load rate / raw COPY rate (target >= 0.8).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from scenerec.kg import LadybugStore, build_tables, rebuild
from scenerec.kg.schema import NODES, RELS
from scenerec.kg.tables import GraphTables
from scenerec.loaders import load_dataset

DATASETS = {
    "movielens-100k+kg": "movielens_100k_kg",
    "amazon-arts-office": "amazon_art_office_urllm",
}


def raw_copy(tables: GraphTables, path: Path) -> float:
    """Seconds for LadybugDB's own COPY of the same rows (schema DDL not timed), bare connection, no checks."""
    import ladybug

    arrow_nodes = {
        lb: pa.Table.from_pandas(df, preserve_index=False).combine_chunks() for lb, df in tables.nodes.items()
    }
    arrow_edges = [(e, pa.Table.from_pandas(e.rows, preserve_index=False).combine_chunks()) for e in tables.edges]
    db = ladybug.Database(str(path))
    conn = ladybug.Connection(db)
    for nt in NODES.values():
        conn.execute(
            f"CREATE NODE TABLE {nt.label}({', '.join(f'{n} {t}' for n, t in nt.properties)}, PRIMARY KEY(id))"
        )
    for rt in RELS.values():
        pairs = ", ".join(f"FROM {a} TO {b}" for a, b in rt.pairs)
        conn.execute(f"CREATE REL TABLE {rt.type}({pairs}{''.join(f', {n} {t}' for n, t in rt.properties)})")
    t0 = time.perf_counter()
    for label, scan_rows in arrow_nodes.items():  # noqa: B007 - COPY reads the local variable scan_rows
        conn.execute(f"COPY {label} FROM scan_rows")
    for e, scan_rows in arrow_edges:  # noqa: B007
        conn.execute(f"COPY {e.rel} FROM scan_rows (from='{e.src}', to='{e.dst}')")
    seconds = time.perf_counter() - t0
    conn.close()
    db.close()
    return seconds


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(name: str, path: Path, repeats: int) -> dict[str, float]:
    runs: dict[str, list[float]] = {k: [] for k in ("read+clean", "tables", "load", "raw COPY", "rebuild")}
    rows_in = rows_graph = 0
    for rep in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = load_dataset(path)
            runs["read+clean"].append(time.perf_counter() - t0)
            rows_in = sum(res.dataset.counts().values()) + len(res.rejects)
            t0 = time.perf_counter()
            tables = build_tables(res.dataset)
            runs["tables"].append(time.perf_counter() - t0)
            rows_graph = tables.total_rows
            # Alternate which of the two loads goes first, so that neither always gets the warmer machine.
            for which in ("load", "raw COPY") if rep % 2 == 0 else ("raw COPY", "load"):
                if which == "load":
                    store = LadybugStore(Path(tmp) / "a.lbug")
                    store.create_schema()
                    runs["load"].append(timed(lambda s=store, t=tables: s.load_tables(t)))  # type: ignore[misc]
                    store.close()
                else:
                    runs["raw COPY"].append(raw_copy(tables, Path(tmp) / "b.lbug"))
            runs["rebuild"].append(timed(lambda tmp=tmp: rebuild(path, Path(tmp) / "store")))  # type: ignore[misc]
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\n{name}: {rows_in:,} canonical rows (incl. rejects), {rows_graph:,} graph rows; medians of {repeats}")
    print(f"  {'stage':<12} {'seconds':>8} {'rows/s':>12}")
    for stage, sec in med.items():
        rows = rows_in if stage == "read+clean" else rows_graph
        print(f"  {stage:<12} {sec:>8.3f} {rows / sec:>12,.0f}")
    ratio = med["raw COPY"] / med["load"]
    print(f"  load rate / raw COPY rate = {ratio:.2f}  (target >= 0.8)")
    return {"ratio": ratio, "rebuild": med["rebuild"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    results = {name: bench(name, args.shared / folder, args.repeats) for name, folder in DATASETS.items()}
    ml = results["movielens-100k+kg"]["rebuild"]
    print(f"\nwhole MovieLens-100K+KG rebuild: {ml:.2f} s (target < 10 s)")


if __name__ == "__main__":
    main()
