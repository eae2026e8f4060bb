"""Full-ranking evaluation (RecBole's protocol) over user x item interaction sets held as CSR index arrays.

Protocol, as in ``movielens_100k_kg/split_recbole/README.md``: every user with at least one test item is ranked over
ALL items (or over ``candidate_items``); the user's train items, and the ``exclude`` sets (the valid items when
testing), are masked to ``-inf`` before ``torch.topk``; metrics come from :mod:`scenerec.gnn.metrics` and are averaged
over those users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from scenerec.gnn.data import CSR, Interactions
from scenerec.gnn.metrics import summarize

__all__ = [
    "BLOCK_CELLS",
    "CSR",
    "Interactions",
    "ScoreFn",
    "block_rows",
    "evaluate_scores",
]  # CSR and Interactions live in scenerec.gnn.data

#: Scores one block of users may hold (:func:`evaluate_scores`): 2^26 float32, 256 MB; 1,024 users up to 65k items.
BLOCK_CELLS = 1 << 26


def block_rows(n_items: int, limit: int = 1024, block_cells: int = BLOCK_CELLS) -> int:
    """Users a block of (users x ``n_items``) scores holds: ``limit``, fewer when that would pass ``block_cells``."""
    return max(1, min(limit, block_cells // max(n_items, 1)))


#: ``score_fn(users)``: ``users`` a LongTensor of shape (batch,) -> scores of shape (batch, n_items), any device.
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def evaluate_scores(
    score_fn: ScoreFn,
    train: CSR,
    test: CSR,
    *,
    exclude: CSR | Sequence[CSR] | None = None,
    ks: Sequence[int] = (10, 20),
    candidate_items: np.ndarray | Sequence[int] | None = None,
    batch_users: int = 1024,
    block_cells: int = BLOCK_CELLS,
) -> dict[str, float]:
    """Full-ranking top-K metrics (``"recall@10"``, ``"ndcg@10"``, ... as :func:`~scenerec.gnn.metrics.summarize`).

    * ``train``, ``test``, ``exclude``: :class:`CSR` of shape (n_users, n_items).
    * ``score_fn(users)`` with ``users`` a LongTensor (batch,) returns a float tensor (batch, n_items), higher is
      better; the returned tensor is not modified.
    * Ranking is over all items, or over ``candidate_items`` (item indices, e.g. one scene's items) when given; then
      only test items among the candidates count as positives.
    * The user's train items and ``exclude`` items (e.g. the valid items when testing) are masked to ``-inf``.
    * Users with no (candidate) test item are skipped; the rest are averaged with equal weight.

    Ties are broken by ``torch.topk``, as RecBole does. Users are scored ``batch_users`` at a time, fewer when
    ``batch x n_items`` would pass ``block_cells`` (so that a block's scores stay within ~4 bytes x ``block_cells``
    however many items there are).
    """
    n_users, n_items = test.shape
    if train.shape != test.shape:
        raise ValueError(f"train {train.shape} and test {test.shape} shapes differ")
    masks = [train] + ([exclude] if isinstance(exclude, CSR) else list(exclude or []))
    for m in masks:
        if m.shape != test.shape:
            raise ValueError(f"an exclude set has shape {m.shape}, expected {test.shape}")
    max_k = max(ks)

    # Column position of each item in the ranked matrix (-1: not a candidate).
    if candidate_items is None:
        cand = None
        position = np.arange(n_items, dtype=np.int64)
        n_cols = n_items
    else:
        cand = np.unique(np.asarray(candidate_items, dtype=np.int64))
        if len(cand) == 0 or cand[0] < 0 or cand[-1] >= n_items:
            raise ValueError(f"candidate_items must be non-empty item indices in 0..{n_items - 1}")
        position = np.full(n_items, -1, dtype=np.int64)
        position[cand] = np.arange(len(cand))
        n_cols = len(cand)

    test_pos = position[test.indices]
    n_pos_all = np.bincount(test.rows()[test_pos >= 0], minlength=n_users)
    users = np.flatnonzero(n_pos_all > 0)
    if len(users) == 0:
        return summarize(np.zeros((0, max_k), dtype=bool), np.zeros(0, dtype=np.int64), ks)
    k_eff = min(max_k, n_cols)
    cand_t: torch.Tensor | None = None

    batch_users = block_rows(n_items, batch_users, block_cells)
    all_hits = np.zeros((len(users), max_k), dtype=bool)
    for start in range(0, len(users), batch_users):
        batch = users[start : start + batch_users]
        scores = score_fn(torch.as_tensor(batch, dtype=torch.long))
        if tuple(scores.shape) != (len(batch), n_items):
            raise ValueError(f"score_fn returned shape {tuple(scores.shape)}, expected ({len(batch)}, {n_items})")
        scores = scores.detach()
        if cand is not None:
            if cand_t is None:
                cand_t = torch.as_tensor(cand, device=scores.device)
            scores = scores.index_select(1, cand_t)  # a copy
        else:
            scores = scores.clone()
        scores = scores.float() if not scores.is_floating_point() else scores
        for m in masks:
            local, cols = m.select(batch)
            pos = position[cols]
            keep = pos >= 0
            scores[
                torch.as_tensor(local[keep], device=scores.device), torch.as_tensor(pos[keep], device=scores.device)
            ] = float("-inf")
        values, top = torch.topk(scores, k_eff, dim=1)
        top_np = top.cpu().numpy()
        finite = torch.isfinite(values).cpu().numpy()
        positive = np.zeros((len(batch), n_cols), dtype=bool)
        local, cols = test.select(batch)
        pos = position[cols]
        positive[local[pos >= 0], pos[pos >= 0]] = True
        all_hits[start : start + len(batch), :k_eff] = np.take_along_axis(positive, top_np, axis=1) & finite
    return summarize(all_hits, n_pos_all[users], ks)
