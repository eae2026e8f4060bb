"""The approximate nearest-neighbour index of recommendations (:mod:`scenerec.ann`): the HNSW search against brute
force, the candidate ranking against the exact one (with the item-item channel's extra candidates and the training
items left out), the engine's settings, invalidation on reopen and update, and the missing extra.

Real components: faiss, BPR-MF models (one trained on the bundled sample, copied before anything is written to it;
one with set vectors and a fitted item-kNN channel for known answers), LadybugDB.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from scenerec.ann import SceneIndex, ann_scene_top_k
from scenerec.cli import SAMPLE
from scenerec.config import AnnConfig
from scenerec.engine import Engine
from scenerec.errors import ConfigError, MissingExtraError
from scenerec.gnn import BPRMF, CSR, GraphInputs, ItemItemFusion
from scenerec.trained import TrainedModel

BPR = {"epochs": 20, "seed": 1}


def _recall(exact: tuple[np.ndarray, ...], approx: tuple[np.ndarray, ...]) -> float:
    """Share of the exact (row, item) pairs that the approximate ranking has too."""
    want = set(zip(exact[0].tolist(), exact[1].tolist(), strict=True))
    got = set(zip(approx[0].tolist(), approx[1].tolist(), strict=True))
    return len(want & got) / max(len(want), 1)


# -------------------------------------------------------------------- the index alone
def test_search_finds_the_brute_force_best_items() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    index = SceneIndex(vectors, AnnConfig(enabled=True, ef_search=600, head=0.0))
    found = index.search(queries, 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    assert found.shape == (50, 10) and found.dtype == np.int64
    np.testing.assert_array_equal(found, exact)
    assert index.size == 600 and index.dim == 16 and index.nbytes > 600 * 16 * 4 and index.seconds >= 0


def test_the_longest_vectors_are_the_head_and_the_graph_holds_the_others() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(400, 8)).astype(np.float32)
    vectors[[7, 99, 250]] *= 50.0  # far the longest
    index = SceneIndex(vectors, AnnConfig(enabled=True, head=0.01, ef_search=400))  # 1 % of 400: 4 rows
    longest = np.argsort(-np.linalg.norm(vectors, axis=1), kind="stable")[:4]
    np.testing.assert_array_equal(index.head, np.sort(longest))
    queries = rng.normal(size=(20, 8)).astype(np.float32)
    found = index.search(queries, 2)  # the head's 2 best by brute force, then the graph's 2 best
    scores = queries @ vectors.T
    for q, row in enumerate(found):
        head_best = index.head[np.argsort(-scores[q, index.head])[:2]]
        assert set(row[:2]) == set(head_best)
        others = np.setdiff1d(np.arange(400), index.head)
        np.testing.assert_array_equal(row[2:], others[np.argsort(-scores[q, others], kind="stable")[:2]])


def test_search_pads_with_minus_one_beyond_the_catalogue() -> None:
    index = SceneIndex(np.eye(4, dtype=np.float32), AnnConfig(enabled=True))
    found = index.search(np.ones((1, 4), dtype=np.float32), 6)
    assert sorted(found[0, :4].tolist()) == [0, 1, 2, 3] and found[0, 4:].tolist() == [-1, -1]


# -------------------------------------------------------------------- candidate ranking, known answers
def _synthetic(n_users: int = 300, n_items: int = 3000, dim: int = 24, seed: int = 0) -> TrainedModel:
    """A BPR-MF model with clustered vectors, random training pairs (about 20 per user), two scenes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, dim))
    model = BPRMF(n_users, n_items, dim)
    with torch.no_grad():
        model.item_embedding.weight.copy_(
            torch.from_numpy(centers[rng.integers(20, size=n_items)] + rng.normal(size=(n_items, dim)))
        )
        model.user_embedding.weight.copy_(
            torch.from_numpy(centers[rng.integers(20, size=n_users)] + rng.normal(size=(n_users, dim)))
        )
    users = np.repeat(np.arange(n_users), 20)
    items = rng.integers(n_items, size=len(users))
    empty = CSR.from_pairs(np.zeros(0), np.zeros(0), (n_users, n_items))
    splits = {"train": CSR.from_pairs(users, items, (n_users, n_items)), "valid": empty, "test": empty}
    item_scene = (np.arange(n_items) % 2).astype(np.int64)
    return TrainedModel.of("bpr", model, splits, item_scene)


