"""Text-embedding benchmark: the embedding pipeline's sentences/s against a bare model loop, and cached rebuilds.

    .venv/bin/python benchmarks/embed.py [--items 400] [--repeats 3] [--threads 1,2] [--seed 0]
                                         [--rebuild-dataset subset|sample] [--shared ../shared/data]

On a seeded random subset of the Amazon Arts–Office items (``--items 0``: all 38,396, which takes a long time on
two cores) it measures, for each torch thread count of ``--threads``, ``--repeats`` times and in alternating order:

* pipeline: ``embed_dataset`` into a fresh embedding cache (templating, hashing, tokenising, length-sorted
  batching, the forward passes, pooling, writing the cache);
* bare: the same rendered texts through the simplest loop there is: consecutive batches of ``batch_size`` in the
  given order, ``tokenizer(batch, padding=True, truncation=True)`` -> ``model(**batch)`` under
  ``torch.inference_mode()`` -> masked mean pooling -> L2 normalisation (same tokenizer, model, threads).

It prints medians, the ratio pipeline rate / bare rate (target >= 0.9), the time spent inside the model's forward
and the tokens it saw (real and padding), and which thread count gave the faster pipeline. Then it writes the
subset (its items, interactions, triples and entities) as a generic dataset folder (or, with
``--rebuild-dataset sample``, takes the bundled sample) and times ``scenerec.pipeline.build`` twice on one store
with a freshly constructed encoder (so the first build includes loading the weights): the second must take every
vector from the cache and run no forward pass. A third build with another fresh encoder checks that a fully cached
rebuild never loads the weights. It ends with a markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from scenerec.cli import SAMPLE
from scenerec.llm import HFTextEncoder, TextTemplates, embed_dataset
from scenerec.llm.features import TEXT_LABELS
from scenerec.loaders import load_dataset
from scenerec.pipeline import build
from scenerec.records import Dataset, isin

DATASET = "amazon_art_office_urllm"
T = TypeVar("T")


class TimedModel:
    """Wraps the loaded model: counts the seconds spent in its forward passes and the tokens they saw."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.tokens = 0  # padded positions the model ran over
        self.real = 0  # positions holding a real token

    def reset(self) -> None:
        self.seconds, self.tokens, self.real = 0.0, 0, 0

    def __call__(self, **batch: Any) -> Any:
        t0 = time.perf_counter()
        out = self.inner(**batch)
        self.seconds += time.perf_counter() - t0
        self.tokens += int(batch["input_ids"].numel())
        self.real += int(batch["attention_mask"].sum())
        return out


def subset_of(ds: Dataset, n: int, seed: int) -> Dataset:
    """A dataset with ``n`` items drawn at random (all for ``n == 0``), the scenes kept, nothing else."""
    if n <= 0 or n >= len(ds.items):
        items = ds.items
    else:
        rows = np.sort(np.random.default_rng(seed).choice(len(ds.items), size=n, replace=False))
        items = ds.items.iloc[rows]
    return Dataset(
        f"{ds.name}[{len(items)}]", scenes=ds.scenes, items=items.drop(columns=["_file", "_line"], errors="ignore")
    )


def rendered_texts(ds: Dataset) -> list[str]:
    """Every text ``embed_dataset`` renders for ``ds``, in its order (scenes, items, entities)."""
    templates = TextTemplates()
    return [t for label in TEXT_LABELS for t in templates.for_label(label, ds)]


