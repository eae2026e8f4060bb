"""Text-model precision benchmark: fp32 against int8 (dynamic quantisation) on real item titles, speed and quality.

    .venv/bin/python benchmarks/embed_precision.py [--texts 2000] [--timing-texts 1000] [--queries 50]
                                                   [--threads 1,2] [--repeats 3] [--seed 0] [--shared ../shared/data]

The titles are those of the Amazon Food–Kitchen items (``amazon_food_kitchen/warm/items.csv``, both scenes), a
seeded random ``--texts`` of them (``0``: all 36,298). For each torch thread count of ``--threads`` it times
:meth:`HFTextEncoder.encode <scenerec.llm.HFTextEncoder.encode>` on the first ``--timing-texts`` of them for the
bundled all-MiniLM-L6-v2 at ``precision="fp32"`` and ``"int8"`` (both loaded and warmed up beforehand),
``--repeats`` times in alternating order (fp32 first, then int8 first, ...), and reports the median texts/s.

Quality, on all ``--texts`` titles: the cosine of each title's int8 vector to its fp32 vector (min, 1st percentile,
mean, and the share at >= 0.99), and for ``--queries`` titles used as search queries (each query's own row
excluded) the overlap of the int8 top-10 nearest titles with the fp32 top-10 (mean and min over the queries).
It ends with a markdown table for ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoTokenizer

from scenerec.llm import HFTextEncoder

DATASET = "amazon_food_kitchen"
PRECISIONS = ("fp32", "int8")


def titles(shared: Path, n: int, seed: int) -> list[str]:
    """A seeded random ``n`` of the dataset's non-empty item titles (all for ``n == 0``), in random order."""
    frame = pd.read_csv(shared / DATASET / "warm" / "items.csv", dtype=str, keep_default_na=False)
    found = [t for t in frame["title"].str.strip() if t]
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(found)) if n <= 0 or n >= len(found) else rng.choice(len(found), n, replace=False)
    return [found[i] for i in rows]


def rate(encoder: HFTextEncoder, texts: list[str], threads: int) -> float:
    """Texts per second of one ``encode`` of ``texts`` at ``threads`` torch threads."""
    encoder.threads = threads
    t0 = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - t0)


def speeds(
    encoders: dict[str, HFTextEncoder], texts: list[str], threads: list[int], repeats: int
) -> dict[tuple[int, str], float]:
    """Median texts/s per (threads, precision), ``repeats`` runs each, the order alternating between runs."""
    runs: dict[tuple[int, str], list[float]] = {}
    for n in threads:
        for r in range(repeats):
            for precision in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
                runs.setdefault((n, precision), []).append(rate(encoders[precision], texts, n))
                print(f"  threads {n} run {r + 1} {precision}: {runs[n, precision][-1]:.1f} texts/s", flush=True)
    return {key: statistics.median(values) for key, values in runs.items()}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=2000, help="titles for the quality figures (0: all)")
    ap.add_argument("--timing-texts", type=int, default=1000, help="of those, how many are timed per run")
    ap.add_argument("--queries", type=int, default=50, help="titles used as search queries")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    threads = [int(x) for x in args.threads.split(",")]

    texts = titles(args.shared, args.texts, args.seed)
    timed = texts[: args.timing_texts]
    encoders = {p: HFTextEncoder(precision=p, device="cpu") for p in PRECISIONS}
    tokenizer = AutoTokenizer.from_pretrained(encoders["fp32"].folder, local_files_only=True)
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=encoders["fp32"].max_length)["input_ids"]]
    print(
        f"{len(texts)} titles of {DATASET} (seed {args.seed}), {np.mean(lengths):.1f} tokens on average; "
        f"{len(timed)} timed per run; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.backends.quantized.engine})",
        flush=True,
    )
    for encoder in encoders.values():
        encoder.encode(texts[:64])  # load and warm up
    fast = speeds(encoders, timed, threads, args.repeats)

    for encoder in encoders.values():
        encoder.threads = max(threads)
    vectors = {p: encoders[p].encode(texts) for p in PRECISIONS}
    cos = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    queries = np.random.default_rng(args.seed + 1).choice(len(texts), min(args.queries, len(texts)), replace=False)
    overlap = top_k_overlap(vectors["fp32"], vectors["int8"], queries)

    print(f"\nall-MiniLM-L6-v2, {date.today()}: median texts/s of {args.repeats} alternating runs\n")
    print("| precision | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}" for n in threads) + " |")
    print("|---|" + "---|" * len(threads))
    for p in PRECISIONS:
        print(f"| {p} | " + " | ".join(f"{fast[n, p]:.0f}" for n in threads) + " |")
    print("| int8 / fp32 | " + " | ".join(f"{fast[n, 'int8'] / fast[n, 'fp32']:.2f}x" for n in threads) + " |")
    print(f"\nint8 against fp32 on {len(texts)} titles\n")
    print("| cosine min | cosine 1st pct | cosine mean | share >= 0.99 | top-10 overlap mean | top-10 overlap min |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {cos.min():.4f} | {np.percentile(cos, 1):.4f} | {cos.mean():.4f} | {(cos >= 0.99).mean():.3f} | "
        f"{overlap.mean():.3f} | {overlap.min():.1f} |"
    )


if __name__ == "__main__":
    main()
