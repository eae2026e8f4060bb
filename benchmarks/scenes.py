"""Scene classification on Amazon Arts vs Office: held-out accuracy and macro-F1 of scenerec's classifier.

    .venv/bin/python benchmarks/scenes.py [--per-scene 2000] [--splits 5] [--threads 1]
                                          [--precision fp32|int8] [--runtime auto|torch|onnx]

A seeded sample of ``--per-scene`` items of each scene is embedded with the bundled all-MiniLM-L6-v2, twice: the
title alone, and the full item text of the default template (title + description + attributes). Three feature sets
are evaluated on ``--splits`` seeded stratified 80/20 splits (median and range printed):

* title embedding only: the hard case, nothing but the product title;
* title embedding + attribute hashing;
* full-text embedding + attribute hashing: what ``scenerec classify-scenes`` uses.

In this dataset the attributes hold the Amazon category path, whose first words name the scene (``arts crafts
sewing ...`` / ``office products ...``), so the last two are expected to be near perfect.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from scenerec.llm import PRECISIONS, RUNTIMES, HFTextEncoder, TextTemplates, evaluate, item_features
from scenerec.loaders import load_dataset
from scenerec.records import Dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-scene", type=int, default=2000)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS, help="the text model's precision")
    ap.add_argument("--runtime", default="auto", choices=RUNTIMES, help="the text model's runtime")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()

    ds = load_dataset(args.shared / "amazon_art_office_urllm").dataset
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [
            rng.choice(np.flatnonzero(ds.items["scene"].to_numpy() == s), args.per_scene, replace=False)
            for s in ("arts", "office")
        ]
    )
    items = ds.items.iloc[np.sort(rows)].reset_index(drop=True)
    sub = Dataset("sample", scenes=ds.scenes, items=items)
    scenes = items["scene"].astype(str).tolist()
    attrs = items["attributes"].astype(str).tolist()
    encoder = HFTextEncoder(threads=args.threads, precision=args.precision, runtime=args.runtime)
    t0 = time.perf_counter()
    titles = encoder.encode(items["title"].astype(str).tolist())
    t_titles = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = encoder.encode(TextTemplates().items(sub))
    t_full = time.perf_counter() - t0
    print(
        f"{len(items):,} items ({args.per_scene:,} per scene); embedded titles in {t_titles:.1f} s, "
        f"full texts in {t_full:.1f} s ({args.threads} torch thread(s), {args.precision})"
    )

    feature_sets = {
        "title embedding only": titles,
        "title embedding + attributes": item_features(titles, attrs),
        "full-text embedding + attributes": item_features(full, attrs),
    }
    print(f"\n| features | accuracy (median, min-max over {args.splits} splits) | macro-F1 | F1 arts | F1 office |")
    print("|---|---|---|---|---|")
    for name, X in feature_sets.items():
        reports = [evaluate(X, scenes, test_fraction=0.2, seed=seed) for seed in range(args.splits)]
        acc = [r.accuracy for r in reports]
        f1 = [r.macro_f1 for r in reports]
        arts = statistics.median(float(r.per_scene.loc["arts", "f1"]) for r in reports)
        office = statistics.median(float(r.per_scene.loc["office", "f1"]) for r in reports)
        print(
            f"| {name} | {statistics.median(acc):.3f} ({min(acc):.3f}-{max(acc):.3f}) | {statistics.median(f1):.3f} "
            f"| {arts:.3f} | {office:.3f} |"
        )


if __name__ == "__main__":
    main()
