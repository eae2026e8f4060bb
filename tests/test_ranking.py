"""The one top-k rule (:mod:`scenerec.ranking`) against a full sort, on hand-built and generated scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scenerec.ranking import check_k, top_k, top_positions


def reference(row: np.ndarray, k: int) -> list[int]:
    """The obvious way: sort every position by (score descending, position ascending), drop the non-finite ones."""
    order = sorted(range(len(row)), key=lambda i: (-row[i] if np.isfinite(row[i]) else np.inf, i))
    return [i for i in order if np.isfinite(row[i])][:k]


def test_ties_go_to_the_lower_position_also_at_the_cut_off() -> None:
    scores = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 2.0, np.nan, -np.inf, np.inf])
    positions, valid = top_k(scores, 4)
    assert positions.tolist() == [1, 3, 2, 4] and valid.all()  # 2.0 three times: positions 2 and 4 of 2, 4, 5
    positions, valid = top_k(scores, 9)
    assert positions[valid].tolist() == [1, 3, 2, 4, 5, 0]  # NaN and the infinities are never chosen
    assert valid.tolist() == [True] * 6 + [False] * 3


def test_rows_are_ranked_independently_and_k_is_capped() -> None:
    scores = np.array([[0.0, 5.0, 5.0], [9.0, -np.inf, 1.0]])
    positions, valid = top_k(scores, 5)
    assert positions.shape == (2, 3)
    assert positions.tolist() == [[1, 2, 0], [0, 2, 1]]
    assert valid.tolist() == [[True, True, True], [True, True, False]]
    positions, valid = top_k(np.zeros((2, 0)), 3)
    assert positions.shape == valid.shape == (2, 0)


def test_a_float32_block_with_and_without_ties_at_the_cut_off() -> None:
    """Rows ranked by the one partition (distinct scores) and rows that need the second pass (the k-th score shared
    with entries left out, left-out items at -inf, a NaN) in one block, against the full sort."""
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((40, 300)).astype(np.float32)
    scores[::3] = np.round(scores[::3])  # few distinct values: ties at the cut-off
    scores[1::4, ::5] = -np.inf
    scores[2, 7] = np.nan
    scores[5, :295] = -np.inf  # fewer finite scores than k
    positions, valid = top_k(scores, 10)
    for row, pos, ok in zip(scores, positions, valid, strict=True):
        assert pos[ok].tolist() == reference(row, 10)


def test_top_positions_within_candidates() -> None:
    scores = np.array([4.0, 1.0, 4.0, 7.0, 4.0, np.nan])
    assert top_positions(scores, 3).tolist() == [3, 0, 2]
    assert top_positions(scores, 2, np.array([1, 2, 4, 5])).tolist() == [2, 4]
    assert top_positions(scores, 2, np.array([4, 2, 5, 1])).tolist() == [4, 2]  # ties: the earlier candidate
    assert top_positions(scores, 9, np.array([5, 1])).tolist() == [1]
    assert top_positions(scores, 3, np.zeros(0, dtype=np.int64)).tolist() == []


def test_check_k() -> None:
    check_k(1)
    for bad in (0, -2, 1.5, "3", None):
        with pytest.raises(ValueError, match=r"^k must be a positive integer$"):
            check_k(bad)
    with pytest.raises(ValueError, match=r"^max_paths must be a positive integer$"):
        check_k(0, "max_paths")
    with pytest.raises(ValueError, match="k must be >= 0"):
        top_k(np.zeros(3), -1)


# few distinct values, so that ties (also at the cut-off) are the rule, plus NaN and both infinities
_SCORES = st.sampled_from([0.0, 1.0, 1.5, -2.0, 3.0, np.nan, -np.inf, np.inf])


@settings(max_examples=300, deadline=None)
@given(
    scores=st.integers(1, 4).flatmap(
        lambda b: arrays(np.float64, st.tuples(st.just(b), st.integers(0, 30)), elements=_SCORES)
    ),
    k=st.integers(0, 35),
)
def test_top_k_matches_a_full_sort(scores: np.ndarray, k: int) -> None:
    positions, valid = top_k(scores, k)
    assert positions.shape == valid.shape == (scores.shape[0], min(k, scores.shape[1]))
    for row, pos, ok in zip(scores, positions, valid, strict=True):
        assert pos[ok].tolist() == reference(row, k)
        assert not np.isfinite(row[pos[~ok]]).any() and not ok[len(pos[ok]) :].any()  # the invalid ones last
        assert len(set(pos.tolist())) == len(pos)
    one, one_valid = top_k(scores[0], k)
    assert one.tolist() == positions[0].tolist() and one_valid.tolist() == valid[0].tolist()
