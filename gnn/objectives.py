"""Training objectives: one epoch of each loss :func:`scenerec.gnn.train.fit` offers, and their negative samplers.

* :class:`BPREpoch` (``loss="bpr"``): one negative per positive pair, drawn within the positive's scene.
* :class:`SoftmaxEpoch` (``loss="softmax"``): per (user, scene) row, the multinomial log-likelihood of the user's
  training items among ALL items of that scene. Exact, but a step scores every row against every item of its scene
  and re-runs the model's forward pass for every batch of rows: an epoch costs ``rows / batch x (edges + items) x d
  + rows x items-per-scene x d``, right for small catalogues only.
* :class:`SampledSoftmaxEpoch` (``loss="sampled_softmax"``): the same softmax with its denominator estimated from
  ``negatives`` items of the scene drawn per step (a mix of the item popularity and the uniform distribution, with
  the log-Q correction), large batches of rows and one forward pass per step, so an epoch costs
  ``rows x negatives x d + steps x (edges + items) x d``: linear in the interactions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from scenerec.gnn.data import CSR
from scenerec.gnn.models import Recommender

if TYPE_CHECKING:
    from scenerec.gnn.train import TrainConfig

__all__ = [
    "BPREpoch",
    "Epoch",
    "NegativeSampler",
    "RowEpoch",
    "SampledSoftmaxEpoch",
    "SoftmaxEpoch",
    "sample_negatives",
]


def _member(keys_sorted: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` (shape (m,)) is in the sorted array ``keys_sorted``; bool (m,)."""
    if len(keys_sorted) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.searchsorted(keys_sorted, keys)
    pos = np.minimum(pos, len(keys_sorted) - 1)
    return keys_sorted[pos] == keys


