"""Top-K ranking metrics as pure functions over a hit matrix (RecBole's definitions).

Every function takes

* ``hits``: ``bool`` array of shape ``(n_users, K)``; ``hits[u, r]`` is true when the item ranked at position ``r``
  (0-based) for user ``u`` is one of that user's test positives, and
* ``n_pos``: ``int`` array of shape ``(n_users,)``, the number of test positives of each user (hits can be fewer:
  positives outside the top K are not in the matrix),

plus an optional cut-off ``k`` (default: all ``K`` columns), and returns one ``float64`` value per user, shape
``(n_users,)``. Users with ``n_pos == 0`` get 0 everywhere; :func:`summarize` leaves them out of the averages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Metric names, in the order :func:`summarize` reports them.
METRICS = ("recall", "precision", "hit", "ndcg", "mrr")


def _prepare(hits: np.ndarray, n_pos: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    h = np.asarray(hits, dtype=bool)
    n = np.asarray(n_pos, dtype=np.int64)
    if h.ndim != 2:
        raise ValueError(f"hits must be a 2-d (n_users, K) array, got shape {h.shape}")
    if n.shape != (h.shape[0],):
        raise ValueError(f"n_pos must have shape ({h.shape[0]},) to match hits {h.shape}, got {n.shape}")
    kk = h.shape[1] if k is None else int(k)
    if not 1 <= kk <= h.shape[1]:
        raise ValueError(f"k={kk} is outside 1..{h.shape[1]} (the number of ranked columns in hits)")
    return h[:, :kk], n, kk


def recall_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int | None = None) -> np.ndarray:
    """Hits in the top k divided by the user's number of positives (not by ``min(n_pos, k)``); shape (n_users,)."""
    h, n, _ = _prepare(hits, n_pos, k)
    found = h.sum(axis=1).astype(np.float64)
    return np.divide(found, n, out=np.zeros_like(found), where=n > 0)


def precision_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int | None = None) -> np.ndarray:
    """Hits in the top k divided by k; shape (n_users,)."""
    h, n, kk = _prepare(hits, n_pos, k)
    return np.where(n > 0, h.sum(axis=1) / kk, 0.0)


def hit_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int | None = None) -> np.ndarray:
    """1.0 when at least one positive is in the top k, else 0.0; shape (n_users,)."""
    h, n, _ = _prepare(hits, n_pos, k)
    return np.where(n > 0, h.any(axis=1), False).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int | None = None) -> np.ndarray:
    """DCG / ideal DCG with binary gains and the ``1 / log2(rank + 2)`` discount (rank 0-based).

    The ideal DCG puts ``min(n_pos, k)`` positives at the top. Shape (n_users,).
    """
    h, n, kk = _prepare(hits, n_pos, k)
    discount = 1.0 / np.log2(np.arange(kk) + 2.0)
    dcg = (h * discount).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discount)])
    idcg = ideal_cum[np.minimum(n, kk)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def mrr_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int | None = None) -> np.ndarray:
    """Reciprocal (1-based) rank of the first positive in the top k, 0 when there is none; shape (n_users,)."""
    h, n, _ = _prepare(hits, n_pos, k)
    any_hit = h.any(axis=1) & (n > 0)
    first = h.argmax(axis=1)
    return np.where(any_hit, 1.0 / (first + 1.0), 0.0)


_FUNCS = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "hit": hit_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
}


def summarize(
    hits: np.ndarray,
    n_pos: np.ndarray,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """Every metric at every k, averaged over the users with ``n_pos > 0``.

    ``hits`` is ``(n_users, K)`` with ``K >= max(ks)``. Keys are ``"<metric>@<k>"`` (e.g. ``"recall@10"``), metric
    by metric and k by k in the order given. With no user having a positive, every value is ``nan``.
    """
    unknown = [m for m in metrics if m not in _FUNCS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; expected one of {', '.join(METRICS)}")
    n = np.asarray(n_pos, dtype=np.int64)
    keep = n > 0
    out: dict[str, float] = {}
    for m in metrics:
        for k in ks:
            values = _FUNCS[m](hits, n, k)
            out[f"{m}@{k}"] = float(values[keep].mean()) if keep.any() else float("nan")
    return out
