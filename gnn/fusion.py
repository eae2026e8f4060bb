"""The item-item channel, fitted outside gradient descent and fused with a trained recommender.

:class:`ItemItem` holds closed-form item-item weights ``B`` (EASE, Steck 2019, within each scene; or item kNN,
across scenes), pruned to the largest weights per item. :class:`ItemItemFusion` wraps any trained
:class:`~scenerec.gnn.models.Recommender` (as :class:`~scenerec.gnn.extend.ExtendedRecommender` does) and adds
``lambda_s * (x_u @ B)`` to its scores of the items of scene ``s``, where ``x_u`` is the user's training row;
:func:`tune_item_item` fits ``B`` and chooses its settings and the per-scene weights ``lambda_s`` on the validation
split after training (0 where the channel does not help). The wrapped model is never changed, and training sees
the wrapped model alone: the fusion weights are 0 until they are tuned.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scenerec.gnn.data import CSR, GraphInputs
from scenerec.gnn.evaluate import block_rows, evaluate_scores
from scenerec.gnn.models import ModelWrapper, Recommender, deepcopy_with_sparse

__all__ = [
    "EASE_MAX_ITEMS",
    "ITEM_ITEM_KINDS",
    "KNN_EXPONENTS",
    "ItemItem",
    "ItemItemFusion",
    "ItemItemReport",
    "tune_item_item",
]

log = logging.getLogger(__name__)

#: The largest scene the item-item channel fits with EASE (a dense inverse of this size takes seconds on two cores;
#: Food–Kitchen's 8,661 food items took minutes and gained 3 % NDCG over item kNN): larger scenes get item kNN.
EASE_MAX_ITEMS = 5_000

#: Kinds of item-item weights: ``"ease"`` (within each scene) and ``"knn"`` (item kNN, across scenes).
ITEM_ITEM_KINDS = ("ease", "knn")


#: One scene's pruned item-item weights: (source items, target items, values).
Weights = tuple[np.ndarray, np.ndarray, np.ndarray]


def _binary_matrix(train: CSR) -> Any:
    """The training pairs as a scipy CSR 0/1 matrix (users x items), float32."""
    import scipy.sparse as sp

    x = sp.csr_matrix((np.ones(train.nnz, dtype=np.float32), train.indices, train.indptr), shape=train.shape)
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def _knn_columns(
    x_src: Any,
    src_items: np.ndarray,
    x_dst: Any,
    dst_items: np.ndarray,
    count: np.ndarray,
    alpha: float,
    beta: float,
    top_k: int,
) -> Weights:
    """Item-kNN weights into the items ``dst_items`` (columns of ``x_dst``) from the items ``src_items`` (columns of
    ``x_src``): ``|U_i & U_j| / (|U_i|^alpha |U_j|^beta)`` (``count``: every item's number of users), the item
    itself left out, the ``top_k`` largest per target item (ties to the lower item), divided by the largest weight.
    Returns (source items, target items, weights): only the co-occurring pairs are ever held (memory O(nnz))."""
    c = (x_src.T @ x_dst).tocoo()
    r, j, v = src_items[c.row.astype(np.int64)], c.col.astype(np.int64), c.data.astype(np.float64)
    keep = r != dst_items[j]
    r, j, v = r[keep], j[keep], v[keep] * count[r[keep]] ** -alpha * count[dst_items[j[keep]]] ** -beta
    order = np.lexsort((r, -v, j))  # per target column: largest weight first, ties to the lower item
    r, j, v = r[order], j[order], v[order]
    starts = np.r_[0, np.flatnonzero(np.diff(j)) + 1] if len(j) else np.zeros(0, dtype=np.int64)
    rank = np.arange(len(j)) - np.repeat(starts, np.diff(np.r_[starts, len(j)]))
    sel = rank < top_k
    return r[sel], dst_items[j[sel]], v[sel] / v[sel].max() if sel.any() else v[sel]


class ItemItem(torch.nn.Module):
    """Closed-form item-item weights per scene (EASE: ``B = I - P diag(1 / diag(P))``, ``P = (X^T X + reg I)^-1``,
    diagonal zeroed), pruned to the ``top_k`` largest weights per item and held as index/value buffers.

    Scores of users with training rows ``X_b`` (b, I) are ``X_b @ B``; EASE weights only connect items of one scene
    (:meth:`fit`), item-kNN weights (:meth:`fit_knn`) connect items of any scene to each item.
    EASE's Gram matrix is built from the sparse training pairs (memory: items^2 of the scene, never users x items).
    Scenes with more than ``max_items`` items (a dense inverse of that size would not fit the time or memory budget of
    a CPU run) get the within-scene item-kNN cosine weights instead, pruned the same way (memory O(nnz)); they are
    listed in :attr:`knn_scenes`. :attr:`skipped_scenes` is kept for compatibility (always empty now).
    """

    rows: Tensor
    cols: Tensor
    vals: Tensor

    def __init__(self, num_items: int, nnz: int = 0) -> None:
        super().__init__()
        self.num_items = int(num_items)
        self.register_buffer("rows", torch.zeros(nnz, dtype=torch.long))
        self.register_buffer("cols", torch.zeros(nnz, dtype=torch.long))
        self.register_buffer("vals", torch.zeros(nnz))
        self.skipped_scenes: list[int] = []
        self.knn_scenes: list[int] = []
        self._matrix_t: Tensor | None = None
        self._matrix_sp: tuple[tuple[int, int, int], Any] | None = None  # B as a scipy CSR, for :meth:`columns`

    @property
    def nnz(self) -> int:
        return int(self.vals.numel())

    @staticmethod
    def ease(x: np.ndarray, reg: float) -> np.ndarray:
        """The EASE weight matrix (n, n) of a dense user x item 0/1 matrix ``x`` (m, n), float64."""
        return ItemItem.ease_from_gram(x.T @ x, reg)

    @staticmethod
    def ease_from_gram(gram: np.ndarray, reg: float) -> np.ndarray:
        """The EASE weight matrix (n, n) of the item Gram matrix ``X^T X`` (n, n), float64 (``gram`` is changed)."""
        gram[np.diag_indices_from(gram)] += reg
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b

    def fit(
        self,
        train: CSR,
        item_scene: np.ndarray,
        reg: float | Sequence[float],
        *,
        top_k: int = 256,
        max_items: int = EASE_MAX_ITEMS,
        cache: dict[tuple[int, float | None], Weights] | None = None,
    ) -> None:
        """Compute the weights from the training pairs; ``reg`` per scene (a sequence indexed by scene) or one.

        ``cache``: a dict to keep each scene's pruned weights in, keyed by (scene, reg) (None for item kNN), and to
        take them from when fitted before (:func:`tune_item_item` tries several regs, then refits the best)."""
        rows, cols, vals = [], [], []
        self.skipped_scenes, self.knn_scenes = [], []
        x_all = _binary_matrix(train)
        for s in np.unique(item_scene):
            items = np.flatnonzero(item_scene == s)
            knn = len(items) > max_items
            r = None if knn else float(reg if isinstance(reg, int | float) else reg[int(s)] if s >= 0 else reg[0])
            if knn:
                self.knn_scenes.append(int(s))
            key = (int(s), r)
            if cache is None or key not in cache:
                weights = self._scene_weights(x_all, items, r, top_k)
                if cache is not None:
                    cache[key] = weights
            else:
                weights = cache[key]
            rows.append(weights[0])
            cols.append(weights[1])
            vals.append(weights[2])
        self._set_weights(rows, cols, vals)

    @classmethod
    def _scene_weights(cls, x_all: Any, items: np.ndarray, reg: float | None, top_k: int) -> Weights:
        """One scene's pruned weights (source items, target items, values): EASE with ``reg``, or the item-kNN
        cosine when ``reg`` is None."""
        x = x_all[:, items]
        if reg is None:
            log.info("item-item channel: a scene of %d items by item kNN (too many for EASE)", len(items))
            count = np.maximum(np.asarray(x_all.sum(0)).ravel().astype(np.float64), 1.0)
            return _knn_columns(x, items, x, items, count, 0.5, 0.5, top_k)
        b = cls.ease_from_gram((x.T @ x).toarray().astype(np.float64), reg)
        k = min(top_k, len(items))
        if k < len(items):
            # keep the k largest |weights| of each column j (the weights that score item j)
            part = np.argpartition(-np.abs(b), k - 1, axis=0)[:k]
            src = part.reshape(-1)
            dst = np.tile(np.arange(len(items)), k)
        else:
            src, dst = (a.reshape(-1) for a in np.indices(b.shape))
        w = b[src, dst]
        nz = w != 0
        return items[src[nz]], items[dst[nz]], w[nz]

    def fit_knn(
        self,
        train: CSR,
        item_scene: np.ndarray,
        *,
        top_k: int = 256,
        alpha: float | Sequence[float] = 0.5,
        beta: float | Sequence[float] = 0.5,
    ) -> None:
        """Item-kNN weights instead of EASE: ``B[i, j] = |U_i & U_j| / (|U_i|^alpha |U_j|^beta)`` over the binary
        item columns of the training pairs (the diagonal left out), the ``top_k`` largest per target item ``j``, then
        divided by the largest weight into the target item's scene (the fusion weight sets the scale).

        ``alpha = beta = 0.5`` is the cosine; ``alpha > beta`` the asymmetric cosine (Aiolli, 2013): a smaller
        ``beta`` normalises popular target items less, so popularity enters the scores, which is what users
        with little history in the scene need; ``alpha = beta = 0`` counts co-occurrences. ``alpha`` and ``beta``
        are one value or a sequence indexed by the target item's scene (like :meth:`fit`'s ``reg``).
        Unlike EASE the weights connect items of any scene to ``j`` (so a history in one scene scores another), and
        no scene is too large: the work is one sparse product per scene."""
        x = _binary_matrix(train)
        count = np.maximum(np.asarray(x.sum(0)).ravel().astype(np.float64), 1.0)
        everything = np.arange(train.shape[1])
        rows, cols, vals = [], [], []
        self.skipped_scenes, self.knn_scenes = [], []
        for s in np.unique(item_scene):
            a, b = (float(e if isinstance(e, int | float) else e[max(int(s), 0)]) for e in (alpha, beta))
            items = np.flatnonzero(item_scene == s)
            src, dst, weight = _knn_columns(x, everything, x[:, items], items, count, a, b, top_k)
            rows.append(src)
            cols.append(dst)
            vals.append(weight)
        self._set_weights(rows, cols, vals)

    def _set_weights(self, rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray]) -> None:
        """Replace the weight buffers by the concatenated (row, column, value) parts."""
        self.rows = torch.from_numpy(np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)).long()
        self.cols = torch.from_numpy(np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)).long()
        self.vals = torch.from_numpy(np.concatenate(vals) if vals else np.zeros(0)).float()
        self._matrix_t = None
        self._matrix_sp = None

    def scores(self, x: Tensor) -> Tensor:
        """``x @ B`` for dense user rows ``x`` (b, I) -> (b, I)."""
        if self.nnz == 0:
            return x.new_zeros(x.shape)
        # (B^T x^T)^T: sparse CSR @ dense is the fast direction.
        return (self.transposed() @ x.t()).t()

    def rows_scores(self, local: np.ndarray, cols: np.ndarray, b: int) -> Tensor:
        """``x @ B`` (b, I) float32 for the 0/1 user rows ``x`` given by their ones (row ``local``, column ``cols``),
        as :meth:`scores` of the dense rows, but from a sparse product with the history's rows of ``B`` only: its
        cost is the histories' neighbours, not ``nnz(B) x b``, and no dense (b, I) input is made."""
        if self.nnz == 0:
            return torch.zeros(b, self.num_items)
        return torch.from_numpy(np.asarray(self.product(local, cols, b).toarray(), dtype=np.float32))

    def columns(self, local: np.ndarray, cols: np.ndarray, b: int, items: np.ndarray) -> np.ndarray:
        """``(x @ B)[:, items]`` (b, n) float32 for the 0/1 user rows ``x`` given by their ones (row ``local``,
        column ``cols``): a sparse product with the history's rows of ``B`` only (for a few ``items``, its columns
        are selected before it is made dense)."""
        if self.nnz == 0:
            return np.zeros((b, len(items)), dtype=np.float32)
        product = self.product(local, cols, b)
        if 8 * len(items) < self.num_items:  # a few columns (candidates): select them in the sparse matrix
            return np.asarray(product[:, items].toarray(), dtype=np.float32)
        return np.asarray(product.toarray()[:, items], dtype=np.float32)

    def product(self, local: np.ndarray, cols: np.ndarray, b: int) -> Any:
        """``x @ B`` as a scipy CSR matrix (b, I) for the 0/1 user rows ``x`` given by their ones (row ``local``,
        column ``cols``): its stored entries are the items the history reaches through ``B``."""
        import scipy.sparse as sp

        key = (self.vals.data_ptr(), self.vals._version, self.nnz)
        cached = self._matrix_sp
        if cached is None or cached[0] != key:
            shape = (self.num_items, self.num_items)
            matrix = sp.csr_matrix((self.vals.cpu().numpy(), (self.rows.cpu().numpy(), self.cols.cpu().numpy())), shape)
            cached = self._matrix_sp = (key, matrix)
        indptr = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(np.bincount(local, minlength=b), out=indptr[1:])
        order = np.argsort(local, kind="stable")
        x = sp.csr_matrix((np.ones(len(local), dtype=np.float32), cols[order], indptr), shape=(b, self.num_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        return x @ cached[1]

    def transposed(self) -> Tensor:
        """``B^T`` as a sparse CSR tensor (I, I), cached until the weights change."""
        cached = self._matrix_t
        if cached is None or cached.device != self.vals.device or cached.values().numel() != self.nnz:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                coo = torch.sparse_coo_tensor(
                    torch.stack([self.cols, self.rows]),
                    self.vals,
                    (self.num_items, self.num_items),
                    check_invariants=False,
                ).coalesce()
                cached = coo.to_sparse_csr()
            self._matrix_t = cached
        return cached


class ItemItemFusion(ModelWrapper):
    """``base`` plus the item-item channel: scores ``base.score(u) + lambda_{scene(i)} * (x_u @ B)[:, i]``.

    Args:
        base: the recommender (trained here or before; its parameters are the only trainable ones).
        inputs: the :class:`GraphInputs` ``base`` is trained on: ``inputs.train`` gives the users' rows ``x_u``,
            ``inputs.item_scene`` and ``inputs.num_scenes`` the per-scene weights.
        kind: ``"ease"`` or ``"knn"``, the weights :func:`tune_item_item` fits.
        nnz: size of the weight buffers (set when loading a saved model).

    Everything else (representations, new items, new users' vectors) is the base model's. ``fusion`` holds the
    weights ``lambda_s`` (0 until tuned, and after :meth:`reset_parameters`), so training the wrapper trains
    ``base`` exactly as on its own.
    """

    item_scene_t: Tensor
    fusion: Tensor

    def __init__(self, base: Recommender, inputs: GraphInputs, *, kind: str = "ease", nnz: int = 0) -> None:
        if kind not in ITEM_ITEM_KINDS:
            raise ValueError(f"item-item kind must be one of {', '.join(ITEM_ITEM_KINDS)}, not {kind!r}")
        if (inputs.num_users, inputs.num_items) != (base.num_users, base.num_items):
            raise ValueError(
                f"inputs have {inputs.num_users} users x {inputs.num_items} items, the model "
                f"{base.num_users} x {base.num_items}"
            )
        super().__init__(base)
        self.kind = kind
        self.channel = ItemItem(self.num_items, nnz)
        self.register_buffer("item_scene_t", torch.as_tensor(inputs.item_scene, dtype=torch.long), persistent=False)
        self.register_buffer("fusion", torch.zeros(max(int(inputs.num_scenes), 1)))
        self._train = inputs.train

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, **hparams: Any) -> ItemItemFusion:
        """Not built alone: wrap a model (``ItemItemFusion(base, inputs, kind=...)``)."""
        raise TypeError("ItemItemFusion wraps a model: ItemItemFusion(base, inputs, kind=...)")

    def hyperparameters(self) -> dict[str, Any]:
        """``kind``, ``nnz`` (the weights' current size) and the wrapped model's (``base``: class, sizes and its
        own constructor arguments)."""
        base = {"class": type(self.base).__name__, "num_users": self.base.num_users, "num_items": self.base.num_items}
        return {"kind": self.kind, "nnz": self.channel.nnz, "base": {**base, **self.base.hyperparameters()}}

    def reset_parameters(self) -> None:
        """The base model's initialisation; the fusion weights 0 (the channel off)."""
        self.base.reset_parameters()
        self.fusion.zero_()

    # ------------------------------------------------------------------ scoring
    def channel_scores(self, users: Tensor) -> Tensor:
        """The channel alone, ``x_u @ B`` (b, I) float32 on the CPU, for the training rows of ``users`` (b,)
        (:meth:`ItemItem.rows_scores`: a sparse product, no dense (b, I) input)."""
        local, cols = self._train.select(users.cpu().numpy())
        return self.channel.rows_scores(local, cols, users.numel())

    def _item_weights(self, items: Tensor | None = None) -> Tensor:
        """``lambda_{scene(i)}`` of every item (I,), or of ``items`` (n,); items without a scene read scene 0's."""
        scene = self.item_scene_t if items is None else self.item_scene_t[items.to(self.item_scene_t.device)]
        return torch.where(scene >= 0, self.fusion[scene.clamp_min(0)], self.fusion[0])

    def _fused_term(self, scores: Tensor, items: Tensor | None = None) -> Tensor:
        """``lambda_{scene(i)} * scores[:, i]``: the channel's scores (b, I), or (b, n) of ``items``, weighted per
        item scene."""
        return scores * self._item_weights(items).to(scores).unsqueeze(0)

    def train_rows(self, users: Tensor, device: torch.device | None = None) -> Tensor:
        """Dense 0/1 rows (b, I) of the training items of ``users`` (b,): the channel's input."""
        device = device or users.device
        local, cols = self._train.select(users.cpu().numpy())
        x = torch.zeros(users.numel(), self.num_items, device=device)
        x[torch.from_numpy(local).to(device), torch.from_numpy(cols).to(device)] = 1.0
        return x

    @staticmethod
    def _history_pairs(histories: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """The ones of the 0/1 rows of ``histories`` (item index tensors) as (row, item) arrays."""
        lengths = [int(h.numel()) for h in histories]
        local = np.repeat(np.arange(len(histories), dtype=np.int64), lengths)
        cols = torch.cat([h.cpu().long() for h in histories]).numpy() if histories else np.zeros(0, np.int64)
        return local, cols

    @property
    def active(self) -> bool:
        """Whether the channel adds anything (weights fitted and a non-zero fusion weight)."""
        return self.channel.nnz > 0 and bool((self.fusion != 0).any())

    def item_item_scores(self, x: Tensor) -> Tensor:
        """The fused item-item term ``lambda_{scene(i)} * (x @ B)[:, i]`` for dense history rows ``x`` (b, I)."""
        if not self.active:
            return x.new_zeros(x.shape)
        return self._fused_term(self.channel.scores(x))

    def score(self, users: Tensor, user_emb: Tensor | None = None, item_emb: Tensor | None = None) -> Tensor:
        """The base model's scores (b, I) plus the fused item-item term of the users' training rows."""
        if user_emb is None or item_emb is None:
            user_emb, item_emb = self.forward()
        base = self.base.score(users, user_emb, item_emb)
        if not self.active:
            return base
        return base + self._fused_term(self.channel_scores(users).to(base.device))

    def score_items(
        self, users: Tensor, items: Tensor, user_emb: Tensor, item_emb: Tensor, items_emb: Tensor | None = None
    ) -> Tensor:
        """The base model's scores of ``items`` plus the fused item-item term of those columns only, from the
        users' sparse training rows (no dense (b, I) row)."""
        base = self.base.score_items(users, items, user_emb, item_emb, items_emb)
        if not self.active:
            return base
        local, cols = self._train.select(users.cpu().numpy())
        cols_of = items.cpu().numpy()
        term = torch.from_numpy(self.channel.columns(local, cols, users.numel(), cols_of)).to(base)
        return base + self._fused_term(term, items)

    def extra_candidates(self, users: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """The items the item-item term scores for ``users`` (b,): those the training rows reach through ``B`` in
        scenes with a non-zero fusion weight, as (position in ``users``, item) pairs; None when the channel is off."""
        if not self.active:
            return None
        local, cols = self._train.select(users.cpu().numpy())
        return self._reached(local, cols, users.numel())

    def history_extra_candidates(self, histories: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`extra_candidates` of new users given by their histories (the rows of :meth:`score_histories`)."""
        if not self.active:
            return None
        return self._reached(*self._history_pairs(histories), len(histories))

    def _reached(self, local: np.ndarray, cols: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) pairs of the stored entries of ``x @ B`` (rows given by their ones ``local``, ``cols``) whose
        item's scene has a non-zero fusion weight."""
        reached = self.channel.product(local, cols, b).tocoo()
        rows, items = reached.row.astype(np.int64), reached.col.astype(np.int64)
        keep = (self._item_weights(torch.from_numpy(items)) != 0).cpu().numpy()
        return rows[keep], items[keep]

    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users: the base model's scores of their histories plus the item-item term of those histories."""
        base = self.base.score_histories(histories, user_emb, item_emb)
        if not self.active or not len(histories):
            return base
        term = self.channel.rows_scores(*self._history_pairs(histories), len(histories))
        return base + self._fused_term(term.to(base.device))

    def __deepcopy__(self, memo: dict[int, Any]) -> ItemItemFusion:
        """A deep copy (sparse CSR tensors cannot be deep-copied by ``copy.deepcopy`` itself)."""
        cached = self.channel._matrix_t
        return deepcopy_with_sparse(self, memo, [cached] if cached is not None else [])

    def extra_repr(self) -> str:
        return f"kind={self.kind}, nnz={self.channel.nnz}, fusion={[round(float(w), 3) for w in self.fusion]}"


@dataclass
class ItemItemReport:
    """What :func:`tune_item_item` chose per scene index: ``reg`` (EASE's L2; 0 for item kNN), ``alpha`` and
    ``beta`` (item kNN's exponents; absent for EASE), ``weight`` (the fusion weight, 0: the channel is off for that
    scene), the validation NDCG of the graph model alone (``base``), of the item-item weights alone (``item_item``)
    and fused (``fused``); ``skipped``: scenes without weights; ``knn_scenes``: the scenes of an EASE channel too
    large for EASE, which got the within-scene item kNN (:meth:`ItemItem.fit`)."""

    scenes: dict[int, dict[str, float]] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    knn_scenes: list[int] = field(default_factory=list)
    seconds: float = 0.0


#: Item-kNN exponents ``(alpha, beta)`` that :func:`tune_item_item` tries (:meth:`ItemItem.fit_knn`): the cosine,
#: asymmetric cosines that normalise popular target items less, and plain co-occurrence counts.
KNN_EXPONENTS: tuple[tuple[float, float], ...] = (
    (0.5, 0.5),
    (0.5, 0.25),
    (0.25, 0.25),
    (0.5, 0.0),
    (0.25, 0.0),
    (0.0, 0.0),
)


class _SceneScores:
    """One scene's validation users' scores for :func:`tune_item_item`'s item-kNN choice: the graph model's
    (``base_fn``) and the channel's (:meth:`set_channel`, once per fit). When both fit in ``budget`` bytes they are
    kept as (users, scene items) float32 matrices, so that each fusion weight is a dense sum rather than a new sparse
    product; otherwise every call recomputes them (the same values)."""

    def __init__(
        self,
        valid: CSR,
        items: np.ndarray,
        n_items: int,
        budget: int,
        base_fn: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self.users = np.unique(valid.rows()[np.isin(valid.indices, items)])
        self.items = torch.as_tensor(items, dtype=torch.long)
        self.n_items = n_items
        self.row = np.full(valid.shape[0], -1, dtype=np.int64)
        self.row[self.users] = np.arange(len(self.users))
        self.cached = 2 * 4 * len(self.users) * len(items) <= budget
        self.base_fn = base_fn
        self.channel_fn = base_fn
        self.base = self._collect(base_fn) if self.cached else None
        self.channel: torch.Tensor | None = None

    def _collect(self, score_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        batch = block_rows(self.n_items)  # (batch, n_items) blocks, as evaluate_scores scores them
        parts = [torch.zeros(0, len(self.items))]
        for start in range(0, len(self.users), batch):
            u = torch.as_tensor(self.users[start : start + batch], dtype=torch.long)
            parts.append(score_fn(u).detach().float().cpu().index_select(1, self.items))
        return torch.cat(parts)

    def set_channel(self, channel_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.channel_fn = channel_fn
        self.channel = self._collect(channel_fn) if self.cached else None

    def _part(
        self, kept: torch.Tensor | None, score_fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor
    ) -> torch.Tensor:
        """(b, n_items) scores of ``u``: the kept rows on the scene's items (0 elsewhere), or recomputed."""
        if kept is None:
            return score_fn(u)
        out = torch.zeros(len(u), self.n_items)
        out[:, self.items] = kept[torch.as_tensor(self.row[u.cpu().numpy()])]
        return out

    def score_fn(self, with_base: bool, weight: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """Scores ``base + weight * channel`` (without ``base`` when ``with_base`` is false; no channel at 0)."""

        def score(u: torch.Tensor) -> torch.Tensor:
            out = self._part(self.base, self.base_fn, u) if with_base else torch.zeros(len(u), self.n_items)
            if weight:
                out = out + self._part(self.channel, self.channel_fn, u) * weight
            return out

        return score


def tune_item_item(
    model: Recommender,
    train: CSR,
    valid: CSR,
    item_scene: np.ndarray | None = None,
    *,
    regs: tuple[float, ...] = (100.0, 250.0, 500.0, 1000.0),
    exponents: tuple[tuple[float, float], ...] = KNN_EXPONENTS,
    weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0),
    k: int = 10,
    top_k: int = 256,
    knn_top_k: int = 1024,
    max_items: int = EASE_MAX_ITEMS,
    cache_bytes: int = 1 << 30,
    progress: Callable[[int, int], None] | None = None,
) -> ItemItemReport:
    """Fit the item-item channel of ``model`` (an :class:`ItemItemFusion` around a trained model) and choose its
    settings per scene on the validation pairs (NDCG@``k``, full ranking within the scene); the wrapped model itself
    is not changed.

    * EASE (``kind="ease"``): ``reg`` among ``regs`` by the channel alone, then the fusion weight among
      ``weights`` (0 keeps the graph model alone).
    * item kNN (``kind="knn"``, :meth:`ItemItem.fit_knn`, weights across scenes, the ``knn_top_k``
      largest per item: the forms that let popularity in need more neighbours than EASE's ``top_k``): the exponents
      among ``exponents`` and the fusion weight together, by the fused NDCG (``regs`` unused).

    Any other model is left as it is (an empty report). ``progress(done, total)`` is called after
    each fit of the weights (on a large catalogue each takes seconds, and every one is evaluated on all weights).
    For item kNN, the validation users' graph-model and channel scores on each scene's items are computed once per
    fit and each fusion weight is a dense sum of the two, when both fit in ``cache_bytes``; otherwise every weight
    recomputes the scores (the same choice, more time).
    """
    t0 = time.perf_counter()
    report = ItemItemReport()
    if not isinstance(model, ItemItemFusion):
        return report
    channel = model.channel
    n_items = train.shape[1]
    scene = np.zeros(n_items, dtype=np.int64) if item_scene is None else np.asarray(item_scene, dtype=np.int64)
    groups = [int(g) for g in np.unique(scene)]
    candidates = {g: np.flatnonzero(scene == g) for g in groups}
    monitor = f"ndcg@{k}"
    if 0.0 not in weights:
        weights = (0.0, *weights)

    def scene_ndcg(score_fn: Callable[[torch.Tensor], torch.Tensor], g: int) -> float:
        has = np.isin(valid.indices, candidates[g])
        if not has.any():
            return 0.0
        return evaluate_scores(score_fn, train, valid, ks=(k,), candidate_items=candidates[g])[monitor]

    fusion_index = {g: max(g, 0) for g in groups}
    n_fusion = max(groups) + 1 if max(groups) >= 0 else 1

    def per_scene(values: dict[int, float], default: float) -> list[float]:
        """A value per scene index as the fitters read it (items without a scene read index 0)."""
        out = [default] * n_fusion
        for g, v in values.items():
            out[fusion_index[g]] = v
        return out

    model.eval()
    with torch.no_grad():
        if model.kind == "knn":
            model.fusion.zero_()  # the graph model alone; fused scores are summed by _SceneScores
            user_emb, item_emb = model()
            scores = {
                g: _SceneScores(
                    valid, candidates[g], n_items, cache_bytes, lambda u: model.score(u, user_emb, item_emb)
                )
                for g in groups
            }
            base = {g: scene_ndcg(scores[g].score_fn(True, 0.0), g) for g in groups}
            # per scene: (fused NDCG, weight, exponents, channel-alone NDCG)
            best: dict[int, tuple[float, float, tuple[float, float], float]] = {}
            for step, pair in enumerate(exponents):
                if progress is not None:
                    progress(step, len(exponents))
                channel.fit_knn(train, scene, top_k=knn_top_k, alpha=pair[0], beta=pair[1])

                def channel_fn(u: torch.Tensor) -> torch.Tensor:
                    return model.channel_scores(u)

                for g in groups:
                    scores[g].set_channel(channel_fn)
                    alone = scene_ndcg(scores[g].score_fn(False, 1.0), g)
                    for w in weights:
                        value = base[g] if w == 0.0 else scene_ndcg(scores[g].score_fn(True, w), g)
                        if g not in best or value > best[g][0]:
                            best[g] = (value, w, pair, alone)
            alphas = {g: best[g][2][0] for g in best}
            betas = {g: best[g][2][1] for g in best}
            channel.fit_knn(train, scene, top_k=knn_top_k, alpha=per_scene(alphas, 0.5), beta=per_scene(betas, 0.5))
            if progress is not None:
                progress(len(exponents), len(exponents))
            model.fusion.zero_()
            for g, (value, w, pair, alone) in best.items():
                model.fusion[fusion_index[g]] = w
                report.scenes[g] = {
                    "reg": 0.0,
                    "alpha": pair[0],
                    "beta": pair[1],
                    "weight": w,
                    "base": base[g],
                    "item_item": alone,
                    "fused": value,
                }
            report.seconds = time.perf_counter() - t0
            log.info("item-item channel: %s (%.1f s)", report.scenes, report.seconds)
            return report

        best_reg: dict[int, tuple[float, float]] = {}
        fitted: dict[tuple[int, float | None], Weights] = {}  # each scene's weights per reg, for the refit below
        for step, reg in enumerate(regs):
            if progress is not None:
                progress(step, len(regs) + 1)
            channel.fit(train, scene, reg, top_k=top_k, max_items=max_items, cache=fitted)
            for g in groups:
                if g in channel.skipped_scenes or (g in best_reg and g in channel.knn_scenes):
                    continue  # no weights, or item kNN: the same weights whatever the reg
                value = scene_ndcg(model.channel_scores, g)
                if g not in best_reg or value > best_reg[g][1]:
                    best_reg[g] = (reg, value)
        report.skipped = sorted(set(groups) - set(best_reg))
        report.knn_scenes = list(channel.knn_scenes)
        if not best_reg:  # no reg tried: an empty channel
            channel._set_weights([], [], [])
            model.fusion.zero_()
            report.seconds = time.perf_counter() - t0
            return report
        if progress is not None:
            progress(len(regs), len(regs) + 1)
        chosen = per_scene({g: r for g, (r, _) in best_reg.items()}, regs[0])
        channel.fit(train, scene, chosen, top_k=top_k, max_items=max_items, cache=fitted)
        fitted.clear()
        user_emb, item_emb = model()
        results: dict[int, dict[float, float]] = {g: {} for g in best_reg}
        for w in weights:
            model.fusion.fill_(w)
            for g in best_reg:
                results[g][w] = scene_ndcg(lambda u: model.score(u, user_emb, item_emb), g)
        model.fusion.zero_()
        for g in best_reg:
            w_best = max(weights, key=lambda w: (results[g][w], -w))
            model.fusion[fusion_index[g]] = w_best
            report.scenes[g] = {
                "reg": best_reg[g][0],
                "weight": w_best,
                "base": results[g].get(0.0, float("nan")),
                "item_item": best_reg[g][1],
                "fused": results[g][w_best],
            }
        if progress is not None:
            progress(len(regs) + 1, len(regs) + 1)
    report.seconds = time.perf_counter() - t0
    log.info("item-item channel: %s (%.1f s)", report.scenes, report.seconds)
    return report
