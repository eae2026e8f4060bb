"""The Amazon Arts–Office (URLLM) loader on the real release in ../shared/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from scenerec.loaders import detect_format, load_dataset
from scenerec.loaders.amazon import split_attributes


def test_split_attributes_recovers_category_levels_and_brand() -> None:
    attrs = [
        "arts crafts sewing crafting picture framing fletcher terry",
        "arts crafts sewing crafting picture framing logan graphic",
        "arts crafts sewing crafting picture framing nielsen",
        "arts crafts sewing crafting knitting boye",
        "arts crafts sewing crafting knitting clover",
        "arts crafts sewing crafting knitting lion brand",
        "arts crafts sewing sewing notions clover",
        "arts crafts sewing sewing notions dritz",
        "arts crafts sewing sewing notions singer",
    ]
    titles = ["fletcher terry framers", "mat cutter", "frame kit", "needles", "clover hooks", "yarn", "pins", "a", "b"]
    got = split_attributes(attrs, titles)
    assert got[0] == (["arts crafts sewing", "crafting", "picture framing"], "fletcher terry")
    assert got[4] == (["arts crafts sewing", "crafting", "knitting"], "clover")
    assert got[5][1] == "lion brand"
    assert got[7] == (["arts crafts sewing", "sewing notions"], "dritz")


@pytest.mark.slow
def test_real_release_two_scenes_shared_users_and_entities(amazon_urllm: Path) -> None:
    path = amazon_urllm
    assert detect_format(path) == "amazon-urllm"
    res = load_dataset(path)
    ds = res.dataset
    # SOURCE.md: 18,639 Arts items and 19,757 Office items, 9,577 users, all in both scenes.
    assert ds.items.groupby("scene").size().to_dict() == {"arts": 18639, "office": 19757}
    assert len(ds.users) == 9577
    scene_of = ds.items.set_index("id")["scene"]
    per_user = ds.interactions.assign(scene=ds.interactions["item"].map(scene_of)).groupby("user")["scene"].nunique()
    assert (per_user == 2).all() and len(per_user) == 9577
    # Unique (user, item) pairs per scene, as SOURCE.md counts them.
    pairs = ds.interactions.drop_duplicates(["user", "item"]).assign(scene=lambda d: d["item"].map(scene_of))
    assert pairs.groupby("scene").size().to_dict() == {"arts": 110016, "office": 96645}
    # Held-out users: their last item is the test (users 8000-8999) or valid (9000-9576) target.
    assert ds.interactions["split"].value_counts().to_dict().keys() == {"train", "valid", "test"}
    # Brands and categories are entities that items of both scenes point to.
    tri = ds.triples.assign(scene=ds.triples["head"].map(scene_of))
    brand_scenes = tri[tri["relation"] == "brand"].groupby("tail")["scene"].nunique()
    assert (brand_scenes == 2).sum() > 400
    assert brand_scenes.get("brand:avery") == 2 and brand_scenes.get("brand:hp") == 2
    item0 = ds.items.set_index("id").loc["0"]
    assert json.loads(item0["attributes"])["brand"] == "fletcher terry"
    assert item0["description"].startswith("Category: arts crafts sewing > crafting > picture framing")
    # Repeated purchases in a sequence are merged into weights, and each merge is reported.
    rej = res.rejects.to_frame()
    assert set(rej["reason"]) == {"repeated interaction merged (weight counts repeats)"}
    assert ds.interactions["weight"].sum() == len(ds.interactions) + len(rej)


def test_bad_sequence_line_is_rejected_with_its_line(amazon_urllm: Path, tmp_path: Path) -> None:
    src = amazon_urllm / "splits_llm"
    dst = tmp_path / "ao"
    dst.mkdir()
    for name in ("item_listA_F.csv", "item_listO_AA_F.csv", "Dualuser_dict.json"):
        shutil.copy(src / name, dst / name)
    lines = (src / "test_F2.txt").read_text().splitlines()[:6]
    lines[2] = "8001\tnot-a-number\t1|0|0"
    lines[4] = "99999\t1\t5|0|0\t18700|1|1"
    (dst / "test_F2.txt").write_text("\n".join(lines) + "\n")
    res = load_dataset(dst)
    rej = res.rejects.to_frame()
    bad = rej[rej["action"] == "dropped"]
    assert bad[["line", "reason"]].values.tolist() == [
        [3, "unparsable sequence line (expected user, n, item|pos|pos ...)"],
        [5, "user index 99999 is not in Dualuser_dict.json"],
    ]
    assert set(bad["file"]) == {str(dst / "test_F2.txt")}
    assert pd.Series(res.dataset.interactions["split"]).isin(["train", "test"]).all()
