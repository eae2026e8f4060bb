"""The RecBole atomic-files loader on the real MovieLens-100K + Freebase KG files and on broken copies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scenerec.errors import ConfigError, MissingColumnError
from scenerec.loaders import LoadOptions, LoadResult, detect_format, load_dataset
from scenerec.records import Item, Triple

ML = "movielens_100k_kg"


@pytest.fixture(scope="module")
def ml(movielens_100k: Path) -> LoadResult:
    return load_dataset(movielens_100k)


def test_detect(movielens_100k: Path) -> None:
    assert detect_format(movielens_100k) == "recbole"
    assert detect_format(movielens_100k / "ml-100k.inter") == "recbole"


def test_statistics(ml: LoadResult) -> None:
    # SOURCE.md: 943 users, 1,682 items, 100,000 ratings, 91,631 triples, 34,628 KG entities, 24 relations,
    # 1,598 items linked. The cleaner drops nothing: no unparsable row and no repeat in any file.
    d = ml.dataset
    assert ml.format == "recbole"
    counts = d.counts()
    assert counts["scenes"] == 1
    assert counts["users"] == 943
    assert counts["items"] == 1682
    assert counts["interactions"] == 100_000
    assert counts["triples"] == 91_631
    assert counts["alignment"] == 0
    # The 1,598 linked Freebase mids all occur in the KG and became their items: 34,628 - 1,598 = 33,030.
    assert counts["entities"] == 34_628 - 1_598
    assert d.meta["entity_links"] == 1598
    assert d.meta["inferred_entities"] == 0
    assert d.triples["relation"].nunique() == 24
    assert d.scene_ids() == ["ml-100k"]
    assert set(d.interactions["split"]) == {""}
    # Only the descriptions are filled (from year and genres); nothing is dropped.
    assert ml.rejects.counts() == {("repaired", "empty description filled from attributes"): 1682}


def test_ratings(ml: LoadResult) -> None:
    inter = ml.dataset.interactions
    assert ml.dataset.meta["rating_scale"] == {"ml-100k": [1.0, 5.0]}
    # SOURCE.md rating counts 1..5, normalised to [0, 1].
    counts = inter["rating"].value_counts().to_dict()
    assert counts == {0.0: 6110, 0.25: 11370, 0.5: 27145, 0.75: 34174, 1.0: 21201}
    first = inter.iloc[0]  # ml-100k.inter line 2: 196 242 3 881250949
    assert (first["user"], first["item"], first["rating"], first["timestamp"]) == ("196", "242", 0.5, 881250949)


def test_records(ml: LoadResult) -> None:
    d = ml.dataset
    items = {i.id: i for i in d.records("items")}
    assert items["1"] == Item(
        id="1",
        scene="ml-100k",
        title="Toy Story",
        description="class: Animation Children's Comedy; release_year: 1995",
        attributes={"class": "Animation Children's Comedy", "release_year": "1995"},
    )
    users = {u.id: u for u in d.records("users")}
    assert users["1"].attributes == {"age": "24", "gender": "M", "occupation": "technician", "zip_code": "85711"}
    tri = d.triples
    # ml-100k.kg line 2 is "m.04ctbw8 film.producer.film m.0bln8"; ml-100k.link maps item 94 -> m.0bln8.
    assert tri.iloc[0].tolist() == ["m.04ctbw8", "film.producer.film", "94"]
    entity_ids = set(d.entities["id"])
    assert "m.0bln8" not in entity_ids and "m.04ctbw8" in entity_ids
    # ml-100k.link line 2: item 476 -> m.08gjyx: facts about the mid now hang off the item.
    assert not (d.triples["head"] == "m.08gjyx").any() and not (d.triples["tail"] == "m.08gjyx").any()
    assert ((d.triples["head"] == "476") | (d.triples["tail"] == "476")).any()


@pytest.fixture(scope="module")
def kglinked_split(real_dataset: Callable[..., Path]) -> Path:
    """The split of RecBole's KG models (interactions on items linked to the KG)."""
    return real_dataset(f"{ML}/split_recbole_kglinked", "train.tsv", "valid.tsv", "test.tsv")


@pytest.mark.usefixtures("ml100k_split")
def test_recbole_split(movielens_100k: Path) -> None:
    # split_recbole/README.md: train 80,808 / valid 9,596 / test 9,596, all 100,000 ratings.
    r = load_dataset(movielens_100k, options=LoadOptions(extra={"split": "split_recbole"}))
    assert r.dataset.interactions["split"].value_counts().to_dict() == {"train": 80808, "valid": 9596, "test": 9596}
    assert r.dataset.meta["split"] == "split_recbole"
    assert not any("split" in reason for _, reason in r.rejects.counts())


@pytest.mark.usefixtures("kglinked_split")
def test_recbole_kglinked_split(movielens_100k: Path) -> None:
    # README: the KG models' split keeps 97,554 interactions; the 2,446 on unlinked items are reported.
    # (The .tsv files have 78,836 / 9,359 / 9,359 data rows: their line counts include the header.)
    r = load_dataset(movielens_100k, options=LoadOptions(extra={"split": "split_recbole_kglinked"}))
    split = r.dataset.interactions["split"].value_counts().to_dict()
    assert split == {"train": 78836, "valid": 9359, "test": 9359}
    assert sum(split.values()) == 97_554
    assert r.rejects.counts()[("dropped", "interaction is not in split 'split_recbole_kglinked'")] == 2446
    linked = set(r.dataset.triples["head"]) | set(r.dataset.triples["tail"])
    assert set(r.dataset.interactions["item"]) <= linked


