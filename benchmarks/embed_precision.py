"""Text-model routes benchmark: every encoder route against torch fp32 on real item titles, speed and quality.

    .venv/bin/python benchmarks/embed_precision.py [--texts 2000] [--timing-texts 1000] [--queries 50]
        [--threads 1,2] [--repeats 3] [--seed 0] [--splits 3] [--routes torch-fp32,onnx-fp32,...]
        [--shared ../shared/data]

Routes (``--routes``, default all): ``torch-fp32`` (the reference: the bundled all-MiniLM-L6-v2 as published, on
torch), ``torch-int8`` (torch's dynamic int8), ``onnx-fp32`` (ONNX Runtime, the default route), ``onnx-int8``
(ONNX Runtime int8, per-channel, first two feed-forward blocks float32), ``onnx-fp32-len64`` (``onnx-fp32`` with
``max_length=64`` instead of 256) and ``static`` (the model2vec static model distilled from the bundled one).
Derived models come from :func:`scenerec.llm.model_cache_dir`; building them (export, quantisation,
distillation) is timed and printed when it happens in this run.

The titles are those of the Amazon Food–Kitchen items (``amazon_food_kitchen/warm/items.csv``, both scenes), a
seeded random ``--texts`` of them (``0``: all 36,298). For each thread count of ``--threads`` it times ``encode``
of the first ``--timing-texts`` titles for every route (all loaded and warmed up beforehand), ``--repeats``
times with the order of the routes reversed every other run, and reports the median texts/s and the ratio to
torch fp32 *of the same run* (other developers share these cores: the ratios are what carries over).

Quality, on all ``--texts`` titles: the cosine of each title's vector to its torch fp32 vector (min, 1st
percentile, mean, the share >= 0.99); for ``--queries`` titles used as search queries (each query's own row
excluded) the overlap of the route's top-10 nearest titles with torch fp32's (mean and min); and scene
classification (food vs kitchen from the title vector alone, :class:`~scenerec.llm.SceneClassifier`, ``--splits``
seeded stratified 80/20 splits): median held-out accuracy and the share of held-out predictions equal to torch
fp32's. The load average before and after is printed. It ends with markdown tables for ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from scenerec.llm import HFTextEncoder, SceneClassifier, StaticTextEncoder, TextEncoder
from scenerec.llm.scenes import accuracy, stratified_split

DATASET = "amazon_food_kitchen"
REFERENCE = "torch-fp32"

#: Route name -> how to build its encoder at ``threads`` threads.
ROUTES: dict[str, Callable[[int], TextEncoder]] = {
    "torch-fp32": lambda n: HFTextEncoder(runtime="torch", device="cpu", threads=n),
    "torch-int8": lambda n: HFTextEncoder(runtime="torch", precision="int8", threads=n),
    "onnx-fp32": lambda n: HFTextEncoder(runtime="onnx", threads=n),
    "onnx-int8": lambda n: HFTextEncoder(runtime="onnx", precision="int8", threads=n),
    "onnx-fp32-len64": lambda n: HFTextEncoder(runtime="onnx", max_length=64, threads=n),
    "static": lambda n: StaticTextEncoder(threads=n),
}


def titles(shared: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random ``n`` of the dataset's non-empty item titles (all for ``n == 0``), in random order, and
    their scenes."""
    frame = pd.read_csv(shared / DATASET / "warm" / "items.csv", dtype=str, keep_default_na=False)
    frame = frame[frame["title"].str.strip() != ""]
    found, scenes = frame["title"].str.strip().tolist(), frame["scene"].tolist()
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(found)) if n <= 0 or n >= len(found) else rng.choice(len(found), n, replace=False)
    return [found[i] for i in rows], [scenes[i] for i in rows]


def rate(encoder: TextEncoder, texts: list[str]) -> float:
    """Texts per second of one ``encode`` of ``texts``."""
    t0 = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - t0)


def speeds(
    routes: list[str], texts: list[str], threads: list[int], repeats: int
) -> tuple[dict[tuple[int, str], float], dict[tuple[int, str], float]]:
    """Median texts/s per (threads, route) over ``repeats`` runs (the order of the routes reversed every other
    run), and per run the ratio to torch fp32 of that run, medianed the same way."""
    runs: dict[tuple[int, str], list[float]] = {}
    ratios: dict[tuple[int, str], list[float]] = {}
    for n in threads:
        encoders = {r: ROUTES[r](n) for r in routes}
        for encoder in encoders.values():
            encoder.encode(texts[:64])  # load and warm up
        for run in range(repeats):
            this: dict[str, float] = {}
            for route in routes if run % 2 == 0 else routes[::-1]:
                this[route] = rate(encoders[route], texts)
                runs.setdefault((n, route), []).append(this[route])
            print(f"  threads {n} run {run + 1}: " + ", ".join(f"{r} {v:.0f}" for r, v in this.items()), flush=True)
            for route in routes:
                ratios.setdefault((n, route), []).append(this[route] / this[REFERENCE])
    return (
        {k: statistics.median(v) for k, v in runs.items()},
        {k: statistics.median(v) for k, v in ratios.items()},
    )


