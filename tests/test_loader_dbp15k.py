"""The DBP15K pair loader on the real FR-EN files and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scenerec.errors import ConflictingIdError, DataFormatError
from scenerec.loaders import LoadOptions, LoadResult, detect_format, load_dataset
from scenerec.loaders.dbp15k import name_from_uri
from scenerec.records import Alignment


@pytest.fixture(scope="module")
def fr_en(dbp15k_fr_en: Path) -> LoadResult:
    return load_dataset(dbp15k_fr_en)


def test_detect(dbp15k_fr_en: Path) -> None:
    assert detect_format(dbp15k_fr_en) == "dbp15k"


def test_statistics(fr_en: LoadResult) -> None:
    # SOURCE.md fr_en: 19,661 / 19,993 entities, 903 / 1,208 relations, 105,998 / 115,722 triples, 15,000 gold
    # pairs. The files hold no repeated triple, no undeclared id and no URI shared by the two KGs, so the
    # cleaned counts equal SOURCE.md exactly.
    d = fr_en.dataset
    assert fr_en.format == "dbp15k"
    counts = d.counts()
    assert counts["scenes"] == 2
    assert (counts["users"], counts["items"], counts["interactions"]) == (0, 0, 0)
    assert counts["entities"] == 19_661 + 19_993
    assert d.entities["scene"].value_counts().to_dict() == {"fr": 19_661, "en": 19_993}
    assert counts["triples"] == 105_998 + 115_722
    assert counts["alignment"] == 15_000
    assert d.meta["inferred_entities"] == 0
    assert d.scene_ids() == ["fr", "en"]
    fr_rel = d.triples.loc[d.triples["head"].str.startswith("http://fr."), "relation"].nunique()
    en_rel = d.triples.loc[d.triples["head"].str.startswith("http://dbpedia.org/"), "relation"].nunique()
    assert (fr_rel, en_rel) == (903, 1208)
    # The only reject: one French entity whose translated name is an empty token list.
    assert fr_en.rejects.counts() == {
        ("repaired", "no translated name in translated_ent_names.json; name decoded from the URI"): 1
    }


def test_records(fr_en: LoadResult) -> None:
    d = fr_en.dataset
    ents = d.entities.set_index("id")
    fr = "http://fr.dbpedia.org/resource/Saint-Joseph-de-Coleraine"
    en = "http://dbpedia.org/resource/Saint-Joseph-de-Coleraine,_Quebec"
    assert ents.loc[fr, ["type", "name", "scene"]].tolist() == ["", "saint joseph de coleraine", "fr"]
    assert ents.loc[en, "scene"] == "en"
    # ref_ent_ids line 1: "0 10500".
    assert next(d.records("alignment")) == Alignment(fr, en, 1.0, "gold")
    # triples_1 line 1: "2786 844 23012".
    assert d.triples.iloc[0].tolist() == [
        "http://fr.dbpedia.org/resource/Rodrigo_Rato",
        "rel:844",
        "http://fr.dbpedia.org/resource/Mariano_Rajoy",
    ]
    # The entity without a translated name (ent_ids_1 line 17,475) is named from its URI.
    rej = fr_en.rejects.to_frame()
    assert rej[["file", "line", "id"]].values.tolist() == [
        [str(fr_en.path / "ent_ids_1"), 17_475, "http://fr.dbpedia.org/resource/(_)"]
    ]
    assert ents.loc["http://fr.dbpedia.org/resource/(_)", "name"] == "( )"


def test_name_from_uri() -> None:
    assert name_from_uri("http://fr.dbpedia.org/resource/Where_Is_My_Mind%3F") == "Where Is My Mind?"
    assert name_from_uri("http://dbpedia.org/resource/Self_Portrait_(Bob_Dylan_album)") == (
        "Self Portrait (Bob Dylan album)"
    )


# ---- broken copies ------------------------------------------------------------------------------------------


@pytest.fixture
def small(dbp15k_fr_en: Path, tmp_path: Path) -> Path:
    """Entities 0-99 of KG 1 and 10500-10599 of KG 2, their triples and gold pairs, in a folder named fr_en."""
    out = tmp_path / "fr_en"
    out.mkdir()
    keep: set[str] = set()
    for k, lo in ((1, 0), (2, 10_500)):
        lines = [
            ln
            for ln in (dbp15k_fr_en / f"ent_ids_{k}").read_text(encoding="utf-8").splitlines()
            if lo <= int(ln.split("\t")[0]) < lo + 100
        ]
        keep |= {ln.split("\t")[0] for ln in lines}
        (out / f"ent_ids_{k}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for k in (1, 2):
        tri = [
            ln
            for ln in (dbp15k_fr_en / f"triples_{k}").read_text(encoding="utf-8").splitlines()
            if ln.split("\t")[0] in keep and ln.split("\t")[2] in keep
        ]
        (out / f"triples_{k}").write_text("\n".join(tri) + "\n", encoding="utf-8")
    ref = [
        ln
        for ln in (dbp15k_fr_en / "ref_ent_ids").read_text(encoding="utf-8").splitlines()
        if ln.split("\t")[0] in keep
    ]
    (out / "ref_ent_ids").write_text("\n".join(ref) + "\n", encoding="utf-8")
    return out


def test_bad_lines_are_reported(small: Path) -> None:
    triples = small / "triples_1"
    with triples.open("a", encoding="utf-8") as fh:
        fh.write("0\t844\t99999\n")  # tail not declared in ent_ids_1
        fh.write("0\t844\n")  # a field missing
    n_tri = len(triples.read_text(encoding="utf-8").splitlines())
    ref = small / "ref_ent_ids"
    with ref.open("a", encoding="utf-8") as fh:
        fh.write("10500\t0\n")  # the two sides swapped: 10500 is not in ent_ids_1
    n_ref = len(ref.read_text(encoding="utf-8").splitlines())
    ents = small / "ent_ids_2"
    with ents.open("a", encoding="utf-8") as fh:
        fh.write("10500\thttp://dbpedia.org/resource/Somewhere_else\n")  # id declared twice
    n_ent = len(ents.read_text(encoding="utf-8").splitlines())

    r = load_dataset(small)
    rej = r.rejects.to_frame()
    got = sorted(rej[["file", "line", "column", "reason"]].values.tolist())
    assert got == [
        [str(ents), n_ent, "id", "entity id 10500 already declared on line 1; the first line is kept"],
        [str(ref), n_ref, "left", "left id is not declared in ent_ids_1"],
        [str(triples), n_tri - 1, "tail", "tail id is not declared in ent_ids_1"],
        [str(triples), n_tri, "", "expected 3 fields (head, relation, tail) separated by '\\t', found 2"],
    ]
    assert r.dataset.counts()["entities"] == 200
    assert r.dataset.counts()["alignment"] == n_ref - 1
    # Without translated_ent_names.json the names come from the URIs.
    names = r.dataset.entities.set_index("id")["name"]
    assert names["http://fr.dbpedia.org/resource/Saint-Joseph-de-Coleraine"] == "Saint-Joseph-de-Coleraine"


def test_translated_names_and_scene_option(small: Path) -> None:
    (small / "translated_ent_names.json").write_text(json.dumps([[0, ["saint", "joseph"]], ["x"]]), encoding="utf-8")
    shutil.move(small, small.parent / "pair")  # the folder name no longer says the languages
    r = load_dataset(small.parent / "pair", options=LoadOptions(extra={"scenes": "french,english"}))
    d = r.dataset
    assert d.scene_ids() == ["french", "english"]
    names = d.entities.set_index("id")["name"]
    assert names["http://fr.dbpedia.org/resource/Saint-Joseph-de-Coleraine"] == "saint joseph"
    reasons = r.rejects.counts()
    assert reasons[("dropped", "entry 1 is not [id, [tokens...]]: ['x']")] == 1
    assert reasons[("repaired", "no translated name in translated_ent_names.json; name decoded from the URI")] == 199
    # Scenes from the URI hosts when neither the folder name nor the options give them.
    assert load_dataset(small.parent / "pair").dataset.scene_ids() == ["fr", "en"]


def test_invalid_json(small: Path) -> None:
    (small / "translated_ent_names.json").write_text('[[0, ["a"]],\n[1, ', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"translated_ent_names\.json, line 2: invalid JSON"):
        load_dataset(small)


def test_uri_in_both_kgs(small: Path) -> None:
    with (small / "ent_ids_2").open("a", encoding="utf-8") as fh:
        fh.write("99999\thttp://fr.dbpedia.org/resource/Saint-Joseph-de-Coleraine\n")
    with pytest.raises(ConflictingIdError, match="declared in both KGs"):
        load_dataset(small)


def test_missing_file(small: Path) -> None:
    (small / "triples_2").unlink()
    with pytest.raises(DataFormatError, match="missing triples_2"):
        load_dataset(small, format="dbp15k")
