"""What staged generations cost a writer, and what readers see while one writes, on real data.

    .venv/bin/python benchmarks/writers.py [--dataset ../shared/data/amazon_food_kitchen/warm] [--repeats 3]
        [--reads 200] [--work /tmp/scenerec-bench/writers]

A store is rebuilt from the dataset (no text embeddings: the point is the graph). Then:

* ``stage``: the writer lock plus a copy of the live generation made live unchanged (what every writer pays on
  top of its own work), median of ``--repeats``, against ``write-back``: ``Engine.write_back(k=10)`` of a fitted
  most-popular model (every user x scene) in the same run;
* ``readers``: a ``scenerec fit --model pop --write-k 10`` runs in another process while this one opens the live
  generation and reads one user's ``RECOMMENDED`` list in a loop; the same number of reads then runs with no
  writer. Prints failures (must be 0), the p50/p99 latency of both and the generations the readers saw.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from scenerec.engine import Engine
from scenerec.gnn import TrainConfig
from scenerec.kg import current_generation, open_store, rebuild
from scenerec.kg.lock import StagedGeneration, StoreLock

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_food_kitchen" / "warm"
SERVE = "MATCH (u:User {id: $user})-[r:RECOMMENDED]->(i:Item) RETURN i.id AS item, r.score AS score ORDER BY r.rank"


def _read_once(store: Path, user: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    gen = current_generation(store)
    with open_store(store, generation=gen.name) as graph:
        graph.query(SERVE, user=user)
    return time.perf_counter() - t0, gen.name


def _percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reads", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/scenerec-bench/writers"))
    args = ap.parse_args()
    store = args.work / "store"
    shutil.rmtree(args.work, ignore_errors=True)
    t0 = time.perf_counter()
    report = rebuild(args.dataset, store)
    size = sum(f.stat().st_size for f in current_generation(store).rglob("*") if f.is_file())
    print(
        f"rebuild {args.dataset} (no text): {time.perf_counter() - t0:.1f} s; "
        f"{report.counts['edges']['INTERACTED']:,} interactions; generation {size / 2**20:.1f} MiB"
    )

    stage, write_back = [], []
    with Engine.open(store, read_only=False) as engine:
        engine.fit("pop", config=TrainConfig(epochs=1, seed=1, threads=1))
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with StoreLock(store, "benchmark"), StagedGeneration(store, base=current_generation(store)):
                pass
            stage.append(time.perf_counter() - t0)
            engine.reopen(keep_model=True)  # the engine follows the new generation
            t0 = time.perf_counter()
            written = engine.write_back(k=10)
            write_back.append(time.perf_counter() - t0)
        user = str(engine.idmap.ids("user")[0])
    s, w = statistics.median(stage), statistics.median(write_back)
    print(
        f"stage (lock + copy + switch): {s:.3f} s; write-back of {written['edges']:,} edges: {w:.2f} s "
        f"(the copy adds {100 * s / w:.2f} % to it; medians of {args.repeats})"
    )

    before = current_generation(store).name
    cmd = [sys.executable, "-m", "scenerec.cli", "fit", "--store", str(store), "--model", "pop", "--quiet"]
    writer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    busy: list[float] = []
    seen: set[str] = set()
    failures = 0
    while writer.poll() is None or len(busy) < args.reads:
        try:
            seconds, gen = _read_once(store, user)
            busy.append(seconds)
            seen.add(gen)
        except Exception as exc:  # a benchmark counts failures instead of stopping
            failures += 1
            print(f"read failed: {type(exc).__name__}: {exc}")
    _, err = writer.communicate()
    if writer.returncode != 0:
        raise SystemExit(f"the writer failed: {err.strip()}")
    idle = [_read_once(store, user)[0] for _ in range(len(busy))]
    after = current_generation(store).name
    print(
        f"readers during a fit + write-back: {len(busy):,} reads, {failures} failed, {_percentiles(busy)}; "
        f"idle: {_percentiles(idle)}; generations seen: {len(seen)} ({before} -> {after})"
    )


if __name__ == "__main__":
    main()
