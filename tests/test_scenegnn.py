"""The main model :class:`scenerec.gnn.SceneGNN`, its in-scene softmax training and the item-item channel."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from scenerec.engine import Engine
from scenerec.gnn import (
    CSR,
    GraphInputs,
    ItemItem,
    ItemItemFusion,
    KGEdges,
    SceneGNN,
    TrainConfig,
    build_model,
    fit,
    load_artifact,
    save_artifact,
    tune_item_item,
)
from scenerec.gnn.train import hyperparameters
from scenerec.ids import IdMap

# 4 users x 6 items in two scenes (items 0-2 scene 0, items 3-5 scene 1).
PAIRS = [(0, 0), (0, 1), (0, 3), (1, 1), (1, 2), (1, 4), (2, 0), (2, 2), (2, 5), (3, 3), (3, 4), (3, 0)]
SCENE = np.array([0, 0, 0, 1, 1, 1])


def _inputs(text: bool = True, kg: bool = True, missing_text: tuple[int, ...] = ()) -> GraphInputs:
    train = CSR.from_pairs(np.array([p[0] for p in PAIRS]), np.array([p[1] for p in PAIRS]), (4, 6))
    gen = torch.Generator().manual_seed(0)
    item_text = torch.randn(6, 8, generator=gen) if text else None
    if item_text is not None:
        for i in missing_text:
            item_text[i] = 0.0
    facts = None
    if kg:
        # entity 0 is shared by items 0 and 3 (across scenes), entity 1 belongs to item 5 only.
        facts = KGEdges(
            item=torch.tensor([0, 3, 5]),
            entity=torch.tensor([0, 0, 1]),
            relation=torch.tensor([0, 1, 0]),
            num_entities=2,
            num_relations=2,
        )
    return GraphInputs(train=train, item_scene=SCENE, num_scenes=2, item_text=item_text, kg=facts)


def test_forward_gives_unit_users_and_tempered_items() -> None:
    torch.manual_seed(0)
    model = SceneGNN(_inputs(), dim=4, temperature=0.25, use_kg=True)
    users, items = model()
    assert users.shape == (4, 4) and items.shape == (6, 4)
    assert torch.allclose(users.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(items.norm(dim=1), torch.full((6,), 4.0), atol=1e-4)
    scores = model.score(torch.tensor([1]), users, items)
    assert torch.allclose(scores, users[1:2] @ items.t())  # the item-item channel is off until tuned


def test_item_ids_only_where_text_is_missing() -> None:
    torch.manual_seed(0)
    model = SceneGNN(_inputs(kg=False, missing_text=(2,)), dim=4, item_ids="missing")
    assert model.item_embedding is not None
    users, items = model()
    (users.sum() + items.sum()).backward()
    grad = model.item_embedding.weight.grad
    assert grad is not None
    # only item 2 (no text) uses its id vector
    assert grad[2].abs().sum() > 0 and grad[[0, 1, 3, 4, 5]].abs().sum() == 0
    assert SceneGNN(_inputs(kg=False), item_ids="missing").item_embedding is None
    with pytest.raises(ValueError, match="item_ids"):
        SceneGNN(_inputs(), item_ids="some")
    with pytest.raises(ValueError, match="at least one item input"):
        SceneGNN(_inputs(text=False, kg=False), item_ids="none")


def test_kg_keeps_entities_shared_by_items_and_film_is_per_scene() -> None:
    torch.manual_seed(0)
    model = SceneGNN(_inputs(), dim=4, use_kg=True, kg_min_items=2)
    assert model.use_kg and model.kg_entity.tolist() == [0, 0]  # entity 1 (one item) dropped
    assert not SceneGNN(_inputs(), use_kg=True, kg_min_items=3).use_kg  # nothing left: switched off
    before = model()[1].detach().clone()
    assert model.scene_gamma is not None
    with torch.no_grad():
        model.scene_gamma[1] *= 3.0
        model.scene_gamma[1, 0] = -1.0
    after = model()[1].detach()
    assert torch.allclose(before[:3], after[:3])  # scene 0 untouched
    assert not torch.allclose(before[3:], after[3:])


def test_softmax_loss_matches_hand_computation() -> None:
    torch.manual_seed(0)
    inputs = _inputs(kg=False)
    model = SceneGNN(inputs, dim=4)
    with torch.no_grad():
        users, items = model()
        scores = users @ items.t()
    expected, n = 0.0, 0
    for u, i in PAIRS:
        in_scene = np.flatnonzero(SCENE[i] == SCENE)
        expected -= float(scores[u, i] - torch.logsumexp(scores[u, in_scene], 0))
        n += 1
    cfg = TrainConfig(epochs=1, lr=0.0, batch_size=3, loss="softmax", weight_decay=0.0, seed=0, reset_parameters=False)
    result = fit(model, inputs.train, inputs.train, cfg, item_scene=SCENE)
    assert result.history[0]["loss"] == pytest.approx(expected / n, rel=1e-5)


def test_ease_weights_equal_per_column_constrained_least_squares() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((30, 5)) < 0.4).astype(float)
    reg = 3.0
    b = ItemItem.ease(x, reg)
    for j in range(5):
        others = [k for k in range(5) if k != j]
        xo = x[:, others]
        w = np.linalg.solve(xo.T @ xo + reg * np.eye(4), xo.T @ x[:, j])
        assert np.allclose(b[others, j], w, atol=1e-8)
        assert b[j, j] == 0.0


def test_item_item_channel_stays_within_a_scene_and_prunes() -> None:
    inputs = _inputs()
    channel = ItemItem(6)
    channel.fit(inputs.train, SCENE, 1.0, top_k=2)
    rows, cols = channel.rows.numpy(), channel.cols.numpy()
    assert (SCENE[rows] == SCENE[cols]).all() and (rows != cols).all()
    assert np.bincount(cols, minlength=6).max() <= 2
    x = torch.zeros(1, 6)
    x[0, [0, 3]] = 1.0
    dense = torch.zeros(6, 6)
    dense[channel.rows, channel.cols] = channel.vals
    assert torch.allclose(channel.scores(x), x @ dense)
    # the sparse form, from the rows' ones: the same scores without a dense input (a repeated one counts once)
    sparse = channel.rows_scores(np.array([0, 0, 0, 1]), np.array([0, 3, 3, 5]), 2)
    y = torch.zeros(2, 6)
    y[0, [0, 3]] = 1.0
    y[1, 5] = 1.0
    assert sparse.shape == (2, 6) and sparse.dtype == torch.float32
    assert torch.allclose(sparse, y @ dense)
    # scenes over max_items get the within-scene item-kNN cosine instead of EASE (no dense inverse, O(nnz) memory)
    channel.fit(inputs.train, SCENE, 1.0, max_items=2)
    assert channel.knn_scenes == [0, 1] and channel.skipped_scenes == []
    x = np.zeros(inputs.train.shape)
    x[inputs.train.rows(), inputs.train.indices] = 1.0
    cos = (x.T @ x) / np.sqrt(np.outer(x.sum(0), x.sum(0)))
    np.fill_diagonal(cos, 0.0)
    cos[SCENE[:, None] != SCENE[None, :]] = 0.0
    dense = np.zeros((6, 6))
    dense[channel.rows.numpy(), channel.cols.numpy()] = channel.vals.numpy()
    for j in range(6):  # each target column scaled by its largest weight, as fit_knn does per scene
        scene_max = cos[:, SCENE[j] == SCENE].max()
        assert np.allclose(dense[:, j], cos[:, j] / scene_max, atol=1e-6)


def test_item_knn_weights_by_hand_cosine_and_asymmetric_across_scenes() -> None:
    inputs = _inputs()
    channel = ItemItem(6)
    channel.fit_knn(inputs.train, SCENE, top_k=2)
    users = inputs.train.rows()
    x = np.zeros(inputs.train.shape)
    x[users, inputs.train.indices] = 1.0
    count = np.maximum(x.sum(0), 1)
    co = x.T @ x
    np.fill_diagonal(co, 0.0)

    # the cosine (alpha = beta = 0.5, the default), and an asymmetric form with per-scene exponents
    for alpha, beta in (((0.5, 0.5), (0.5, 0.5)), ((0.5, 0.0), (1.0, 0.25))):
        if alpha != (0.5, 0.5):
            channel.fit_knn(inputs.train, SCENE, top_k=2, alpha=alpha, beta=beta)
        a, b = np.array(alpha)[SCENE], np.array(beta)[SCENE]  # by the target item's scene
        weight = co / (count[:, None] ** a[None, :] * (count**b)[None, :])
        expect = np.zeros((6, 6))
        for j in range(6):  # the two largest weights into j are kept (ties to the lower item)
            best = sorted(np.flatnonzero(weight[:, j] > 0), key=lambda i: (-weight[i, j], i))[:2]
            expect[best, j] = weight[best, j]
        for sc in (0, 1):  # then scaled by the largest kept weight into the scene
            in_scene = np.equal(SCENE, sc)
            expect[:, in_scene] /= expect[:, in_scene].max()
        dense = np.zeros((6, 6))
        dense[channel.rows.numpy(), channel.cols.numpy()] = channel.vals.numpy()
        assert np.allclose(dense, expect, atol=1e-6)
        rows, cols = channel.rows.numpy(), channel.cols.numpy()
        assert (SCENE[rows] != SCENE[cols]).any()  # unlike EASE, a weight may cross scenes
    model = ItemItemFusion(SceneGNN(inputs, dim=4), inputs, kind="knn")
    valid = CSR.from_pairs(np.array([0, 1, 2]), np.array([5, 3, 4]), (4, 6))
    report = tune_item_item(model, inputs.train, valid, SCENE, knn_top_k=2, exponents=((0.5, 0.5),))
    assert set(report.scenes) <= {0, 1} and all(r["reg"] == 0.0 for r in report.scenes.values())
    assert all((r["alpha"], r["beta"]) == (0.5, 0.5) for r in report.scenes.values())
    channel.fit_knn(inputs.train, SCENE, top_k=2)
    assert torch.equal(model.channel.rows, channel.rows)  # the kNN weights, not EASE's
    assert hyperparameters(model)["kind"] == "knn"
    with pytest.raises(ValueError, match="item-item kind"):
        ItemItemFusion(SceneGNN(inputs, dim=4), inputs, kind="svd")


def test_scenegnn_no_longer_holds_the_channel() -> None:
    """The channel's former constructor arguments are deprecated: a warning, and no channel in the model."""
    inputs = _inputs()
    with pytest.warns(DeprecationWarning, match="ItemItemFusion"):
        model = SceneGNN(inputs, dim=4, item_item_kind="knn")
    assert not any("item_item" in key or key == "fusion" for key in model.state_dict())
    assert "item_item_kind" not in hyperparameters(model)


