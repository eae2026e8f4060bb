"""Full-ranking evaluation: a hand-computed case, and most-popular on RecBole's ML-100K split vs BASELINES.md."""

from __future__ import annotations

from math import log2
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scenerec.errors import DataFormatError
from scenerec.gnn.evaluate import CSR, Interactions, evaluate_scores
from scenerec.ids import IdMap

# 3 users x 6 items; higher score = ranked first.
SCORES = torch.tensor(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # u0: train {0}, valid {1}, test {2, 5}
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # u1: train {4, 5}, test {0}
        [0.5, 0.1, 0.9, 0.3, 0.7, 0.2],  # u2: train {2}, test {1, 3}
    ]
)
SHAPE = (3, 6)
TRAIN = CSR.from_pairs(np.array([0, 1, 1, 2]), np.array([0, 4, 5, 2]), SHAPE)
VALID = CSR.from_pairs(np.array([0]), np.array([1]), SHAPE)
TEST = CSR.from_pairs(np.array([0, 0, 1, 2, 2]), np.array([2, 5, 0, 1, 3]), SHAPE)
D1 = 1 / log2(3)  # discount at rank 1 (0.63093); rank 0 has 1, rank 2 has 0.5


def score_fn(users: torch.Tensor) -> torch.Tensor:
    return SCORES[users]


def test_csr_from_pairs() -> None:
    csr = CSR.from_pairs(np.array([2, 0, 2, 2]), np.array([1, 3, 0, 1]), (3, 4))
    assert csr.indptr.tolist() == [0, 1, 1, 3] and csr.indices.tolist() == [3, 0, 1]  # repeat (2, 1) kept once
    local, cols = csr.select(np.array([2, 1, 0]))
    assert local.tolist() == [0, 0, 2] and cols.tolist() == [0, 1, 3]