def top_k_overlap(a: np.ndarray, b: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """For each query row, the share of its top-``k`` neighbours under ``b`` that are also its top-``k`` under
    ``a`` (rows of unit vectors; the query's own row excluded)."""
    out = np.zeros(len(queries))
    for i, q in enumerate(queries):
        tops = []
        for vectors in (a, b):
            scores = vectors @ vectors[q]
            scores[q] = -np.inf
            tops.append(set(np.argpartition(-scores, k)[:k].tolist()))
        out[i] = len(tops[0] & tops[1]) / k
    return out


def scene_predictions(vectors: np.ndarray, scenes: list[str], splits: int) -> list[list[str]]:
    """Held-out scene predictions of a classifier on ``vectors``, one list per seeded 80/20 split."""
    out = []
    for seed in range(splits):
        train, test = stratified_split(scenes, 0.2, seed)
        model = SceneClassifier(seed=seed).fit(vectors[train], [scenes[i] for i in train])
        out.append(model.predict(vectors[test])[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=2000, help="titles for the quality figures (0: all)")
    ap.add_argument("--timing-texts", type=int, default=1000, help="of those, how many are timed per run")
    ap.add_argument("--queries", type=int, default=50, help="titles used as search queries")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", type=int, default=3, help="seeded 80/20 splits for scene classification")
    ap.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated, of {', '.join(ROUTES)}")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    threads = [int(x) for x in args.threads.split(",")]
    routes = [REFERENCE] + [r for r in args.routes.split(",") if r != REFERENCE]
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        ap.error(f"unknown routes {unknown}; expected some of {', '.join(ROUTES)}")

    texts, scenes = titles(args.shared, args.texts, args.seed)
    timed = texts[: args.timing_texts]
    load_before = os.getloadavg()
    print(
        f"{len(texts)} titles of {DATASET} (seed {args.seed}); {len(timed)} timed per run; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average {load_before[0]:.1f}",
        flush=True,
    )
    built: dict[str, float] = {}
    for route in routes:  # build what is not cached yet (export, quantisation, distillation), timed
        encoder = ROUTES[route](max(threads))
        encoder.encode(texts[:2])
        if getattr(encoder, "prepare_seconds", 0.0):
            built[route] = encoder.prepare_seconds
            print(f"  built {route} in {built[route]:.1f} s", flush=True)
    fast, ratio = speeds(routes, timed, threads, args.repeats)

    vectors = {}
    for route in routes:
        vectors[route] = ROUTES[route](max(threads)).encode(texts)
    queries = np.random.default_rng(args.seed + 1).choice(len(texts), min(args.queries, len(texts)), replace=False)
    predicted = {route: scene_predictions(vectors[route], scenes, args.splits) for route in routes}
    held_out = [[scenes[i] for i in stratified_split(scenes, 0.2, seed)[1]] for seed in range(args.splits)]
    load_after = os.getloadavg()

    print(f"\n{date.today()}, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    names = [f"{n} thread{'s' if n > 1 else ''}" for n in threads]
    print("| route | " + " | ".join(f"{x} texts/s | {x} / torch fp32" for x in names) + " |")
    print("|---|" + "---|---|" * len(threads))
    for r in routes:
        print(f"| {r} | " + " | ".join(f"{fast[n, r]:.0f} | {ratio[n, r]:.2f}x" for n in threads) + " |")
    print(f"\nagainst torch fp32 on {len(texts)} titles ({args.queries} title queries, {args.splits} splits)\n")
    print(
        "| route | cosine min | cosine 1st pct | cosine mean | share >= 0.99 | top-10 overlap mean / min | "
        "scene accuracy | scene predictions = fp32's |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in routes:
        cos = (vectors[r] * vectors[REFERENCE]).sum(axis=1)
        overlap = top_k_overlap(vectors[REFERENCE], vectors[r], queries)
        acc = statistics.median(accuracy(t, p) for t, p in zip(held_out, predicted[r], strict=True))
        pairs = zip(predicted[r], predicted[REFERENCE], strict=True)
        same = np.mean([a == b for p, q in pairs for a, b in zip(p, q, strict=True)])
        print(
            f"| {r} | {cos.min():.4f} | {np.percentile(cos, 1):.4f} | {cos.mean():.4f} | {(cos >= 0.99).mean():.3f} | "
            f"{overlap.mean():.3f} / {overlap.min():.1f} | {acc:.3f} | {same:.3f} |"
        )
    for route, seconds in built.items():
        print(f"\nbuilt in this run: {route} {seconds:.1f} s")


if __name__ == "__main__":
    main()
