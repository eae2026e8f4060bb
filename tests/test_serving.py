"""Serving a trained recommender: new users from their items, similar items, write-back into the graph, the CLI.

Real components only: the bundled sample rebuilt once per session (copied before anything is written to it),
LadybugDB, a LightGCN trained for a few epochs. Expected values are computed by hand from the engine's embeddings.
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
from scenerec.gnn import TrainConfig
from scenerec.kg.schema import MODEL_EMBEDDING

SCENES = ("arts", "office")
LIGHTGCN = TrainConfig(epochs=30, seed=1, threads=1)
POP = TrainConfig(epochs=1, seed=1, threads=1)
K = 10


def _copy(sample_store: Path, dest: Path) -> Path:
    shutil.copytree(sample_store, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


def _hand_top(scores: np.ndarray, candidates: np.ndarray, k: int) -> list[int]:
    """Best ``k`` of ``candidates`` by ``scores``, ties to the lower index (a full sort, the obvious way)."""
    order = sorted(candidates.tolist(), key=lambda i: (-scores[i], i))
    return order[:k]


@pytest.fixture(scope="module")
def served(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the sample with LightGCN fitted and written back (k=10)."""
    store = _copy(sample_store, tmp_path_factory.mktemp("serving") / "store")
    out: dict[str, Any] = {"store": store}
    with Engine.open(store, read_only=False) as engine:
        engine.fit("lightgcn", config=LIGHTGCN)
        out["written"] = engine.write_back(k=K)
        out["user_emb"], out["item_emb"] = (e.numpy().copy() for e in engine.model.embeddings)
        out["idmap"] = engine.idmap
        out["items"] = engine.items().copy()
        train = engine.model.splits["train"]
        out["train"] = train
        # the user with the most training items in office
        office = engine.idmap.index("scene", "office")
        counts = [
            int((engine.model.item_scene[train.indices[train.indptr[u] : train.indptr[u + 1]]] == office).sum())
            for u in range(engine.idmap.size("user"))
        ]
        out["user"] = engine.idmap.id("user", int(np.argmax(counts)))
        out["recs"] = {
            (u, s): engine.recommend(u, s, k=K) for u in (out["user"], engine.idmap.id("user", 0)) for s in SCENES
        }
        out["item_scene"] = engine.model.item_scene.copy()
    return out


def _scene_candidates(served: dict[str, Any], scene: str) -> np.ndarray:
    return np.flatnonzero(served["item_scene"] == served["idmap"].index("scene", scene))


# -------------------------------------------------------------------- recommend_for_items
def test_recommend_for_items_of_a_users_history_is_the_mean_of_its_items(served: dict[str, Any]) -> None:
    idmap, train = served["idmap"], served["train"]
    user = idmap.index("user", served["user"])
    history = np.sort(train.indices[train.indptr[user] : train.indptr[user + 1]])
    item_ids = [idmap.id("item", int(i)) for i in history]
    with Engine.open(served["store"]) as engine:  # a fresh engine: the saved model is loaded
        recs = engine.recommend_for_items(item_ids, "office", k=K)
    assert list(recs.columns) == ["item_id", "scene", "score", "rank"]
    assert recs["rank"].tolist() == list(range(1, K + 1)) and (recs["scene"] == "office").all()
    emb = served["item_emb"].astype(np.float64)
    scores = emb @ emb[history].mean(0)
    candidates = np.setdiff1d(_scene_candidates(served, "office"), history)
    expected = _hand_top(scores, candidates, K)
    assert recs["item_id"].tolist() == [idmap.id("item", i) for i in expected]
    np.testing.assert_allclose(recs["score"].to_numpy(), scores[expected], rtol=1e-4, atol=1e-6)
    assert not set(recs["item_id"]) & set(item_ids)
    # the order of the given items and repeats do not matter
    with Engine.open(served["store"]) as engine:
        again = engine.recommend_for_items(item_ids[::-1] + item_ids[:2], "office", k=K)
    assert again["item_id"].tolist() == recs["item_id"].tolist()