def bare_encode(tokenizer: Any, model: Any, texts: Sequence[str], batch_size: int, max_length: int) -> np.ndarray:
    """The peer: consecutive batches in the given order, padded per batch, masked mean pooling, L2."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def with_threads(threads: int, fn: Callable[[], T]) -> T:
    """``fn()`` with ``threads`` torch threads (the setting is restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def rates(
    subset: Dataset, encoder: HFTextEncoder, timed_model: TimedModel, thread_counts: list[int], repeats: int
) -> dict[int, dict[str, float]]:
    """Pipeline and bare seconds per thread count (medians), with model-forward seconds and token counts."""
    tokenizer, _ = encoder._load()
    texts = rendered_texts(subset)
    unique = list(dict.fromkeys(texts))  # what embed_dataset hands the model
    runs: dict[int, dict[str, list[float]]] = {t: {} for t in thread_counts}

    def record(threads: int, key: str, value: float) -> None:
        runs[threads].setdefault(key, []).append(value)

    index = {t: i for i, t in enumerate(unique)}
    peer = partial(bare_encode, tokenizer, timed_model, unique, encoder.batch_size, encoder.max_length)
    warm_up = partial(
        bare_encode, tokenizer, timed_model, unique[: encoder.batch_size], encoder.batch_size, encoder.max_length
    )
    for threads in thread_counts:  # start the thread pool, first-call allocations
        with_threads(threads, warm_up)
    reference: np.ndarray | None = None
    for rep in range(repeats):
        # Alternate the thread counts and, within each, which of the two goes first, so that neither always gets
        # the quieter (or the warmer) machine.
        for threads in thread_counts if rep % 2 == 0 else thread_counts[::-1]:
            for which in ("pipeline", "bare") if rep % 2 == 0 else ("bare", "pipeline"):
                timed_model.reset()
                if which == "pipeline":
                    encoder.threads = threads
                    with tempfile.TemporaryDirectory() as cache:
                        t0 = time.perf_counter()
                        vectors, stats = embed_dataset(subset, encoder, cache_dir=cache)
                        seconds = time.perf_counter() - t0
                    assert stats.encoded == len(unique), (stats.encoded, len(unique))
                    got = np.concatenate([vectors[label] for label in TEXT_LABELS if len(vectors[label])])
                else:
                    t0 = time.perf_counter()
                    bare = with_threads(threads, peer)
                    seconds = time.perf_counter() - t0
                    got = bare[[index[t] for t in texts]]
                if reference is None:
                    reference = got
                else:  # same vectors whichever way (padding changes the float sums a little)
                    assert float(np.abs(got - reference).max()) < 1e-4
                record(threads, which, seconds)
                record(threads, f"{which} model", timed_model.seconds)
                record(threads, f"{which} tokens", timed_model.tokens)
                record(threads, f"{which} real", timed_model.real)
    return {t: {k: statistics.median(v) for k, v in r.items()} for t, r in runs.items()}


def write_generic(full: Dataset, subset: Dataset, folder: Path) -> None:
    """The subset's items with their interactions, triples and entities as a generic dataset folder (CSV)."""
    folder.mkdir(parents=True)
    items = subset.items
    attrs = pd.DataFrame([json.loads(a) if a else {} for a in items["attributes"]], index=items.index)
    pd.concat([items[["id", "scene", "title", "description"]].rename(columns={"id": "item_id"}), attrs], axis=1).to_csv(
        folder / "items.csv", index=False
    )
    ids = items["id"]
    inter = full.interactions[isin(full.interactions["item"], ids)]
    inter[["user", "item", "timestamp", "rating", "split"]].rename(
        columns={"user": "user_id", "item": "item_id"}
    ).to_csv(folder / "interactions.csv", index=False)
    triples = full.triples[isin(full.triples["head"], ids) | isin(full.triples["tail"], ids)]
    triples[["head", "relation", "tail"]].to_csv(folder / "triples.csv", index=False)
    used = pd.concat([triples["head"], triples["tail"]])
    ents = full.entities[isin(full.entities["id"], used)]
    ents[["id", "type", "name", "scene"]].rename(columns={"id": "entity_id"}).to_csv(
        folder / "entities.csv", index=False
    )
    full.scenes[["id", "name", "description"]].rename(columns={"id": "scene_id"}).to_csv(
        folder / "scenes.csv", index=False
    )


def rebuilds(folder: Path, store: Path, threads: int) -> list[tuple[str, float, Any]]:
    """Three builds on one store: a first one (fresh encoder, so weights load), the same encoder again (all
    cached), and another fresh encoder (all cached, the weights must never load)."""
    encoder = HFTextEncoder(threads=threads)
    out = []
    for name, enc in (("first", encoder), ("cached", encoder), ("cached, new encoder", HFTextEncoder(threads=threads))):
        passes = enc.forward_passes
        t0 = time.perf_counter()
        report = build(folder, store, encoder=enc)
        out.append((name, time.perf_counter() - t0, report))
        if name != "first":
            assert report.features["encoded"] == 0, report.features
            assert enc.forward_passes == passes, (enc.forward_passes, passes)
        if name == "cached, new encoder":
            assert enc._model is None, "a fully cached rebuild loaded the model weights"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=400, help="items in the random subset (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to compare, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild-dataset", choices=("subset", "sample"), default="subset")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    default_threads = torch.get_num_threads()
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    full = load_dataset(args.shared / DATASET).dataset
    subset = subset_of(full, args.items, args.seed)
    texts = rendered_texts(subset)
    print(f"Amazon Arts–Office: {len(full.items):,} items, loaded in {time.perf_counter() - t0:.1f} s")

    encoder = HFTextEncoder()
    t0 = time.perf_counter()
    _, model = encoder._load()
    load_seconds = time.perf_counter() - t0
    timed_model = TimedModel(model)
    encoder._model = timed_model  # the pipeline and the bare loop now run through the same timing wrapper
    n_unique = len(set(texts))
    print(
        f"subset: {len(subset.items):,} items (seed {args.seed}), {len(texts):,} texts ({n_unique:,} distinct); "
        f"model {encoder.name} loaded in {load_seconds:.1f} s, max_length {encoder.max_length}, "
        f"batch {encoder.batch_size}; CPUs {os.cpu_count()}, torch {torch.__version__} default threads "
        f"{default_threads}; load average {load_before[0]:.2f}"
    )

    med = rates(subset, encoder, timed_model, thread_counts, args.repeats)
    print(f"\nembedding {len(texts):,} texts, medians of {args.repeats}")
    print(
        f"  {'threads':>7} {'which':<9} {'seconds':>8} {'texts/s':>8} {'in model':>9} {'other':>6} "
        f"{'tokens':>8} {'padding':>8}"
    )
    for threads, m in med.items():
        for which in ("pipeline", "bare"):
            sec, model_sec = m[which], m[f"{which} model"]
            pad = 1 - m[f"{which} real"] / m[f"{which} tokens"]
            print(
                f"  {threads:>7} {which:<9} {sec:>8.2f} {len(texts) / sec:>8.1f} {model_sec:>8.2f}s "
                f"{sec - model_sec:>5.2f}s {m[f'{which} tokens']:>8,.0f} {pad:>8.0%}"
            )
        print(f"  {threads:>7} pipeline rate / bare rate = {m['bare'] / m['pipeline']:.2f}  (target >= 0.9)")
    best = min(med, key=lambda t: med[t]["pipeline"])
    print(f"  fastest pipeline: {best} thread(s) ({len(texts) / med[best]['pipeline']:.1f} texts/s)")

    with tempfile.TemporaryDirectory() as tmp:
        if args.rebuild_dataset == "sample":
            folder, what = SAMPLE, f"bundled sample {SAMPLE.name}"
        else:
            folder, what = Path(tmp) / "subset", f"subset of {len(subset.items):,} items as a generic folder"
            write_generic(full, subset, folder)
        builds = rebuilds(folder, Path(tmp) / "store", best)
    print(f"\nrebuild of the {what}, {best} thread(s), one store")
    stages = list(builds[0][2].seconds)
    print(f"  {'build':<20} {'wall s':>7} {'encoded':>8} {'cached':>8}  " + " ".join(f"{s:>10}" for s in stages))
    for name, wall, report in builds:
        cached = sum(report.features.get("cached", {}).values())
        per_stage = " ".join(f"{report.seconds.get(s, 0.0):>10.2f}" for s in stages)
        print(f"  {name:<20} {wall:>7.2f} {report.features['encoded']:>8,} {cached:>8,}  {per_stage}")
    first, cached_wall = builds[0][1], builds[1][1]
    texts_built = sum(builds[0][2].features["texts"].values())
    print(f"  cached / first = {cached_wall / first:.2f} ({texts_built:,} texts, 0 encoded the second time)")

    load_after = os.getloadavg()
    print(f"\n| {date.today().isoformat()} | {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs |")
    print("|---|---|")
    print(f"| torch | {torch.__version__}, default {default_threads} threads |")
    print(f"| load average (1 min) before / after | {load_before[0]:.2f} / {load_after[0]:.2f} |")
    print(f"| texts | {len(texts):,} Amazon Arts–Office item texts (seed {args.seed}), {encoder.name} |")
    for threads, m in med.items():
        print(
            f"| {threads} thread(s): pipeline / bare | {len(texts) / m['pipeline']:.1f} / "
            f"{len(texts) / m['bare']:.1f} texts/s, ratio {m['bare'] / m['pipeline']:.2f} |"
        )
    print(f"| rebuild, first / fully cached ({texts_built:,} texts) | {first:.2f} s / {cached_wall:.2f} s |")


if __name__ == "__main__":
    main()
