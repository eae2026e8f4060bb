"""The approximate nearest-neighbour index of recommendations (:mod:`scenerec.ann`): build time, recall@10 against
exact scoring, ``recommend`` latency with and without the index, memory; on a real model and on large synthetic
catalogues.

    .venv/bin/python benchmarks/ann.py [--store DIR] [--epochs 5] [--sizes 200000 1000000] [--users 1000]
        [--calls 300] [--threads N] [--skip-real] [--skip-synthetic]

(a) **Food–Kitchen** (36k items, two scenes): the store ``--store`` (default ``/tmp/scenerec-bench/ann/food-kitchen``;
``--copy-from`` a store of ``benchmarks/serving.py`` to start from a copy of it; built without text when missing)
with BPR-MF fitted for ``--epochs`` epochs (seed 0; fitted again unless the saved model is that one), then the same model with an item-kNN channel fused (:class:`scenerec.gnn.ItemItemFusion`, weights
tuned on validation by :func:`scenerec.gnn.tune_item_item`): the served score is then not a dot product, and the
index's candidates are completed by the channel's (:meth:`Recommender.extra_candidates`). Each scene is forced
through the index (``Engine.open(store, ann=True)``, the default :class:`~scenerec.config.AnnConfig`).

(b) **Synthetic catalogues** of ``--sizes`` items (one scene): the Food–Kitchen model's item vectors resampled
with Gaussian noise (0.5 of each dimension's standard deviation), its user vectors resampled the same way for 5,000
users with 20 random training items each; served by a :class:`~scenerec.trained.TrainedModel` (BPR-MF with these
vectors) through the ranking of ``Ranker.recommend`` (:meth:`TrainedModel.scene_top_k` exact,
:func:`scenerec.ann.ann_scene_top_k` with the index), without the engine's id lookups and DataFrame (about 0.1 ms).

Recall@10: the share of the exact top-10 (training items left out) that the index path returns, over ``--users``
random users (seed 0). Latency: ``--calls`` single-user calls after a warm-up, p50/p99 in ms, the median of 3
repetitions. Memory: the index's serialised size and the process's RSS growth while building it. The largest
synthetic size is built once with the default settings; the others also with a smaller graph (M=16,
ef_construction=64) and without a head. Each index with the default settings is searched with several
``ef_search`` and ``candidates``, the others with ``candidates=100``; on Food–Kitchen also heads of 0-10 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from scenerec.ann import SceneIndex, ann_scene_top_k
from scenerec.config import AnnConfig
from scenerec.engine import Engine
from scenerec.gnn import BPRMF, CSR, GraphInputs, ItemItemFusion, tune_item_item
from scenerec.kg import current_generation
from scenerec.pipeline import build
from scenerec.trained import TrainedModel

#: The Food–Kitchen ``warm`` protocol next to the repository (as in ``benchmarks/serving.py``).
FOOD_KITCHEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_food_kitchen" / "warm"

Ranking = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _rss_mb() -> float:
    """The process's resident memory now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _recall(exact: Ranking, approx: Ranking) -> float:
    want = set(zip(exact[0].tolist(), exact[1].tolist(), strict=True))
    got = set(zip(approx[0].tolist(), approx[1].tolist(), strict=True))
    return len(want & got) / max(len(want), 1)


def _latency(call: Callable[[int], object], users: np.ndarray) -> tuple[float, float]:
    """p50 and p99 (ms) of ``call(user)`` over ``users``, the median of 3 repetitions (after a warm-up)."""
    for u in users[:20]:
        call(int(u))
    p50s, p99s = [], []
    for _ in range(3):
        times = []
        for u in users:
            t = time.perf_counter()
            call(int(u))
            times.append(time.perf_counter() - t)
        ms = np.asarray(times) * 1000
        p50s.append(float(np.percentile(ms, 50)))
        p99s.append(float(np.percentile(ms, 99)))
    return float(np.median(p50s)), float(np.median(p99s))


def _blocks(fn: Callable[[np.ndarray], Ranking], users: np.ndarray, step: int) -> Ranking:
    """``fn`` over ``users`` in blocks of ``step``, rows renumbered to positions in ``users``."""
    parts = []
    for start in range(0, len(users), step):
        r, i, s, k = fn(users[start : start + step])
        parts.append((r + start, i, s, k))
    return tuple(np.concatenate([p[n] for p in parts]) for n in range(4))  # type: ignore[return-value]


