"""The training objectives of :mod:`scenerec.gnn.objectives`: the sampled in-scene softmax (its loss against the
exact full softmax, its negatives' scenes, that it learns on real data), the size rule of ``loss="auto"`` and the
bounded validation sample of early stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scenerec.gnn import BPRMF, CSR, MostPopular, TrainConfig, fit, resolve_loss
from scenerec.gnn.objectives import SampledSoftmaxEpoch
from scenerec.gnn.train import FULL_SOFTMAX_MAX_COST, _evaluate, _sample_rows


def _epoch(train: CSR, item_scene: np.ndarray | None, negatives: int, dim: int = 8) -> SampledSoftmaxEpoch:
    model = BPRMF(*train.shape, dim=dim)
    config = TrainConfig(loss="sampled_softmax", negatives=negatives, batch_size=64, weight_decay=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    return SampledSoftmaxEpoch(model, train, item_scene, config, optimizer, torch.device("cpu"))


def _exact_loss(user_emb: torch.Tensor, item_emb: torch.Tensor, train: CSR, users, scene: np.ndarray) -> float:
    """What the sampled loss estimates, summed over the rows' training pairs, computed the plain way: for each
    training item ``i`` of user ``u`` in scene ``s``, ``-s(u, i) + log(exp(s(u, i)) + sum_{j in s} exp(s(u, j)))``."""
    total = 0.0
    for u in users:
        for i in train.indices[train.indptr[u] : train.indptr[u + 1]]:
            members = np.flatnonzero(scene == scene[i])
            logits = (item_emb[members] @ user_emb[u]).double()
            pos = float(user_emb[u].double() @ item_emb[i].double())
            total += -pos + float(torch.logaddexp(torch.tensor(pos, dtype=torch.float64), torch.logsumexp(logits, 0)))
    return total


def test_sampled_softmax_estimates_the_full_in_scene_softmax() -> None:
    """With many draws, the sampled loss (log-Q corrected, popularity-weighted draws) is the in-scene softmax loss it
    estimates; the uncorrected draws are not (popular items are over-drawn here on purpose)."""
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 40
    scene = np.repeat([0, 1], 20)
    # item 0 of each scene is far more popular: q is far from uniform
    items = np.concatenate([np.zeros(250, np.int64), np.full(250, 20), rng.integers(0, n_items, 200)])
    users = np.concatenate([np.arange(250), np.arange(50, 300), rng.integers(0, n_users, 200)])
    keys = np.unique(users * n_items + items)
    train = CSR.from_pairs(keys // n_items, keys % n_items, (n_users, n_items))
    epoch = _epoch(train, scene, negatives=200_000)
    g = torch.Generator().manual_seed(1)
    user_emb, item_emb = torch.randn(n_users, 8), torch.randn(n_items, 8)
    item_emb[[0, 20]] = 0.0  # the over-drawn items score exp(0) = 1, far below a typical exp(score)
    rows = np.flatnonzero(np.isin(epoch.row_user, np.arange(12)))
    row_users, row_groups = epoch.row_user[rows], epoch.row_group[rows]
    sampled, n_pos = epoch.loss(user_emb, item_emb, row_users, row_groups, g)
    exact = _exact_loss(user_emb, item_emb, train, np.arange(12), scene)
    assert n_pos == int(train.row_counts()[:12].sum())
    assert float(sampled) == pytest.approx(exact, rel=0.01)
    # the same draws without the correction estimate something else
    log_q = epoch.log_q.clone()
    epoch.log_q.fill_(float(log_q.mean()))
    biased, _ = epoch.loss(user_emb, item_emb, row_users, row_groups, g)
    epoch.log_q.copy_(log_q)
    assert abs(float(biased) - exact) > 5 * abs(float(sampled) - exact)


def test_sampled_negatives_stay_in_the_positive_scene() -> None:
    n_items = 12
    scene = np.array([0] * 4 + [1] * 8)
    train = CSR.from_pairs(np.array([0, 0, 1]), np.array([1, 5, 9]), (2, n_items))
    epoch = _epoch(train, scene, negatives=16)
    for g in range(2):
        members = epoch.members[g].numpy()
        assert set(scene[members]) == {g} and len(members) == int((scene == g).sum())
        # every item has a positive probability, the popular ones more
        q = epoch.weights[g].numpy()
        assert (q > 0).all() and q.sum() == pytest.approx(1.0)
    assert epoch.log_q[5] > epoch.log_q[6]  # item 5 was trained on, item 6 not: same scene, higher q


def test_sampled_steps_are_bounded() -> None:
    """``max_steps`` grows the batch of the sampled softmax so that an epoch takes at most that many steps."""
    n_users, n_items = 500, 30
    rows = np.repeat(np.arange(n_users), 2)
    train = CSR.from_pairs(rows, np.tile([1, 7], n_users), (n_users, n_items))
    model = BPRMF(n_users, n_items, dim=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for bound, expected in ((None, 64), (100, 64), (4, 125)):
        cfg = TrainConfig(loss="sampled_softmax", batch_size=64, negatives=8, max_steps=bound)
        epoch = SampledSoftmaxEpoch(model, train, None, cfg, optimizer, torch.device("cpu"))
        assert epoch.rows_per_step() == expected
    epoch(torch.Generator().manual_seed(0))
    assert int(optimizer.state[model.user_embedding.weight]["step"]) == 4  # Adam's count: 500 rows, 125 a step
    with pytest.raises(ValueError):
        TrainConfig(max_steps=0)


def test_loss_auto_picks_by_size() -> None:
    small = CSR.from_pairs(np.array([0, 1]), np.array([0, 1]), (2, 10))
    cfg = TrainConfig(loss="auto", batch_size=8192, softmax_batch_size=256, patience=20, sampled_patience=5)
    assert resolve_loss(cfg, small).loss == "softmax"
    assert (resolve_loss(cfg, small).batch_size, resolve_loss(cfg, small).patience) == (256, 20)
    n_items = FULL_SOFTMAX_MAX_COST // 1000 + 1  # 1,000 pairs x that many items in one scene: over the bound
    big = CSR.from_pairs(np.arange(1000) % 7, np.arange(1000), (7, n_items))
    chosen = resolve_loss(cfg, big, np.zeros(n_items, np.int64))
    assert (chosen.loss, chosen.batch_size, chosen.patience) == ("sampled_softmax", 8192, 5)
    # two scenes: only the largest scene's size counts
    halves = np.repeat([0, 1], [n_items // 2, n_items - n_items // 2])
    assert resolve_loss(cfg, big, halves).loss == "softmax"
    assert resolve_loss(TrainConfig(loss="bpr"), big) == TrainConfig(loss="bpr")
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="sampled")
    with pytest.raises(ValueError):
        TrainConfig(negatives=0)


def test_validation_sample_is_bounded_and_fixed() -> None:
    rows = np.repeat(np.arange(100), 2)
    valid = CSR.from_pairs(rows, np.tile([1, 3], 100), (120, 5))
    assert _sample_rows(valid, None, 0) is valid and _sample_rows(valid, 100, 0) is valid
    part = _sample_rows(valid, 30, 7)
    assert (part.row_counts() > 0).sum() == 30 and part.nnz == 60
    assert np.array_equal(part.indices, _sample_rows(valid, 30, 7).indices)
    kept = np.flatnonzero(part.row_counts())
    assert np.array_equal(part.row_counts()[kept], valid.row_counts()[kept])  # whole rows are kept


def test_sampled_softmax_learns_and_reports_full_validation(ml100k_split: Path) -> None:
    """On 300 real ML-100K users: the sampled softmax beats popularity, and the best state's validation metrics are
    those of ALL validation users even though early stopping watched a sample of 50."""
    frames = {s: pd.read_csv(ml100k_split / f"{s}.tsv", sep="\t", dtype=str) for s in ("train", "valid")}
    keep = sorted(set(frames["train"]["user_id"]), key=int)[:300]
    frames = {s: f[f["user_id"].isin(keep)] for s, f in frames.items()}
    users = {u: k for k, u in enumerate(keep)}
    item_ids = sorted(set(frames["train"]["item_id"]) | set(frames["valid"]["item_id"]))
    items = {i: k for k, i in enumerate(item_ids)}
    shape = (len(users), len(items))
    csr = {
        s: CSR.from_pairs(f["user_id"].map(users).to_numpy(), f["item_id"].map(items).to_numpy(), shape)
        for s, f in frames.items()
    }
    train, valid = csr["train"], csr["valid"]
    cfg = TrainConfig(
        epochs=30, batch_size=32, lr=1e-2, weight_decay=0.0, patience=30, seed=0, threads=1,
        loss="sampled_softmax", negatives=256, eval_users=50,
    )  # fmt: skip
    model = BPRMF(*shape, dim=32)
    result = fit(model, train, valid, cfg)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.95 * losses[0]  # the softmax loss of 1,500 items starts near log(1500) = 7.3
    full = _evaluate(model, train, valid, cfg.ks)
    assert result.best_valid == pytest.approx(full)
    counts = torch.as_tensor(np.bincount(train.indices, minlength=shape[1]), dtype=torch.float32)
    pop = _evaluate(MostPopular(counts, num_users=shape[0]), train, valid, cfg.ks)
    assert result.best_valid["ndcg@10"] > pop["ndcg@10"]
