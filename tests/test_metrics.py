"""Top-K metrics against values worked out by hand (in the style of RecBole's tests/metrics/test_topk_metrics.py).

The case: five users, top K=5 ranked items each (1 = the item at that rank is a test positive).

    user  hits (rank 0..4)  n_pos   note
    A     1 0 1 0 0         2       both positives found
    B     0 0 0 0 0         3       no hit at all
    C     1 1 0 1 1         7       more positives than K
    D     0 1 0 0 0         1       single positive at rank 1
    E     0 0 0 0 0         0       no positives: 0 everywhere, left out of the averages

Discounts 1/log2(rank+2): d0 = 1, d1 = 1/log2(3) = 0.63093, d2 = 1/log2(4) = 0.5, d3 = 1/log2(5) = 0.43068,
d4 = 1/log2(6) = 0.38685.
"""

from __future__ import annotations

from math import log2

import numpy as np
import pytest

from scenerec.gnn.metrics import hit_at_k, mrr_at_k, ndcg_at_k, precision_at_k, recall_at_k, summarize

HITS = np.array(
    [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 1, 0, 1, 1],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=bool,
)
N_POS = np.array([2, 3, 7, 1, 0])
D = [1 / log2(r + 2) for r in range(5)]  # d0..d4 as above


def test_recall() -> None:
    # K=5: A 2/2, B 0/3, C 4/7, D 1/1, E 0.   K=3: A 2/2, B 0, C 2/7 (ranks 0,1), D 1/1, E 0.
    np.testing.assert_allclose(recall_at_k(HITS, N_POS), [1.0, 0.0, 4 / 7, 1.0, 0.0])
    np.testing.assert_allclose(recall_at_k(HITS, N_POS, 3), [1.0, 0.0, 2 / 7, 1.0, 0.0])


def test_precision() -> None:
    # K=5: A 2/5, B 0, C 4/5, D 1/5, E 0.   K=3: A 2/3, B 0, C 2/3, D 1/3, E 0.
    np.testing.assert_allclose(precision_at_k(HITS, N_POS), [0.4, 0.0, 0.8, 0.2, 0.0])
    np.testing.assert_allclose(precision_at_k(HITS, N_POS, 3), [2 / 3, 0.0, 2 / 3, 1 / 3, 0.0])


def test_hit() -> None:
    # Any positive in the top K: A, C, D yes; B, E no. Same at K=3 (A rank 0, C rank 0, D rank 1).
    np.testing.assert_allclose(hit_at_k(HITS, N_POS), [1, 0, 1, 1, 0])
    np.testing.assert_allclose(hit_at_k(HITS, N_POS, 3), [1, 0, 1, 1, 0])


def test_ndcg() -> None:
    # K=5:
    #   A: DCG = d0 + d2 = 1.5; ideal over min(2,5)=2: d0 + d1 = 1.63093 -> 0.91972
    #   B: DCG 0 -> 0
    #   C: DCG = d0+d1+d3+d4 = 2.44846; ideal over min(7,5)=5: d0+..+d4 = 2.94846 -> 0.83042
    #   D: DCG = d1 = 0.63093; ideal over 1: d0 = 1 -> 0.63093
    a = (1 + 0.5) / (1 + D[1])
    c5 = (1 + D[1] + D[3] + D[4]) / sum(D)
    np.testing.assert_allclose(ndcg_at_k(HITS, N_POS), [a, 0.0, c5, D[1], 0.0])
    np.testing.assert_allclose(ndcg_at_k(HITS, N_POS), [0.91972, 0.0, 0.83042, 0.63093, 0.0], atol=1e-5)
    # K=3: A unchanged; C: DCG = d0 + d1 = 1.63093, ideal over min(7,3)=3: d0+d1+d2 = 2.13093 -> 0.76536.
    c3 = (1 + D[1]) / (1 + D[1] + D[2])
    np.testing.assert_allclose(ndcg_at_k(HITS, N_POS, 3), [a, 0.0, c3, D[1], 0.0])
    np.testing.assert_allclose(c3, 0.76536, atol=1e-5)


def test_mrr() -> None:
    # First hit: A rank 0 -> 1, B none -> 0, C rank 0 -> 1, D rank 1 -> 1/2, E -> 0.
    np.testing.assert_allclose(mrr_at_k(HITS, N_POS), [1.0, 0.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(mrr_at_k(HITS, N_POS, 3), [1.0, 0.0, 1.0, 0.5, 0.0])
    # A hit only at rank 4 counts at K=5 and not at K=3.
    late = np.array([[0, 0, 0, 0, 1]], dtype=bool)
    np.testing.assert_allclose(mrr_at_k(late, np.array([1])), [0.2])
    np.testing.assert_allclose(mrr_at_k(late, np.array([1]), 3), [0.0])


def test_k3_matrix_equals_truncation() -> None:
    h3 = HITS[:, :3].copy()
    for f in (recall_at_k, precision_at_k, hit_at_k, ndcg_at_k, mrr_at_k):
        np.testing.assert_allclose(f(h3, N_POS), f(HITS, N_POS, 3))


def test_summarize_averages_over_users_with_positives() -> None:
    s = summarize(HITS, N_POS, ks=(3, 5))
    # Averages over A, B, C, D (E has no positives and is left out), i.e. sums / 4.
    # K=3: recall (1 + 0 + 2/7 + 1)/4 = 0.57143; precision (2/3 + 0 + 2/3 + 1/3)/4 = 0.41667; hit 3/4;
    #      ndcg (0.91972 + 0 + 0.76536 + 0.63093)/4 = 0.57900; mrr (1 + 0 + 1 + 0.5)/4 = 0.625.
    # K=5: recall (1 + 0 + 4/7 + 1)/4 = 0.64286; precision (0.4 + 0 + 0.8 + 0.2)/4 = 0.35; hit 3/4;
    #      ndcg (0.91972 + 0 + 0.83042 + 0.63093)/4 = 0.59527; mrr 0.625.
    expected = {
        "recall@3": 0.57143,
        "recall@5": 0.64286,
        "precision@3": 0.41667,
        "precision@5": 0.35,
        "hit@3": 0.75,
        "hit@5": 0.75,
        "ndcg@3": 0.57900,
        "ndcg@5": 0.59527,
        "mrr@3": 0.625,
        "mrr@5": 0.625,
    }
    assert list(s) == list(expected)
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, abs=1e-5), key


def test_errors() -> None:
    with pytest.raises(ValueError, match="k=6"):
        recall_at_k(HITS, N_POS, 6)
    with pytest.raises(ValueError, match="n_pos"):
        recall_at_k(HITS, N_POS[:2])
    with pytest.raises(ValueError, match="unknown metric"):
        summarize(HITS, N_POS, ks=(3,), metrics=("auc",))
    assert np.isnan(summarize(HITS[4:], N_POS[4:], ks=(3,))["recall@3"])
