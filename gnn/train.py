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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from scenerec.gnn.evaluate import CSR, evaluate_scores
from scenerec.gnn.models import Recommender
from scenerec.gnn.objectives import (
    BPREpoch,
    Epoch,
    SampledSoftmaxEpoch,
    SoftmaxEpoch,
)

log = logging.getLogger(__name__)

#: ``progress(record)`` is called after every epoch with that epoch's :attr:`FitResult.history` record.
Progress = Callable[[dict[str, Any]], None]

#: Training objectives of :class:`TrainConfig` (``"auto"``: chosen by size, :func:`resolve_loss`).
LOSSES = ("bpr", "softmax", "sampled_softmax", "auto")

#: ``loss="auto"`` trains with the full in-scene softmax while the training pairs times the items of the largest
#: scene stay under this (its epoch costs about that many multiply-adds times d), else with the sampled softmax.
FULL_SOFTMAX_MAX_COST = 400_000_000


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
    of that scene: every in-scene item is a negative; ``batch_size`` counts (user, scene) rows) or
    ``"sampled_softmax"`` (the same softmax, its denominator estimated from ``negatives`` items of the scene drawn per
    step with the log-Q correction; ``batch_size`` counts rows; an epoch is linear in the interactions) or ``"auto"`` (the full softmax
    for small catalogues, the sampled one above :data:`FULL_SOFTMAX_MAX_COST`; see :func:`resolve_loss`).
    The objectives are in :mod:`scenerec.gnn.objectives`.
    ``softmax_batch_size``: ``batch_size`` for the full softmax when ``loss="auto"`` picks it (None: ``batch_size``);
    ``sampled_patience``: ``patience`` when ``loss="auto"`` picks the sampled softmax (None: ``patience``): its epochs
    are many more optimiser steps over a larger catalogue, so fewer of them without improvement mean more;
    ``max_steps``: the sampled softmax takes at most this many steps an epoch, growing its batch past ``batch_size``
    where needed (None: no bound): each step runs the model's forward pass over the whole graph, so a bounded number of
    steps keeps an epoch linear in the interactions.
    ``eval_users``: early stopping evaluates a fixed random sample of at most this many validation users (None: all);
    the best state is then evaluated on every validation user for :attr:`FitResult.best_valid`.
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
    negatives: int = 1024
    softmax_batch_size: int | None = None
    sampled_patience: int | None = None
    max_steps: int | None = None
    eval_users: int | None = None

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
            or self.negatives < 1
            or (self.softmax_batch_size is not None and self.softmax_batch_size < 1)
            or (self.sampled_patience is not None and self.sampled_patience < 1)
            or (self.max_steps is not None and self.max_steps < 1)
            or (self.eval_users is not None and self.eval_users < 1)
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
    the model as given, e.g. :class:`MostPopular`); times in seconds from the start of :func:`fit`; ``loss``: the
    objective trained with (``loss="auto"`` resolved, :func:`resolve_loss`; empty when nothing was trained).
    """

    best_epoch: int
    best_valid: dict[str, float]
    seed: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_to_best: float = 0.0
    seconds_total: float = 0.0
    loss: str = ""


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


def resolve_loss(config: TrainConfig, train: CSR, item_scene: np.ndarray | None = None) -> TrainConfig:
    """``config`` with ``loss="auto"`` replaced by the objective :func:`fit` trains with: ``"softmax"`` (with
    ``softmax_batch_size``) while ``training pairs x items of the largest scene <= FULL_SOFTMAX_MAX_COST``, else
    ``"sampled_softmax"`` (with ``sampled_patience``). Other losses are returned as they are."""
    if config.loss != "auto":
        return config
    n_items = train.shape[1]
    if item_scene is None or n_items == 0:
        largest = n_items
    else:
        largest = int(np.unique(np.asarray(item_scene), return_counts=True)[1].max())
    if train.nnz * largest <= FULL_SOFTMAX_MAX_COST:
        return replace(config, loss="softmax", batch_size=config.softmax_batch_size or config.batch_size)
    return replace(config, loss="sampled_softmax", patience=config.sampled_patience or config.patience)


def _sample_rows(valid: CSR, limit: int | None, seed: int) -> CSR:
    """``valid`` restricted to at most ``limit`` of its users with a validation item (a fixed random sample drawn
    with ``seed``); ``valid`` itself when it has no more than that."""
    users = np.flatnonzero(valid.row_counts() > 0)
    if limit is None or len(users) <= limit:
        return valid
    keep = np.zeros(valid.shape[0], dtype=bool)
    keep[np.random.default_rng(seed).choice(users, size=limit, replace=False)] = True
    rows = valid.rows()
    chosen = keep[rows]
    return CSR.from_pairs(rows[chosen], valid.indices[chosen], valid.shape)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
    config = resolve_loss(config, train, item_scene)
    epoch_cls = {"softmax": SoftmaxEpoch, "sampled_softmax": SampledSoftmaxEpoch, "bpr": BPREpoch}[config.loss]
    epoch_fn: Epoch = epoch_cls(model, train, item_scene, config, optimizer, device)
    monitored = _sample_rows(valid, config.eval_users, seed)

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
            metrics = _evaluate(model, train, monitored, config.ks, candidate_items)
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
    if monitored is not valid and best_valid:
        best_valid = _evaluate(model, train, valid, config.ks, candidate_items)
    return FitResult(best_epoch, best_valid, seed, history, seconds_to_best, time.perf_counter() - t0, config.loss)


def __getattr__(name: str) -> Any:
    """Names that moved: the artifact functions to :mod:`scenerec.gnn.artifact`, the item-item channel's tuning to
    :mod:`scenerec.gnn.fusion`, the negative samplers to :mod:`scenerec.gnn.objectives` (still importable from
    here)."""
    from scenerec.gnn import artifact, fusion, objectives

    for module in (artifact, fusion, objectives):
        if name in module.__all__:
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
