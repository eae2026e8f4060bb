"""The generic dataset folder and the cleaning rules, on hand-made files with hand-computed expectations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scenerec.errors import ConflictingIdError, MissingColumnError
from scenerec.loaders import LoadOptions, detect_format, load_dataset
from scenerec.loaders.cleaning import parse_timestamps


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    write(
        d,
        "items.csv",
        "item_id,scene,title,description,brand\n"
        "i1,books,Dune,,Ace\n"
        "i2,books,,A novel,Tor\n"
        'i3,music,"Blue, Train",,Blue Note\n'
        "i1,books,Dune,Sci-fi classic,\n",
    )
    write(
        d,
        "interactions.csv",
        "user_id,item_id,timestamp,rating,split\n"
        "u1,i1,1000,5,train\n"
        "u1,i1,2000,3,train\n"  # repeat of line 2: merged, weight 2, ts 2000, mean rating 4
        "u1,i2,2021-01-01T00:00:00Z,1,TEST\n"
        "u2,i3,1600000000000,,val\n"  # milliseconds -> seconds; split alias
        "u2,nope,5,5,train\n"  # unknown item
        "u3,i2,yesterday,4,train\n"  # unparsable timestamp
        "u3,i2,7,four,train\n"  # unparsable rating
        "u3,i3,8,2,holdout\n",  # bad split
    )
    write(d, "triples.csv", "head,relation,tail\ni1,brand,b:ace\ni1,brand,b:ace\ni3,genre,g:jazz\n,x,y\n")
    write(d, "entities.csv", "entity_id,type,name\nb:ace,brand,Ace\n")
    write(d, "alignment.csv", "left_id,right_id\ni1,i3\ni1,missing\n")
    return d


def test_detects_generic(folder: Path) -> None:
    assert detect_format(folder) == "generic"


def test_cleaning_rules(folder: Path) -> None:
    res = load_dataset(folder)
    ds = res.dataset
    items = ds.items.set_index("id")
    assert list(items.index) == ["i1", "i2", "i3"]
    assert items.loc["i1", "description"] == "Sci-fi classic"  # filled from the later duplicate row
    assert items.loc["i2", "title"] == "brand: Tor"  # empty title filled from attributes
    assert items.loc["i3", "title"] == "Blue, Train"
    inter = ds.interactions.set_index(["user", "item"])
    assert len(inter) == 3
    merged = inter.loc[("u1", "i1")]
    assert merged["weight"] == 2.0 and merged["timestamp"] == 2000
    # ratings 4 (mean of 5, 3) and 1 in books, scale [1, 4] -> (4-1)/3 = 1.0 and 0.0
    assert merged["rating"] == pytest.approx(1.0)
    assert inter.loc[("u1", "i2"), "rating"] == pytest.approx(0.0)
    assert inter.loc[("u1", "i2"), "timestamp"] == 1609459200
    assert inter.loc[("u1", "i2"), "split"] == "test"
    assert inter.loc[("u2", "i3"), "timestamp"] == 1600000000
    assert inter.loc[("u2", "i3"), "split"] == "valid"
    assert pd.isna(inter.loc[("u2", "i3"), "rating"])
    assert ds.meta["rating_scale"] == {"books": [1.0, 4.0]}
    assert sorted(ds.users["id"]) == ["u1", "u2"]
    assert len(ds.triples) == 2
    assert set(ds.entities["id"]) == {"b:ace", "g:jazz"}  # g:jazz inferred from its triple
    assert ds.meta["inferred_entities"] == 1
    assert ds.alignment[["left", "right"]].values.tolist() == [["i1", "i3"]]
    assert set(ds.scenes["id"]) == {"books", "music"}


def test_every_rejected_row_is_reported_with_file_and_line(folder: Path) -> None:
    rej = load_dataset(folder).rejects.to_frame()
    inter = str(folder / "interactions.csv")
    got = {
        (Path(f).name, int(ln), r)
        for f, ln, r in zip(rej["file"], rej["line"], rej["reason"], strict=True)
        if pd.notna(ln)
    }
    expected = {
        ("items.csv", 5, "duplicate item row merged into the first one"),
        ("items.csv", 3, "empty title filled from attributes"),
        ("items.csv", 4, "empty description filled from attributes"),
        ("interactions.csv", 3, "repeated interaction merged (weight counts repeats)"),
        ("interactions.csv", 6, "unknown item id"),
        ("interactions.csv", 7, "unparsable timestamp"),
        ("interactions.csv", 8, "unparsable rating"),
        ("interactions.csv", 9, "split is not one of train/valid/test"),
        ("triples.csv", 3, "repeated triple merged"),
        ("triples.csv", 5, "triple with an empty head, relation or tail"),
        ("alignment.csv", 3, "alignment references an unknown id"),
    }
    assert expected <= got, expected - got
    assert len(rej) == len(expected)
    assert set(rej.loc[rej["file"] == inter, "action"]) == {"dropped", "merged"}


def test_unknown_users_dropped_when_a_users_table_is_given(folder: Path) -> None:
    write(folder, "users.csv", "user_id,age\nu1,30\n")
    res = load_dataset(folder)
    assert set(res.dataset.interactions["user"]) == {"u1"}
    rej = res.rejects.to_frame()
    assert (rej["reason"] == "unknown user id (not in the users table)").sum() == 1
    assert next(iter(res.dataset.records("users"))).attributes == {"age": "30"}


def test_min_rating_filter_is_reported(folder: Path) -> None:
    res = load_dataset(folder, options=LoadOptions(min_rating=3))
    assert ("u1", "i2") not in set(zip(res.dataset.interactions["user"], res.dataset.interactions["item"], strict=True))
    assert (res.rejects.to_frame()["reason"] == "rating below min_rating=3").sum() == 1


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    write(d, "items.csv", "item_id,title\ni1,x\n")
    with pytest.raises(MissingColumnError) as err:
        load_dataset(d)
    assert "items.csv" in str(err.value) and "'scene'" in str(err.value)


def test_same_item_in_two_scenes_names_both(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    write(d, "items.csv", "item_id,scene\ni1,books\ni2,books\ni1,music\n")
    with pytest.raises(ConflictingIdError) as err:
        load_dataset(d)
    msg = str(err.value)
    assert "'i1'" in msg and "'books'" in msg and "'music'" in msg and "line 2" in msg and "line 4" in msg


def test_row_with_wrong_field_count_is_rejected_with_its_line(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    write(d, "items.csv", "item_id,scene\ni1,a\ni2,a\n")
    write(d, "interactions.csv", "user_id,item_id\nu1,i1\nu2,i2,extra,fields\nu3,i2\n")
    res = load_dataset(d)
    assert sorted(res.dataset.interactions["user"]) == ["u1", "u3"]
    rej = res.rejects.to_frame()
    assert rej[["line", "reason"]].values.tolist() == [[3, "expected 2 fields, found 4"]]


def test_quoted_newlines_keep_line_numbers_exact(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    write(d, "items.csv", 'item_id,scene,title\ni1,a,"two\nlines"\n,a,no id\n')
    rej = load_dataset(d).rejects.to_frame()
    assert rej[["line", "reason"]].values.tolist() == [[4, "empty item id"]]


def test_parquet_tables(tmp_path: Path) -> None:
    d = tmp_path / "pq"
    d.mkdir()
    pd.DataFrame({"item_id": ["a", "b"], "scene": ["s", "s"], "title": ["A", "B"]}).to_parquet(d / "items.parquet")
    pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "zz"]}).to_parquet(d / "interactions.parquet")
    res = load_dataset(d)
    assert res.dataset.counts()["interactions"] == 1
    assert res.rejects.to_frame()[["line", "reason"]].values.tolist() == [[2, "unknown item id"]]


def test_parse_timestamps() -> None:
    ts, bad = parse_timestamps(pd.Series(["10", "1500000000000", "1970-01-02", "", "soon"], dtype="string"))
    assert ts.tolist()[:3] == [10, 1500000000, 86400]
    assert pd.isna(ts.iloc[3]) and bad.tolist() == [False, False, False, False, True]


def test_short_row_is_rejected_not_padded(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    write(d, "items.csv", "item_id,scene\ni1,a\n")
    write(d, "interactions.csv", "user_id,item_id,rating\nu1,i1,4\nu2,i1\n\nu3,i1,5\n")
    res = load_dataset(d)
    assert sorted(res.dataset.interactions["user"]) == ["u1", "u3"]
    assert res.rejects.to_frame()[["line", "reason"]].values.tolist() == [[3, "expected 3 fields, found 2"]]
