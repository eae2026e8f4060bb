"""BPR training with early stopping on validation NDCG, scene-aware negative sampling and saved model artifacts.

* :func:`sample_negatives`: one negative per positive, uniform over the items NOT in the user's training set and,
  when an item -> scene map is given, within the positive item's scene (vectorised rejection sampling).
* :func:`fit`: Adam on the BPR loss ``-log sigmoid(s_pos - s_neg)`` + ``weight_decay * model.regularized(...)``;
  one shuffled pass over all training pairs per epoch; validation NDCG@k (full ranking, train items excluded) every
  ``eval_every`` epochs; the best state is kept and restored; stops after ``patience`` evaluations without improvement.

The loop knows no concrete model: it trains any :class:`~scenerec.gnn.models.Recommender` through ``forward``,
``score``, ``regularized`` and ``reset_parameters``. Saved models: :mod:`scenerec.gnn.artifact`; the item-item
channel fused after training: :mod:`scenerec.gnn.fusion`.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from scenerec.gnn.evaluate import CSR, evaluate_scores
from scenerec.gnn.models import Recommender

log = logging.getLogger(__name__)

#: ``progress(record)`` is called after every epoch with that epoch's :attr:`FitResult.history` record.
Progress = Callable[[dict[str, Any]], None]

#: Training objectives of :class:`TrainConfig`.
LOSSES = ("bpr", "softmax")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`fit`.

    ``weight_decay`` multiplies ``model.regularized`` (the L2 of the batch's layer-0 embeddings, RecBole-style), it
    is not Adam's decoupled decay. ``patience`` counts evaluations, not epochs. Early stopping watches
    ``ndcg@{ks[0]}`` on the validation set. ``seed`` None: one is drawn, logged and stored in the result.
    ``threads``: torch CPU threads during :func:`fit` (None: leave as is). ``reset_parameters``: call
    ``model.reset_parameters()`` under the seed first, so that a seed fixes the whole run (False: warm start).
    ``min_epochs``: early stopping may not stop before this epoch (a deep LightGCN with a small learning rate can sit
    at the popularity level for more than ``patience`` evaluations before it starts to learn).
    ``loss``: ``"bpr"`` (one negative per positive, drawn within the positive's scene; ``batch_size`` counts pairs)
    or ``"softmax"`` (per user and scene, the multinomial log-likelihood of the user's training items among ALL items
    of that scene: every in-scene item is a negative; ``batch_size`` counts (user, scene) rows).
    """

    epochs: int = 300
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    eval_every: int = 1
    ks: tuple[int, ...] = (10, 20)
    seed: int | None = None
    threads: int | None = None
    reset_parameters: bool = True
    min_epochs: int = 0
    loss: str = "bpr"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"TrainConfig.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if (
            self.epochs < 0
            or self.batch_size < 1
            or self.eval_every < 1
            or self.patience < 1
            or not self.ks
            or self.min_epochs < 0
        ):
            raise ValueError(f"invalid TrainConfig: {self}")

    @property
    def monitor(self) -> str:
        """The validation metric early stopping watches, e.g. ``"ndcg@10"``."""
        return f"ndcg@{self.ks[0]}"


@dataclass
class FitResult:
    """What :func:`fit` did.

    ``history``: one dict per epoch ``{"epoch", "loss", "valid_ndcg@10" (None when not evaluated), "seconds"
    (that epoch, training + evaluation)}``; ``best_valid``: every validation metric at ``best_epoch`` (epoch 0:
    the model as given, e.g. :class:`MostPopular`); times in seconds from the start of :func:`fit`.
    """

    best_epoch: int
    best_valid: dict[str, float]
    seed: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_to_best: float = 0.0
    seconds_total: float = 0.0


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


def _device(model: torch.nn.Module) -> torch.device:
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