def _sweep(
    name: str,
    trained: TrainedModel,
    index: SceneIndex,
    scene: int,
    users: np.ndarray,
    calls: np.ndarray,
    grid: tuple[tuple[int, int], ...] = tuple((ef, c) for ef in (64, 128, 256, 512) for c in (10, 100)),
    exact: Ranking | None = None,
    k: int = 10,
) -> Ranking:
    """Recall@k and single-user latency of ``index`` for each (ef_search, candidates) of ``grid``, against exact
    scoring (``exact``: computed here, and timed, when not given); returns the exact ranking."""
    if exact is None:
        n = len(trained.scene_items(scene))
        step = max(1, min(256, 50_000_000 // max(n, 1)))
        exact = _blocks(lambda u: trained.scene_top_k(u, scene, k), users, step)
        p50, p99 = _latency(lambda u: trained.scene_top_k(np.array([u]), scene, k), calls)
        print(f"| {name} | exact | - | - | 1.0000 | {p50:.2f} | {p99:.2f} |", flush=True)
    base = index.config
    for ef, candidates in grid:
        index.config = dataclasses.replace(base, ef_search=ef, candidates=candidates)
        approx = _blocks(lambda u, c=candidates: ann_scene_top_k(trained, index, u, scene, k, c), users, 256)
        p50, p99 = _latency(lambda u, c=candidates: ann_scene_top_k(trained, index, np.array([u]), scene, k, c), calls)
        print(
            f"| {name} | M={base.m}, efC={base.ef_construction}, head {base.head:g} | {ef} | {candidates} | "
            f"{_recall(exact, approx):.4f} | {p50:.2f} | {p99:.2f} |",
            flush=True,
        )
    index.config = base
    return exact


def _index(vectors: np.ndarray, config: AnnConfig) -> tuple[SceneIndex, float]:
    """The index of ``vectors`` and the RSS growth (MB) while building it."""
    before = _rss_mb()
    index = SceneIndex(vectors, config)
    return index, _rss_mb() - before


def _header() -> None:
    print("| catalogue | index | ef_search | candidates | recall@10 | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")


def real(store: Path, epochs: int, n_users: int, n_calls: int) -> TrainedModel:
    """(a): Food–Kitchen, BPR-MF alone and with the item-kNN channel; returns the BPR-MF model."""
    try:
        current_generation(store)
    except Exception:  # no store yet: build it (no text: the point is the vectors of a trained model)
        t0 = time.perf_counter()
        build(FOOD_KITCHEN, store, embed=None)
        print(f"built {store} in {time.perf_counter() - t0:.1f} s")
    with Engine.open(store, read_only=False) as engine:
        meta = engine.model_dir / "meta.json"
        fitted = json.loads(meta.read_text()) if meta.is_file() else {}
        if fitted.get("model") != "bpr" or fitted.get("config", {}).get("epochs") != epochs:
            t0 = time.perf_counter()
            engine.fit("bpr", epochs=epochs, seed=0)
            print(f"fitted bpr ({epochs} epochs) in {time.perf_counter() - t0:.1f} s")
    with Engine.open(store, ann=True) as engine:
        trained = engine.model
        fused = _fuse(trained)
        rng = np.random.default_rng(0)
        users = np.sort(rng.choice(engine.idmap.size("user"), n_users, replace=False))
        calls = rng.choice(engine.idmap.size("user"), n_calls)
        user_ids = np.asarray(engine.idmap.ids("user"), dtype=object)
        print(f"\n(a) Food–Kitchen, {engine.idmap.size('item')} items, {len(users)} users; {_load()}")
        print("| scene | items | build s | index MB | RSS growth MB |")
        print("|---|---|---|---|---|")
        for scene in engine.idmap.ids("scene"):
            before = _rss_mb()
            index = engine.ranker.ann_index(scene)
            assert index is not None
            print(
                f"| {scene} | {index.size} | {index.seconds:.2f} | {index.nbytes / 2**20:.1f} | {_rss_mb() - before:.0f} |"
            )
        print()
        print(
            "| model, scene | recall@10 (engine, default AnnConfig) | recommend p50 ms exact | p99 | with index | p99 |"
        )
        print("|---|---|---|---|---|---|")
        for model_name, model in (("bpr", trained), ("bpr + item-kNN", fused)):
            engine._trained = model  # serve this model (same nodes, same splits)
            for scene in engine.idmap.ids("scene"):
                engine.ann = False
                exact = engine.recommend_many(list(user_ids[users]), scene, k=10)
                p50_e, p99_e = _latency(lambda u, s=scene: engine.recommend(user_ids[u], s, k=10), calls)
                engine.ann = True
                approx = engine.recommend_many(list(user_ids[users]), scene, k=10)
                p50_a, p99_a = _latency(lambda u, s=scene: engine.recommend(user_ids[u], s, k=10), calls)
                recall = len(exact.merge(approx, on=["user_id", "item_id"])) / max(len(exact), 1)
                print(
                    f"| {model_name}, {scene} | {recall:.4f} | {p50_e:.2f} | {p99_e:.2f} | {p50_a:.2f} | {p99_a:.2f} |",
                    flush=True,
                )
        print()
        _header()
        vectors = trained.embeddings[1].numpy()
        for scene in engine.idmap.ids("scene"):
            s = engine.idmap.index("scene", scene)
            exact_of: dict[str, Ranking] = {}
            for model_name, model in (("bpr", trained), ("bpr + item-kNN", fused)):
                index = SceneIndex(vectors[model.scene_items(s)], AnnConfig(enabled=True))
                exact_of[model_name] = _sweep(f"FK {scene}, {model_name}", model, index, s, users, calls[:100])
            for head in (0.0, 0.01, 0.02, 0.1):  # the head's share, at the default search settings
                index = SceneIndex(vectors[trained.scene_items(s)], AnnConfig(enabled=True, head=head))
                _sweep(f"FK {scene}, bpr", trained, index, s, users, calls[:100], ((256, 100),), exact_of["bpr"])
        return trained


def _fuse(trained: TrainedModel) -> TrainedModel:
    """``trained`` with an item-kNN channel fused, its weights tuned on the validation pairs."""
    inputs = GraphInputs(
        train=trained.splits["train"], item_scene=trained.item_scene, num_scenes=int(trained.item_scene.max()) + 1
    )
    fused = ItemItemFusion(trained.recommender, inputs, kind="knn")
    t0 = time.perf_counter()
    report = tune_item_item(fused, trained.splits["train"], trained.splits["valid"], trained.item_scene)
    weights = {s: round(float(v.get("weight", 0.0)), 3) for s, v in report.scenes.items()}
    print(
        f"item-kNN channel tuned in {time.perf_counter() - t0:.1f} s: weights per scene {weights}, nnz {fused.channel.nnz}"
    )
    return TrainedModel.of(trained.name, fused, trained.splits, trained.item_scene)


def synthetic(source: TrainedModel, sizes: list[int], n_users: int, n_calls: int) -> None:
    """(b): catalogues of ``sizes`` items resampled from ``source``'s vectors."""
    user_src, item_src = (e.numpy() for e in source.embeddings)
    rng = np.random.default_rng(0)
    n_u, per_user = 5000, 20
    users_v = user_src[rng.integers(len(user_src), size=n_u)]
    users_v = users_v + 0.5 * user_src.std(0) * rng.standard_normal(users_v.shape, dtype=np.float32)
    for size in sizes:
        items_v = item_src[rng.integers(len(item_src), size=size)]
        items_v = items_v + 0.5 * item_src.std(0) * rng.standard_normal(items_v.shape, dtype=np.float32)
        model = BPRMF(n_u, size, items_v.shape[1])
        with torch.no_grad():
            model.user_embedding.weight.copy_(torch.from_numpy(users_v))
            model.item_embedding.weight.copy_(torch.from_numpy(items_v))
        pairs_u = np.repeat(np.arange(n_u), per_user)
        train = CSR.from_pairs(pairs_u, rng.integers(size, size=len(pairs_u)), (n_u, size))
        empty = CSR.from_pairs(np.zeros(0), np.zeros(0), (n_u, size))
        trained = TrainedModel.of(
            "bpr", model, {"train": train, "valid": empty, "test": empty}, np.zeros(size, np.int64)
        )
        users = np.sort(rng.choice(n_u, n_users, replace=False))
        calls = rng.choice(n_u, n_calls)
        vectors = items_v.astype(np.float32)
        settings = [AnnConfig(enabled=True)]
        if size != max(sizes):
            settings += [AnnConfig(enabled=True, m=16, ef_construction=64), AnnConfig(enabled=True, head=0.0)]
        exact = None
        for config in settings:
            print(f"\n(b) synthetic, {size} items x {vectors.shape[1]} dims; {_load()}")
            index, grown = _index(vectors, config)
            print(
                f"index M={config.m}, ef_construction={config.ef_construction}, head {config.head:g}: built in "
                f"{index.seconds:.1f} s, {index.nbytes / 2**20:.0f} MB, RSS +{grown:.0f} MB "
                f"(the vectors alone: {vectors.nbytes / 2**20:.0f} MB)",
                flush=True,
            )
            _header()
            if config == settings[0]:
                exact = _sweep(f"synthetic {size // 1000}k", trained, index, 0, users, calls)
            else:
                grid = ((128, 100), (256, 100), (512, 100))
                _sweep(f"synthetic {size // 1000}k", trained, index, 0, users, calls, grid, exact)
            del index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=Path("/tmp/scenerec-bench/ann/food-kitchen"))
    ap.add_argument("--copy-from", type=Path, default=None, help="copy this built store to --store first")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="*", default=[200_000, 1_000_000])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's own)")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}; {_load()}")
    if args.copy_from is not None and not args.store.exists():
        shutil.copytree(args.copy_from, args.store)
    source = real(args.store, args.epochs, args.users, args.calls)
    if not args.skip_synthetic:
        synthetic(source, args.sizes, args.users, args.calls)
    print(f"\ndone; {_load()}")


if __name__ == "__main__":
    main()
