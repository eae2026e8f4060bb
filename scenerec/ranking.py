"""The one top-k rule of every ranking the engine serves, and the one check of a ``k`` argument.

Search, recommendations (one user, a history, the write-back of every user), similar items and a new item's audience
all choose their best entries with :func:`top_k`: highest score first, equal scores in ascending position (the lower
item or user index first), scores that are not finite (NaN, ``-inf`` for a left-out item) never chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_k", "top_k", "top_positions"]


def check_k(k: Any, name: str = "k") -> None:
    """``ValueError("<name> must be a positive integer")`` unless ``k`` is an integer >= 1."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be a positive integer")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the ``k`` highest scores of each row of ``scores`` ((b, n), or (n,) for one row), best
    first, equal scores in ascending position.

    Returns ``positions`` (int64, (b, min(k, n)) or (min(k, n),)) and ``valid`` (bool, same shape): False where the
    chosen score is not finite, i.e. at the end of a row with fewer finite scores than ``min(k, n)`` (items left out
    by setting their score to ``-inf``; NaN and ``+inf`` rank as ``-inf``). Exact: one partition per row (a second pass
    over the rows whose ``k``-th score is tied with entries left out), then a sort of the ``k`` chosen, never a full
    sort of the row.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    one_row = scores.ndim == 1
    rows = scores[None, :] if one_row else scores
    if rows.ndim != 2:
        raise ValueError(f"scores must be 1- or 2-dimensional, not of shape {scores.shape}")
    b, n = rows.shape
    k = min(k, n)
    if k == 0:
        positions, valid = np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=bool)
    else:
        top = rows.max() if rows.size else 0.0
        if np.isnan(top) or top == np.inf:  # NaN and +inf are never served: they rank as -inf
            rows = np.where(np.isfinite(rows), rows, -np.inf)
        # the k highest of each row as a set (ties at the k-th score broken arbitrarily)
        positions = np.argpartition(rows, n - k, axis=1)[:, n - k :]
        kth = np.take_along_axis(rows, positions, axis=1).min(axis=1, keepdims=True)
        shared = (rows >= kth).sum(axis=1) > k  # rows whose k-th score is shared by entries left out
        if shared.any():  # every score above the k-th is taken, then the lowest positions equal to it
            sub, sub_kth = rows[shared], kth[shared]
            above, tied = sub > sub_kth, sub == sub_kth
            take = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
            positions[shared] = np.nonzero(take)[1].reshape(-1, k)
        positions.sort(axis=1)
        chosen = np.take_along_axis(rows, positions, axis=1)
        order = np.argsort(-chosen, axis=1, kind="stable")  # stable: equal scores keep the lower position first
        positions = np.take_along_axis(positions, order, axis=1).astype(np.int64)
        valid = np.isfinite(np.take_along_axis(chosen, order, axis=1))
    return (positions[0], valid[0]) if one_row else (positions, valid)


def top_positions(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` best entries of the 1-d ``scores`` by :func:`top_k`, restricted to the positions ``candidates``
    (default: all), best first; fewer when fewer have a finite score. Equal scores go to the earlier candidate: the
    lower index when ``candidates`` is ascending, as the engine's always are."""
    if candidates is None:
        positions, valid = top_k(scores, k)
        return positions[valid]
    positions, valid = top_k(scores[candidates], k)
    return np.asarray(candidates, dtype=np.int64)[positions[valid]]
