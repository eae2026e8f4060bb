"""Incremental update against a full rebuild, on the same data, in one run.

    .venv/bin/python benchmarks/update.py [--dataset scenerec/sample_data/amazon_arts_office] [--fraction 0.05]
        [--repeats 3] [--work /tmp/scenerec-bench/update] [--cache STORE/cache]

The dataset (a generic folder: items, interactions, triples, entities, scenes; any other format is first
written as one) is cut into a base and an update:
the update holds a ``--fraction`` of the users (all their interactions), the same fraction of one scene's items
(with their facts and interactions) and the same fraction of the remaining interactions. A store is built from the
base once; then, ``--repeats`` times, alternating the order:

* ``update``: a copy of that store gets ``scenerec.pipeline.update(update)``;
* ``rebuild``: a new store is rebuilt from base + update (``scenerec.pipeline.build``).

Both start with the same warm embedding cache, so the comparison is the graph work (the encoder would otherwise
dominate both: the update embeds only the new texts, the rebuild all of them, which the cache hides here). Prints
the median seconds of each and their ratio, and checks that the two graphs hold the same number of nodes and
relationships.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scenerec.cli import SAMPLE
from scenerec.kg import open_store
from scenerec.llm import HFTextEncoder
from scenerec.pipeline import build, update

TABLES = ("items", "interactions", "triples", "entities", "scenes")


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / f"{name}.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None


def cut(dataset: Path, out: Path, fraction: float, seed: int = 0) -> tuple[Path, Path, Path]:
    """Write ``out/base``, ``out/update`` and ``out/union`` (generic folders); see the module docstring."""
    t = {name: _read(dataset, name) for name in TABLES}
    items, inter = t["items"], t["interactions"]
    assert items is not None and inter is not None
    rng = np.random.default_rng(seed)
    scene = sorted(items["scene"].unique())[-1]
    pool = items[items["scene"] == scene]["item_id"].to_numpy()
    new_items = set(rng.choice(pool, max(1, int(fraction * len(pool))), replace=False))
    users = inter["user_id"].unique()
    new_users = set(rng.choice(users, max(1, int(fraction * len(users))), replace=False))
    moved = (inter["item_id"].isin(new_items) | inter["user_id"].isin(new_users)).to_numpy().copy()
    rest = np.flatnonzero(~moved)
    moved[rng.choice(rest, int(fraction * len(rest)), replace=False)] = True
    parts: dict[str, dict[str, pd.DataFrame]] = {"base": {}, "update": {}, "union": {}}
    for name, df in t.items():
        if df is None:
            continue
        if name == "items":
            new = df["item_id"].isin(new_items).to_numpy()
        elif name == "interactions":
            new = moved
        elif name == "triples":
            new = df["head"].isin(new_items).to_numpy()
        else:
            new = np.zeros(len(df), dtype=bool)
        parts["base"][name], parts["update"][name], parts["union"][name] = df[~new], df[new], df
    folders = []
    for key, tables in parts.items():
        folder = out / key
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, df in tables.items():
            if len(df) or key != "update":
                df.to_csv(folder / f"{name}.csv", index=False)
        folders.append(folder)
    return folders[0], folders[1], folders[2]


def export_generic(dataset: Path, out: Path) -> Path:
    """Any dataset scenerec loads, written as a generic folder (items with one column per attribute)."""
    import json

    from scenerec.loaders import load_dataset

    ds = load_dataset(dataset).dataset
    out.mkdir(parents=True, exist_ok=True)
    attrs = pd.DataFrame([json.loads(a) if a else {} for a in ds.items["attributes"]], index=ds.items.index)
    items = pd.concat(
        [ds.items[["id", "scene", "title", "description"]].rename(columns={"id": "item_id"}), attrs], axis=1
    )
    items.to_csv(out / "items.csv", index=False)
    inter = ds.interactions.rename(columns={"user": "user_id", "item": "item_id"})
    inter[["user_id", "item_id", "timestamp", "split"]].to_csv(out / "interactions.csv", index=False)
    ds.triples.to_csv(out / "triples.csv", index=False)
    ds.entities.rename(columns={"id": "entity_id"}).to_csv(out / "entities.csv", index=False)
    ds.scenes.rename(columns={"id": "scene_id"}).to_csv(out / "scenes.csv", index=False)
    return out


def _size(store: Path) -> tuple[int, int]:
    with open_store(store) as g:
        c = g.counts()
    return sum(c["nodes"].values()), sum(c["edges"].values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=SAMPLE)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/scenerec-bench/update"))
    ap.add_argument("--cache", type=Path, default=None, help="an embedding cache folder to start from")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    dataset = args.dataset
    if not (dataset / "items.csv").is_file():
        dataset = export_generic(dataset, work / "generic")
    base, delta, union = cut(dataset, work, args.fraction)
    encoder = HFTextEncoder(threads=2)
    base_store = work / "base-store"
    shutil.rmtree(base_store, ignore_errors=True)
    if args.cache is not None:  # an embedding cache that already holds these texts (same model)
        shutil.copytree(args.cache, work / "cache-warmer" / "cache", dirs_exist_ok=True)
    build(union, work / "cache-warmer", encoder=encoder)  # every text of base + update into one cache
    shutil.copytree(work / "cache-warmer" / "cache", base_store / "cache")
    build(base, base_store, encoder=encoder)
    times: dict[str, list[float]] = {"update": [], "rebuild": []}
    sizes = {}
    for r in range(args.repeats):
        for kind in ("update", "rebuild") if r % 2 == 0 else ("rebuild", "update"):
            store = work / f"{kind}-store"
            shutil.rmtree(store, ignore_errors=True)
            if kind == "update":
                shutil.copytree(base_store, store)
                t0 = time.perf_counter()
                update(delta, store, encoder=encoder)
            else:
                shutil.copytree(work / "cache-warmer" / "cache", store / "cache")
                t0 = time.perf_counter()
                build(union, store, encoder=encoder)
            times[kind].append(time.perf_counter() - t0)
            sizes[kind] = _size(store)
    u, b = statistics.median(times["update"]), statistics.median(times["rebuild"])
    rows = {
        k: len(pd.read_csv(delta / f"{k}.csv")) for k in ("items", "interactions") if (delta / f"{k}.csv").is_file()
    }
    print(f"dataset {args.dataset} ; update: {rows} ; repeats {args.repeats}")
    for kind, median in (("update", u), ("rebuild", b)):
        runs = ", ".join(f"{x:.2f}" for x in times[kind])
        print(f"{kind:8s} median {median:.2f} s  (runs: {runs})")
    print(f"update / rebuild: {u / b:.2f}")
    print(f"nodes, relationships: update {sizes['update']}, rebuild {sizes['rebuild']}")


if __name__ == "__main__":
    main()