def test_unknown_split_folder(movielens_100k: Path) -> None:
    with pytest.raises(ConfigError, match="split_recbole"):
        load_dataset(movielens_100k, options=LoadOptions(extra={"split": "no_such_split"}))


# ---- broken copies ------------------------------------------------------------------------------------------


def _head(src: Path, n: int) -> list[str]:
    with src.open(encoding="utf-8") as fh:
        return [next(fh) for _ in range(n)]


@pytest.fixture
def small(movielens_100k: Path, tmp_path: Path) -> Path:
    """A copy of the first rows of every ml-100k file, in a folder named like the dataset."""
    out = tmp_path / "ml-100k"
    out.mkdir()
    for suffix, n in (("inter", 31), ("item", 301), ("user", 944), ("kg", 51), ("link", 1599)):
        (out / f"ml-100k.{suffix}").write_text(
            "".join(_head(movielens_100k / f"ml-100k.{suffix}", n)), encoding="utf-8"
        )
    return out


def test_bad_lines_are_reported(small: Path) -> None:
    inter = small / "ml-100k.inter"
    lines = inter.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = "22\t1\tfive\t878887116\n"  # line 5: unparsable rating
    lines[9] = "22\t2\t3\t878887116\textra\n"  # line 10: one field too many
    lines[14] = "22\t3\t4\tyesterday-ish\n"  # line 15: unparsable timestamp
    inter.write_text("".join(lines), encoding="utf-8")
    r = load_dataset(small)
    rej = r.rejects.to_frame()
    dropped = rej[(rej["file"] == str(inter)) & (rej["reason"] != "unknown item id")]
    assert sorted(dropped["line"].tolist()) == [5, 10, 15]
    by_line = dict(zip(dropped["line"].tolist(), dropped["reason"].tolist(), strict=True))
    assert by_line[5] == "unparsable rating"
    assert by_line[10] == "expected 4 fields, found 5"
    assert by_line[15] == "unparsable timestamp"
    # The other 27 rows are kept, except those on items beyond the 300 copied (dropped as unknown items).
    unknown = rej[rej["reason"] == "unknown item id"]
    assert (unknown["file"] == str(inter)).all()
    assert r.dataset.counts()["interactions"] == 27 - len(unknown)


def test_link_to_unknown_item_and_clashing_entity_id(small: Path) -> None:
    link = small / "ml-100k.link"
    link.write_text("item_id:token\tentity_id:token\n5000\tm.0bln8\n94\tm.0bln8\n", encoding="utf-8")
    kg = small / "ml-100k.kg"
    with kg.open("a", encoding="utf-8") as fh:
        fh.write("m.0bln8\tfilm.film.genre\t7\n")  # "7" is an item id but not a linked entity
    r = load_dataset(small)
    rej = r.rejects.to_frame()
    row = rej[rej["reason"] == "link references an item id that is not in ml-100k.item"]
    assert row[["file", "line", "id"]].values.tolist() == [[str(link), 2, "5000"]]
    triples = set(r.dataset.records("triples"))
    assert Triple("94", "film.film.genre", "kg:7") in triples
    assert r.dataset.meta["renamed_entities"] == 1
    assert r.dataset.meta["entity_links"] == 1


def test_split_rows_without_interaction(small: Path) -> None:
    split = small / "mysplit"
    split.mkdir()
    inter = [ln.split("\t")[:2] for ln in (small / "ml-100k.inter").read_text(encoding="utf-8").splitlines()[1:]]
    body = ["\t".join(x) for x in inter]
    (split / "train.tsv").write_text("user_id\titem_id\n" + "\n".join(body[:20]) + "\n", encoding="utf-8")
    (split / "valid.tsv").write_text("user_id\titem_id\n" + "\n".join(body[20:25]) + "\n", encoding="utf-8")
    (split / "test.tsv").write_text("user_id\titem_id\n" + "\n".join([*body[25:], "1\t1"]) + "\n", encoding="utf-8")
    r = load_dataset(small, options=LoadOptions(extra={"split": "mysplit"}))
    rej = r.rejects.to_frame()
    row = rej[rej["reason"] == "split row of 'mysplit' matches no interaction"]
    assert row[["file", "line"]].values.tolist() == [[str(split / "test.tsv"), 7]]
    assert set(r.dataset.interactions["split"]) == {"train", "valid", "test"}


def test_missing_column(small: Path) -> None:
    inter = small / "ml-100k.inter"
    text = inter.read_text(encoding="utf-8").replace("item_id:token", "movie:token", 1)
    inter.write_text(text, encoding="utf-8")
    with pytest.raises(MissingColumnError) as exc:
        load_dataset(small)
    assert exc.value.file == str(inter)
    assert exc.value.column == "item_id"


def test_without_item_file(small: Path) -> None:
    (small / "ml-100k.item").unlink()
    (small / "ml-100k.user").unlink()
    r = load_dataset(small, options=LoadOptions(scene="movies"))
    d = r.dataset
    assert d.scene_ids() == ["movies"]
    assert d.counts()["interactions"] == 30
    assert set(d.interactions["item"]) <= set(d.items["id"])
    assert d.meta["entity_links"] == 1598