def _evaluate(
    model: Recommender, train: CSR, valid: CSR, ks: tuple[int, ...], candidate_items: np.ndarray | None = None
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = model()
        metrics = evaluate_scores(
            lambda users: model.score(users.to(user_emb.device), user_emb, item_emb),
            train,
            valid,
            ks=ks,
            candidate_items=candidate_items,
        )
    model.train(was_training)
    return metrics


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Epoch:
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


class _BPREpoch(_Epoch):
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


class _SoftmaxEpoch(_Epoch):
    """One shuffled pass over the (user, scene) rows of the training pairs with the in-scene softmax loss
    ``-sum_{i in train(u, s)} log softmax_{j in items(s)}(score(u, j))`` averaged over the batch's positives.

    Items without a scene (index -1) form a group of their own. With a single group no mask is needed.
    """

    def setup(self, item_scene: np.ndarray | None) -> None:
        train, device = self.train, self.device
        n_items = train.shape[1]
        scene = np.zeros(n_items, dtype=np.int64) if item_scene is None else np.asarray(item_scene, dtype=np.int64)
        if scene.shape != (n_items,):
            raise ValueError(f"item_scene must have shape ({n_items},), got {scene.shape}")
        self.scene = scene
        self.groups = np.unique(scene)
        rows, cols = train.rows(), train.indices
        keys = np.unique(rows * (len(self.groups) + 1) + np.searchsorted(self.groups, scene[cols]))
        self.row_user = keys // (len(self.groups) + 1)
        self.row_group = keys % (len(self.groups) + 1)
        self.scene_t_np = np.searchsorted(self.groups, scene)  # group of each item
        # each item's position within its group, and each group's items
        self.position = np.zeros(n_items, dtype=np.int64)
        self.group_items: dict[int, torch.Tensor] = {}
        for g in range(len(self.groups)):
            members = np.flatnonzero(self.scene_t_np == g)
            self.position[members] = np.arange(len(members))
            self.group_items[g] = torch.from_numpy(members).to(device)

    def __call__(self, generator: torch.Generator) -> float:
        cfg, model = self.config, self.model
        order = torch.randperm(len(self.row_user), generator=generator).numpy()
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            users, groups = self.row_user[idx], self.row_group[idx]
            user_emb, item_emb = model()
            loss = user_emb.new_zeros(())
            n_pos = 0
            positives: list[np.ndarray] = []
            for g in np.unique(groups):
                # the rows of group g score only g's items: the in-scene softmax without a -inf mask
                rows = np.flatnonzero(groups == g)
                local, cols = self.train.select(users[rows])
                in_group = self.scene_t_np[cols] == g
                positives.append(cols[in_group])
                local, cols = local[in_group], self.position[cols[in_group]]
                cand = self.group_items[g]
                u = torch.from_numpy(users[rows]).to(self.device)
                log_p = torch.log_softmax(user_emb[u] @ item_emb[cand].t(), dim=-1)
                picked = log_p[torch.from_numpy(local).to(self.device), torch.from_numpy(cols).to(self.device)]
                loss = loss - picked.sum()
                n_pos += len(cols)
            loss = loss / max(n_pos, 1)
            if cfg.weight_decay:
                u_all = torch.from_numpy(users).to(self.device)
                pos = torch.from_numpy(np.concatenate(positives)).to(self.device)
                loss = loss + cfg.weight_decay * model.regularized(u_all, pos, pos[:0])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * n_pos
            count += n_pos
        return total / max(count, 1)


def fit(
    model: Recommender,
    train: CSR,
    valid: CSR,
    config: TrainConfig,
    *,
    item_scene: np.ndarray | None = None,
    progress: Progress | None = None,
    candidate_items: np.ndarray | None = None,
) -> FitResult:
    """Train ``model`` in place with BPR and early stopping; the best validation state is restored at the end.

    ``train``, ``valid``: :class:`CSR` (users x items) of the training and validation positives. ``item_scene``:
    optional item -> scene index array (n_items,) for scene-constrained negatives. ``progress``: called with each
    epoch's history record. ``candidate_items``: validation ranks only these items (e.g. the target scene's), as
    :func:`~scenerec.gnn.evaluate.evaluate_scores` does. A model without parameters (:class:`MostPopular`) is evaluated once, not trained.
    The global torch RNG state is left as it was (the run uses a forked RNG and its own generator).
    """
    t0 = time.perf_counter()
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    if config.seed is None:
        log.info("fit: seed %d drawn", seed)
    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _fit(model, train, valid, config, seed, t0, item_scene, progress, candidate_items)
    finally:
        torch.set_num_threads(threads_before)


def _fit(
    model: Recommender,
    train: CSR,
    valid: CSR,
    config: TrainConfig,
    seed: int,
    t0: float,
    item_scene: np.ndarray | None,
    progress: Progress | None,
    candidate_items: np.ndarray | None = None,
) -> FitResult:
    params = [p for p in model.parameters() if p.requires_grad]
    monitor = config.monitor
    if not params or config.epochs == 0:
        best = _evaluate(model, train, valid, config.ks, candidate_items)
        now = time.perf_counter() - t0
        return FitResult(0, best, seed, [], now, now)
    if config.reset_parameters:
        model.reset_parameters()
    device = _device(model)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    epoch_cls = _SoftmaxEpoch if config.loss == "softmax" else _BPREpoch
    epoch_fn: _Epoch = epoch_cls(model, train, item_scene, config, optimizer, device)

    best_state = _snapshot(model)
    best_epoch, best_valid, best_score = 0, dict[str, float](), -math.inf
    seconds_to_best = 0.0
    bad_evals = 0
    history: list[dict[str, Any]] = []
    model.train()
    for epoch in range(1, config.epochs + 1):
        t_epoch = time.perf_counter()
        mean_loss = epoch_fn(generator)
        record: dict[str, Any] = {"epoch": epoch, "loss": mean_loss, f"valid_{monitor}": None}
        stop = False
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            metrics = _evaluate(model, train, valid, config.ks, candidate_items)
            score = metrics[monitor]
            record[f"valid_{monitor}"] = score
            if score > best_score:
                best_score, best_epoch, best_valid = score, epoch, metrics
                best_state = _snapshot(model)
                seconds_to_best = time.perf_counter() - t0
                bad_evals = 0
            else:
                bad_evals += 1
                stop = bad_evals >= config.patience and epoch >= config.min_epochs
        record["seconds"] = time.perf_counter() - t_epoch
        history.append(record)
        if progress is not None:
            progress(record)
        if stop:
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, best_valid, seed, history, seconds_to_best, time.perf_counter() - t0)


def __getattr__(name: str) -> Any:
    """Names that moved: the artifact functions to :mod:`scenerec.gnn.artifact`, the item-item channel's tuning to
    :mod:`scenerec.gnn.fusion` (still importable from here)."""
    from scenerec.gnn import artifact, fusion

    for module in (artifact, fusion):
        if name in module.__all__:
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
