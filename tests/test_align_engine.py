"""Entity alignment through the engine and the CLI, on a real slice of DBP15K FR-EN.

The slice: the 300 gold pairs whose French entities are the most connected among the gold entities, every triple of
either KG among the slice's entities, their translated names; rebuilt once per module with the real
all-MiniLM-L6-v2 embeddings (LadybugDB). Tests that write work on copies of that store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import main
from scenerec.engine import Engine
from scenerec.errors import ConfigError, UnknownIdError
from scenerec.kg import open_store

PAIRS = 300
METRICS = ("hits@1", "hits@10", "mrr", "precision", "recall")
SAME_AS = "MATCH (a:Entity)-[r:SAME_AS]->(b:Entity) RETURN a.id AS a, b.id AS b, r.score AS score, r.method AS method"


def _read(path: Path, cols: list[str]) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=cols, dtype=str, keep_default_na=False)


def make_slice(source: Path, dest: Path, pairs: int = PAIRS) -> Path:
    """A DBP15K pair folder ``dest`` (named ``fr_en``) holding ``pairs`` gold pairs of ``source`` and the triples
    among their entities; the pairs are those whose KG-1 entity has the most triples to other gold entities."""
    dest.mkdir(parents=True)
    ref = _read(source / "ref_ent_ids", ["l", "r"])
    t1 = _read(source / "triples_1", ["h", "rel", "t"])
    gold_left = set(ref["l"])
    inner = t1[t1["h"].isin(gold_left) & t1["t"].isin(gold_left)]
    degree = pd.concat([inner["h"], inner["t"]]).value_counts()
    ref = ref.assign(deg=ref["l"].map(degree).fillna(0)).sort_values(["deg", "l"], ascending=[False, True])
    ref = ref.head(pairs)
    keep = {1: set(ref["l"]), 2: set(ref["r"])}
    for k in (1, 2):
        ents = _read(source / f"ent_ids_{k}", ["id", "uri"])
        ents[ents["id"].isin(keep[k])].to_csv(dest / f"ent_ids_{k}", sep="\t", header=False, index=False)
        tri = t1 if k == 1 else _read(source / "triples_2", ["h", "rel", "t"])
        tri = tri[tri["h"].isin(keep[k]) & tri["t"].isin(keep[k])]
        tri.to_csv(dest / f"triples_{k}", sep="\t", header=False, index=False)
    ref[["l", "r"]].to_csv(dest / "ref_ent_ids", sep="\t", header=False, index=False)
    wanted = keep[1] | keep[2]
    names = json.loads((source / "translated_ent_names.json").read_text(encoding="utf-8"))
    (dest / "translated_ent_names.json").write_text(
        json.dumps([entry for entry in names if str(entry[0]) in wanted]), encoding="utf-8"
    )
    return dest


@pytest.fixture(scope="module")
def slice_store(dbp15k_fr_en: Path, encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scenerec.pipeline import build

    source = dbp15k_fr_en
    root = tmp_path_factory.mktemp("align")
    data = make_slice(source, root / "data" / "fr_en")
    store = root / "store"
    build(data, store, encoder=encoder)
    return store


def _copy(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


def _same_as(engine: Engine) -> pd.DataFrame:
    return engine.store.query(SAME_AS)


def test_align_finds_the_held_out_pairs_and_writes_them(slice_store: Path, tmp_path: Path) -> None:
    store = _copy(slice_store, tmp_path / "store")
    with Engine.open(store, read_only=False) as engine:
        gold_before = _same_as(engine)
        assert len(gold_before) == PAIRS and set(gold_before["method"]) == {"gold"}
        result = engine.align("fr", "en", seed_fraction=0.3, seed=0)
        s = result.summary
        assert (s["left"], s["right"], s["left_nodes"], s["right_nodes"]) == ("fr", "en", PAIRS, PAIRS)
        assert (s["seeds"], s["held_out"]) == (90, 210) and s["shared_users"] == 0 and s["edges"] > PAIRS
        # chance is 1/300 for hits@1 and 10/300 for hits@10
        assert s["hits@1"] > 0.5 and s["hits@10"] > 0.8 and s["hits@1"] <= s["mrr"] <= 1.0
        assert 0.0 < s["precision"] <= 1.0 and 0.0 < s["recall"] <= 1.0
        assert result["hits@1"] == s["hits@1"] and "mrr" in result
        json.dumps(s)  # the summary is JSON-serialisable
        # seeds and held-out pairs split the gold pairs; the seeds lead the pairs, the accepted ones follow
        held = set(zip(result.held_out["left"], result.held_out["right"], strict=True))
        seeds = set(zip(result.seeds["left"], result.seeds["right"], strict=True))
        assert not held & seeds and held | seeds == set(zip(gold_before["a"], gold_before["b"], strict=True))
        assert result.pairs["method"].iloc[:90].eq("seed").all()
        accepted = result.pairs[result.pairs["method"] != "seed"]
        assert len(accepted) == s["pairs"] == s["written"] > 0
        assert (accepted["score"] >= 0.5).all() and (result.review["score"] < 0.5).all()
        assert accepted["left"].str.startswith("http://fr.").all()
        assert not accepted["right"].str.startswith("http://fr.").any()
        assert not set(accepted["left"]) & set(result.seeds["left"])  # seeds are never proposed again
        # the written edges carry method and score; the gold edges are still there
        stored = _same_as(engine)
        assert s["method"] == "gcn"  # the default: a GCN layer trained on the seeds
        predicted = stored[stored["method"] == "gcn"]
        assert len(predicted) == s["pairs"] and len(stored) == PAIRS + s["pairs"]
        by_pair = dict(zip(zip(accepted["left"], accepted["right"], strict=True), accepted["score"], strict=True))
        got = dict(zip(zip(predicted["a"], predicted["b"], strict=True), predicted["score"], strict=True))
        assert got.keys() == by_pair.keys()
        np.testing.assert_allclose([got[k] for k in by_pair], list(by_pair.values()), rtol=1e-9)
        gold_after = stored[stored["method"] == "gold"]
        assert set(zip(gold_after["a"], gold_after["b"], strict=True)) == set(
            zip(gold_before["a"], gold_before["b"], strict=True)
        )
        # a second run with another split replaces the predicted edges (no duplicates) and keeps gold
        again = engine.align("fr", "en", seed_fraction=0.5, seed=1)
        stored = _same_as(engine)
        assert (stored["method"] == "gold").sum() == PAIRS
        assert (stored["method"] == "gcn").sum() == again["pairs"] == again["written"]
        assert not stored.duplicated(["a", "b", "method"]).any()
        # the written edges never feed the next alignment: the gold split is the same as before
        assert engine.align("fr", "en", seed_fraction=0.5, seed=1, write=False)["held_out"] == again["held_out"]


def test_align_reads_without_writing(slice_store: Path) -> None:
    with Engine.open(slice_store) as engine:  # read-only
        before = len(_same_as(engine))
        first = engine.align("en", "fr", seed_fraction=0.0, write=False)
        assert (first["seeds"], first["held_out"], first["written"]) == (0, PAIRS, 0)
        assert first["hits@1"] > 0.5  # text and structure alone, no seed at all
        assert first.pairs["left"].str.startswith("http://dbpedia.org/").all()  # oriented left = en
        with pytest.raises(ConfigError, match="read-only"):
            engine.align("fr", "en")
        assert len(_same_as(engine)) == before


def test_align_errors(slice_store: Path, tmp_path: Path) -> None:
    with Engine.open(slice_store) as engine:
        with pytest.raises(UnknownIdError, match=r"unknown scene id 'de'; known scenes: fr, en"):
            engine.align("fr", "de", write=False)
        for bad in (1.0, -0.1, 1.5):
            with pytest.raises(ValueError, match="seed_fraction"):
                engine.align("fr", "en", seed_fraction=bad, write=False)
        with pytest.raises(ValueError, match="two different scenes"):
            engine.align("fr", "fr", write=False)
        with pytest.raises(ValueError, match="method"):
            engine.align("fr", "en", method="magic", write=False)
    store = _copy(slice_store, tmp_path / "store")
    with open_store(store, read_only=False, unsafe=True) as graph:  # the engine's graph is read-only: writes are staged
        graph.query("MATCH (e:Entity) WHERE e.scene = $s SET e.scene = $t", s="en", t="elsewhere")
    with Engine.open(store) as engine, pytest.raises(ConfigError, match="scene 'en' has no items or entities"):
        engine.align("fr", "en", write=False)


def test_align_without_gold_has_no_metrics(slice_store: Path, tmp_path: Path) -> None:
    store = _copy(slice_store, tmp_path / "store")
    with open_store(store, read_only=False, unsafe=True) as graph:  # the test edits the graph
        graph.query("MATCH (:Entity)-[r:SAME_AS]->(:Entity) DELETE r")
    with Engine.open(store, read_only=False) as engine:
        out = engine.align("fr", "en", seed_fraction=0.3)
        assert (out["seeds"], out["held_out"]) == (0, 0)
        assert not any(m in out.summary for m in METRICS)
        assert out["pairs"] == out["written"] and out["pairs"] + out["review"] > 0
        assert out["method"] == "propagation"  # no seeds to train the GCN on
        assert (_same_as(engine)["method"] == "propagation").sum() == out["written"]


def test_cli_align(slice_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["align", "--store", str(slice_store), "--left", "fr", "--right", "en", "--no-write"]
    assert main([*args, "--format", "json", "--seed-fraction", "0.2", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (*METRICS, "left", "right", "seeds", "held_out", "pairs", "review", "shared_users", "seconds"):
        assert key in out
    assert (out["seeds"], out["held_out"], out["written"]) == (60, 240, 0) and out["hits@1"] > 0.5
    assert main([*args, "--threshold", "0.99"]) == 0
    text = capsys.readouterr().out
    assert "hits@1" in text and "fr -> en" in text and "review" in text
    # bad input: one line on stderr, non-zero exit
    for bad, message in (
        (["--left", "de"], "unknown scene id 'de'"),
        (["--seed-fraction", "1"], "--seed-fraction 1.0: expected a number in [0, 1)"),
        (["--threshold", "2"], "threshold"),
    ):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    # writing needs no flag; the store is opened writable
    store = _copy(slice_store, tmp_path / "store")
    assert main(["align", "--store", str(store), "--left", "fr", "--right", "en", "--format", "json"]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    assert written > 0
    with Engine.open(store) as engine:
        assert (_same_as(engine)["method"] == "gcn").sum() == written
