"""The shared core: id maps, canonical records, error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenerec.errors import DataFormatError, MissingColumnError, UnknownIdError
from scenerec.ids import IdMap
from scenerec.records import Alignment, Dataset, Entity, Interaction, Item, Scene, Triple, User


def test_idmap_assigns_indices_in_first_seen_order_and_round_trips(tmp_path: Path) -> None:
    m = IdMap({"user": ["u2", "u1", "u2"], "item": ["a"]})
    m.add("item", ["b", "a", "c"])
    assert m.ids("user") == ["u2", "u1"]
    assert m.index("item", "c") == 2
    assert m.indices("item", ["c", "a"]).tolist() == [2, 0]
    assert m.id("user", 1) == "u1"
    assert ("item", "b") in m and ("item", "z") not in m
    m.save(tmp_path / "ids.json")
    back = IdMap.load(tmp_path / "ids.json")
    assert back == m
    assert back.indices("item", ["a", "b", "c"]).dtype == np.int64


def test_idmap_unknown_id_names_kind_and_id() -> None:
    m = IdMap({"item": ["a"]})
    with pytest.raises(UnknownIdError, match=r"unknown item id 'zz'"):
        m.index("item", "zz")
    with pytest.raises(KeyError, match="unknown node kind"):
        m.size("movie")


def test_idmap_load_rejects_foreign_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(DataFormatError, match=str(p)):
        IdMap.load(p)


def test_dataset_from_records_and_back() -> None:
    ds = Dataset.from_records(
        "t",
        scenes=[Scene("s1", "One")],
        users=[User("u", {"age": 3})],
        items=[Item("i", "s1", "Title", attributes={"brand": "acme"})],
        entities=[Entity("e", "brand", "acme")],
        interactions=[Interaction("u", "i", timestamp=5, rating=None)],
        triples=[Triple("i", "brand", "e")],
        alignment=[Alignment("i", "e", 0.5, "text")],
    )
    assert ds.counts() == {
        "scenes": 1,
        "users": 1,
        "items": 1,
        "entities": 1,
        "interactions": 1,
        "triples": 1,
        "alignment": 1,
    }
    (item,) = ds.records("items")
    assert item == Item("i", "s1", "Title", "", {"brand": "acme"})
    (inter,) = ds.records("interactions")
    assert inter.timestamp == 5 and inter.rating is None and inter.weight == 1.0 and inter.split == ""
    assert next(iter(ds.records("users"))).attributes == {"age": 3}


def test_error_messages_name_file_line_column() -> None:
    e = DataFormatError("bad value", file="x.csv", line=7, column="rating")
    assert str(e) == "x.csv, line 7, column 'rating': bad value"
    m = MissingColumnError("items.csv", "scene", ["item_id", "title"])
    assert "items.csv" in str(m) and "'scene'" in str(m) and "item_id, title" in str(m)
