"""The engine as a facade over services: each service reachable from it, the served model as one
:class:`TrainedModel` (saved and loaded back, extended to appended nodes), training on caller-supplied inputs, and
an engine following a generation another writer made live.

Hand-built arrays where the answer is known; real components otherwise (the bundled sample, LadybugDB).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from scenerec.aligner import Aligner
from scenerec.engine import Engine
from scenerec.errors import ConfigError, StoreFileError
from scenerec.gnn import BPRMF, CSR, ExtendedRecommender, FitResult, TrainConfig
from scenerec.ids import IdMap
from scenerec.kg import EdgeIndex
from scenerec.ranker import Ranker
from scenerec.search import Search
from scenerec.trained import SPLITS_FILE, TrainedModel, graph_inputs
from scenerec.trainer import Trainer, train_recommender

BPR = TrainConfig(epochs=2, seed=1, threads=1)


def _copy(sample_store: Path, dest: Path) -> Path:
    shutil.copytree(sample_store, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


# -------------------------------------------------------------------- TrainedModel on hand-built arrays
def _hand_model() -> tuple[TrainedModel, IdMap]:
    """3 users x 4 items in 2 scenes, a BPR-MF with fixed weights."""
    idmap = IdMap({"scene": ["s0", "s1"], "user": ["a", "b", "c"], "item": ["i0", "i1", "i2", "i3"]})
    shape = (3, 4)
    splits = {
        "train": CSR.from_pairs(np.array([0, 0, 1, 2]), np.array([0, 1, 2, 3]), shape),
        "valid": CSR.from_pairs(np.array([1]), np.array([0]), shape),
        "test": CSR.from_pairs(np.array([2]), np.array([1]), shape),
    }
    model = BPRMF(3, 4, dim=2)
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model.item_embedding.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 0.5]]))
    links = (np.array([[0], [2]], dtype=np.int64), np.array([0.5], dtype=np.float32))
    trained = TrainedModel.of("bpr", model, splits, np.array([0, 0, 1, 1]), label="bpr [dim=2]", links=links)
    return trained, idmap


def _hand_index(idmap: IdMap, item_scene: np.ndarray, interactions: pd.DataFrame) -> EdgeIndex:
    return EdgeIndex(idmap=idmap, edges={("user", "INTERACTED", "item"): interactions}, item_scene=item_scene)


def _save(trained: TrainedModel, idmap: IdMap, folder: Path) -> None:
    trained.save(
        folder, TrainConfig(epochs=1, seed=3), FitResult(1, {"ndcg@10": 0.5}, 3), idmap, {"label": trained.label}
    )


def test_trained_model_scores_and_histories() -> None:
    trained, _ = _hand_model()
    assert not trained.recommender.training  # of() switches to eval mode
    expected = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 3.0, 1.0, 0.5]])
    torch.testing.assert_close(trained.scores(torch.tensor([0, 1])), expected)
    assert trained.train_items(0).tolist() == [0, 1] and trained.train_items(2).tolist() == [3]
    assert trained.scene_items(1).tolist() == [2, 3]
    assert TrainedModel.of("bpr", trained.recommender, trained.splits, trained.item_scene).label == "bpr"


def test_trained_model_round_trip(tmp_path: Path) -> None:
    trained, idmap = _hand_model()
    folder = tmp_path / "model"
    (folder / "stale").mkdir(parents=True)
    _save(trained, idmap, folder)
    assert not (folder / "stale").exists() and (folder / SPLITS_FILE).is_file()  # the folder is replaced
    index = _hand_index(idmap, trained.item_scene, pd.DataFrame({"src": [0], "dst": [0], "split": ["train"]}))
    loaded = TrainedModel.load(folder, idmap=idmap, features={}, index=index, fix="fit again")
    assert (loaded.name, loaded.label) == ("bpr", "bpr [dim=2]")
    assert isinstance(loaded.recommender, BPRMF)
    for name, csr in trained.splits.items():
        assert np.array_equal(loaded.splits[name].indptr, csr.indptr)
        assert np.array_equal(loaded.splits[name].indices, csr.indices)
    assert loaded.item_scene.tolist() == [0, 0, 1, 1] and loaded.item_scene.dtype == np.int64
    assert loaded.links is not None and loaded.links[0].tolist() == [[0], [2]] and loaded.links[1].tolist() == [0.5]
    for got, want in zip(loaded.embeddings, trained.embeddings, strict=True):
        torch.testing.assert_close(got, want)
    # a damaged splits file is named, with the hint
    np.savez(folder / SPLITS_FILE, item_scene=np.zeros(4, dtype=np.int64))
    with pytest.raises(StoreFileError, match=r"splits\.npz.*fit again"):
        TrainedModel.load(folder, idmap=idmap, features={}, index=index, fix="fit again")


def test_trained_model_is_extended_to_appended_nodes(tmp_path: Path) -> None:
    """An update appended user ``d`` (training items 0 and 2, one valid item 3) and item ``i4``: the loaded model
    serves them (``d`` by the mean of its training items' vectors; ``i4`` without text: a zero vector)."""
    trained, idmap = _hand_model()
    _save(trained, idmap, tmp_path / "model")
    grown = IdMap({"scene": ["s0", "s1"], "user": ["a", "b", "c", "d"], "item": ["i0", "i1", "i2", "i3", "i4"]})
    stored = pd.DataFrame({"src": [0, 3, 3, 3], "dst": [0, 0, 2, 3], "split": ["train", None, "train", "valid"]})
    index = _hand_index(grown, np.array([0, 0, 1, 1, 1]), stored)
    loaded = TrainedModel.load(tmp_path / "model", idmap=grown, features={}, index=index, fix="")
    assert isinstance(loaded.recommender, ExtendedRecommender)
    assert loaded.splits["train"].shape == (4, 5) and loaded.train_items(3).tolist() == [0, 2]
    assert loaded.splits["valid"].indices[loaded.splits["valid"].indptr[3] :].tolist() == [3]
    assert loaded.train_items(0).tolist() == [0, 1]  # the known pair (a, i0) is not added twice
    user_emb, item_emb = loaded.embeddings
    torch.testing.assert_close(user_emb[3], torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(item_emb[4], torch.zeros(2))
    other = IdMap({"scene": ["s0", "s1"], "user": ["z", "b", "c"], "item": ["i0", "i1", "i2", "i3"]})
    with pytest.raises(ConfigError, match="trained on other nodes"):
        TrainedModel.load(tmp_path / "model", idmap=other, features={}, index=index, fix="")


# -------------------------------------------------------------------- the engine's services
def test_each_service_is_built_once_and_serves_the_engine(sample_store: Path, encoder: Any) -> None:
    with Engine.open(sample_store, encoder=encoder) as engine:
        services = {"trainer": Trainer, "ranker": Ranker, "aligner": Aligner, "search": Search}
        for name, cls in services.items():
            service = getattr(engine, name)
            assert isinstance(service, cls) and getattr(engine, name) is service
        assert engine.items() is engine.search.items()  # read once per generation
        pd.testing.assert_frame_equal(
            engine.search_items("blue gel pens", scene="office", k=4),
            engine.search.search_items("blue gel pens", "office", 4),
        )
        with pytest.raises(ConfigError, match="no trained model"):
            engine.model  # noqa: B018  (the property loads)
        with pytest.raises(ValueError, match="k must be a positive integer"):
            engine.similar_items(engine.idmap.id("item", 0), k=0)


def test_fit_saves_the_model_that_is_loaded_back(sample_store: Path, tmp_path: Path) -> None:
    store = _copy(sample_store, tmp_path / "store")
    with Engine.open(store, read_only=False) as engine:
        engine.fit("bpr", config=BPR, write_back=3)
        fitted = engine.model
        assert engine.trainer.load() is fitted and engine.last_write_back is engine.trainer.last_write_back
        assert engine.last_write_back is not None and engine.last_write_back["k"] == 3
        index = engine.trainer.interaction_splits()[1]
        loaded = TrainedModel.load(engine.model_dir, idmap=engine.idmap, features=engine.features, index=index, fix="")
        user = engine.idmap.id("user", 0)
        recs = engine.recommend(user, "office", k=5)
    assert (loaded.name, loaded.label) == ("bpr", "bpr")
    for got, want in zip(loaded.embeddings, fitted.embeddings, strict=True):
        torch.testing.assert_close(got, want)
    with Engine.open(store) as fresh:  # a new engine loads the same model
        pd.testing.assert_frame_equal(fresh.recommend(user, "office", k=5), recs)
        torch.testing.assert_close(fresh.model.embeddings[1], fitted.embeddings[1])


def test_train_recommender_on_caller_supplied_inputs_is_the_engines_training(
    sample_store: Path, tmp_path: Path
) -> None:
    """What a benchmark does with its own splits: the same training as ``fit`` when given the store's."""
    store = _copy(sample_store, tmp_path / "store")
    with Engine.open(store) as engine:
        result = engine.fit("bpr", config=BPR)
        splits, index, assigned = engine.trainer.interaction_splits(BPR.seed)
        inputs = graph_inputs(index, engine.features, splits["train"])
        run = train_recommender("bpr", inputs, splits, BPR)
        fitted = engine.model
    assert not assigned  # the sample stores its splits
    assert (run.result.best_epoch, run.result.best_valid) == (result.best_epoch, result.best_valid)
    assert run.item_item.scenes == {}  # BPR-MF has no item-item channel
    for got, want in zip(run.recommender(), fitted.embeddings, strict=True):
        torch.testing.assert_close(got.detach(), want)
    with pytest.raises(ConfigError, match="unknown model 'nope'; choose one of"):
        train_recommender("nope", inputs, splits, BPR)
    with pytest.raises(ConfigError, match="takes no options"):
        train_recommender("bpr", inputs, splits, BPR, options={"dim": 8})


def test_reopen_serves_the_generation_another_writer_made_live(sample_store: Path, tmp_path: Path) -> None:
    store = _copy(sample_store, tmp_path / "store")
    with Engine.open(store) as reader, Engine.open(store, read_only=False) as writer:
        before = reader.generation
        writer.fit("pop", config=BPR)
        assert reader.generation == before != writer.generation
        with pytest.raises(ConfigError, match="no trained model"):
            reader.model  # noqa: B018  (the generation it serves has none)
        reader.reopen()
        assert reader.generation == writer.generation
        assert reader.model.name == "pop"
        user = reader.idmap.id("user", 1)
        pd.testing.assert_frame_equal(reader.recommend(user, "arts", k=4), writer.recommend(user, "arts", k=4))