def test_hand_case_masks_train_and_excluded_items() -> None:
    r = evaluate_scores(score_fn, TRAIN, TEST, exclude=VALID, ks=(1, 3))
    # u0: 0 (train) and 1 (valid) masked -> top3 = [2, 3, 4]; test {2, 5}: hits [1, 0, 0]
    #     recall@3 1/2, ndcg@3 1 / (1 + d1) = 0.61315, mrr 1, recall@1 1/2
    # u1: 4, 5 masked -> top3 = [3, 2, 1]; test {0}: no hit -> all 0
    # u2: 2 masked -> top3 = [4, 0, 3]; test {1, 3}: hits [0, 0, 1]
    #     recall@3 1/2, ndcg@3 0.5 / (1 + d1) = 0.30657, mrr 1/3, recall@1 0
    assert r["recall@3"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert r["ndcg@3"] == pytest.approx((1 / (1 + D1) + 0 + 0.5 / (1 + D1)) / 3)
    assert r["ndcg@3"] == pytest.approx(0.30657, abs=1e-5)
    assert r["mrr@3"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert r["precision@3"] == pytest.approx((1 / 3 + 0 + 1 / 3) / 3)
    assert r["hit@3"] == pytest.approx(2 / 3)
    assert r["recall@1"] == pytest.approx((0.5 + 0 + 0) / 3)
    # Without the exclude set u0's top3 is [1, 2, 3]: hits [0, 1, 0] -> recall 1/2, ndcg d1/(1+d1), mrr 1/2.
    r = evaluate_scores(score_fn, TRAIN, TEST, ks=(3,))
    assert r["ndcg@3"] == pytest.approx((D1 / (1 + D1) + 0 + 0.5 / (1 + D1)) / 3)
    assert r["mrr@3"] == pytest.approx((0.5 + 0 + 1 / 3) / 3)
    # Batching does not change anything, and the score tensor is not modified.
    before = SCORES.clone()
    assert evaluate_scores(score_fn, TRAIN, TEST, exclude=[VALID], ks=(1, 3), batch_users=1) == evaluate_scores(
        score_fn, TRAIN, TEST, exclude=VALID, ks=(1, 3)
    )
    assert torch.equal(SCORES, before)
    # neither does a cap on a block's scores (6 items: one user a block under 11 cells)
    seen: list[int] = []

    def counted(users: torch.Tensor) -> torch.Tensor:
        seen.append(len(users))
        return SCORES[users]

    capped = evaluate_scores(counted, TRAIN, TEST, exclude=VALID, ks=(1, 3), block_cells=11)
    assert capped == evaluate_scores(score_fn, TRAIN, TEST, exclude=VALID, ks=(1, 3)) and seen == [1, 1, 1]


def test_hand_case_candidate_items() -> None:
    # Scene = items {0, 1, 2, 3}: only test items inside it count.
    r = evaluate_scores(score_fn, TRAIN, TEST, exclude=VALID, ks=(3,), candidate_items=[3, 1, 0, 2])
    # u0: 0, 1 masked -> [2, 3, (a masked item)]; test in scene {2}: hits [1, 0, 0] -> recall 1, ndcg 1, mrr 1
    # u1: [3, 2, 1]; test {0}: no hit -> 0
    # u2: 2 masked -> [0, 3, 1]; test {1, 3}: hits [0, 1, 1] -> recall 1, ndcg (d1 + 0.5) / (1 + d1) = 0.69343, mrr 1/2
    assert r["recall@3"] == pytest.approx(2 / 3)
    assert r["ndcg@3"] == pytest.approx((1 + 0 + (D1 + 0.5) / (1 + D1)) / 3)
    assert r["mrr@3"] == pytest.approx(0.5)
    # Scene = items {4, 5}: u1 (test {0}) and u2 (test {1, 3}) have no test item there and are skipped.
    # u0 ranks [4, 5] (fewer candidates than K); test {5}: hit at rank 1 -> recall 1, ndcg d1, mrr 1/2.
    seen: list[list[int]] = []

    def spy(users: torch.Tensor) -> torch.Tensor:
        seen.append(users.tolist())
        return SCORES[users]

    r = evaluate_scores(spy, TRAIN, TEST, exclude=VALID, ks=(3,), candidate_items=np.array([4, 5]))
    assert seen == [[0]]
    assert (r["recall@3"], r["mrr@3"]) == (1.0, 0.5)
    assert r["ndcg@3"] == pytest.approx(D1)


def test_interactions_from_frame() -> None:
    df = pd.DataFrame(
        {"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"], "split": ["train", "test", "valid", "train"]}
    )
    idmap = IdMap({"user": ["a", "b"], "item": ["x", "y", "z"]})
    sets = Interactions.from_frame(df, idmap)
    assert sets["train"].indptr.tolist() == [0, 1, 2] and sets["train"].indices.tolist() == [0, 2]
    assert sets["valid"].indices.tolist() == [0] and sets["test"].indices.tolist() == [1]
    assert sets["test"].shape == (2, 3)
    with pytest.raises(DataFormatError, match="has no split"):
        Interactions.from_frame(df.assign(split=["train", "", "test", "test"]), idmap)


@pytest.mark.slow
def test_most_popular_reproduces_baselines(ml100k_split: Path) -> None:
    """RecBole's ML-100K split, popularity = train counts, test ranking excludes train and valid items.

    BASELINES.md: Recall@10 0.1278, NDCG@10 0.1418, Recall@20 0.1784, NDCG@20 0.1497. Tie-breaking among items of
    equal popularity moves the @20 figures by up to ~0.0015, hence the 0.002 tolerance.
    """
    folder = ml100k_split
    frame = pd.concat(
        pd.read_csv(folder / f"{s}.tsv", sep="\t", dtype=str).assign(split=s) for s in ("train", "valid", "test")
    ).rename(columns={"user_id": "user", "item_id": "item"})
    idmap = IdMap({"user": frame["user"].unique().tolist(), "item": frame["item"].unique().tolist()})
    assert (idmap.size("user"), idmap.size("item")) == (943, 1682)
    sets = Interactions.from_frame(frame, idmap)
    assert (sets["train"].nnz, sets["valid"].nnz, sets["test"].nnz) == (80808, 9596, 9596)
    popularity = torch.as_tensor(np.bincount(sets["train"].indices, minlength=1682), dtype=torch.float32)
    r = evaluate_scores(
        lambda users: popularity.expand(len(users), -1), sets["train"], sets["test"], exclude=sets["valid"]
    )
    expected = {"recall@10": 0.1278, "ndcg@10": 0.1418, "recall@20": 0.1784, "ndcg@20": 0.1497}
    for key, value in expected.items():
        assert r[key] == pytest.approx(value, abs=0.002), (key, r[key])