def test_recommend_for_items_errors(served: dict[str, Any]) -> None:
    item = served["items"]["item_id"].iloc[0]
    with Engine.open(served["store"]) as engine:
        with pytest.raises(UnknownIdError, match="unknown item id 'nope'"):
            engine.recommend_for_items([item, "nope"], "office")
        with pytest.raises(UnknownIdError, match=r"unknown scene id 'garden'.*arts, office"):
            engine.recommend_for_items([item], "garden")
        with pytest.raises(ValueError, match="no item ids"):
            engine.recommend_for_items([], "office")
        with pytest.raises(ValueError, match="k must be"):
            engine.recommend_for_items([item], "office", k=0)
        one = engine.recommend_for_items(item, "arts", k=3)  # a single id is one item
    assert len(one) == 3 and item not in set(one["item_id"])


def test_recommend_for_items_with_popularity_ranks_by_count(sample_store: Path, tmp_path: Path) -> None:
    """The popularity model ignores the history: the scene's most-bought items, the given ones left out; ties
    (many items share a count) go to the lower item index."""
    store = _copy(sample_store, tmp_path / "store")
    with Engine.open(store) as engine:
        engine.fit("pop", config=POP)
        train = engine.model.splits["train"]
        counts = np.bincount(train.indices, minlength=engine.idmap.size("item")).astype(np.float64)
        arts = np.flatnonzero(engine.model.item_scene == engine.idmap.index("scene", "arts"))
        given = _hand_top(counts, arts, 3)
        recs = engine.recommend_for_items([engine.idmap.id("item", i) for i in given], "arts", k=40)
        expected = _hand_top(counts, np.setdiff1d(arts, given), 40)
    assert len(set(counts[expected])) < 40  # the cut-off falls among tied counts
    assert recs["item_id"].tolist() == [engine.idmap.id("item", i) for i in expected]


def test_recommend_and_write_back_break_ties_alike(sample_store: Path, tmp_path: Path) -> None:
    """With popularity most scores tie: ``recommend`` takes the lower item indices also where its cut-off falls
    among equal counts, the same items the ``RECOMMENDED`` edges of the write-back hold."""
    store = _copy(sample_store, tmp_path / "store")
    with Engine.open(store, read_only=False) as engine:
        engine.fit("pop", config=POP, write_back=40)
        train = engine.model.splits["train"]
        counts = np.bincount(train.indices, minlength=engine.idmap.size("item")).astype(np.float64)
        office = np.flatnonzero(engine.model.item_scene == engine.idmap.index("scene", "office"))
        user = engine.idmap.id("user", 0)
        seen = train.indices[train.indptr[0] : train.indptr[1]]
        expected = _hand_top(counts, np.setdiff1d(office, seen), 40)
        recs = engine.recommend(user, "office", k=40)
        stored = engine.store.query(
            "MATCH (u:User {id: $u})-[r:RECOMMENDED]->(i:Item) WHERE i.scene = 'office' "
            "RETURN i.id AS item ORDER BY r.rank",
            u=user,
        )
        many = engine.recommend_many([engine.idmap.id("user", 1), user], "office", k=40, batch_size=1)
    assert counts[expected[-1]] == counts[expected[-2]] and len(set(counts[expected])) < 40  # ties at the cut-off
    assert recs["item_id"].tolist() == [engine.idmap.id("item", i) for i in expected] == stored["item"].tolist()
    assert many[many["user_id"] == user]["item_id"].tolist() == recs["item_id"].tolist()