class NegativeSampler:
    """Draws one negative item per (user, positive item) pair, never one of the user's training items.

    ``train``: the training :class:`CSR` (users x items). ``item_scene``: optional int array (n_items,), the scene
    index of each item; then a negative is drawn uniformly among the items of the positive item's scene (items with a
    negative scene index draw from all items). Sampling is vectorised rejection: all pairs draw at once, the ones that
    hit a training item draw again, up to ``max_rounds`` times; pairs still unresolved (a user holding nearly all of
    a scene) fall back to a uniform draw among all the items the user has not trained on.
    """

    def __init__(self, train: CSR, item_scene: np.ndarray | None = None, max_rounds: int = 50) -> None:
        self.n_items = train.shape[1]
        self.train = train
        self.keys = train.rows() * self.n_items + train.indices  # sorted: rows ascending, columns sorted per row
        self.max_rounds = max_rounds
        self.item_scene: np.ndarray | None = None
        if item_scene is not None:
            scene = np.asarray(item_scene, dtype=np.int64)
            if scene.shape != (self.n_items,):
                raise ValueError(f"item_scene must have shape ({self.n_items},), got {scene.shape}")
            self.item_scene = scene
            order = np.argsort(scene, kind="stable")
            self.scene_sorted = order[scene[order] >= 0]  # items grouped by scene
            n_scenes = int(scene.max()) + 1 if (scene >= 0).any() else 0
            counts = np.bincount(scene[scene >= 0], minlength=n_scenes)
            self.scene_ptr = np.zeros(n_scenes + 1, dtype=np.int64)
            np.cumsum(counts, out=self.scene_ptr[1:])

    def _draw(self, pos: np.ndarray, generator: torch.Generator) -> np.ndarray:
        u = torch.rand(len(pos), generator=generator, dtype=torch.float64).numpy()
        if self.item_scene is None:
            return np.minimum((u * self.n_items).astype(np.int64), self.n_items - 1)
        scene = self.item_scene[pos]
        out = np.minimum((u * self.n_items).astype(np.int64), self.n_items - 1)
        own = scene >= 0
        s = scene[own]
        start, size = self.scene_ptr[s], self.scene_ptr[s + 1] - self.scene_ptr[s]
        offset = np.minimum((u[own] * size).astype(np.int64), size - 1)
        out[own] = self.scene_sorted[start + offset]
        return out

    def _fallback(self, users: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Uniform among the items each user has not trained on, one user at a time (rare)."""
        out = np.empty(len(users), dtype=np.int64)
        for j, user in enumerate(users):
            seen = self.train.indices[self.train.indptr[user] : self.train.indptr[user + 1]]
            free = np.setdiff1d(np.arange(self.n_items), seen, assume_unique=True)
            if len(free) == 0:
                raise ValueError(f"user {user} has trained on every item: no negative to sample")
            out[j] = free[int(torch.randint(len(free), (1,), generator=generator))]
        return out

    def sample(self, users: np.ndarray, pos: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Negatives for the pairs (``users``, ``pos``), int64 arrays of shape (m,) -> int64 (m,)."""
        users = np.asarray(users, dtype=np.int64)
        pos = np.asarray(pos, dtype=np.int64)
        neg = self._draw(pos, generator)
        todo = np.flatnonzero(_member(self.keys, users * self.n_items + neg))
        for _ in range(self.max_rounds):
            if len(todo) == 0:
                return neg
            neg[todo] = self._draw(pos[todo], generator)
            todo = todo[_member(self.keys, users[todo] * self.n_items + neg[todo])]
        if len(todo):
            neg[todo] = self._fallback(users[todo], generator)
        return neg


def sample_negatives(
    train: CSR,
    users: np.ndarray,
    pos: np.ndarray,
    generator: torch.Generator,
    item_scene: np.ndarray | None = None,
) -> np.ndarray:
    """One negative per pair (``users``, ``pos``): see :class:`NegativeSampler` (build one to sample repeatedly)."""
    return NegativeSampler(train, item_scene).sample(users, pos, generator)


def _scenes(item_scene: np.ndarray | None, n_items: int) -> np.ndarray:
    """``item_scene`` as int64 (every item in scene 0 when None), checked to have one entry per item."""
    scene = np.zeros(n_items, dtype=np.int64) if item_scene is None else np.asarray(item_scene, dtype=np.int64)
    if scene.shape != (n_items,):
        raise ValueError(f"item_scene must have shape ({n_items},), got {scene.shape}")
    return scene


class Epoch:
    """One training pass: ``epoch(generator) -> mean loss``; subclasses implement ``__call__``."""

    def __init__(
        self,
        model: Recommender,
        train: CSR,
        item_scene: np.ndarray | None,
        config: TrainConfig,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
    ) -> None:
        self.model, self.config, self.optimizer, self.device = model, config, optimizer, device
        self.train = train
        self.setup(item_scene)

    def setup(self, item_scene: np.ndarray | None) -> None:
        """Precompute what every epoch needs."""

    def __call__(self, generator: torch.Generator) -> float:
        raise NotImplementedError

    def step(self, loss: Tensor, users: np.ndarray, positives: np.ndarray) -> float:
        """Add ``weight_decay`` times the model's penalty of the batch's ``users`` and ``positives`` to ``loss``,
        take one optimiser step; returns the loss."""
        if self.config.weight_decay:
            u = torch.from_numpy(users).to(self.device)
            p = torch.from_numpy(positives).to(self.device)
            loss = loss + self.config.weight_decay * self.model.regularized(u, p, p[:0])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class BPREpoch(Epoch):
    """One shuffled pass over all training pairs with one in-scene negative each; returns the mean loss."""

    def setup(self, item_scene: np.ndarray | None) -> None:
        train = self.train
        self.sampler = NegativeSampler(train, item_scene)
        self.users, self.items = train.rows(), train.indices

    def __call__(self, generator: torch.Generator) -> float:
        cfg, model = self.config, self.model
        order = torch.randperm(len(self.users), generator=generator).numpy()
        users_np, pos_np = self.users[order], self.items[order]
        neg_np = self.sampler.sample(users_np, pos_np, generator)
        users_t = torch.from_numpy(users_np).to(self.device)
        pos_t = torch.from_numpy(pos_np).to(self.device)
        neg_t = torch.from_numpy(neg_np).to(self.device)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            u = users_t[start : start + cfg.batch_size]
            p = pos_t[start : start + cfg.batch_size]
            n = neg_t[start : start + cfg.batch_size]
            user_emb, item_emb = model()
            ue = user_emb[u]
            diff = (ue * item_emb[p]).sum(-1) - (ue * item_emb[n]).sum(-1)
            loss = -torch.nn.functional.logsigmoid(diff).mean() + cfg.weight_decay * model.regularized(u, p, n)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(u)
        return total / max(len(order), 1)


class RowEpoch(Epoch):
    """An epoch over the (user, scene) rows of the training pairs, ``config.batch_size`` rows a step, one forward pass
    a step; subclasses set :attr:`row_user`, :attr:`row_group`, :attr:`group_of` in ``setup`` and implement
    :meth:`loss`."""

    row_user: np.ndarray
    row_group: np.ndarray
    group_of: np.ndarray

    def rows_of(self, item_scene: np.ndarray | None) -> np.ndarray:
        """Set the rows and each item's group (the rank of its scene index) from the training pairs; the groups'
        scene indices."""
        scene = _scenes(item_scene, self.train.shape[1])
        groups = np.unique(scene)
        self.group_of = np.searchsorted(groups, scene)
        keys = np.unique(self.train.rows() * len(groups) + self.group_of[self.train.indices])
        self.row_user, self.row_group = keys // len(groups), keys % len(groups)
        return groups

    def loss(
        self, user_emb: Tensor, item_emb: Tensor, users: np.ndarray, groups: np.ndarray, generator: torch.Generator
    ) -> tuple[Tensor, int]:
        """The summed loss of the rows (``users``, groups ``groups``) given the model's vectors, and the number of
        training pairs it sums over."""
        raise NotImplementedError

    def row_positives(self, users: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """The training items of the rows (``users``, ``groups``) that lie in the row's group."""
        local, cols = self.train.select(users)
        return cols[self.group_of[cols] == groups[local]]

    def rows_per_step(self) -> int:
        """Rows a step: ``config.batch_size``."""
        return self.config.batch_size

    def by_group(
        self, users: np.ndarray, groups: np.ndarray
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, np.ndarray]]:
        """For each group ``g`` of the rows: ``g``, the rows' users, and for each of their training items in ``g``
        the row's position among them and the item (tensors on the device, the items also as an array)."""
        for g in np.unique(groups):
            rows = users[groups == g]
            local, cols = self.train.select(rows)
            keep = self.group_of[cols] == g
            local_t = torch.from_numpy(local[keep]).to(self.device)
            yield int(g), torch.from_numpy(rows).to(self.device), local_t, cols[keep]

    def __call__(self, generator: torch.Generator) -> float:
        model = self.model
        order = torch.randperm(len(self.row_user), generator=generator).numpy()
        total, count = 0.0, 0
        step = self.rows_per_step()
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            users, groups = self.row_user[idx], self.row_group[idx]
            user_emb, item_emb = model()
            loss, n_pos = self.loss(user_emb, item_emb, users, groups, generator)
            # the batch's positives only feed the weight decay: not selected again without it
            positives = self.row_positives(users, groups) if self.config.weight_decay else np.zeros(0, np.int64)
            total += self.step(loss / max(n_pos, 1), users, positives) * n_pos
            count += n_pos
        return total / max(count, 1)


class SoftmaxEpoch(RowEpoch):
    """One shuffled pass over the (user, scene) rows of the training pairs with the in-scene softmax loss
    ``-sum_{i in train(u, s)} log softmax_{j in items(s)}(score(u, j))`` averaged over the batch's positives.

    Items without a scene (index -1) form a group of their own. With a single group no mask is needed.
    """

    def setup(self, item_scene: np.ndarray | None) -> None:
        groups = self.rows_of(item_scene)
        # each item's position within its group, and each group's items
        self.position = np.zeros(self.train.shape[1], dtype=np.int64)
        self.group_items: dict[int, torch.Tensor] = {}
        for g in range(len(groups)):
            members = np.flatnonzero(self.group_of == g)
            self.position[members] = np.arange(len(members))
            self.group_items[g] = torch.from_numpy(members).to(self.device)

    def loss(
        self, user_emb: Tensor, item_emb: Tensor, users: np.ndarray, groups: np.ndarray, generator: torch.Generator
    ) -> tuple[Tensor, int]:
        loss = user_emb.new_zeros(())
        n_pos = 0
        for g, u, local, cols in self.by_group(users, groups):
            # the rows of group g score only g's items: the in-scene softmax without a -inf mask
            log_p = torch.log_softmax(user_emb[u] @ item_emb[self.group_items[g]].t(), dim=-1)
            loss = loss - log_p[local, torch.from_numpy(self.position[cols]).to(self.device)].sum()
            n_pos += len(cols)
        return loss, n_pos


class SampledSoftmaxEpoch(RowEpoch):
    """One shuffled pass over the (user, scene) rows of the training pairs, ``config.batch_size`` rows a step, with
    the in-scene softmax of :class:`SoftmaxEpoch` whose denominator is estimated from sampled negatives
    (importance sampling: Bengio & Senecal 2008; the log-Q correction of Yi et al. 2019).

    Each step runs the model's forward pass once, then for every scene ``s`` of the batch draws
    ``N = config.negatives`` items of ``s`` (with replacement, shared by the batch's rows of ``s``) from
    ``q_s = mix * popularity + (1 - mix) * uniform`` (``mix`` = :attr:`POPULARITY_MIX`; popularity = training-pair
    counts plus one, so that every item can be drawn). For a row ``u`` the in-scene denominator
    ``Z(u) = sum_j exp(score(u, j))`` is estimated by ``Z^(u) = sum_{drawn j} exp(score(u, j)) / (N q_s(j))``, whose
    expectation is exactly ``Z(u)`` (subtracting ``log(N q)`` from the drawn logits is the log-Q correction; without
    it the estimate is biased towards popular items). Each training item ``i`` of the row adds the loss
    ``-score(u, i) + log(exp(score(u, i)) + Z^(u))``: the positive's own term keeps the loss positive when few draws
    land near it. The cost of a step is ``rows x N x d`` plus one forward pass, so an epoch is linear in the
    interactions. Items without a scene (index -1) form a group of their own.
    """

    #: Share of the negatives drawn by popularity (the rest uniformly within the scene).
    POPULARITY_MIX = 0.5

    def rows_per_step(self) -> int:
        """``config.batch_size``, raised so that an epoch takes at most ``config.max_steps`` steps."""
        bound = self.config.max_steps
        return max(self.config.batch_size, -(-len(self.row_user) // bound) if bound else 0)

    def setup(self, item_scene: np.ndarray | None) -> None:
        groups = self.rows_of(item_scene)
        n_items = self.train.shape[1]
        counts = np.bincount(self.train.indices, minlength=n_items).astype(np.float64) + 1.0
        log_q = np.zeros(n_items, dtype=np.float64)
        self.members: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        for g in range(len(groups)):
            members = np.flatnonzero(self.group_of == g)
            q = self.POPULARITY_MIX * counts[members] / counts[members].sum() + (1 - self.POPULARITY_MIX) / len(members)
            log_q[members] = np.log(q)
            self.members.append(torch.from_numpy(members).to(self.device))
            self.weights.append(torch.from_numpy(q))
        self.log_q = torch.from_numpy(log_q).float().to(self.device)

    def loss(
        self, user_emb: Tensor, item_emb: Tensor, users: np.ndarray, groups: np.ndarray, generator: torch.Generator
    ) -> tuple[Tensor, int]:
        """The summed loss of the rows (``users``, scene groups ``groups``) given the model's vectors, and the number
        of training pairs it sums over; :attr:`negatives <scenerec.gnn.TrainConfig.negatives>` items are drawn per
        scene group of the rows with ``generator``."""
        device, n_draws = self.device, self.config.negatives
        loss = user_emb.new_zeros(())
        n_pos = 0
        for g, u, local, cols in self.by_group(users, groups):
            drawn = torch.multinomial(self.weights[g], n_draws, replacement=True, generator=generator)
            neg = self.members[g][drawn.to(device)]
            ue = user_emb[u]
            log_z = torch.logsumexp(ue @ item_emb[neg].t() - (self.log_q[neg] + math.log(n_draws)), dim=1)
            pos = (ue[local] * item_emb[torch.from_numpy(cols).to(device)]).sum(-1)
            loss = loss + (torch.logaddexp(pos, log_z[local]) - pos).sum()
            n_pos += len(cols)
        return loss, n_pos