def _fused(trained: TrainedModel, weight: float) -> TrainedModel:
    """``trained`` with an item-kNN channel fused at ``weight`` in both scenes."""
    inputs = GraphInputs(train=trained.splits["train"], item_scene=trained.item_scene, num_scenes=2)
    fused = ItemItemFusion(trained.recommender, inputs, kind="knn")
    fused.channel.fit_knn(inputs.train, inputs.item_scene, top_k=50)
    fused.fusion.fill_(weight)
    return TrainedModel.of("bpr", fused, trained.splits, trained.item_scene)


def _index(trained: TrainedModel, scene: int, config: AnnConfig) -> SceneIndex:
    return SceneIndex(trained.embeddings[1].numpy()[trained.scene_items(scene)], config)


def test_candidates_covering_the_scene_give_the_exact_ranking() -> None:
    trained = _synthetic()
    users = np.arange(trained.splits["train"].shape[0])
    config = AnnConfig(enabled=True, candidates=1500)  # a scene holds 1,500 items: the search covers it
    for scene in (0, 1):
        exact = trained.scene_top_k(users, scene, 10)
        approx = ann_scene_top_k(trained, _index(trained, scene, config), users, scene, 10, config.candidates)
        for want, got in zip(exact, approx, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_wide_search_gives_the_exact_ranking_and_leaves_training_items_out() -> None:
    trained = _synthetic()
    users = np.arange(trained.splits["train"].shape[0])
    config = AnnConfig(enabled=True, candidates=50, ef_search=1500)
    exact = trained.scene_top_k(users, 1, 10)
    approx = ann_scene_top_k(trained, _index(trained, 1, config), users, 1, 10, 50)
    np.testing.assert_array_equal(approx[0], exact[0])
    np.testing.assert_array_equal(approx[1], exact[1])
    train = trained.splits["train"]
    for row, item in zip(*approx[:2], strict=True):
        assert item not in train.indices[train.indptr[row] : train.indptr[row + 1]]
    assert np.array_equal(approx[3], np.tile(np.arange(1, 11), len(users)))


def test_the_item_item_channel_adds_the_items_its_term_reaches() -> None:
    trained = _fused(_synthetic(), weight=1000.0)  # the channel dominates: the dot product alone misses its items
    model = trained.recommender
    users = torch.arange(40)
    rows, items = model.extra_candidates(users)
    with torch.no_grad():
        term = model.item_item_scores(model.train_rows(users))
    want = set(zip(*np.nonzero(term.numpy()), strict=True))
    assert {(int(r), int(i)) for r, i in zip(rows, items, strict=True)} >= want and len(want) > 0
    config = AnnConfig(enabled=True, candidates=10)
    index = _index(trained, 0, config)
    all_users = np.arange(trained.splits["train"].shape[0])
    exact = trained.scene_top_k(all_users, 0, 10)
    approx = ann_scene_top_k(trained, index, all_users, 0, 10, 10)
    assert _recall(exact, approx) >= 0.99
    model.extra_candidates = lambda users: None  # type: ignore[method-assign]  # without them: items are missed
    assert _recall(exact, ann_scene_top_k(trained, index, all_users, 0, 10, 10)) < 0.9


def test_a_user_the_index_cannot_serve_is_ranked_exactly() -> None:
    trained = _synthetic()
    users = np.arange(20)
    index = SceneIndex(trained.embeddings[1].numpy()[trained.scene_items(0)][:5], AnnConfig(enabled=True))
    # an index over 5 of the scene's items: never enough candidates, every user falls back to the exact ranking
    exact = trained.scene_top_k(users, 0, 10)
    got = ann_scene_top_k(trained, index, users, 0, 10, 10)
    for want, have in zip(exact, got, strict=True):
        np.testing.assert_allclose(have, want, rtol=1e-6)


def test_config_checks_its_values() -> None:
    assert AnnConfig.of(None) == AnnConfig() and AnnConfig.of(True).enabled is True
    assert AnnConfig().wants(100_001) and not AnnConfig().wants(100_000) and not AnnConfig(enabled=False).wants(10**7)
    with pytest.raises(ConfigError, match="candidates must be a positive integer"):
        AnnConfig(candidates=0)
    with pytest.raises(ConfigError, match="ann must be an AnnConfig"):
        AnnConfig.of("yes")  # type: ignore[arg-type]


# -------------------------------------------------------------------- through the engine
@pytest.fixture(scope="module")
def store(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample with BPR-MF fitted (20 epochs)."""
    path = tmp_path_factory.mktemp("ann") / "store"
    shutil.copytree(sample_store, path, ignore=shutil.ignore_patterns("cache"))
    with Engine.open(path, read_only=False) as engine:
        engine.fit("bpr", **BPR)
    return path


def test_recall_of_a_trained_model_with_the_default_settings(store: Path) -> None:
    with Engine.open(store) as engine:
        users = engine.idmap.ids("user")
        assert engine.ann == AnnConfig() and engine.ranker.ann_index("office") is None  # small scenes: exact
        for scene in ("arts", "office"):
            engine.ann = False
            exact = engine.recommend_many(users, scene, k=10)
            engine.ann = True  # the default settings, for every scene
            approx = engine.recommend_many(users, scene, k=10)
            assert engine.ranker.ann_index(scene) is not None
            recall = len(exact.merge(approx, on=["user_id", "item_id"])) / len(exact)
            assert recall >= 0.99, (scene, recall)
            one = engine.recommend(users[7], scene, k=10)
            pd.testing.assert_frame_equal(
                one, approx[approx["user_id"] == users[7]].drop(columns="user_id").reset_index(drop=True)
            )


def test_no_training_item_is_recommended_through_the_index(store: Path) -> None:
    with Engine.open(store, ann=AnnConfig(enabled=True, candidates=1, ef_search=16)) as engine:
        users = engine.idmap.ids("user")
        recs = engine.recommend_many(users, "office", k=10)
        train = engine.model.splits["train"]
        for user, group in recs.groupby("user_id"):
            u = engine.idmap.index("user", str(user))
            seen = {engine.idmap.id("item", int(i)) for i in train.indices[train.indptr[u] : train.indptr[u + 1]]}
            assert not seen & set(group["item_id"]) and len(group) == 10


def test_the_index_is_built_again_for_a_new_model_or_new_settings(store: Path) -> None:
    with Engine.open(store, ann=True) as engine:
        first = engine.ranker.ann_index("arts")
        assert first is not None and engine.ranker.ann_index("arts") is first  # kept
        engine.ann = AnnConfig(enabled=True, ef_search=64)
        second = engine.ranker.ann_index("arts")
        assert second is not first and second is not None and second.config.ef_search == 64
        engine.reopen()  # the live generation again: its model is loaded anew, so is the index
        third = engine.ranker.ann_index("arts")
        assert third is not second and third is not None


def test_update_serves_the_new_items_through_a_new_index(store: Path, tmp_path: Path, encoder: Any) -> None:
    path = tmp_path / "store"
    shutil.copytree(store, path)
    items = pd.read_csv(SAMPLE / "items.csv", dtype=str, keep_default_na=False)
    office = items[items["scene"] == "office"].head(3).copy()
    office["item_id"] = [f"new-office-{n}" for n in range(3)]
    delta = tmp_path / "delta"
    delta.mkdir()
    office.to_csv(delta / "items.csv", index=False)
    with Engine.open(path, read_only=False, encoder=encoder, ann=True) as engine:
        user = engine.idmap.ids("user")[0]
        pd.DataFrame({"user_id": [user] * 3, "item_id": office["item_id"], "timestamp": ["9"] * 3}).to_csv(
            delta / "interactions.csv", index=False
        )
        before = engine.ranker.ann_index("office")
        assert before is not None
        engine.update(delta, k=5)
        after = engine.ranker.ann_index("office")
        assert after is not None and after is not before and after.size == before.size + 3
        approx = engine.recommend_many(engine.idmap.ids("user"), "office", k=10)
        engine.ann = False
        exact = engine.recommend_many(engine.idmap.ids("user"), "office", k=10)
    assert len(exact.merge(approx, on=["user_id", "item_id"])) / len(exact) >= 0.99
    assert not set(approx[approx["user_id"] == user]["item_id"]) & set(office["item_id"])  # now training items


def test_without_faiss(store: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delitem(sys.modules, "faiss", raising=False)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with Engine.open(store) as engine:
        user = engine.idmap.ids("user")[0]
        exact = engine.recommend(user, "office")
        engine.ann = True
        with pytest.raises(MissingExtraError, match=r"needs 'faiss-cpu'.*pip install 'scenerec\[ann\]'"):
            engine.recommend(user, "office")
        engine.ann = AnnConfig(min_items=10)  # chosen by size, not asked for: ranked exactly, with a warning
        with caplog.at_level(logging.WARNING, logger="scenerec.ranker"):
            pd.testing.assert_frame_equal(engine.recommend(user, "office"), exact)
        assert "ranked exactly" in caplog.text and "scenerec[ann]" in caplog.text
