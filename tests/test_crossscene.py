"""The cross-scene recommender :class:`scenerec.transfer.CrossSceneGNN`: scene views, the per-scene gate, view
dropout, item links in propagation, new users from a source scene only, and artifacts."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scenerec.cli import main
from scenerec.engine import MODEL_DIR, Engine
from scenerec.errors import ConfigError, UnknownIdError
from scenerec.gnn import CSR, GraphInputs, SceneGNN, TrainConfig, build_model, fit, load_artifact, save_artifact
from scenerec.gnn.propagation import normalized_adjacency
from scenerec.ids import IdMap
from scenerec.kg import current_generation
from scenerec.transfer import CrossSceneGNN, scene_views

# 4 users x 6 items in two scenes (items 0-2 scene 0, items 3-5 scene 1); user 3 has scene 1 only.
PAIRS = [(0, 0), (0, 1), (0, 3), (1, 1), (1, 2), (1, 4), (2, 0), (2, 2), (2, 5), (3, 3), (3, 4)]
SCENE = np.array([0, 0, 0, 1, 1, 1])


def _inputs(links: bool = False) -> GraphInputs:
    train = CSR.from_pairs(np.array([p[0] for p in PAIRS]), np.array([p[1] for p in PAIRS]), (4, 6))
    text = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    item_links = (torch.tensor([[0], [3]]), torch.tensor([0.9])) if links else None
    return GraphInputs(train=train, item_scene=SCENE, num_scenes=2, item_text=text, item_links=item_links)


def test_scene_views_average_each_users_items_per_scene() -> None:
    inputs = _inputs()
    view, view_t = scene_views(inputs.train, SCENE, 2)
    dense = view.to_dense()
    assert dense.shape == (8, 6)
    # user 0: scene 0 items {0, 1}, scene 1 item {3}; user 3: no scene-0 item (an empty row)
    assert torch.allclose(dense[0], torch.tensor([0.5, 0.5, 0, 0, 0, 0]))
    assert torch.allclose(dense[4 + 0], torch.tensor([0, 0, 0, 1.0, 0, 0]))
    assert dense[3].sum() == 0 and torch.allclose(dense[4 + 3], torch.tensor([0, 0, 0, 0.5, 0.5, 0]))
    assert torch.equal(view_t.to_dense(), dense.t())


def test_zero_gate_scores_like_scenegnn_and_gate_formula_by_hand() -> None:
    torch.manual_seed(0)
    base = SceneGNN(_inputs(), dim=4)
    model = CrossSceneGNN(_inputs(), dim=4)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["gate_weight"] and not unexpected
    model.eval()
    users, items = model()
    assert users.shape == (4, 8) and items.shape == (6, 8)
    b_users, b_items = base()
    assert torch.allclose(users @ items.t(), b_users @ b_items.t(), atol=1e-5)  # the gate starts at zero

    with torch.no_grad():
        model.gate_weight.normal_(std=0.3)
    users, items = model()
    shared, adapted = model.propagated()
    views = torch.stack(
        [torch.stack([adapted[[i for u, i in PAIRS if u == user and SCENE[i] == s]].mean(0)
                      if any(u == user and SCENE[i] == s for u, i in PAIRS) else torch.zeros(4)
                      for user in range(4)]) for s in range(2)]
    )  # fmt: skip
    w = model.gate_weight
    for t in range(2):
        u_t = F.normalize(shared, dim=-1) + views[0] @ w[t, 0].t() + views[1] @ w[t, 1].t()
        expected = F.normalize(u_t, dim=-1) @ F.normalize(adapted[t == SCENE], dim=-1).t() / model.temperature
        assert torch.allclose((users @ items.t())[:, t == SCENE], expected, atol=1e-5)
    # an item scores only against its own scene's block
    assert torch.all(items[:3, 4:] == 0) and torch.all(items[3:, :4] == 0)


def test_view_dropout_hides_only_the_own_view_and_only_in_training() -> None:
    torch.manual_seed(0)
    model = CrossSceneGNN(_inputs(), dim=4, view_dropout=0.5)
    with torch.no_grad():
        model.gate_weight.normal_(std=0.3)
    shared, _ = model.propagated()
    views = torch.randn(2, 4, 4)
    keep = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]]).unsqueeze(2)
    out = model.gated_users(shared, views, keep)
    w = model.gate_weight
    for t in range(2):
        other = 1 - t
        expected = shared + keep[t] * (views[t] @ w[t, t].t()) + views[other] @ w[t, other].t()
        assert torch.allclose(out[t], expected, atol=1e-5)
    model.eval()
    first, _ = model()
    second, _ = model()
    assert torch.equal(first, second)  # no dropout at evaluation
    with pytest.raises(ValueError, match="view_dropout"):
        CrossSceneGNN(_inputs(), view_dropout=1.0)


def test_item_links_join_the_propagation_graph() -> None:
    plain = _inputs().adjacency().to_dense()
    linked = _inputs(links=True).adjacency().to_dense()
    assert plain[4 + 0, 4 + 3] == 0 and linked[4 + 0, 4 + 3] > 0
    assert torch.allclose(linked, linked.t())
    edge_index = torch.tensor([[0], [0]])
    with pytest.raises(ValueError, match="item link"):
        normalized_adjacency(edge_index, 1, 2, item_edges=torch.tensor([[0], [2]]))
    with pytest.raises(ValueError, match="non-negative"):
        normalized_adjacency(
            edge_index, 1, 2, item_edges=torch.tensor([[0], [1]]), item_edge_weight=torch.tensor([-1.0])
        )


def test_new_user_with_source_history_only_gets_target_scores() -> None:
    torch.manual_seed(0)
    model = CrossSceneGNN(_inputs(), dim=4)
    with torch.no_grad():
        model.gate_weight.normal_(std=0.3)
    model.eval()
    users, items = model()
    with torch.no_grad():
        scores = model.score_histories([torch.tensor([0, 1]), torch.tensor([], dtype=torch.long)], users, items)
        _, adapted = model.propagated()
    unit = F.normalize(adapted, dim=-1)
    shared = F.normalize(unit[[0, 1]].mean(0), dim=-1)
    view0 = adapted[[0, 1]].mean(0)
    w = model.gate_weight
    u_target = shared + w[1, 0] @ view0  # scene 1 from the scene-0 history alone
    expected = F.normalize(u_target, dim=-1) @ unit[3:].t() / model.temperature
    assert torch.allclose(scores[0, 3:], expected, atol=1e-5)
    assert torch.all(scores[1] == 0)  # an empty history scores nothing


def test_training_learns_the_gate_and_the_artifact_round_trips(tmp_path: Path) -> None:
    inputs = _inputs(links=True)
    model = CrossSceneGNN(inputs, dim=4, view_dropout=0.25)
    valid = CSR.from_pairs(np.array([3]), np.array([5]), (4, 6))
    cfg = TrainConfig(epochs=5, batch_size=4, lr=0.05, weight_decay=0.0, patience=5, seed=0, loss="softmax")
    result = fit(model, inputs.train, valid, cfg, item_scene=SCENE, candidate_items=np.array([3, 4, 5]))
    assert result.best_epoch >= 1 and bool(model.gate_weight.abs().sum() > 0)
    ids = IdMap()
    ids.add("user", [f"u{i}" for i in range(4)])
    ids.add("item", [f"i{i}" for i in range(6)])
    folder = save_artifact(tmp_path / "a", "crossscene", model, cfg, result, ids)
    state, meta = load_artifact(folder)
    assert meta["hyperparameters"]["class"] == "CrossSceneGNN" and meta["hyperparameters"]["view_dropout"] == 0.25
    again = build_model(meta, state, inputs=dataclasses.replace(inputs), classes={"CrossSceneGNN": CrossSceneGNN})
    assert isinstance(again, CrossSceneGNN)
    a_users, a_items = model()
    b_users, b_items = again()
    assert torch.allclose(a_users @ a_items.t(), b_users @ b_items.t(), atol=1e-6)


@pytest.mark.parametrize("cls", [SceneGNN, CrossSceneGNN])
def test_a_new_item_from_text_gets_the_vector_of_an_isolated_item(cls: type[SceneGNN]) -> None:
    torch.manual_seed(0)
    base = _inputs()
    new_text = torch.randn(1, 8, generator=torch.Generator().manual_seed(5))
    grown = GraphInputs(  # the same graph plus item 6 (scene 1) with text and no interaction
        train=CSR.from_pairs(base.train.rows(), base.train.indices, (4, 7)),
        item_scene=np.append(SCENE, 1),
        num_scenes=2,
        item_text=torch.cat([base.item_text, new_text]),
    )
    trained = cls(base, dim=4)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))  # FiLM, gate: away from their identity / zero start
    grown_model = cls(grown, dim=4)
    grown_model.load_state_dict(trained.state_dict())
    trained.eval(), grown_model.eval()
    users, items = grown_model()
    new = trained.encode_new_items(new_text, torch.tensor([1]))
    assert torch.allclose(new[0], items[6], atol=1e-5)
    assert torch.allclose(trained()[0] @ new.t(), users @ items[6:].t(), atol=1e-5)


def test_engine_trains_the_transfer_model_and_its_ablations(sample_store: Path, tmp_path: Path, encoder: Any) -> None:
    store = tmp_path / "store"
    shutil.copytree(sample_store, store, ignore=shutil.ignore_patterns("cache"))
    with Engine.open(store, read_only=False, encoder=encoder) as engine:
        with pytest.raises(ConfigError, match="scenerec align"):
            engine.fit("crossscene", epochs=1, alignment=True)
        office = engine.idmap.index("scene", "office")
        engine.fit("scenegnn", epochs=2, seed=1, scenes=["office"])  # the target-only ablation
        train = engine.model.splits["train"]
        assert train.nnz > 0 and bool(np.all(engine.model.item_scene[train.indices] == office))
        with pytest.raises(UnknownIdError):
            engine.fit("scenegnn", epochs=1, scenes=["video"])
        with pytest.raises(ConfigError, match="has no option 'gates'"):
            engine.fit("crossscene", epochs=1, options={"gates": False})
        with pytest.raises(ConfigError, match="takes no options"):
            engine.fit("pop", options={"dim": 8})
        aligned = engine.align("arts", "office", seed_fraction=0.0, write=True)
        assert aligned["written"] > 0
        result = engine.fit("crossscene", epochs=4, seed=1)
        assert result.best_epoch >= 1
        user = engine.idmap.ids("user")[0]
        recs = engine.recommend(user, "office", k=5)
        similar = engine.similar_items(recs["item_id"][0], k=3)
        # a user known only from arts items gets office recommendations (no retraining)
        arts_items = [i for i, s in zip(engine.items()["item_id"], engine.items()["scene"], strict=True) if s == "arts"]
        cold = engine.recommend_for_items(arts_items[:3], scene="office", k=5)
        # a new item (text only) gets users, and its rank in their list agrees with their recommendations
        audience = engine.new_item_audience(
            "blue gel ink pens, fine point, pack of 12", "office", attributes={"brand": "pilot"}, k=4
        )
        top_user, score, rank = audience.iloc[0][["user_id", "score", "rank"]]
        listed = engine.recommend(str(top_user), "office", k=int(rank))
        with pytest.raises(ValueError, match="title"):
            engine.new_item_audience(" ", "office")
    assert len(audience) == 4 and audience["score"].is_monotonic_decreasing and audience["rank"].min() >= 1
    assert bool((listed["score"].iloc[: int(rank) - 1] >= score).all()) and listed["score"].iloc[-1] <= score
    assert len(recs) == 5 and len(similar) == 3 and len(cold) == 5 and set(cold["scene"]) == {"office"}
    with Engine.open(store) as fresh:  # reloads the artifact with the same SAME_AS links
        again = fresh.recommend(user, "office", k=5)
    assert list(again["item_id"]) == list(recs["item_id"])
    assert np.allclose(again["score"], recs["score"], atol=1e-5)


def test_item_bias_adds_to_the_scores_and_new_items_get_the_unchosen_mean() -> None:
    torch.manual_seed(0)
    plain = CrossSceneGNN(_inputs(), dim=4)
    biased = CrossSceneGNN(_inputs(), dim=4, item_bias=True)
    biased.load_state_dict({**plain.state_dict(), "bias": torch.arange(6, dtype=torch.float32)})
    plain.eval(), biased.eval()
    u0, i0 = plain()
    u1, i1 = biased()
    assert torch.allclose(u1 @ i1.t(), u0 @ i0.t() + torch.arange(6.0), atol=1e-5)
    # every item of the toy graph has an interaction: a new item gets its scene's lowest bias (3 for scene 1)
    new = biased.encode_new_items(torch.randn(2, 8), torch.tensor([1, 0]))
    assert new[:, -1].tolist() == [3.0, 0.0]
    assert biased.new_item_bias(1) == 3.0


def test_cli_fit_options_and_ablation_flags(
    sample_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    shutil.copytree(sample_store, store, ignore=shutil.ignore_patterns("cache"))
    rc = main(["fit", "--store", str(store), "--model", "crossscene", "--option", "gate", "--no-write-back"])
    assert rc != 0 and "expected KEY=VALUE" in capsys.readouterr().err
    rc = main(["fit", "--store", str(store), "--model", "crossscene", "--alignment", "--no-write-back"])
    assert rc != 0 and "scenerec align" in capsys.readouterr().err
    argv = ["fit", "--store", str(store), "--model", "crossscene", "--scenes", "office", "--epochs", "2"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the progress bars show on a terminal only
    rc = main([*argv, "--option", "gate=false", "--option", "dim=16", "--seed", "3", "--no-write-back"])
    out = capsys.readouterr()
    assert rc == 0 and "fitted crossscene" in out.out
    # two training epochs, then the item-item channel's six kNN fits (KNN_EXPONENTS)
    assert "training: 100%" in out.err and "2/2" in out.err and "valid_ndcg@10=" in out.err
    assert "item-item channel: 100%" in out.err and "6/6" in out.err
    _, meta = load_artifact(current_generation(store) / MODEL_DIR)
    hp = meta["hyperparameters"]  # the model inside the item-item channel's wrapper
    assert hp["class"] == "ItemItemFusion" and hp["kind"] == "knn" and hp["nnz"] > 0
    assert hp["base"]["class"] == "CrossSceneGNN" and hp["base"]["dim"] == 16 and hp["base"]["gate"] is False
    assert meta["extra"]["scenes"] == ["office"] and meta["extra"]["alignment"] == 0


def test_csr_keep_columns_keeps_the_marked_items_and_the_shape() -> None:
    train = _inputs().train
    office = train.keep_columns(SCENE == 1)
    assert office.shape == train.shape
    assert sorted(zip(office.rows().tolist(), office.indices.tolist(), strict=True)) == [
        (u, i) for u, i in sorted(PAIRS) if SCENE[i] == 1
    ]


def test_cold_dropout_scores_newcomers_with_the_prototype_and_the_other_scenes() -> None:
    torch.manual_seed(0)
    model = CrossSceneGNN(_inputs(), dim=4, cold_dropout=0.3)
    with torch.no_grad():
        model.gate_weight.normal_(std=0.3)
    model.eval()
    users, items = model()
    with torch.no_grad():
        shared, adapted = model.propagated()
        scores = users @ items.t()
        hist = model.score_histories([torch.tensor([0, 1])], users, items)
    unit = F.normalize(adapted, dim=-1)
    w, p = model.gate_weight, model.cold_proto
    # user 3 has no scene-0 item: a newcomer to scene 0, p_0 + W[0<-1] k_1 (no shared vector)
    view1 = adapted[[3, 4]].mean(0)
    expected = F.normalize(p[0] + w[0, 1] @ view1, dim=-1) @ unit[:3].t() / model.temperature
    assert torch.allclose(scores[3, :3], expected, atol=1e-5)
    # user 0 has both scenes: the gated form, as without cold_dropout
    view0, view1 = adapted[[0, 1]].mean(0), adapted[[3]].mean(0)
    gated = F.normalize(shared[0], dim=-1) + w[1, 0] @ view0 + w[1, 1] @ view1
    assert torch.allclose(scores[0, 3:], F.normalize(gated, dim=-1) @ unit[3:].t() / model.temperature, atol=1e-5)
    # a new user with a scene-0 history only is a newcomer to scene 1
    newcomer = F.normalize(p[1] + w[1, 0] @ adapted[[0, 1]].mean(0), dim=-1) @ unit[3:].t() / model.temperature
    assert torch.allclose(hist[0, 3:], newcomer, atol=1e-5)
    # training draws newcomers at random: the forward pass changes between calls; evaluation does not
    model.train()
    a, b = (model()[0] for _ in range(2))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="cold_dropout"):
        CrossSceneGNN(_inputs(), dim=4, cold_dropout=1.0)
    with pytest.raises(ValueError, match="needs the gate"):
        CrossSceneGNN(_inputs(), dim=4, gate=False, cold_dropout=0.5)
