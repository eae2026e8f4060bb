"""Serving latency: ``Engine.recommend`` one user at a time, ``Engine.recommend_many`` in blocks, and the write-back
of every user x scene, on a store with a fast model (the point is the serving path, not the model's quality).

    .venv/bin/python benchmarks/serving.py [--dataset sample|food-kitchen|PATH] [--store DIR] [--rebuild]
        [--model bpr] [--calls 2000] [--batch 256] [--k 10] [--threads N] [--no-write-back] [--profile N]

``--dataset sample`` is the bundled Arts–Office sample; ``food-kitchen`` the Amazon Food–Kitchen ``warm`` protocol
(36k items, 53k users) from ``../shared/data/amazon_food_kitchen`` next to the repository; any other value is a
dataset folder. The store is built once into ``--store`` without text embeddings (``--rebuild`` builds it again)
and the model (``--model``, one epoch, seed 0) is fitted once and saved there; later runs reuse both.

Then, after a warm-up of 100 calls, ``--calls`` random (user, scene) pairs (seed 0) are timed one by one through
``Engine.recommend(user, scene, k)``, and the same users in blocks of ``--batch`` through ``Engine.recommend_many``
(per block and per user). Prints p50/p95/p99 in ms. Unless ``--no-write-back``, ``Engine.write_back(k)`` of every
user x scene is timed, split into the scoring (``Ranker.top_k_frame``, timed alone first) and the rest (the
graph write). ``--profile N`` prints cProfile's top N functions of the ``recommend`` calls. ``--threads N`` sets
torch's thread count first (default: torch's own, one per core): on a machine whose cores are busy with other work a
multi-threaded matrix product of a block waits for its slowest thread, and one thread can be several times faster.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from scenerec.demo import SAMPLE
from scenerec.engine import Engine
from scenerec.kg import current_generation
from scenerec.pipeline import build

FOOD_KITCHEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_food_kitchen" / "warm"


def _dataset(name: str) -> Path:
    """The dataset folder ``name`` stands for."""
    return {"sample": SAMPLE, "food-kitchen": FOOD_KITCHEN}.get(name, Path(name))


def _ready(store: Path, dataset: Path, model: str, rebuild: bool) -> None:
    """Build ``store`` from ``dataset`` (no text) and fit ``model`` into it, unless both are there already."""
    if rebuild:
        shutil.rmtree(store, ignore_errors=True)
    try:
        current_generation(store)
    except Exception:  # no store yet: build it
        t0 = time.perf_counter()
        build(dataset, store, embed=None)
        print(f"built {store} from {dataset} in {time.perf_counter() - t0:.1f} s")
    with Engine.open(store, read_only=False) as engine:
        if not engine.model_dir.is_dir():
            t0 = time.perf_counter()
            engine.fit(model, epochs=1, seed=0)
            print(f"fitted {model} (1 epoch) in {time.perf_counter() - t0:.1f} s")


def sample_calls(engine: Engine, calls: int, seed: int = 0) -> list[tuple[str, str]]:
    """``calls`` random (user id, scene id) pairs (seed ``seed``) over the engine's users and the scenes its model
    has items of."""
    users = np.asarray(engine.idmap.ids("user"), dtype=object)
    scenes = engine.ranker._written_scenes(engine.model, None)
    rng = np.random.default_rng(seed)
    pick_users, pick_scenes = rng.integers(len(users), size=calls), rng.integers(len(scenes), size=calls)
    return [(str(users[u]), scenes[s]) for u, s in zip(pick_users, pick_scenes, strict=True)]


def time_recommend(
    engine: Engine, calls: list[tuple[str, str]], k: int, warmup: int = 100, profiler: cProfile.Profile | None = None
) -> list[float]:
    """Seconds of each ``engine.recommend(user, scene, k)`` of ``calls``, one at a time, after ``warmup`` untimed
    calls (the first ones of ``calls``); ``profiler`` is enabled around each timed call."""
    for user, scene in calls[:warmup]:
        engine.recommend(user, scene, k=k)
    out: list[float] = []
    for user, scene in calls:
        if profiler is not None:
            profiler.enable()
        t = time.perf_counter()
        engine.recommend(user, scene, k=k)
        out.append(time.perf_counter() - t)
        if profiler is not None:
            profiler.disable()
    return out


def _row(name: str, seconds: list[float], per: str = "call") -> str:
    ms = np.asarray(seconds) * 1000
    p50, p95, p99 = (np.percentile(ms, q) for q in (50, 95, 99))
    return f"| {name} | {len(ms)} {per}s | {p50:.3f} | {p95:.3f} | {p99:.3f} | {ms.mean():.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="sample")
    ap.add_argument("--store", type=Path, default=None, help="default: /tmp/scenerec-bench/serving/<dataset>")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--model", default="bpr")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--no-write-back", action="store_true")
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    dataset = _dataset(args.dataset)
    store = args.store or Path("/tmp/scenerec-bench/serving") / Path(args.dataset).name
    _ready(store, dataset, args.model, args.rebuild)

    with Engine.open(store, read_only=False) as engine:
        t0 = time.perf_counter()
        trained = engine.model
        print(f"model {trained.name}: loaded in {time.perf_counter() - t0:.2f} s")
        users = np.asarray(engine.idmap.ids("user"), dtype=object)
        scenes = engine.ranker._written_scenes(trained, None)
        print(f"{len(users)} users, {engine.idmap.size('item')} items, scenes {scenes}")
        calls = sample_calls(engine, args.calls)
        profiler = cProfile.Profile() if args.profile else None
        one = time_recommend(engine, calls, args.k, profiler=profiler)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)

        many: list[float] = []
        per_user: list[float] = []
        for scene in scenes:
            chosen = [u for u, s in calls if s == scene]
            engine.recommend_many(chosen[: args.batch], scene, k=args.k)  # warm-up
            for start in range(0, len(chosen), args.batch):
                block = chosen[start : start + args.batch]
                t = time.perf_counter()
                engine.recommend_many(block, scene, k=args.k)
                many.append(time.perf_counter() - t)
                per_user.append(many[-1] / len(block))
        print()
        print(f"| k={args.k} | calls | p50 ms | p95 ms | p99 ms | mean ms |")
        print("|---|---|---|---|---|---|")
        print(_row("recommend (one user)", one))
        print(_row(f"recommend_many (block of <= {args.batch})", many, "block"))
        print(_row("recommend_many, per user", per_user, "block"))

        if not args.no_write_back:
            t = time.perf_counter()
            frame = engine.ranker.top_k_frame(np.arange(len(users)), scenes, args.k)
            scoring = time.perf_counter() - t
            report = engine.write_back(k=args.k)
            print()
            print("| write-back | users x scenes | edges | scoring s (alone) | whole write-back s |")
            print("|---|---|---|---|---|")
            print(
                f"| {trained.name} | {len(users)} x {len(scenes)} | {report['edges']} ({len(frame)} scored) | "
                f"{scoring:.1f} | {report['seconds']:.1f} |"
            )


if __name__ == "__main__":
    main()