@pytest.fixture(scope="module")
def ml_inputs(ml100k_split: Path) -> tuple[GraphInputs, dict[str, CSR]]:
    """A real slice: the 150 most active users of MovieLens-100K (RecBole split) with random 'text' features."""
    import pandas as pd

    folder = ml100k_split
    frames = {s: pd.read_csv(folder / f"{s}.tsv", sep="\t", dtype=str) for s in ("train", "valid", "test")}
    top = frames["train"]["user_id"].value_counts().index[:150]
    frames = {s: f[f["user_id"].isin(top)] for s, f in frames.items()}
    all_rows = pd.concat(frames.values())
    idmap = IdMap({"user": sorted(set(all_rows["user_id"])), "item": sorted(set(all_rows["item_id"]))})
    shape = (idmap.size("user"), idmap.size("item"))
    split = {
        s: CSR.from_pairs(idmap.indices("user", f["user_id"]), idmap.indices("item", f["item_id"]), shape)
        for s, f in frames.items()
    }
    gen = torch.Generator().manual_seed(0)
    inputs = GraphInputs(
        train=split["train"],
        item_scene=np.zeros(shape[1], dtype=np.int64),
        num_scenes=1,
        item_text=torch.randn(shape[1], 16, generator=gen),
    )
    return inputs, split


