"""Cut the bundled sample (generic dataset format) from the Amazon Arts–Office release in ../shared/data.

    .venv/bin/python tools/make_sample.py [--shared ../shared/data] [--out scenerec/sample_data/amazon_arts_office]

Deterministic: the most popular items of each scene, then a seeded sample of users active in both scenes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from scenerec.loaders import load_dataset

ITEMS_PER_SCENE = 1200
MIN_PER_SCENE = 3
USERS = 700
SEED = 20261128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("scenerec/sample_data/amazon_arts_office"))
    args = ap.parse_args()
    ds = load_dataset(args.shared / "amazon_art_office_urllm").dataset
    inter = ds.interactions.merge(ds.items[["id", "scene"]], left_on="item", right_on="id")
    pop = inter.groupby(["scene", "item"]).size().rename("n").reset_index()
    top = pop.sort_values(["scene", "n", "item"], ascending=[True, False, True]).groupby("scene").head(ITEMS_PER_SCENE)
    inter = inter[inter["item"].isin(top["item"])]
    per = inter.groupby(["user", "scene"]).size().unstack(fill_value=0)
    eligible = per[(per >= MIN_PER_SCENE).all(axis=1)].index.sort_values()
    rng = np.random.default_rng(SEED)
    users = set(rng.choice(np.asarray(eligible), size=min(USERS, len(eligible)), replace=False).tolist())
    inter = inter[inter["user"].isin(users)]
    item_ids = set(inter["item"])
    items = ds.items[ds.items["id"].isin(item_ids)]
    attrs = items["attributes"].map(json.loads)
    out_items = pd.DataFrame(
        {
            "item_id": items["id"],
            "scene": items["scene"],
            "title": items["title"],
            "brand": attrs.map(lambda a: a.get("brand", "")),
            "category": attrs.map(lambda a: a.get("category", "")),
        }
    )
    tri = ds.triples[ds.triples["head"].isin(item_ids)]
    cats = set(tri.loc[tri["relation"] == "category", "tail"])
    hier = ds.triples[ds.triples["relation"] == "subcategory_of"]
    while True:  # close the category hierarchy upwards
        more = hier[hier["head"].isin(cats)]
        new = set(more["tail"]) - cats
        if not new:
            break
        cats |= new
    tri = pd.concat([tri, hier[hier["head"].isin(cats)]], ignore_index=True)
    ents = ds.entities[ds.entities["id"].isin(set(tri["tail"]) | set(tri["head"]))]
    args.out.mkdir(parents=True, exist_ok=True)
    out_items.sort_values("item_id", key=lambda s: s.astype(int)).to_csv(args.out / "items.csv", index=False)
    # Repeats are written back as repeated rows, as they were in the sequences, so cleaning merges them again.
    rows = inter.loc[inter.index.repeat(inter["weight"].astype(int))]
    rows[["user", "item", "timestamp", "split"]].rename(columns={"user": "user_id", "item": "item_id"}).to_csv(
        args.out / "interactions.csv", index=False
    )
    tri[["head", "relation", "tail"]].to_csv(args.out / "triples.csv", index=False)
    ents[["id", "type", "name"]].rename(columns={"id": "entity_id"}).to_csv(args.out / "entities.csv", index=False)
    ds.scenes.rename(columns={"id": "scene_id"}).to_csv(args.out / "scenes.csv", index=False)
    size = sum(f.stat().st_size for f in args.out.glob("*.csv"))
    print(
        f"wrote {args.out}: {len(out_items)} items, {len(users)} users, {len(rows)} interaction rows, "
        f"{len(tri)} triples, {len(ents)} entities, {size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
