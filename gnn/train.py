"""BPR training with early stopping on validation NDCG, scene-aware negative sampling and saved model artifacts.

* :func:`sample_negatives`: one negative per positive, uniform over the items NOT in the user's training set and,
  when an item -> scene map is given, within the positive item's scene (vectorised rejection sampling).
* :func:`fit`: Adam on the BPR loss ``-log sigmoid(s_pos - s_neg)`` + ``weight_decay * model.regularized(...)``;
  one shuffled pass over all training pairs per epoch; validation NDCG@k (full ranking, train items excluded) every
  ``eval_every`` epochs; the best state is kept and restored; stops after ``patience`` evaluations without improvement.
* :func:`save_artifact` / :func:`load_artifact` / :func:`build_model`: a folder with ``weights.pt``, ``meta.json``
  and ``idmap.json``, from which the same model (same scores) is rebuilt.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scenerec.errors import StoreFileError
from scenerec.gnn.evaluate import CSR, evaluate_scores
from scenerec.gnn.models import BPRMF, LightGCN, MostPopular, Recommender
from scenerec.gnn.scenegnn import GraphInputs, SceneGNN
from scenerec.ids import IdMap
from scenerec.storefiles import read_idmap_file, read_json_file, read_torch_state

log = logging.getLogger(__name__)

#: ``progress(record)`` is called after every epoch with that epoch's :attr:`FitResult.history` record.
Progress = Callable[[dict[str, Any]], None]

#: Training objectives of :class:`TrainConfig`.
LOSSES = ("bpr", "softmax")

#: Files of an artifact folder.
WEIGHTS, META, IDMAP = "weights.pt", "meta.json", "idmap.json"


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


@dataclass
class ItemItemReport:
    """What :func:`tune_item_item` chose per scene index: ``reg`` (EASE's L2; 0 for item kNN), ``alpha`` and
    ``beta`` (item kNN's exponents; absent for EASE), ``weight`` (the fusion weight, 0: the channel is off for that
    scene), the validation NDCG of the graph model alone (``base``), of the item-item weights alone (``item_item``)
    and fused (``fused``); ``skipped``: scenes too large for the channel."""

    scenes: dict[int, dict[str, float]] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
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

    def _collect(self, score_fn: Callable[[torch.Tensor], torch.Tensor], batch: int = 1024) -> torch.Tensor:
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
    max_items: int = 20_000,
    cache_bytes: int = 1 << 30,
    progress: Callable[[int, int], None] | None = None,
) -> ItemItemReport:
    """Fit the item-item channel of a trained :class:`~scenerec.gnn.scenegnn.SceneGNN` and choose its settings per
    scene on the validation pairs (NDCG@``k``, full ranking within the scene); the graph model itself is not changed.

    * EASE (``item_item_kind="ease"``): ``reg`` among ``regs`` by the channel alone, then the fusion weight among
      ``weights`` (0 keeps the graph model alone).
    * item kNN (``item_item_kind="knn"``, :meth:`ItemItem.fit_knn`, weights across scenes, the ``knn_top_k``
      largest per item: the forms that let popularity in need more neighbours than EASE's ``top_k``): the exponents
      among ``exponents`` and the fusion weight together, by the fused NDCG (``regs`` unused).

    Models without the channel are left as they are (an empty report). ``progress(done, total)`` is called after
    each fit of the weights (on a large catalogue each takes seconds, and every one is evaluated on all weights).
    For item kNN, the validation users' graph-model and channel scores on each scene's items are computed once per
    fit and each fusion weight is a dense sum of the two, when both fit in ``cache_bytes``; otherwise every weight
    recomputes the scores (the same choice, more time).
    """
    t0 = time.perf_counter()
    report = ItemItemReport()
    channel = getattr(model, "item_item_channel", None)
    if not isinstance(model, SceneGNN) or channel is None:
        return report
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
        if getattr(model, "item_item_kind", "ease") == "knn":
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
                    return channel.scores(model.train_rows(u.cpu()))

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
        for step, reg in enumerate(regs):
            if progress is not None:
                progress(step, len(regs) + 1)
            channel.fit(train, scene, reg, top_k=top_k, max_items=max_items)
            for g in groups:
                if g in channel.skipped_scenes:
                    continue
                value = scene_ndcg(lambda u: channel.scores(model.train_rows(u.cpu())), g)
                if g not in best_reg or value > best_reg[g][1]:
                    best_reg[g] = (reg, value)
        report.skipped = sorted(set(groups) - set(best_reg))
        if not best_reg:
            channel.fit(train, scene, regs[0], top_k=top_k, max_items=0)
            model.fusion.zero_()
            report.seconds = time.perf_counter() - t0
            return report
        if progress is not None:
            progress(len(regs), len(regs) + 1)
        channel.fit(
            train, scene, per_scene({g: r for g, (r, _) in best_reg.items()}, regs[0]), top_k=top_k, max_items=max_items
        )
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


# --- artifacts -------------------------------------------------------------------------------------------------------

#: Constructor arguments recorded per model class (besides ``num_users`` and ``num_items``), read from attributes.
_HPARAMS = (
    "dim",
    "num_layers",
    "alpha",
    "temperature",
    "item_ids",
    "use_text",
    "use_kg",
    "scene_film",
    "kg_min_items",
    "gate",
    "view_dropout",
    "item_bias",
    "cold_dropout",
    "item_item_kind",
)

#: SceneGNN and its subclasses that :func:`build_model` can rebuild, by class name (see :func:`register_model_class`).
MODEL_CLASSES: dict[str, type[SceneGNN]] = {"SceneGNN": SceneGNN}


def register_model_class(cls: type[SceneGNN]) -> type[SceneGNN]:
    """Make a :class:`SceneGNN` subclass (built from ``GraphInputs`` and keyword hyper-parameters) loadable by
    :func:`build_model`; modules to the right of ``gnn`` (e.g. :mod:`scenerec.transfer`) register theirs."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def hyperparameters(model: Recommender) -> dict[str, Any]:
    """The constructor arguments of ``model`` that can be read back from it (sizes, ``dim``, ``num_layers``, ...)."""
    out: dict[str, Any] = {"class": type(model).__name__, "num_users": model.num_users, "num_items": model.num_items}
    for name in _HPARAMS:
        value = getattr(model, name, None)
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        if value is not None and not callable(value):
            out[name] = value
    if isinstance(model, SceneGNN):
        channel = model.item_item_channel
        out["item_item"] = channel is not None
        out["item_item_nnz"] = channel.nnz if channel is not None else 0
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_artifact(
    path: str | Path,
    model_name: str,
    model: Recommender,
    config: TrainConfig,
    result: FitResult,
    idmap: IdMap,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the folder ``path`` (created) with ``weights.pt`` (the state dict), ``meta.json`` and ``idmap.json``.

    ``meta.json``: ``model`` (``model_name``), ``hyperparameters`` (:func:`hyperparameters`), ``config``, ``seed``,
    ``best_epoch``, ``metrics`` (validation at the best epoch), times, ``history``, ``versions`` and ``extra``
    (anything JSON-serialisable the caller adds, e.g. the test metrics or the dataset name). Returns the folder.
    """
    import scenerec

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / WEIGHTS)
    meta = {
        "model": model_name,
        "hyperparameters": hyperparameters(model),
        "config": asdict(config),
        "seed": result.seed,
        "best_epoch": result.best_epoch,
        "metrics": {"valid": result.best_valid},
        "seconds_to_best": result.seconds_to_best,
        "seconds_total": result.seconds_total,
        "history": result.history,
        "versions": {
            "scenerec": scenerec.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "extra": dict(extra or {}),
    }
    (folder / META).write_text(json.dumps(_jsonable(meta), indent=2), encoding="utf-8")
    idmap.save(folder / IDMAP)
    return folder


def load_artifact(path: str | Path, fix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of an artifact folder written by :func:`save_artifact` (``meta["idmap"]``: the
    :class:`IdMap`). Rebuild the model with :func:`build_model`. A missing, truncated or foreign file raises
    :class:`~scenerec.errors.StoreFileError` naming it, with ``fix`` (what to do) appended."""
    folder = Path(path)
    fix = fix or "train and save the model again"
    meta = read_json_file(folder / META, fix)
    _check_meta(folder / META, meta, fix)
    state = read_torch_state(folder / WEIGHTS, fix)
    meta["idmap"] = read_idmap_file(folder / IDMAP, fix)
    return state, meta


def _check_meta(path: Path, meta: dict[str, Any], fix: str) -> None:
    """``meta.json`` has what :func:`build_model` reads: ``model``, and ``hyperparameters`` with ``class`` and
    non-negative ``num_users`` / ``num_items``."""
    hp = meta.get("hyperparameters")
    if not isinstance(meta.get("model"), str) or not isinstance(hp, dict) or not isinstance(hp.get("class"), str):
        raise StoreFileError(path, "lacks the model name or its hyperparameters (class, sizes)", fix)
    for key in ("num_users", "num_items"):
        value = hp.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StoreFileError(path, f"hyperparameters.{key} is {value!r}, not a non-negative integer", fix)


def build_model(
    meta: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    adj: torch.Tensor | None = None,
    inputs: GraphInputs | None = None,
) -> Recommender:
    """A model of the class and sizes in ``meta["hyperparameters"]``, loaded with ``state_dict`` when given.

    :class:`LightGCN` needs ``adj``, the normalised adjacency of the training graph
    (:func:`scenerec.gnn.propagation.normalized_adjacency`); :class:`SceneGNN` needs ``inputs``, the same
    :class:`GraphInputs` it was trained with (training pairs, scenes, text features, KG facts).
    """
    hp = dict(meta["hyperparameters"])
    cls, n_users, n_items = hp.pop("class"), int(hp.pop("num_users")), int(hp.pop("num_items"))
    model: Recommender
    if cls == "MostPopular":
        model = MostPopular(torch.zeros(n_items), num_users=n_users)
    elif cls == "BPRMF":
        model = BPRMF(n_users, n_items, **hp)
    elif cls == "LightGCN":
        if adj is None:
            raise ValueError("LightGCN needs adj, the training graph's normalized_adjacency")
        model = LightGCN(n_users, n_items, adj, **hp)
    elif cls in MODEL_CLASSES:
        if inputs is None:
            raise ValueError(f"{cls} needs inputs, the GraphInputs it was trained with")
        if (inputs.num_users, inputs.num_items) != (n_users, n_items):
            raise ValueError(
                f"inputs have {inputs.num_users} users x {inputs.num_items} items, the model {n_users} x {n_items}"
            )
        model = MODEL_CLASSES[cls](inputs, **hp)
    else:
        raise ValueError(f"unknown model class {cls!r}")
    if state_dict is not None:
        model.load_state_dict(dict(state_dict))
    model.eval()
    return model
