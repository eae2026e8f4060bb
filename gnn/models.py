"""Collaborative-filtering recommenders on the user–item graph: a popularity baseline, BPR-MF and LightGCN.

Every model is a :class:`Recommender`: ``forward()`` gives the final user (U, d) and item (I, d) representations,
``score(users)`` their dot products (b, I) for full ranking, ``regularized(users, pos, neg)`` the L2 penalty of the
batch's layer-0 embeddings for the BPR objective. Hyper-parameters are typed constructor arguments, in the style of
PyG's ``torch_geometric.nn.models.LightGCN``; each model records its own (:meth:`Recommender.hyperparameters`) and
is built again from them and the graph by :meth:`Recommender.from_inputs` (what loading a saved model does).

Initialisation follows RecBole: BPR-MF embeddings ``xavier_normal_``, LightGCN embeddings ``xavier_uniform_`` (each
embedding table on its own, so the scale depends on its number of rows).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from scenerec.gnn.propagation import normalized_adjacency, propagate

if TYPE_CHECKING:
    from scenerec.gnn.data import CSR, GraphInputs

__all__ = [
    "BPRMF",
    "LightGCN",
    "ModelWrapper",
    "MostPopular",
    "Recommender",
    "deepcopy_with_sparse",
    "training_adjacency",
]

M = TypeVar("M", bound=torch.nn.Module)


def _l2_of_batch(
    user_emb: torch.nn.Embedding, item_emb: torch.nn.Embedding, users: Tensor, pos: Tensor, neg: Tensor
) -> Tensor:
    """``0.5 * (|e_u|^2 + |e_p|^2 + |e_n|^2) / batch`` of the rows ``users`` (b,), ``pos`` (b,), ``neg`` (b,) or (b, k)."""
    e_u, e_p, e_n = user_emb(users), item_emb(pos), item_emb(neg)
    return 0.5 * (e_u.pow(2).sum() + e_p.pow(2).sum() + e_n.pow(2).sum()) / max(users.numel(), 1)


def deepcopy_with_sparse(module: M, memo: dict[int, Any], sparse: Sequence[Tensor]) -> M:
    """A deep copy of ``module`` whose ``sparse`` tensors (which ``copy.deepcopy`` cannot copy) are cloned."""
    for t in sparse:
        memo[id(t)] = t.clone()
    new = module.__class__.__new__(module.__class__)
    memo[id(module)] = new
    for key, value in module.__dict__.items():
        new.__dict__[key] = copy.deepcopy(value, memo)
    return new


class Recommender(torch.nn.Module):
    """Base class: subclasses set ``num_users`` / ``num_items``, implement :meth:`forward` and
    :meth:`from_inputs`, and record their constructor arguments in ``self._hparams``."""

    num_users: int
    num_items: int

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        if num_users < 0 or num_items < 0:
            raise ValueError(f"num_users and num_items must be >= 0, got {num_users} and {num_items}")
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self._hparams: dict[str, Any] = {}

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, **hparams: Any) -> Recommender:
        """A new (untrained) model of this class for the graph ``inputs``, with the constructor arguments
        ``hparams`` (those :meth:`hyperparameters` recorded): how a saved model is built again before its weights
        are loaded."""
        raise NotImplementedError(f"{cls.__name__} does not implement from_inputs")

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments this model was built with (besides the graph and its sizes), JSON-serialisable:
        ``type(model).from_inputs(inputs, **model.hyperparameters())`` builds the same model."""
        return dict(self._hparams)

    def forward(self) -> tuple[Tensor, Tensor]:
        """The final user (U, d) and item (I, d) representations."""
        raise NotImplementedError

    def score(self, users: Tensor, user_emb: Tensor | None = None, item_emb: Tensor | None = None) -> Tensor:
        """Scores (b, I) of every item for ``users`` (b,), the dot products of their representations.

        ``user_emb`` (U, d) and ``item_emb`` (I, d): the output of :meth:`forward`, computed here when either is
        missing (pass them to score many batches from one forward pass).
        """
        if user_emb is None or item_emb is None:
            user_emb, item_emb = self.forward()
        return user_emb[users] @ item_emb.t()

    def score_items(
        self, users: Tensor, items: Tensor, user_emb: Tensor, item_emb: Tensor, items_emb: Tensor | None = None
    ) -> Tensor:
        """Scores (b, n) of the items ``items`` (n,) for ``users`` (b,): the columns ``items`` of :meth:`score`
        (equal up to float rounding), without scoring the other items where the model can.

        ``user_emb`` and ``item_emb``: the output of :meth:`forward`; ``items_emb``: ``item_emb[items]`` when the
        caller keeps it (serving the items of one scene many times). Here: the dot products with those rows only.
        """
        rows = item_emb[items] if items_emb is None else items_emb
        return user_emb[users] @ rows.t()

    def extra_candidates(self, users: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """Items whose scores for ``users`` (b,) hold more than the dot product of their :meth:`forward` rows, as
        (position in ``users``, item) pairs (two int64 arrays); None when every score is that dot product (here).

        An index over the item representations finds the best items by dot product; a caller ranking with such an
        index scores these items too (e.g. the item-item channel of :class:`~scenerec.gnn.ItemItemFusion`)."""
        return None

    def history_extra_candidates(self, histories: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`extra_candidates` of b new users given by their histories (as in :meth:`score_histories`), whose
        vectors are :meth:`history_vectors`; None here."""
        return None

    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Scores (b, I) of every item for b users the model has never seen, each given only by the item indices of
        its history (a 1-d LongTensor per user): inductive inference, no retraining.

        Default: the user's vector is the mean of its history's item representations ``item_emb`` (I, d) (one
        propagation step from the items to a new user node); an empty history scores every item 0.
        ``user_emb`` is the output of :meth:`forward` (unused here, but models may use it).
        """
        return self.history_vectors(histories, user_emb, item_emb) @ item_emb.t()

    def history_vectors(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """The vectors (b, d) :meth:`score_histories` gives b new users (in the space of ``user_emb``), so that
        items the model never saw can be scored for them too. Default: the mean of the history's item vectors."""
        rows = []
        for items in histories:
            items = items.to(item_emb.device).long()
            rows.append(item_emb[items].mean(0) if items.numel() else item_emb.new_zeros(item_emb.shape[1]))
        return torch.stack(rows) if rows else item_emb.new_zeros(0, item_emb.shape[1])

    @property
    def encodes_text(self) -> bool:
        """Whether :meth:`encode_new_items` can represent a new item from its text embedding (False here)."""
        return False

    def encode_new_items(self, text: Tensor, scene: Tensor) -> Tensor:
        """Scoring vectors (n, d) of items added after training, from their text embeddings ``text`` (n, t) and
        scenes ``scene`` (n,), without retraining; only models with :attr:`encodes_text` can."""
        raise ValueError(f"{type(self).__name__} cannot represent an item from its text alone")

    def item_representations(self) -> Tensor | None:
        """Item vectors (I, d) in one space for all scenes, for item-item similarity, when the model's scoring
        vectors are not (e.g. per-scene blocks); None: compare the scoring vectors of :meth:`forward`."""
        return None

    def reset_parameters(self) -> None:
        """Re-initialises all trainable parameters (none in the base class)."""

    def regularized(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """L2 penalty ``0.5 * (|e_u|^2 + |e_p|^2 + |e_n|^2) / batch`` of the layer-0 embeddings of a BPR batch:
        ``users`` (b,), ``pos`` (b,), ``neg`` (b,) or (b, k) -> scalar. Zero for models without embeddings."""
        return torch.zeros((), device=users.device)


class MostPopular(Recommender):
    """Popularity baseline: every user gets the same scores, the training interaction counts of the items.

    ``item_counts``: (I,) counts (or any popularity measure). ``num_users`` only sizes :meth:`forward`'s user output.
    No trainable parameters.
    """

    item_counts: Tensor

    def __init__(self, item_counts: Tensor, num_users: int = 0) -> None:
        if item_counts.dim() != 1:
            raise ValueError(f"item_counts must have shape (num_items,), got {tuple(item_counts.shape)}")
        super().__init__(num_users, item_counts.numel())
        self.register_buffer("item_counts", item_counts.detach().clone().float())

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, **hparams: Any) -> MostPopular:
        """The training interaction counts of ``inputs.train``'s items (no hyper-parameters)."""
        return cls.from_train(inputs.train, **hparams)

    @classmethod
    def from_train(cls, train: CSR) -> MostPopular:
        """The popularity of the items of the training pairs ``train``: their interaction counts."""
        counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
        return cls(torch.from_numpy(counts), num_users=train.shape[0])

    def forward(self) -> tuple[Tensor, Tensor]:
        """Users: ones (U, 1); items: their counts (I, 1); so the dot product is the item count."""
        ones = torch.ones(self.num_users, 1, device=self.item_counts.device)
        return ones, self.item_counts.unsqueeze(1)

    def score(self, users: Tensor, user_emb: Tensor | None = None, item_emb: Tensor | None = None) -> Tensor:
        """The counts (b, I), one row per user of ``users`` (b,); ``user_emb`` is not needed."""
        counts = self.item_counts if item_emb is None else item_emb[:, 0]
        return counts.unsqueeze(0).expand(users.numel(), -1)

    def score_items(
        self, users: Tensor, items: Tensor, user_emb: Tensor, item_emb: Tensor, items_emb: Tensor | None = None
    ) -> Tensor:
        """The counts of ``items`` (b, n), one row per user of ``users`` (b,)."""
        rows = item_emb[items] if items_emb is None else items_emb
        return rows[:, 0].unsqueeze(0).expand(users.numel(), -1)

    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """The counts (b, I) for every new user, whatever its history."""
        return item_emb[:, 0].unsqueeze(0).expand(len(histories), -1)

    def history_vectors(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Ones (b, 1): every user's score of an item is its count."""
        return item_emb.new_ones(len(histories), 1)


class BPRMF(Recommender):
    """Matrix factorisation (BPR-MF): scores are dot products of user and item embeddings (dim d).

    Embeddings are initialised with ``xavier_normal_`` as in RecBole's ``BPR``.
    """

    def __init__(self, num_users: int, num_items: int, dim: int = 64) -> None:
        super().__init__(num_users, num_items)
        self.dim = dim
        self._hparams = {"dim": int(dim)}
        self.user_embedding = torch.nn.Embedding(num_users, dim)
        self.item_embedding = torch.nn.Embedding(num_items, dim)
        self.reset_parameters()

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, **hparams: Any) -> BPRMF:
        """The graph's sizes with ``hparams`` (``dim``)."""
        return cls(inputs.num_users, inputs.num_items, **hparams)

    def reset_parameters(self) -> None:
        """``xavier_normal_`` on both embedding tables."""
        torch.nn.init.xavier_normal_(self.user_embedding.weight)
        torch.nn.init.xavier_normal_(self.item_embedding.weight)

    def forward(self) -> tuple[Tensor, Tensor]:
        """The embedding tables: users (U, d), items (I, d)."""
        return self.user_embedding.weight, self.item_embedding.weight

    def regularized(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """L2 penalty of the batch's embeddings, see :meth:`Recommender.regularized`."""
        return _l2_of_batch(self.user_embedding, self.item_embedding, users, pos, neg)


class LightGCN(Recommender):
    """LightGCN (He et al., 2020): ``e = sum_l alpha_l A^l e0`` over ``l = 0..L`` with ``A`` the symmetric normalised
    user–item adjacency; scores are dot products of the user and item parts of ``e``.

    Args:
        num_users: U.
        num_items: I.
        adj: (U + I, U + I) sparse CSR from :func:`scenerec.gnn.propagation.normalized_adjacency` (users first).
            Held as a non-persistent buffer: it moves with ``.to(device)`` but is not in the ``state_dict``.
        dim: embedding size d.
        num_layers: number of propagation steps L (0: plain matrix factorisation of the ego embeddings).
        alpha: L + 1 layer weights; ``1 / (L + 1)`` each (the mean) when omitted.

    Embeddings are initialised with ``xavier_uniform_`` as in RecBole's and PyG's ``LightGCN``.
    """

    adj: Tensor
    alpha: Tensor

    def __init__(
        self,
        num_users: int,
        num_items: int,
        adj: Tensor,
        dim: int = 64,
        num_layers: int = 2,
        alpha: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_users, num_items)
        n = num_users + num_items
        if adj.layout != torch.sparse_csr or tuple(adj.shape) != (n, n):
            raise ValueError(
                f"adj must be a sparse CSR tensor of shape ({n}, {n}), got {adj.layout} {tuple(adj.shape)}"
            )
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        weights = [1.0 / (num_layers + 1)] * (num_layers + 1) if alpha is None else [float(a) for a in alpha]
        if len(weights) != num_layers + 1:
            raise ValueError(f"alpha needs num_layers + 1 = {num_layers + 1} weights, got {len(weights)}")
        self.dim = dim
        self.num_layers = num_layers
        self._hparams = {"dim": int(dim), "num_layers": int(num_layers), "alpha": weights}
        self.register_buffer("adj", adj, persistent=False)
        self.register_buffer("alpha", torch.tensor(weights))
        self.user_embedding = torch.nn.Embedding(num_users, dim)
        self.item_embedding = torch.nn.Embedding(num_items, dim)
        self.reset_parameters()

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, **hparams: Any) -> LightGCN:
        """LightGCN over the normalised adjacency of the training pairs ``inputs.train`` (not the item links)."""
        return cls(inputs.num_users, inputs.num_items, training_adjacency(inputs.train), **hparams)

    def reset_parameters(self) -> None:
        """``xavier_uniform_`` on both embedding tables."""
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)

    def forward(self) -> tuple[Tensor, Tensor]:
        """Layer-weighted sum of the propagated embeddings, split into users (U, d) and items (I, d)."""
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = x * self.alpha[0]
        for layer in range(1, self.num_layers + 1):
            x = propagate(self.adj, x)
            out = out + x * self.alpha[layer]
        users, items = torch.split(out, [self.num_users, self.num_items])
        return users, items

    def __deepcopy__(self, memo: dict[int, Any]) -> LightGCN:
        """A deep copy; ``copy.deepcopy`` cannot copy a sparse CSR tensor itself, so ``adj`` is cloned explicitly."""
        return deepcopy_with_sparse(self, memo, [self.adj])

    def regularized(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """L2 penalty of the batch's layer-0 (ego) embeddings, see :meth:`Recommender.regularized`."""
        return _l2_of_batch(self.user_embedding, self.item_embedding, users, pos, neg)


def training_adjacency(train: CSR) -> Tensor:
    """The normalised symmetric user-item adjacency (CSR, users first) of the training pairs ``train``."""
    edge_index = torch.from_numpy(np.stack([train.rows(), train.indices]).astype(np.int64))
    return normalized_adjacency(edge_index, train.shape[0], train.shape[1])


class ModelWrapper(Recommender):
    """A recommender around another one (``base``) that changes some of its scoring: everything it does not
    override is the base model's (representations, new items, the shared item space, regularisation, parameters)."""

    def __init__(self, base: Recommender, num_users: int | None = None, num_items: int | None = None) -> None:
        super().__init__(
            base.num_users if num_users is None else num_users, base.num_items if num_items is None else num_items
        )
        self.base = base

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.base.forward()

    def regularized(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        return self.base.regularized(users, pos, neg)

    def score_items(
        self, users: Tensor, items: Tensor, user_emb: Tensor, item_emb: Tensor, items_emb: Tensor | None = None
    ) -> Tensor:
        """The columns ``items`` of this wrapper's :meth:`score` (a wrapper that can do better overrides this)."""
        return self.score(users, user_emb, item_emb)[:, items]

    def reset_parameters(self) -> None:
        self.base.reset_parameters()

    def extra_candidates(self, users: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        return self.base.extra_candidates(users)

    def history_extra_candidates(self, histories: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray] | None:
        return self.base.history_extra_candidates(histories)

    def history_vectors(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return self.base.history_vectors(histories, user_emb, item_emb)

    @property
    def encodes_text(self) -> bool:
        return self.base.encodes_text

    def encode_new_items(self, text: Tensor, scene: Tensor) -> Tensor:
        return self.base.encode_new_items(text, scene)

    def item_representations(self) -> Tensor | None:
        return self.base.item_representations()
