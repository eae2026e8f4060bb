"""Entity alignment (:mod:`scenerec.transfer.align`) on synthetic scene pairs with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from scenerec.transfer import AlignConfig, align, propagate_features
from scenerec.transfer.align import (
    _adjacency,
    _calibrate,
    joint_edges,
    joint_features,
    orient_pairs,
    shared_users,
    split_pairs,
)

N = 120  # entities per side


def _pair(noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two copies of one random graph: left nodes 0..N-1, right nodes N..2N-1 in shuffled order; right features are
    the left ones plus noise. Returns (x, edges, left, right, truth (N, 2))."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(N, 16))
    src = rng.integers(0, N, size=4 * N)
    dst = rng.integers(0, N, size=4 * N)
    perm = rng.permutation(N)  # left node i is right node N + perm[i]
    x = np.zeros((2 * N, 16))
    x[:N] = base
    x[N + perm] = base + noise * rng.normal(size=base.shape)
    edges = np.concatenate([np.stack([src, dst]), np.stack([N + perm[src], N + perm[dst]])], axis=1)
    truth = np.stack([np.arange(N), N + perm], axis=1)
    return x, edges, np.arange(N), np.arange(N, 2 * N), truth


def test_adjacency_is_row_normalised_with_self_loops_and_single_edges() -> None:
    adj = _adjacency(np.array([[0, 0, 1], [1, 1, 2]]), 4).to_dense()  # edge 0-1 given twice
    expected = torch.tensor(
        [[1 / 2, 1 / 2, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0], [0, 1 / 2, 1 / 2, 0], [0, 0, 0, 1]], dtype=torch.float32
    )
    assert torch.allclose(adj, expected)
    h = propagate_features(torch.randn(4, 3), adj.to_sparse_csr(), hops=2)
    assert h.shape == (4, 9) and torch.allclose(h.norm(dim=1), torch.ones(4))


def test_structure_recovers_what_noisy_text_alone_misses() -> None:
    x, edges, left, right, truth = _pair(noise=1.0)
    text = align(x, edges, left, right, config=AlignConfig(hops=0, method="propagation"), gold=truth)
    graph = align(x, edges, left, right, config=AlignConfig(hops=2, method="propagation"), gold=truth)
    assert graph.metrics["hits@1"] > text.metrics["hits@1"] + 0.1
    assert graph.metrics["hits@1"] > 0.9 and graph.metrics["hits@10"] >= graph.metrics["hits@1"]
    pairs = graph.pairs
    assert pairs["left"].is_unique and pairs["right"].is_unique  # one-to-one
    assert set(pairs["left"]) <= set(left) and set(pairs["right"]) <= set(right)


def test_ranks_and_metrics_match_a_hand_computation() -> None:
    x, edges, left, right, truth = _pair(noise=1.5, seed=1)
    cfg = AlignConfig(hops=0, csls_k=0, method="propagation", threshold=0.0)
    result = align(x, edges, left, right, config=cfg, gold=truth)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit[left] @ unit[right].T
    gold_sim = sims[np.arange(N), truth[:, 1] - N]
    ranks = (sims >= gold_sim[:, None]).sum(1)  # ties counted against the gold pair
    assert result.metrics["hits@1"] == pytest.approx(np.mean(ranks <= 1))
    assert result.metrics["hits@10"] == pytest.approx(np.mean(ranks <= 10))
    assert result.metrics["mrr"] == pytest.approx(np.mean(1.0 / ranks), rel=1e-6)
    # threshold 0: every mutual nearest pair is accepted; precision / recall from them by hand
    best = sims.argmax(1)
    mutual = sims.argmax(0)[best] == np.arange(N)
    correct = mutual & (best == truth[:, 1] - N)
    assert len(result.pairs) == mutual.sum()
    assert result.metrics["precision"] == pytest.approx(correct.sum() / mutual.sum())
    assert result.metrics["recall"] == pytest.approx(correct.sum() / N)


def test_seeds_calibrate_scores_and_the_threshold_splits_accept_from_review() -> None:
    x, edges, left, right, truth = _pair(noise=2.0, seed=3)
    seeds, held_out = truth[:40], truth[40:]
    loose = align(x, edges, left, right, seeds, AlignConfig(method="propagation", threshold=0.0), gold=held_out)
    strict = align(x, edges, left, right, seeds, AlignConfig(method="propagation", threshold=1.0), gold=held_out)
    assert (loose.pairs["method"] == "seed").sum() == 40  # seeds are part of the answer
    proposed = loose.pairs[loose.pairs["method"] != "seed"]
    assert not set(proposed["left"]) & set(seeds[:, 0])  # and never re-proposed
    assert ((proposed["score"] > 0) & (proposed["score"] < 1)).all()
    assert len(strict.pairs) == 40 and len(strict.review) == len(proposed)  # nothing forced: all go to review
    assert strict.review["score"].is_monotonic_decreasing
    # calibrated scores rank the correct proposals above the wrong ones (AUC; 30 right, 12 wrong here)
    truth_map = dict(zip(truth[:, 0], truth[:, 1], strict=True))
    ok = np.array([truth_map[a] == b for a, b in zip(proposed["left"], proposed["right"], strict=True)])
    score = proposed["score"].to_numpy()
    assert ok.sum() >= 20 and (~ok).sum() >= 5
    auc = (score[ok][:, None] > score[~ok][None, :]).mean()
    assert auc > 0.7


def test_calibration_is_a_logistic_fit() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 2))
    labels = (f[:, 0] + 0.5 * f[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(float)
    w, b = _calibrate(f, labels)
    p = 1 / (1 + np.exp(-(f @ w + b)))
    assert ((p > 0.5) == (labels == 1)).mean() > 0.9
    assert w[0] > w[1] > 0  # the stronger feature gets the larger weight


def test_trained_gcn_starts_from_and_keeps_up_with_propagation() -> None:
    x, edges, left, right, truth = _pair(noise=1.2, seed=3)
    seeds, held_out = truth[:40], truth[40:]
    prop = align(x, edges, left, right, seeds, AlignConfig(method="propagation"), gold=held_out)
    untrained = align(x, edges, left, right, seeds, AlignConfig(method="gcn", epochs=0), gold=held_out)
    trained = align(x, edges, left, right, seeds, AlignConfig(method="gcn", epochs=30, dim=16), gold=held_out)
    assert untrained.metrics == pytest.approx(prop.metrics)  # the residual starts at zero
    assert trained.metrics["hits@1"] >= prop.metrics["hits@1"] - 0.05
    assert trained.info["method"] == "gcn"


def test_bad_inputs() -> None:
    x, edges, left, right, _ = _pair(noise=0.1)
    with pytest.raises(ValueError, match="overlap"):
        align(x, edges, left, np.concatenate([right, left[:1]]))
    with pytest.raises(ValueError, match="both sides"):
        align(x, edges, left, np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="method"):
        AlignConfig(method="magic")
    with pytest.raises(ValueError, match="gold pair"):
        align(x, edges, left, right, gold=np.array([[right[0], left[0]]]))


# -------------------------------------------------------------------- the inputs of align() from a scene graph
def test_joint_features_stack_the_kinds_with_zero_rows_for_a_kind_without_text() -> None:
    items = np.arange(6, dtype=np.float64).reshape(3, 2)
    x = joint_features([items, None], [3, 2])
    assert x.dtype == np.float32 and x.shape == (5, 2)
    assert x.tolist() == [[0, 1], [2, 3], [4, 5], [0, 0], [0, 0]]
    x = joint_features([None, np.ones((1, 2))], [2, 1])
    assert x.tolist() == [[0, 0], [0, 0], [1, 1]]
    with pytest.raises(ValueError, match="no node features"):
        joint_features([None, None], [2, 1])
    with pytest.raises(ValueError, match="width"):
        joint_features([items, np.ones((2, 3))], [3, 2])
    with pytest.raises(ValueError, match="rows"):
        joint_features([items], [4])


def test_joint_edges_take_related_as_structure_and_gold_same_as_as_pairs() -> None:
    """Items 0-2, entities 3-4 (offset 3); user edges are not among the aligned kinds."""
    edges = {
        ("item", "RELATED", "entity"): pd.DataFrame({"src": [0, 2], "dst": [1, 0]}),
        ("item", "SAME_AS", "item"): pd.DataFrame(
            {"src": [0, 1, 2], "dst": [2, 0, 1], "method": ["gold", "gcn", None]}
        ),
        ("entity", "SAME_AS", "entity"): pd.DataFrame({"src": [1], "dst": [0], "method": ["gold"]}),
        ("user", "INTERACTED", "item"): pd.DataFrame({"src": [0], "dst": [1]}),
        ("item", "RELATED", "item"): pd.DataFrame({"src": [], "dst": []}, dtype=np.int64),
    }
    structure, gold = joint_edges(edges, {"item": 0, "entity": 3})
    assert structure.tolist() == [[0, 2], [4, 3]]
    assert gold.tolist() == [[0, 2], [4, 3]]
    structure, gold = joint_edges({}, {"item": 0})
    assert structure.shape == (2, 0) and gold.shape == (0, 2)


def test_gold_pairs_are_oriented_left_to_right_and_split_by_the_seed() -> None:
    left, right = np.array([0, 1, 2, 3]), np.array([5, 6, 7, 8])
    stored = np.array([[0, 5], [6, 1], [0, 5], [2, 3], [4, 7], [8, 3], [2, 7]])
    pairs = orient_pairs(stored, left, right, 9)
    # (6, 1) and (8, 3) turned around, the repeat kept once, pairs within a side or off both sides dropped; sorted
    assert pairs.tolist() == [[0, 5], [1, 6], [2, 7], [3, 8]]
    assert orient_pairs(np.zeros((0, 2), dtype=np.int64), left, right, 9).shape == (0, 2)
    seeds, held = split_pairs(pairs, 0.5, seed=0)
    order = np.random.default_rng(0).permutation(4)
    assert seeds.tolist() == pairs[np.sort(order[:2])].tolist()
    assert held.tolist() == pairs[np.sort(order[2:])].tolist()
    assert sorted(seeds.tolist() + held.tolist()) == pairs.tolist()
    again, _ = split_pairs(pairs, 0.5, seed=0)
    assert again.tolist() == seeds.tolist()  # the seed fixes the split
    assert [len(s) for s in split_pairs(pairs, 0.3, seed=1)] == [1, 3]  # floor(0.3 * 4) seeds
    assert [len(s) for s in split_pairs(pairs, 0.0, seed=1)] == [0, 4]


def test_shared_users_interacted_in_both_scenes() -> None:
    users = np.array([0, 0, 1, 1, 2, 3, 3])
    scenes = np.array([0, 1, 0, 0, 1, 1, 0])
    assert shared_users(users, scenes, 0, 1) == 2  # users 0 and 3
    assert shared_users(users, scenes, 0, 2) == 0