def test_scenegnn_learns_tunes_and_round_trips(ml_inputs: tuple[GraphInputs, dict[str, CSR]], tmp_path: Path) -> None:
    from scenerec.gnn import evaluate_scores

    inputs, split = ml_inputs
    model = ItemItemFusion(SceneGNN(inputs, dim=16, item_ids="all"), inputs)
    cfg = TrainConfig(epochs=15, lr=1e-2, batch_size=64, loss="softmax", weight_decay=0.0, seed=3, threads=1)
    result = fit(model, split["train"], split["valid"], cfg, item_scene=inputs.item_scene)
    first = result.history[0]["valid_ndcg@10"]
    assert result.best_valid["ndcg@10"] > first  # it learns
    report = tune_item_item(model, split["train"], split["valid"], inputs.item_scene, regs=(50.0, 200.0))
    chosen = report.scenes[0]
    assert chosen["reg"] in (50.0, 200.0) and chosen["fused"] >= chosen["base"]  # 0 is a candidate weight
    assert float(model.fusion[0]) == chosen["weight"]
    with torch.no_grad():
        u, i = model()
        fused = evaluate_scores(lambda x: model.score(x, u, i), split["train"], split["valid"], ks=(10,))
    assert fused["ndcg@10"] == pytest.approx(chosen["fused"], abs=1e-9)

    idmap = IdMap(
        {"user": [str(k) for k in range(inputs.num_users)], "item": [str(k) for k in range(inputs.num_items)]}
    )
    save_artifact(tmp_path / "a", "scenegnn", model, cfg, result, idmap)
    state, meta = load_artifact(tmp_path / "a")
    assert meta["hyperparameters"]["nnz"] == model.channel.nnz > 0
    again = build_model(meta, state, inputs=inputs)
    users = torch.arange(20)
    with torch.no_grad():
        assert torch.equal(again.score(users), model.score(users))
    with pytest.raises(ValueError, match="needs inputs"):
        build_model(meta, state)