# -------------------------------------------------------------------- recommend_many
def test_recommend_many_ranks_as_recommend_does(served: dict[str, Any]) -> None:
    """Users scored in blocks (of 7 here, so blocks are cut mid-list) get the items, ranks and scores that
    ``recommend`` gives each of them, in the order asked (a repeated user twice)."""
    with Engine.open(served["store"]) as engine:
        users = [engine.idmap.id("user", u) for u in range(0, engine.idmap.size("user"), 13)][:30]
        users += [served["user"], users[0]]
        for scene in SCENES:
            many = engine.recommend_many(users, scene, k=K, batch_size=7)
            assert many.columns.tolist() == ["user_id", "item_id", "scene", "score", "rank"]
            assert many["rank"].dtype == np.int64 and set(many["scene"]) == {scene}
            assert list(dict.fromkeys(many["user_id"])) == list(dict.fromkeys(users))
            for user in dict.fromkeys(users):
                one = engine.recommend(user, scene, k=K)
                got = many[many["user_id"] == user].reset_index(drop=True)
                times = users.count(user)
                assert len(got) == times * len(one) and len(one) == K
                assert got["item_id"].tolist() == one["item_id"].tolist() * times
                assert got["rank"].tolist() == one["rank"].tolist() * times
                np.testing.assert_allclose(got["score"], np.tile(one["score"], times), rtol=1e-5)
            # the user with the most office training items: none of them is recommended
            train = served["train"]
            index = served["idmap"].index("user", served["user"])
            seen = {served["idmap"].id("item", i) for i in train.indices[train.indptr[index] : train.indptr[index + 1]]}
            assert not seen & set(many[many["user_id"] == served["user"]]["item_id"])


def test_recommend_many_errors_and_no_users(served: dict[str, Any]) -> None:
    with Engine.open(served["store"]) as engine:
        user = engine.idmap.id("user", 0)
        with pytest.raises(UnknownIdError, match="nobody"):
            engine.recommend_many([user, "nobody"], "arts")
        with pytest.raises(UnknownIdError, match="garden"):
            engine.recommend_many([user], "garden")
        with pytest.raises(ValueError, match="not one string"):
            engine.recommend_many(user, "arts")
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            engine.recommend_many([user], "arts", batch_size=0)
        with pytest.raises(ValueError, match="k must be a positive integer"):
            engine.recommend_many([user], "arts", k=0)
        empty = engine.recommend_many([], "arts")
    assert len(empty) == 0 and empty.columns.tolist() == ["user_id", "item_id", "scene", "score", "rank"]


