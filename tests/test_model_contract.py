"""One contract every registered recommender keeps (like implicit's shared test mixin and PyKEEN's ``tests/cases.py``):
built from the registry, seeded ``reset_parameters``, trained a little, saved and loaded with identical scores and
identical new-user scores; plus the registry itself, the item-item channel's wrapper, artifacts saved before the
channel left SceneGNN, and the model inputs built straight from the store."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from scenerec.errors import ConfigError
from scenerec.gnn import (
    CSR,
    ExtendedRecommender,
    GraphInputs,
    ItemItemFusion,
    Recommender,
    TrainConfig,
    build_hetero,
    build_inputs,
    fit,
    load_artifact,
    save_artifact,
    tune_item_item,
)
from scenerec.ids import IdMap
from scenerec.registry import MODELS, ModelSpec, Registry, load_model
from scenerec.trained import TrainedModel

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_artifact"

#: Small settings per registered model, so that the suite runs in seconds (every other argument is the preset's).
SMALL: dict[str, dict[str, Any]] = {"scenegnn": {"dim": 8}, "crossscene": {"dim": 8}}


def _inputs() -> tuple[GraphInputs, CSR]:
    """12 users x 10 items in two scenes with text features: the graph the legacy artifacts were trained on."""
    spec = importlib.util.spec_from_file_location("scenerec_tests_legacy_make", LEGACY / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data: tuple[GraphInputs, CSR] = module.inputs()
    return data


def _idmap() -> IdMap:
    return IdMap({"user": [f"u{i}" for i in range(12)], "item": [f"i{i}" for i in range(10)]})


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


HISTORIES = [torch.tensor([0, 6]), torch.tensor([3]), torch.tensor([], dtype=torch.long)]


@pytest.fixture(params=MODELS.names())
def spec(request: pytest.FixtureRequest) -> ModelSpec:
    return MODELS[request.param]


def test_built_from_the_registry_records_its_arguments(spec: ModelSpec) -> None:
    inputs, _ = _inputs()
    model = spec.build(inputs, SMALL.get(spec.name))
    assert isinstance(model, Recommender) and (model.num_users, model.num_items) == (12, 10)
    hp = model.hyperparameters()
    assert json.loads(json.dumps(hp)) == hp  # JSON as it is saved
    if spec.item_item:  # the channel is fused outside the model, around the preset's class
        assert isinstance(model, ItemItemFusion) and isinstance(model.base, spec.model_class)
        assert hp["base"]["class"] == spec.model_class.__name__
        base = model.base
    else:
        assert type(model) is spec.model_class
        base = model
    again = type(base).from_inputs(inputs, **base.hyperparameters())
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in base.state_dict().items()}
    for key, value in {**spec.preset, **SMALL.get(spec.name, {})}.items():
        if not key.startswith("item_item"):
            assert base.hyperparameters()[key] == value, key


def test_seeded_reset_parameters(spec: ModelSpec) -> None:
    inputs, _ = _inputs()
    model = spec.build(inputs, SMALL.get(spec.name))
    torch.manual_seed(11)
    model.reset_parameters()
    first = _state(model)
    torch.manual_seed(99)
    model.reset_parameters()
    other = _state(model)
    torch.manual_seed(11)
    model.reset_parameters()
    again = _state(model)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    if any(p.requires_grad for p in model.parameters()):
        assert any(not torch.equal(first[k], other[k]) for k in first)


def test_trained_saved_and_loaded_scores_identically(spec: ModelSpec, tmp_path: Path) -> None:
    inputs, valid = _inputs()
    model = spec.build(inputs, SMALL.get(spec.name))
    cfg = dataclasses.replace(spec.config(), epochs=2, batch_size=4, seed=3, threads=1)
    result = fit(model, inputs.train, valid, cfg, item_scene=inputs.item_scene)
    report = tune_item_item(model, inputs.train, valid, inputs.item_scene, regs=(1.0,), exponents=((0.5, 0.5),))
    if isinstance(model, ItemItemFusion):
        assert model.channel.nnz > 0 and set(report.scenes) == {0, 1}
        model.fusion.fill_(1.5)  # surely on, so that the channel's part is compared too
    else:
        assert report.scenes == {}
    save_artifact(tmp_path / "a", spec.name, model, cfg, result, _idmap())
    state, meta = load_artifact(tmp_path / "a")
    loaded = load_model(meta, state, inputs)
    assert type(loaded) is type(model)
    users = torch.arange(12)
    with torch.no_grad():
        assert torch.equal(loaded.score(users), model.score(users))
        emb, loaded_emb = model(), loaded()
        want = model.score_histories(HISTORIES, *emb)
        got = loaded.score_histories(HISTORIES, *loaded_emb)
    assert got.shape == (len(HISTORIES), 10) and torch.isfinite(got).all()
    assert torch.equal(got, want)


def test_scores_of_some_items_are_the_columns_of_score(spec: ModelSpec) -> None:
    """``score_items`` (the serving path: one scene's items, their rows kept) against the columns of ``score``, on
    every registered model trained a little (the item-item channel surely on), wrapped to serve a new user and a
    new item, and through :meth:`TrainedModel.scene_scores`."""
    inputs, valid = _inputs()
    model = spec.build(inputs, SMALL.get(spec.name))
    cfg = dataclasses.replace(spec.config(), epochs=2, batch_size=4, seed=3, threads=1)
    fit(model, inputs.train, valid, cfg, item_scene=inputs.item_scene)
    tune_item_item(model, inputs.train, valid, inputs.item_scene, regs=(1.0,), exponents=((0.5, 0.5),))
    if isinstance(model, ItemItemFusion):
        model.fusion.copy_(torch.tensor([1.5, 0.75]))
    model.eval()
    users = torch.tensor([0, 3, 3, 11, 7])
    with torch.no_grad():
        emb = model()
        full = model.score(users, *emb)
        extended = ExtendedRecommender(model, emb[1][:2] * 0.5, [torch.tensor([0, 4, 10]), torch.tensor([11])])
        ext_emb = extended()
        ext_users = torch.tensor([12, 2, 13])
        ext_full = extended.score(ext_users, *ext_emb)
        for items in (torch.tensor([1, 2, 5, 8]), torch.arange(10), torch.tensor([7])):
            for rows in (None, emb[1][items].contiguous()):
                got = model.score_items(users, items, *emb, items_emb=rows)
                assert got.shape == (5, len(items))
                torch.testing.assert_close(got, full[:, items], rtol=1e-5, atol=1e-6)
            ext_items = torch.cat([items, torch.tensor([10, 11])])
            got = extended.score_items(ext_users, ext_items, *ext_emb, items_emb=ext_emb[1][ext_items])
            torch.testing.assert_close(got, ext_full[:, ext_items], rtol=1e-5, atol=1e-6)
    trained = TrainedModel.of(spec.name, model, {"train": inputs.train}, inputs.item_scene)
    for scene in (0, 1):
        items = trained.scene_items(scene)
        got = trained.scene_scores(users.numpy(), scene)
        assert got.dtype == np.float32 and got.flags.writeable
        np.testing.assert_allclose(got, trained.scores(users).numpy()[:, items], rtol=1e-5, atol=1e-6)
        got[:] = -1.0  # the caller's own array: the next call is not changed by it
        np.testing.assert_allclose(
            trained.scene_scores(users.numpy(), scene), trained.scores(users).numpy()[:, items], rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("name", ["scenegnn", "crossscene"])
def test_artifacts_saved_with_the_channel_inside_scenegnn_still_load(name: str) -> None:
    """Saved by the code before the channel moved out (``legacy_artifact/make.py``): the same scores now."""
    inputs, _ = _inputs()
    state, meta = load_artifact(LEGACY / name)
    assert "item_item_nnz" in meta["hyperparameters"]  # the old form
    model = load_model(meta, state, inputs)
    assert isinstance(model, ItemItemFusion) and model.channel.nnz == meta["hyperparameters"]["item_item_nnz"]
    with torch.no_grad():
        scores = model.score(torch.arange(12)).numpy()
        history = model.score_histories(HISTORIES[:2], *model()).numpy()
    assert np.allclose(scores, np.load(LEGACY / name / "scores.npy"), atol=1e-6)
    assert np.allclose(history, np.load(LEGACY / name / "history_scores.npy"), atol=1e-6)


def test_fusion_adds_the_weighted_channel_and_nothing_while_off() -> None:
    inputs, _ = _inputs()
    torch.manual_seed(0)
    fused = MODELS["scenegnn"].build(inputs, {"dim": 8})
    assert isinstance(fused, ItemItemFusion)
    users = torch.arange(12)
    with torch.no_grad():
        base = fused.base.score(users)
        assert torch.equal(fused.score(users), base)  # fusion weights 0 until tuned
        fused.channel.fit(inputs.train, inputs.item_scene, 1.0)
        fused.fusion.copy_(torch.tensor([2.0, 0.5]))
        x = torch.zeros(12, 10)
        x[torch.from_numpy(inputs.train.rows()), torch.from_numpy(inputs.train.indices)] = 1.0
        dense = torch.zeros(10, 10)
        dense[fused.channel.rows, fused.channel.cols] = fused.channel.vals
        weight = torch.tensor([2.0] * 5 + [0.5] * 5)
        assert torch.allclose(fused.score(users), base + (x @ dense) * weight, atol=1e-6)
        fused.reset_parameters()
        assert float(fused.fusion.abs().sum()) == 0.0
    # training sees the wrapped model alone: the same trained weights as the bare model under the same seed
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-2, loss="softmax", weight_decay=0.0, seed=5, threads=1)
    bare = MODELS["scenegnn"].build(inputs, {"dim": 8, "item_item": False})
    fit(fused, inputs.train, inputs.train, cfg, item_scene=inputs.item_scene)
    fit(bare, inputs.train, inputs.train, cfg, item_scene=inputs.item_scene)
    assert all(torch.equal(v, fused.base.state_dict()[k]) for k, v in bare.state_dict().items())


def test_registry_lists_names_checks_options_and_keeps_presets() -> None:
    assert MODELS.names() == ["scenegnn", "crossscene", "lightgcn", "bpr", "pop"]
    with pytest.raises(ConfigError, match=r"unknown model 'gat'; choose one of: scenegnn, crossscene, lightgcn"):
        MODELS["gat"]
    with pytest.raises(ConfigError, match=r"model 'bpr' takes no options \(got dim\)"):
        MODELS["bpr"].check_options({"dim": 8})
    with pytest.raises(ConfigError, match=r"has no option 'depth'; its options: .*dim"):
        MODELS["scenegnn"].check_options({"depth": 2})
    with pytest.raises(ConfigError, match=r"model option view_dropout=1.5: expected a number in \[0, 1\)"):
        MODELS["crossscene"].check_options({"view_dropout": 1.5})
    with pytest.raises(ConfigError, match="dim=true: expected an integer >= 1"):
        MODELS["scenegnn"].check_options({"dim": True})
    with pytest.raises(TypeError):
        MODELS["crossscene"].preset["gate"] = False  # type: ignore[index]
    registry = Registry([MODELS["pop"]])
    with pytest.raises(ConfigError, match="registered already"):
        registry.register(MODELS["pop"])
    classes = MODELS.classes()
    assert {"SceneGNN", "CrossSceneGNN", "ItemItemFusion", "LightGCN", "BPRMF", "MostPopular"} <= set(classes)


def test_item_item_option_turns_the_channel_off_and_picks_its_kind() -> None:
    inputs, _ = _inputs()
    assert not isinstance(MODELS["scenegnn"].build(inputs, {"dim": 8, "item_item": False}), ItemItemFusion)
    knn = MODELS["scenegnn"].build(inputs, {"dim": 8, "item_item_kind": "knn"})
    assert isinstance(knn, ItemItemFusion) and knn.kind == "knn"
    cross = MODELS["crossscene"].build(inputs, {"dim": 8})
    assert isinstance(cross, ItemItemFusion) and cross.kind == "knn"  # the preset's


def test_inputs_built_from_the_store_equal_the_heterodata_route(sample_store: Path) -> None:
    """``build_inputs`` skips the ``HeteroData`` detour and gives the same tensors as ``GraphInputs.from_hetero``."""
    from scenerec.kg import load_features, load_idmap, open_store

    idmap, features = load_idmap(sample_store), load_features(sample_store)
    with open_store(sample_store, read_only=True) as store:
        index = store.edge_index(IdMap.from_dict(idmap.to_dict()))
    train = CSR.from_pairs(np.array([0, 1]), np.array([2, 3]), (idmap.size("user"), idmap.size("item")))
    direct = build_inputs(index, train, features)
    detour = GraphInputs.from_hetero(build_hetero(index, features), train)
    assert direct.kg is not None and detour.kg is not None and direct.kg.item.numel() > 0
    for field in ("item", "entity", "relation"):
        assert torch.equal(getattr(direct.kg, field), getattr(detour.kg, field)), field
    assert (direct.kg.num_entities, direct.kg.num_relations) == (detour.kg.num_entities, detour.kg.num_relations)
    assert direct.item_text is not None and detour.item_text is not None
    assert torch.equal(direct.item_text, detour.item_text)
    assert np.array_equal(direct.item_scene, detour.item_scene) and direct.num_scenes == detour.num_scenes
    links = (np.array([[0], [1]]), np.array([0.5], dtype=np.float32))
    linked = build_inputs(index, train, features, item_links=links)
    assert linked.item_links is not None and linked.item_links[0].tolist() == [[0], [1]]
    with pytest.raises(ValueError, match="train has shape"):
        build_inputs(index, CSR.from_pairs(np.array([0]), np.array([0]), (1, 1)), features)
