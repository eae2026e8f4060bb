"""The KGCN Last.FM loader on the real files (KGCN + HetRec 2011 artist names) and on broken copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scenerec.errors import DataFormatError, MissingColumnError
from scenerec.loaders import LoadOptions, LoadResult, detect_format, load_dataset
from scenerec.records import Item

LASTFM = "lastfm_hetrec_kgcn"


@pytest.fixture(scope="module")
def lastfm_path(real_dataset: Callable[..., Path]) -> Path:
    return real_dataset(LASTFM, "kgcn/kg.txt", "hetrec2011/artists.dat")


@pytest.fixture(scope="module")
def lastfm(lastfm_path: Path) -> LoadResult:
    return load_dataset(lastfm_path)


def test_detect(lastfm_path: Path) -> None:
    assert detect_format(lastfm_path) == "lastfm-kgcn"
    assert detect_format(lastfm_path / "kgcn") == "lastfm-kgcn"


def test_statistics_kgcn_setting(lastfm: LoadResult) -> None:
    # SOURCE.md (KGCN setting): 1,872 users, 3,846 items, 21,173 interactions; KG 15,518 triples, 9,366 entities
    # including the items (so 9,366 - 3,846 = 5,520 non-item entities), 60 relations. All equal after cleaning.
    d = lastfm.dataset
    assert lastfm.format == "lastfm-kgcn"
    counts = d.counts()
    assert counts["scenes"] == 1
    assert counts["users"] == 1872
    assert counts["items"] == 3846
    assert counts["interactions"] == 21_173
    assert counts["triples"] == 15_518
    assert counts["entities"] == 9366 - 3846
    assert counts["alignment"] == 0
    assert d.triples["relation"].nunique() == 60
    assert d.meta["inferred_entities"] == 0
    assert d.meta["entity_links"] == 3846
    # Every item has its artist name; the 92,834 - 21,173 = 71,661 interactions with artists outside the KG are
    # the only rejects.
    assert (d.items["title"].str.len() > 0).all()
    assert lastfm.rejects.counts() == {("dropped", "unknown item id"): 71_661}


def test_records(lastfm: LoadResult) -> None:
    d = lastfm.dataset
    items = {i.id: i for i in d.records("items")}
    assert items["2"] == Item(id="2", scene="lastfm", title="Diary of Dreams")
    # kg.txt line 1: "2086 music.artist.origin 3846"; entity 2086 is artist 8773 (Les Wampas).
    assert d.triples.iloc[0].tolist() == ["8773", "music.artist.origin", "satori:3846"]
    assert items["8773"].title == "Les Wampas"
    first = d.interactions.iloc[0]  # user_artists.dat line 3: 2 52 11690 (line 2, artist 51, is not in the KG)
    assert (first["user"], first["item"], first["weight"]) == ("2", "52", 11690.0)
    assert first["rating"] is None or str(first["rating"]) == "<NA>"
    rej = lastfm.rejects.to_frame()
    line2 = rej[rej["line"] == 2]
    assert line2[["file", "id", "reason"]].values.tolist() == [
        [str(lastfm.path / "kgcn" / "user_artists.dat"), "51", "unknown item id"]
    ]


def test_all_artists(lastfm_path: Path) -> None:
    # SOURCE.md raw: 1,892 users, 17,632 artists, 92,834 user-artist pairs.
    r = load_dataset(lastfm_path, options=LoadOptions(extra={"all_artists": "1"}))
    counts = r.dataset.counts()
    assert (counts["users"], counts["items"], counts["interactions"]) == (1892, 17_632, 92_834)
    assert counts["triples"] == 15_518
    assert len(r.rejects) == 0


# ---- broken copies ------------------------------------------------------------------------------------------


@pytest.fixture
def small(lastfm_path: Path, tmp_path: Path) -> Path:
    """The first 40 interactions, the full link and KG files, and the artist names."""
    out = tmp_path / "lastfm"
    (out / "kgcn").mkdir(parents=True)
    (out / "hetrec2011").mkdir()
    src = lastfm_path / "kgcn"
    with (src / "user_artists.dat").open(encoding="utf-8") as fh:
        head = [next(fh) for _ in range(41)]
    (out / "kgcn" / "user_artists.dat").write_text("".join(head), encoding="utf-8")
    shutil.copy(src / "item_index2entity_id.txt", out / "kgcn")
    shutil.copy(src / "kg.txt", out / "kgcn")
    shutil.copy(lastfm_path / "hetrec2011" / "artists.dat", out / "hetrec2011")
    return out


def test_bad_lines_are_reported(small: Path) -> None:
    inter = small / "kgcn" / "user_artists.dat"
    lines = inter.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[2] == "2\t52\t11690\n"
    lines[2] = "2\t52\tmany\n"  # line 3: weight is not a number
    lines[3] = "2\t57\t-4\n"  # line 4: weight is not positive
    inter.write_text("".join(lines), encoding="utf-8")
    kg = small / "kgcn" / "kg.txt"
    with kg.open("a", encoding="utf-8", newline="") as fh:
        fh.write("2086\tmusic.artist.origin\r\n")  # line 15,519: a field missing
    r = load_dataset(small)
    rej = r.rejects.to_frame()
    mine = rej[rej["reason"] != "unknown item id"]
    assert mine[["file", "line", "column", "reason"]].values.tolist() == [
        [str(inter), 3, "weight", "weight is not a positive number"],
        [str(inter), 4, "weight", "weight is not a positive number"],
        [str(kg), 15_519, "", "expected 3 fields (head, relation, tail) separated by '\\t', found 2"],
    ]
    # The unknown artists are reported too, each with its own line (line 2 is artist 51, not in the KG).
    unknown = rej[rej["reason"] == "unknown item id"]
    assert 2 in set(unknown["line"]) and (unknown["file"] == str(inter)).all()
    assert r.dataset.counts()["triples"] == 15_518
    assert r.dataset.counts()["interactions"] == 40 - 2 - len(unknown)


def test_conflicting_links(small: Path) -> None:
    links = small / "kgcn" / "item_index2entity_id.txt"
    with links.open("a", encoding="utf-8") as fh:
        fh.write("2\t5\n")  # line 3,847: artist 2 is already entity 0
    r = load_dataset(small)
    rej = r.rejects.to_frame()
    row = rej[rej["file"] == str(links)]
    assert row[["line", "column", "id"]].values.tolist() == [[3847, "artist", "2"]]
    assert "first link is kept" in row["reason"].iloc[0]
    assert r.dataset.counts()["items"] == 3846


def test_missing_column(small: Path) -> None:
    inter = small / "kgcn" / "user_artists.dat"
    text = inter.read_text(encoding="utf-8").replace("artistID", "artist", 1)
    inter.write_text(text, encoding="utf-8")
    with pytest.raises(MissingColumnError) as exc:
        load_dataset(small)
    assert exc.value.file == str(inter)
    assert exc.value.column == "artistID"


def test_missing_file(small: Path) -> None:
    (small / "kgcn" / "kg.txt").unlink()
    with pytest.raises(DataFormatError, match=r"kg\.txt"):
        load_dataset(small, format="lastfm-kgcn")


def test_without_artist_names(small: Path) -> None:
    shutil.rmtree(small / "hetrec2011")
    r = load_dataset(small)
    assert r.dataset.counts()["items"] == 3846
    assert r.dataset.meta["artist_names"] is False