# -------------------------------------------------------------------- similar_items
def test_similar_items_of_the_trained_model(served: dict[str, Any]) -> None:
    idmap = served["idmap"]
    item = served["recs"][(served["user"], "office")]["item_id"].iloc[0]
    with Engine.open(served["store"]) as engine:
        sim = engine.similar_items(item, k=K)
        arts = engine.similar_items(item, k=5, scene="arts")
    assert sim.attrs["source"] == "lightgcn" and list(sim.columns) == ["item_id", "scene", "score", "rank"]
    assert item not in set(sim["item_id"]) and len(sim) == K
    assert np.all(np.diff(sim["score"].to_numpy()) <= 0) and sim["rank"].tolist() == list(range(1, K + 1))
    emb = served["item_emb"].astype(np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i = idmap.index("item", item)
    cos = unit @ unit[i]
    others = np.setdiff1d(np.arange(len(cos)), [i])
    expected = _hand_top(cos, others, K)
    assert sim["item_id"].tolist() == [idmap.id("item", j) for j in expected]
    np.testing.assert_allclose(sim["score"].to_numpy(), cos[expected], rtol=1e-5)
    scene_of = served["items"].set_index("item_id")["scene"]
    assert sim["scene"].tolist() == scene_of.loc[sim["item_id"]].tolist()
    assert (arts["scene"] == "arts").all() and (scene_of.loc[arts["item_id"]] == "arts").all()
    assert arts["item_id"].tolist() == [
        idmap.id("item", j) for j in _hand_top(cos, np.setdiff1d(_scene_candidates(served, "arts"), [i]), 5)
    ]


def test_similar_items_falls_back_to_text_then_fails(sample_store: Path, tmp_path: Path) -> None:
    store = _copy(sample_store, tmp_path / "store")
    with Engine.open(store) as engine:  # no model trained: the text embeddings
        item = engine.idmap.id("item", 5)
        sim = engine.similar_items(item, k=5, scene="office")
        text = engine.features["item"].astype(np.float64)
        cos = text @ text[5] / (np.linalg.norm(text, axis=1) * np.linalg.norm(text[5]))
        office = np.flatnonzero(engine.items()["scene"].to_numpy() == "office")
        expected = _hand_top(cos, np.setdiff1d(office, [5]), 5)
        assert sim.attrs["source"] == "text"
        assert sim["item_id"].tolist() == [engine.idmap.id("item", j) for j in expected]
        np.testing.assert_allclose(sim["score"].to_numpy(), cos[expected], rtol=1e-5)
        with pytest.raises(UnknownIdError, match="unknown item id 'nope'"):
            engine.similar_items("nope")
        with pytest.raises(UnknownIdError, match="garden"):
            engine.similar_items(item, scene="garden")
        engine.features = {}  # as a store rebuilt with --no-embed
        with pytest.raises(ConfigError, match="no item representations"):
            engine.similar_items(item)


# -------------------------------------------------------------------- write-back
def test_write_back_counts_and_excludes_training_items(served: dict[str, Any]) -> None:
    n_users = served["idmap"].size("user")
    w = served["written"]
    assert w["model"] == "lightgcn" and w["k"] == K and w["scenes"] == list(SCENES)
    assert w["edges"] == n_users * len(SCENES) * K  # every user has far fewer than ~1,000 training items
    assert w["property"] == MODEL_EMBEDDING and w["dim"] == served["item_emb"].shape[1]
    with Engine.open(served["store"]) as engine:
        store = engine.store
        assert store.counts()["edges"]["RECOMMENDED"] == w["edges"]
        per_scene = store.query(
            "MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN i.scene AS scene, count(r) AS n, "
            "count(DISTINCT u.id) AS users, min(r.rank) AS lo, max(r.rank) AS hi ORDER BY scene"
        )
        assert per_scene.to_dict("records") == [
            {"scene": s, "n": n_users * K, "users": n_users, "lo": 1, "hi": K} for s in SCENES
        ]
        leaked = store.query(
            "MATCH (u:User)-[r:RECOMMENDED]->(i:Item), (u)-[t:INTERACTED]->(i) WHERE t.split = 'train' "
            "RETURN count(r) AS n"
        )
        assert int(leaked["n"].iloc[0]) == 0
        assert set(store.query("MATCH ()-[r:RECOMMENDED]->() RETURN DISTINCT r.model AS m")["m"]) == {"lightgcn"}


def test_one_cypher_query_serves_what_recommend_returns(served: dict[str, Any]) -> None:
    cypher = (
        "MATCH (u:User {id: $u})-[r:RECOMMENDED]->(i:Item) WHERE i.scene = $scene "
        "RETURN i.id AS item_id, r.score AS score, r.rank AS rank ORDER BY r.rank"
    )
    with Engine.open(served["store"]) as engine:
        for (user, scene), recs in served["recs"].items():
            got = engine.store.query(cypher, u=user, scene=scene)
            assert got["item_id"].tolist() == recs["item_id"].tolist()
            assert got["rank"].tolist() == recs["rank"].tolist()
            np.testing.assert_allclose(got["score"].to_numpy(), recs["score"].to_numpy(), rtol=1e-6)


def test_write_back_stores_the_learnt_vectors(served: dict[str, Any]) -> None:
    idmap = served["idmap"]
    with Engine.open(served["store"]) as engine:
        for label, kind, expected in (("User", "user", served["user_emb"]), ("Item", "item", served["item_emb"])):
            ids, vectors = engine.store.model_embeddings(label)
            assert len(ids) == idmap.size(kind)
            np.testing.assert_array_equal(vectors[np.argsort(idmap.indices(kind, ids))], expected)
        text_ids, _ = engine.store.node_embeddings("Item")  # the text embeddings are still there
        assert len(text_ids) == idmap.size("item")


def test_write_back_replaces_and_needs_a_writable_store(served: dict[str, Any], tmp_path: Path) -> None:
    store = shutil.copytree(served["store"], tmp_path / "store")
    with Engine.open(store) as engine, pytest.raises(ConfigError, match="read_only=False"):
        engine.write_back()
    with Engine.open(store, read_only=False) as engine:
        with pytest.raises(ValueError, match="k must be"):
            engine.write_back(k=0)
        with pytest.raises(UnknownIdError, match="garden"):
            engine.write_back(scenes=["garden"])
        w = engine.write_back(k=3, scenes=["arts"])
        assert w["edges"] == engine.idmap.size("user") * 3
        got = engine.store.query(
            "MATCH ()-[r:RECOMMENDED]->(i:Item) RETURN i.scene AS scene, count(r) AS n, max(r.rank) AS hi"
        )
        assert got.to_dict("records") == [{"scene": "arts", "n": w["edges"], "hi": 3}]


# -------------------------------------------------------------------- CLI
def test_cli_fit_writes_back_unless_told_not_to(
    sample_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _copy(sample_store, tmp_path / "store")
    fit = ["fit", "--store", str(store), "--model", "bpr", "--seed", "3", "--epochs", "2"]

    def recommended() -> int:
        with Engine.open(store) as engine:
            return int(engine.store.counts()["edges"]["RECOMMENDED"])

    assert main([*fit, "--no-write-back"]) == 0
    assert "written:" not in capsys.readouterr().out
    assert recommended() == 0
    assert main([*fit, "--write-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "written:    2,800 RECOMMENDED edges (top 2 per user in arts, office)" in out
    assert recommended() == 700 * 2 * 2
    assert main([*fit, "--write-k", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --write-k 0: expected a positive integer"
    assert recommended() == 700 * 2 * 2


def test_cli_similar_and_recommend_for_items(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    store = str(served["store"])
    items = served["recs"][(served["user"], "office")]["item_id"].tolist()[:2]
    with Engine.open(store) as engine:
        sim = engine.similar_items(items[0], k=4, scene="arts")
        new = engine.recommend_for_items(items, "office", k=5)

    assert (
        main(["similar", "--store", store, "--item", items[0], "-k", "4", "--scene", "arts", "--format", "json"]) == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert [r["item_id"] for r in got] == sim["item_id"].tolist()
    assert [set(r) for r in got] == [{"item_id", "scene", "score", "rank"}] * 4
    assert main(["similar", "--store", store, "--item", items[0], "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "cosine of the lightgcn representations" in out and "title" in out
    assert main(["similar", "--store", store, "--item", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown item id 'nope'"

    args = ["recommend", "--store", store, "--scene", "office", "-k", "5", "--format", "json"]
    assert main([*args, "--items", ",".join(items)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["item_id"] for r in got] == new["item_id"].tolist()
    assert main([*args, "--items", " , "]) == 2
    assert capsys.readouterr().err.startswith("error: --items")
    assert main([*args, "--items", f"{items[0]},nope"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown item id 'nope'"
    with pytest.raises(SystemExit) as exc:  # --user and --items exclude each other (argparse)
        main([*args, "--items", items[0], "--user", served["user"]])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_recommended_frame_is_plain(served: dict[str, Any]) -> None:
    """The frames are plain pandas: ids as strings, ranks as integers."""
    recs = served["recs"][(served["user"], "arts")]
    assert isinstance(recs, pd.DataFrame)
    with Engine.open(served["store"]) as engine:
        sim = engine.similar_items(recs["item_id"].iloc[0], k=3)
    assert sim["rank"].dtype == np.int64 and all(isinstance(i, str) for i in sim["item_id"])