def test_item_knn_channel_tunes_exponents_and_weight_together(ml_inputs: tuple[GraphInputs, dict[str, CSR]]) -> None:
    from scenerec.gnn import evaluate_scores

    inputs, split = ml_inputs
    model = ItemItemFusion(SceneGNN(inputs, dim=16, item_ids="all"), inputs, kind="knn")
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=64, loss="softmax", weight_decay=0.0, seed=3, threads=1)
    fit(model, split["train"], split["valid"], cfg, item_scene=inputs.item_scene)
    pairs = ((0.5, 0.5), (0.0, 0.0))
    report = tune_item_item(model, split["train"], split["valid"], inputs.item_scene, exponents=pairs)
    chosen = report.scenes[0]
    assert (chosen["alpha"], chosen["beta"]) in pairs and chosen["fused"] >= chosen["base"]
    assert float(model.fusion[0]) == chosen["weight"]
    # the stored weights are the chosen exponents' and the fused value is what the model now scores
    again = ItemItem(inputs.num_items)
    again.fit_knn(split["train"], inputs.item_scene, top_k=1024, alpha=chosen["alpha"], beta=chosen["beta"])
    channel = model.channel
    assert torch.equal(channel.vals, again.vals) and torch.equal(channel.rows, again.rows)
    with torch.no_grad():
        u, i = model()
        fused = evaluate_scores(lambda x: model.score(x, u, i), split["train"], split["valid"], ks=(10,))
    assert fused["ndcg@10"] == pytest.approx(chosen["fused"], abs=1e-9)
    # every (pair, weight) was a candidate: no other choice does better on the validation pairs
    for alpha, beta in pairs:
        model.channel.fit_knn(split["train"], inputs.item_scene, top_k=1024, alpha=alpha, beta=beta)
        for w in (1.0, 8.0):
            model.fusion.fill_(w)
            with torch.no_grad():
                other = evaluate_scores(lambda x: model.score(x, u, i), split["train"], split["valid"], ks=(10,))
            assert other["ndcg@10"] <= chosen["fused"] + 1e-9
    # without the score cache (every weight rescored by the model) the choice and the values are the same
    uncached = tune_item_item(
        model, split["train"], split["valid"], inputs.item_scene, exponents=pairs, cache_bytes=0
    ).scenes[0]
    assert uncached.keys() == chosen.keys()
    for key, value in chosen.items():
        assert uncached[key] == pytest.approx(value, abs=1e-9), key


def test_new_user_from_items_matches_hand_computation(ml_inputs: tuple[GraphInputs, dict[str, CSR]]) -> None:
    inputs, _ = ml_inputs
    torch.manual_seed(0)
    model = ItemItemFusion(SceneGNN(inputs, dim=8), inputs)
    model.channel.fit(inputs.train, inputs.item_scene, 100.0)
    model.fusion.fill_(2.0)
    with torch.no_grad():
        u, i = model()
        history = torch.tensor([3, 10, 42])
        got = model.score_histories([history], u, i)[0]
        unit = i / i.norm(dim=1, keepdim=True)
        user = unit[history].mean(0)
        user = user / user.norm()
        x = torch.zeros(1, inputs.num_items)
        x[0, history] = 1.0
        channel = model.channel
        expected = user @ i.t() + 2.0 * channel.scores(x)[0]
        # known users: the channel's term from their sparse training rows equals the dense product's
        users = torch.tensor([0, 5, 7])
        fused = model.score(users, u, i)
        dense = model.base.score(users, u, i) + 2.0 * channel.scores(model.train_rows(users))
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(fused, dense, atol=1e-5) and not torch.allclose(fused, model.base.score(users, u, i))
    assert math.isfinite(float(got.sum()))


def test_engine_trains_the_main_model(sample_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(sample_store, store, ignore=shutil.ignore_patterns("cache"))
    with Engine.open(store) as engine:
        result = engine.fit("scenegnn", epochs=8, seed=1)
        assert result.best_epoch >= 1
        recs = engine.recommend(engine.idmap.ids("user")[0], "arts", k=5)
        metrics = engine.evaluate("office")
    assert len(recs) == 5 and list(recs["rank"]) == [1, 2, 3, 4, 5]
    assert 0.0 <= metrics["ndcg@10"] <= 1.0 and metrics["users"] > 0
    with Engine.open(store) as fresh:  # reloads the artifact (with the text features and fusion weights)
        again = fresh.recommend(fresh.idmap.ids("user")[0], "arts", k=5)
    assert list(again["item_id"]) == list(recs["item_id"])
    assert np.allclose(again["score"], recs["score"], atol=1e-5)
