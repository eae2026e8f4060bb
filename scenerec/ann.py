"""Approximate nearest-neighbour serving for large scenes: :class:`SceneIndex` and :func:`ann_scene_top_k`.

The exact path of :class:`~scenerec.ranker.Ranker` scores every item of a scene for a user; with hundreds of
thousands of items that is the cost of a recommendation. Here a scene's item vectors (the served model's
:meth:`forward <scenerec.gnn.Recommender.forward>` rows, whose dot product with a user's row is the model's score,
or its base part) go into a :class:`SceneIndex` (the ``ann`` extra): the longest vectors (``AnnConfig.head``, 5 %
of the items), which an inner-product graph reaches badly, searched exactly, and an HNSW graph (faiss
``IndexHNSWFlat``, inner product) over the others. A user's recommendation takes the index's best items by inner
product as *candidates* (``AnnConfig.candidates`` from each part, plus as many as the user's training items of the
scene, which are left out), adds the items the model's other terms reach
(:meth:`Recommender.extra_candidates <scenerec.gnn.Recommender.extra_candidates>`, e.g. the item-item channel),
scores them exactly with the served model and ranks them with :func:`scenerec.ranking.top_k`: the scores and ties
are those of the exact path, only an item the index misses can be missing. A user whose candidates cannot fill the
list (the index returned too few) is ranked exactly.

Which scenes get an index, and its settings, is :class:`scenerec.config.AnnConfig` (``Engine.open(..., ann=...)``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from scenerec.config import AnnConfig
from scenerec.errors import require_extra
from scenerec.ranking import top_k

if TYPE_CHECKING:
    from scenerec.trained import TrainedModel

__all__ = ["SceneIndex", "ann_scene_top_k", "faiss_module"]


def faiss_module() -> Any:
    """The ``faiss`` module; :class:`~scenerec.errors.MissingExtraError` naming the ``ann`` extra when it is not
    installed."""
    return require_extra("faiss", "ann", "the approximate nearest-neighbour index", needs="'faiss-cpu'")


class SceneIndex:
    """An inner-product index over ``vectors`` (n, d), searched for positions into them: the ``config.head``
    share of the rows with the largest norms (:attr:`head`), searched exactly, and an HNSW graph (faiss
    ``IndexHNSWFlat``, inner product) over the others. An inner-product graph reaches long vectors badly (few
    shorter ones have them as neighbours), and those are the ones that rank high; the head, a few per cent of the
    rows, costs one small matrix product per query.

    ``config`` gives ``head``, ``m``, ``ef_construction``, ``ef_search`` and ``threads``; :attr:`seconds` is the
    build time.
    """

    def __init__(self, vectors: np.ndarray, config: AnnConfig) -> None:
        faiss = faiss_module()
        if vectors.ndim != 2:
            raise ValueError(f"vectors must have shape (n, d), not {vectors.shape}")
        self.config = config
        self.size, self.dim = int(vectors.shape[0]), int(vectors.shape[1])
        if config.threads is not None:
            faiss.omp_set_num_threads(config.threads)
        t0 = time.perf_counter()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        by_norm = np.argsort(-np.linalg.norm(vectors, axis=1), kind="stable")
        n_head = int(config.head * self.size)
        #: Positions of the rows with the largest norms (ascending), searched exactly, not in the graph.
        self.head = np.sort(by_norm[:n_head])
        self._tail = np.sort(by_norm[n_head:])  # graph node j is row self._tail[j]
        index = faiss.IndexHNSWFlat(self.dim, config.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        index.add(vectors[self._tail])
        self._head_vectors = np.ascontiguousarray(vectors[self.head])
        self.seconds = time.perf_counter() - t0
        self._index = index
        self._faiss = faiss

    def search(self, queries: np.ndarray, count: int) -> np.ndarray:
        """Positions (b, m) int64 of up to ``2 * count`` rows for each row of ``queries`` (b, d): the ``count`` rows
        of the :attr:`head` with the highest inner product with it (exact: a product with the head's rows), then
        the ``count`` best rows of the graph as the HNSW search finds them (its list holds ``max(ef_search,
        count)`` entries); -1 where there are fewer."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        params = self._faiss.SearchParametersHNSW()
        params.efSearch = max(self.config.ef_search, count)
        _, found = self._index.search(queries, count, params=params)
        found = np.asarray(found, dtype=np.int64)
        tail = np.where(found >= 0, self._tail[np.maximum(found, 0)], -1)
        n_head = len(self.head)
        if n_head == 0:
            return tail
        if len(queries) == 1:  # without BLAS: its threads, for a product this small, wait on busy cores
            scores = np.einsum("nd,d->n", self._head_vectors, queries[0])[None, :]
        else:
            scores = queries @ self._head_vectors.T
        if count < n_head:
            best = np.argpartition(-scores, count - 1, axis=1)[:, :count]
        else:
            best = np.broadcast_to(np.arange(n_head), (len(queries), n_head))
        return np.concatenate([self.head[best], tail], axis=1)

    @property
    def nbytes(self) -> int:
        """The index's size in bytes: the graph as faiss serialises it (its vectors and links), the head's vectors
        and the positions."""
        arrays = self.head.nbytes + self._tail.nbytes + self._head_vectors.nbytes
        return int(self._faiss.serialize_index(self._index).nbytes) + arrays

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SceneIndex(size={self.size}, dim={self.dim}, head={len(self.head)}, m={c.m}, "
            f"ef_construction={c.ef_construction}, ef_search={c.ef_search}, built in {self.seconds:.2f} s)"
        )


def _search_count(want: np.ndarray) -> np.ndarray:
    """``want`` rounded up to a power of two: users whose searches have the same size are searched together, and a
    user's search does not depend on the other users of its block (``recommend_many`` ranks as ``recommend``)."""
    return np.left_shift(1, np.ceil(np.log2(np.maximum(want, 1))).astype(np.int64))


def ann_scene_top_k(
    trained: TrainedModel, index: SceneIndex, users: np.ndarray, scene: int, k: int, candidates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The top-``k`` items of scene index ``scene`` for the user indices ``users``, their training items left out,
    ranked among candidates from ``index`` (built over the rows of the scene's items in ``trained.embeddings[1]``):
    per user the index's best ``max(candidates, k)`` plus as many as its training items of the scene (rounded up to
    a power of two), from its head and from its graph (:meth:`SceneIndex.search`), and the model's extra
    candidates, all scored exactly (:meth:`TrainedModel.scene_scores`).

    Returns ``(row, item, score, rank)`` per chosen pair like the exact path (``row``: position in ``users``, rows
    ascending, ranks ascending within a row; ``score`` float64). Users the candidates cannot serve ``k`` items
    (or all they may get) are ranked exactly.
    """
    import torch

    items = trained.scene_items(scene)
    n, b = len(items), len(users)
    seen_row, seen_col = trained.scene_seen(users, scene)
    n_seen = np.bincount(seen_row, minlength=b)
    count = _search_count(max(candidates, k) + n_seen)
    everything = count >= n  # the search would ask for the whole scene: score it all
    queries = trained.embeddings[0].detach().cpu().numpy()[np.asarray(users, dtype=np.int64)]
    searched = np.flatnonzero(~everything)
    rows, positions = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]  # (user row, position) pairs
    for c in np.unique(count[searched]):
        chosen = searched[count[searched] == c]
        found = index.search(queries[chosen], int(c))
        r, j = np.nonzero(found >= 0)
        rows.append(chosen[r])
        positions.append(found[r, j])
    extra = trained.recommender.extra_candidates(torch.from_numpy(np.asarray(users, dtype=np.int64)))
    if extra is not None and n:
        at = np.minimum(np.searchsorted(items, extra[1]), n - 1)
        inside = items[at] == extra[1]
        rows.append(extra[0][inside])
        positions.append(at[inside])
    row, pos = np.concatenate(rows), np.concatenate(positions)
    union = np.arange(n) if everything.any() else np.unique(pos)
    block = trained.scene_scores(users, scene, union)
    allowed = np.zeros(block.shape, dtype=bool)
    allowed[row, np.searchsorted(union, pos)] = True
    allowed[everything] = True
    at = np.minimum(np.searchsorted(union, seen_col), max(len(union) - 1, 0))
    hit = union[at] == seen_col if len(union) else np.zeros(len(seen_col), dtype=bool)
    allowed[seen_row[hit], at[hit]] = False  # the training items, left out
    block[~allowed] = -np.inf
    top, valid = top_k(block, k)
    short = valid.sum(axis=1) < np.minimum(k, n - n_seen)
    if short.any():  # the index returned too few items for these users: rank them exactly
        valid[short] = False
        exact = trained.scene_top_k(users[short], scene, k)
        r_ex = np.flatnonzero(short)[exact[0]]
    r, c = np.nonzero(valid)
    chosen_pos = top[r, c]
    out_row, out_item = r, items[union[chosen_pos]]
    out_score, out_rank = block[r, chosen_pos].astype(np.float64), c.astype(np.int64) + 1
    if short.any():
        out_row = np.concatenate([out_row, r_ex])
        out_item = np.concatenate([out_item, exact[1]])
        out_score = np.concatenate([out_score, exact[2]])
        out_rank = np.concatenate([out_rank, exact[3]])
        order = np.lexsort((out_rank, out_row))
        out_row, out_item, out_score, out_rank = out_row[order], out_item[order], out_score[order], out_rank[order]
    return out_row, out_item, out_score, out_rank
