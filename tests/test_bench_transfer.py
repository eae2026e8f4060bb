"""The sequence helpers of ``benchmarks/transfer.py`` (its SASRec peer), on hand-built interactions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenerec.gnn.evaluate import CSR
from scenerec.ids import IdMap


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("transfer")


def _graph(bench):
    # 3 users, 6 items: 0-2 arts (scene 0), 3-5 office (scene 1); rows are (user, item, position)
    rows = [
        (0, 3, 5),
        (0, 0, 1),
        (0, 4, 2),
        (0, 1, 2),  # same position as (0, 4): the stored order breaks the tie
        (0, 5, 9),  # held out below
        (1, 2, 0),
        (2, 4, 3),
        (2, 3, 1),
        (2, 0, 2),
    ]
    users, items, position = (np.array(c) for c in zip(*rows, strict=True))
    idmap = IdMap({"user": ["a", "b", "c"], "item": [f"i{k}" for k in range(6)]})
    g = bench.Graph(
        idmap=idmap,
        users=users,
        items=items,
        position=position,
        item_scene=np.array([0, 0, 0, 1, 1, 1]),
        scene_index={"arts": 0, "office": 1},
        data=None,
        test_users=np.array([0]),
        valid_users=np.array([], dtype=np.int64),
        links=(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0)),
    )
    keep = np.arange(len(rows)) != 4
    empty = CSR.from_pairs(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), g.shape)
    split = bench.Split(
        train=CSR.from_pairs(users[keep], items[keep], g.shape),
        valid=empty,
        test=CSR.from_pairs(users[~keep], items[~keep], g.shape),
        train_rows=np.flatnonzero(keep),
    )
    return g, split


def test_user_sequences_time_order_truncation_and_padding(bench) -> None:
    g, split = _graph(bench)
    # all items, window 3: user 0's history in time order is 0 (pos 1), 4, 1 (pos 2, stored order), 3 (pos 5);
    # the held-out item 5 is not training data; rows are item + 1, right-padded with 0
    seqs, lengths = bench.user_sequences(g, split, np.arange(6), 3)
    assert seqs.tolist() == [[5, 2, 4], [3, 0, 0], [4, 1, 5]]
    assert lengths.tolist() == [3, 1, 3]
    # office items only, window 4
    seqs, lengths = bench.user_sequences(g, split, np.array([3, 4, 5]), 4)
    assert seqs.tolist() == [[5, 4, 0, 0], [0, 0, 0, 0], [4, 5, 0, 0]]
    assert lengths.tolist() == [2, 0, 2]


def test_sampled_softmax_masks_the_target_and_full_softmax_matches(bench) -> None:
    torch.manual_seed(0)
    model = bench.SASRec(6, np.array([3, 4, 5]), max_len=4, dim=8, layers=1, heads=1, dropout=0.0)
    states = torch.randn(2, 8)
    target = torch.tensor([0, 2])
    full = bench.sampled_softmax(model, states, target, 0)
    logits = states @ model.item.weight[torch.tensor([4, 5, 6])].t()
    assert torch.allclose(full, torch.nn.functional.cross_entropy(logits, target))
    # 2 negatives out of 3 items: every draw that equals a row's target is left out of that row's softmax
    torch.manual_seed(1)
    neg = torch.randint(3, (2,))
    torch.manual_seed(1)
    sampled = bench.sampled_softmax(model, states, target, 2)
    expected = []
    for r in range(2):
        cols = [int(target[r])] + [int(n) for n in neg if int(n) != int(target[r])]
        row = logits[r, cols]
        expected.append(-torch.log_softmax(row, 0)[0])
    assert torch.allclose(sampled, torch.stack(expected).mean())


def test_sasrec_states_see_only_earlier_positions(bench) -> None:
    torch.manual_seed(0)
    model = bench.SASRec(6, np.array([3, 4, 5]), max_len=4, dim=8, layers=2, heads=1, dropout=0.0).eval()
    a = torch.tensor([[1, 4, 2, 0]])
    b = torch.tensor([[1, 4, 6, 3]])  # differs from position 2 on (padding replaced too)
    with torch.no_grad():
        sa, sb = model(a), model(b)
    assert torch.allclose(sa[:, :2], sb[:, :2], atol=1e-6)
    assert not torch.allclose(sa[:, 2], sb[:, 2], atol=1e-4)
