"""The cost of a training epoch of ``scenegnn`` with each in-scene softmax objective, on a built store.

    .venv/bin/python benchmarks/train_cost.py --store DIR [--steps 5] [--repeats 3] [--threads N]
        [--losses softmax sampled_softmax] [--batch-size B] [--negatives N] [--fit SCENE] [--seed 2020]

For each objective (:mod:`scenerec.gnn.objectives`) with the default configuration of ``scenegnn``
(:data:`scenerec.registry.MODELS`; the full softmax with its own 256-row batches), ``--steps`` optimiser steps are
timed after one warm-up step, ``--repeats`` times; the median seconds per step times the steps of an epoch is the
projected epoch time (an epoch of the full softmax on a catalogue of 36k items takes minutes, so it is projected from
its steps rather than run). Both objectives run in the same process on the same model inputs, so their ratio holds
on a busy machine where the absolute seconds do not. Prints, per objective: steps per epoch, median seconds per step,
the projected epoch, and what ``loss="auto"`` picks for this store.

``--fit SCENE`` then trains ``scenegnn`` with its default configuration (:func:`scenerec.trainer.train_recommender`,
seed ``--seed``, the store's splits) and prints the training and item-item seconds, the best epoch and the TEST
NDCG@10 / Recall@10 within ``SCENE`` (full ranking of its items, train and valid items excluded), fused and of the
graph model alone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from scenerec.engine import Engine
from scenerec.gnn import CSR, GraphInputs, ItemItemFusion, TrainConfig, evaluate_scores, resolve_loss
from scenerec.gnn.objectives import RowEpoch, SampledSoftmaxEpoch, SoftmaxEpoch
from scenerec.registry import MODELS
from scenerec.trained import graph_inputs
from scenerec.trainer import train_recommender


def _time_steps(epoch: RowEpoch, steps: int, repeats: int) -> float:
    """Median seconds of one optimiser step of ``epoch`` (its rows cut to ``steps`` batches)."""
    users, groups = epoch.row_user, epoch.row_group
    per_repeat = []
    generator = torch.Generator().manual_seed(0)
    batch = epoch.rows_per_step()
    for r in range(repeats + 1):
        epoch.row_user, epoch.row_group = users[: batch * (steps if r else 1)], groups[: batch * (steps if r else 1)]
        t0 = time.perf_counter()
        epoch(generator)
        if r:  # the first, one-step pass is the warm-up
            per_repeat.append((time.perf_counter() - t0) / steps)
    epoch.row_user, epoch.row_group = users, groups
    return statistics.median(per_repeat)


def main() -> None:
    """Parse the options, time the objectives, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="a built store (scenerec rebuild)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--losses", nargs="+", default=["softmax", "sampled_softmax"])
    ap.add_argument("--batch-size", type=int, default=None, help="rows a step of the sampled softmax")
    ap.add_argument("--negatives", type=int, default=None, help="draws a scene a step of the sampled softmax")
    ap.add_argument("--fit", metavar="SCENE", default=None, help="also train the default scenegnn, test in SCENE")
    ap.add_argument("--seed", type=int, default=2020)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with Engine.open(args.store) as engine:
        splits, index, _ = engine.trainer.interaction_splits(args.seed)
        inputs = graph_inputs(index, engine.features, splits["train"], None)
        scene = None if args.fit is None else engine._scene_index(args.fit)
    train = splits["train"]
    base: TrainConfig = MODELS["scenegnn"].config()
    if args.batch_size:
        base = replace(base, batch_size=args.batch_size)
    if args.negatives:
        base = replace(base, negatives=args.negatives)
    auto = resolve_loss(base, train, inputs.item_scene).loss
    print(
        f"{args.store}: {inputs.num_users} users, {inputs.num_items} items, {train.nnz} training pairs, "
        f"torch threads {torch.get_num_threads()}; loss='auto' picks {auto}"
    )
    print(f"{'objective':<17}{'rows/step':>10}{'steps/epoch':>13}{'s/step':>9}{'epoch (s)':>11}")
    epochs = {}
    for loss in args.losses:
        cfg = replace(base, loss=loss, seed=0)
        if loss == "softmax":
            cfg = replace(cfg, batch_size=base.softmax_batch_size or base.batch_size)
        model = MODELS["scenegnn"].build(inputs, None)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
        cls = SoftmaxEpoch if loss == "softmax" else SampledSoftmaxEpoch
        epoch = cls(model, train, inputs.item_scene, cfg, optimizer, torch.device("cpu"))
        steps_per_epoch = -(-len(epoch.row_user) // epoch.rows_per_step())
        per_step = _time_steps(epoch, min(args.steps, steps_per_epoch), args.repeats)
        epochs[loss] = per_step * steps_per_epoch
        print(f"{loss:<17}{epoch.rows_per_step():>10}{steps_per_epoch:>13}{per_step:>9.3f}{epochs[loss]:>11.1f}")
    if len(epochs) == 2 and "softmax" in epochs and "sampled_softmax" in epochs:
        print(f"epoch time, full / sampled: {epochs['softmax'] / epochs['sampled_softmax']:.1f}x")
    if scene is not None:
        _fit(inputs, splits, replace(base, seed=args.seed), int(scene), args.fit)


def _fit(inputs: GraphInputs, splits: dict[str, CSR], config: TrainConfig, scene: int, name: str) -> None:
    """Train the default ``scenegnn`` and print its times and test metrics within ``scene``."""
    t0 = time.perf_counter()
    run = train_recommender("scenegnn", inputs, splits, config)
    total = time.perf_counter() - t0
    result, model = run.result, run.recommender
    print(
        f"fit ({result.loss}): {total:.1f} s = training {result.seconds_total:.1f} s ({len(result.history)} epochs, "
        f"best epoch {result.best_epoch} at {result.seconds_to_best:.1f} s) + item-item {run.item_item.seconds:.1f} s "
        f"(EASE or kNN per scene: {run.item_item.knn_scenes or 'none'} by kNN)"
    )
    candidates = np.flatnonzero(inputs.item_scene == scene)
    with torch.no_grad():
        user_emb, item_emb = model()
        for label in ("fused", "graph model alone"):
            if label != "fused" and isinstance(model, ItemItemFusion):
                model.fusion.zero_()
            m = evaluate_scores(
                lambda u: model.score(u, user_emb, item_emb),
                splits["train"],
                splits["test"],
                exclude=splits["valid"],
                candidate_items=candidates,
            )
            print(f"test {name} {label}: NDCG@10 {m['ndcg@10']:.4f}, Recall@10 {m['recall@10']:.4f}")


if __name__ == "__main__":
    main()
