"""Scaling curve: the time of every stage of scenerec's pipeline, peak memory and quality, against the number of
interactions, with implicit's ALS fitted on the same splits in the same run (so ratios, not absolute seconds, carry
over to another machine).

    .venv/bin/python benchmarks/scale.py [--datasets ml100k ml1m food-kitchen synth3m synth10m]
        [--store-root /tmp/scenerec-bench/scale] [--max-epochs N] [--repeats 3] [--calls 1000] [--threads N]
        [--precision fp32|int8] [--als-grid light|full] [--build-only DATASET ...] [--no-als DATASET ...]
        [--no-write-back DATASET ...]
        [--json OUT]
    .venv/bin/python benchmarks/scale.py --table-from OUT1.json OUT2.json ...

Datasets (from ``../shared/data`` next to the repository, ``--shared`` elsewhere; read their ``SOURCE.md``):

* ``ml100k``: MovieLens-100K with its Freebase KG and RecBole's split (``split_recbole``), one scene;
* ``ml1m``: MovieLens-1M (1M ratings, titled films), one scene, no stored split (``fit`` assigns
  ``random_per_user``, seed 0);
* ``food-kitchen``: Amazon Food–Kitchen ``warm`` (420k interactions, 36k titled items, scenes food and kitchen; 480
  valid and 480 test users whose last food item is held out);
* ``synth<N>`` (``synth200k``, ``synth3m``, ``synth10m``, ...): Food–Kitchen grown (or sampled down) to N
  interactions by ``benchmarks/synthetic.py`` (clones of its users and items with the source's degree
  distributions, scenes, splits and titles). A clone's title is its source's, so its text embedding is the source
  item's: the embedding cache of the ``food-kitchen`` store (when built first) is copied into the synthetic store,
  and identical texts are encoded once anyway, so the embed stage costs what the source catalogue costs.

Each dataset runs in its own subprocess (so peak RSS is that size's), as a user would: ``scenerec.pipeline.build``
(load+clean, embed with the default text model, graph load; its own stage timings), ``Engine.fit()`` with the
default model and its default configuration (``--max-epochs`` caps the epochs; the table says when the cap was
hit), ``Engine.evaluate(scene)`` for every scene with test users, ``Engine.write_back(k=10)``, and
``Engine.recommend`` of ``--calls`` random (user, scene) pairs one at a time (p50 / p99; ``--repeats`` runs of
evaluate and recommend, medians). Then implicit's ALS on the trained model's own train / valid / test splits: its
factors, regularization and alpha chosen on the validation users' NDCG@10 (``--als-grid light``: 2 x 2 x 2
points; ``full``: the 18 of ``benchmarks/transfer.py``), test NDCG@10 by the same protocol as ``Engine.evaluate``
(full ranking within each scene, train and valid items excluded; scenes pooled by their test users).

``--store-root``: stores live in ``DIR/<dataset>`` and are reused when the dataset's files (and the text model
settings) did not change, so a rerun skips the rebuild and reports the timings of the build that made the store
(marked ``reused``). Prints one table per run, then the fitted exponent of each stage's time (and of peak RSS)
against the number of interactions: least squares on log-log over the sizes run, over all of them and over
Food–Kitchen and its synthetic sizes (one shape). ``--json OUT`` saves it all; ``--table-from`` prints one table of
runs saved separately. ``--build-only DATASET ...``: on those datasets only the build and ALS (on the splits
``fit`` would use) run, for sizes at which the training loop is too slow to wait for; ``--no-als DATASET ...`` and
``--no-write-back DATASET ...`` leave out ALS or the write-back on those sizes (the table shows "-").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
#: Dataset name -> (folder under --shared, loader options' ``extra``)
REAL: dict[str, tuple[str, dict[str, str]]] = {
    "ml100k": ("movielens_100k_kg", {"split": "split_recbole"}),
    "ml1m": ("movielens_1m", {}),
    "food-kitchen": ("amazon_food_kitchen/warm", {}),
}
SYNTH = re.compile(r"synth(\d+(?:\.\d+)?)([km]?)$")
SYNTH_SOURCE = "food-kitchen"
#: The light ALS grid (``--als-grid light``).
LIGHT_ALS_GRID: dict[str, tuple[float, ...]] = {
    "factors": (64, 128),
    "regularization": (1.0, 30.0),
    "alpha": (5.0, 20.0),
}
#: Stages whose time is fitted against the number of interactions, with the record's key.
STAGES: list[tuple[str, str]] = [
    ("load+clean", "load_clean_s"),
    ("embed", "embed_s"),
    ("graph load", "graph_s"),
    ("fit: one epoch", "epoch_s"),
    ("fit to best epoch", "fit_best_s"),
    ("fit (wall)", "fit_wall_s"),
    ("evaluate", "evaluate_s"),
    ("write-back", "write_back_s"),
    ("recommend p50", "rec_p50_ms"),
    ("recommend p99", "rec_p99_ms"),
    ("peak RSS after build", "build_rss_gb"),
    ("peak RSS", "peak_rss_gb"),
    ("ALS fit (chosen)", "als_fit_s"),
]


def synth_size(name: str) -> int | None:
    """The number of interactions ``synth<N>`` asks for (``200k``, ``3m``, ``1.5m``), else None."""
    m = SYNTH.match(name)
    if m is None:
        return None
    return int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2)])


def fingerprint(folder: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime ns) of every file under ``folder``: changes when the data does."""
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    )


def dataset_folder(name: str, args: argparse.Namespace) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """(dataset folder, loader options, what identifies its content) for ``name``; a synthetic one is generated
    under ``--store-root/data`` first unless it is there already from the same source and settings."""
    if name in REAL:
        folder, extra = REAL[name]
        path = args.shared / folder
        return path, extra, {"files": fingerprint(path), "extra": extra}
    size = synth_size(name)
    if size is None:
        raise SystemExit(f"unknown dataset {name!r}: use ml100k, ml1m, food-kitchen or synth<N> (e.g. synth3m)")
    source = args.shared / REAL[SYNTH_SOURCE][0]
    out = args.store_root / "data" / name
    want = {"source": fingerprint(source), "target": size, "swap": args.swap, "seed": 0}
    stamp = out / "FINGERPRINT.json"
    if not stamp.is_file() or json.loads(stamp.read_text(encoding="utf-8")) != json.loads(json.dumps(want)):
        from synthetic import write_grown

        t0 = time.perf_counter()
        info = write_grown(source, out, size, swap=args.swap, seed=0)
        stamp.write_text(json.dumps(want), encoding="utf-8")
        print(f"[{name}] generated {info['interactions']:,} interactions, {info['items']:,} items, "
              f"{info['users']:,} users into {out} in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return out, {}, {"files": fingerprint(out), "extra": {}}


def peak_rss_gb() -> float:
    """This process's peak resident set so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------------------------------------ one dataset
def build_store(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the store of ``name``; the build's stage timings and what the text step did."""
    from scenerec.config import EmbedConfig
    from scenerec.loaders import LoadOptions
    from scenerec.pipeline import CACHE_DIR, build

    path, extra, content = dataset_folder(name, args)
    store = args.store_root / name
    meta_file = args.store_root / f"{name}.build.json"
    key = json.loads(json.dumps({"content": content, "precision": args.precision}))
    if meta_file.is_file() and (store / "CURRENT").is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("key") == key:
            print(f"[{name}] reusing the store {store} (data unchanged)")
            return {**meta["build"], "reused": True}
    shutil.rmtree(store, ignore_errors=True)
    source_cache = args.store_root / SYNTH_SOURCE / CACHE_DIR
    if synth_size(name) is not None and source_cache.is_dir():
        shutil.copytree(source_cache, store / CACHE_DIR)  # the clones' titles are the source's
        print(f"[{name}] embedding cache seeded from {source_cache}")
    embed = EmbedConfig(precision=args.precision, threads=args.threads or None)
    shown: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:  # every tenth of a stage
        tenth = 10 * done // max(total, 1)
        if shown.get(stage, -1) < tenth:
            shown[stage] = tenth
            print(f"  [{name}] {stage} {done:,} / {total:,} ({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    report = build(path, store, options=LoadOptions(extra=extra), embed=embed, progress=progress)
    seconds = dict(report.seconds)
    info = report.features or {}
    out = {
        "build_wall_s": time.perf_counter() - t0,
        "load_clean_s": seconds.get("load+clean", 0.0),
        "embed_s": seconds.get("features", 0.0),
        "graph_s": seconds.get("tables", 0.0) + seconds.get("graph", 0.0),
        "texts": sum((info.get("texts") or {}).values()),
        "encoded": info.get("encoded", 0),
        "cached": sum((info.get("cached") or {}).values()),
        "build_rss_gb": peak_rss_gb(),
        "reused": False,
    }
    meta_file.write_text(json.dumps({"key": key, "build": out}), encoding="utf-8")
    return out


def scene_ndcg(score: Any, splits: dict[str, Any], item_scene: np.ndarray, which: str) -> tuple[float, int]:
    """NDCG@10 on the ``which`` split by :meth:`Engine.evaluate`'s protocol (full ranking within each scene, train
    items excluded, and valid items too on test), the scenes pooled by their number of users; (ndcg, users)."""
    from scenerec.gnn import evaluate_scores

    total = weight = 0.0
    target = splits[which]
    for scene in np.unique(item_scene[item_scene >= 0]):
        candidates = np.flatnonzero(item_scene == scene)
        users = len(np.unique(target.rows()[np.isin(target.indices, candidates)]))
        if users == 0:
            continue
        exclude = splits["valid"] if which == "test" else None
        m = evaluate_scores(score, splits["train"], target, exclude=exclude, ks=(10,), candidate_items=candidates)
        total += m["ndcg@10"] * users
        weight += users
    return (total / weight if weight else float("nan")), int(weight)


def run_als(splits: dict[str, Any], item_scene: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """implicit's ALS on ``splits``: every grid point fitted, the best by validation NDCG@10, its test NDCG@10."""
    from peers import ALS_GRID, als_available, als_options

    missing = als_available()
    if missing is not None or args.child in args.no_als:
        return {"als_skipped": missing or "--no-als"}
    grid = ALS_GRID if args.als_grid == "full" else LIGHT_ALS_GRID
    best: tuple[float, dict[str, Any], Any] | None = None
    t0 = time.perf_counter()
    for params, score in als_options(splits["train"], seed=0, threads=args.threads, grid=grid):
        valid, _ = scene_ndcg(score, splits, item_scene, "valid")
        print(f"  ALS {params}: valid NDCG@10 {valid:.4f}", flush=True)
        if best is None or valid > best[0]:
            best = (valid, params, score)
    assert best is not None
    test, users = scene_ndcg(best[2], splits, item_scene, "test")
    return {
        "als_params": {k: v for k, v in best[1].items() if k != "seconds"},
        "als_fit_s": best[1]["seconds"],
        "als_grid_s": time.perf_counter() - t0,
        "als_valid_ndcg": best[0],
        "als_test_ndcg": test,
        "als_test_users": users,
    }


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every stage on dataset ``name`` in this process (the child's job)."""
    import torch
    from serving import sample_calls, time_recommend

    from scenerec.engine import Engine

    if args.threads:
        torch.set_num_threads(args.threads)
    rec: dict[str, Any] = {"dataset": name, "load_start": os.getloadavg()[0], "torch_threads": torch.get_num_threads()}
    rec.update(build_store(name, args))
    with Engine.open(args.store_root / name, read_only=False) as engine:
        rec["users"], rec["items"] = engine.idmap.size("user"), engine.idmap.size("item")
        if name in args.build_only:  # no model: ALS on the splits fit would use
            splits, index, _ = engine.trainer.interaction_splits(0)
            rec["interactions"] = int(sum(splits[s].nnz for s in ("train", "valid", "test")))
            rec.update(run_als(splits, index.item_scene, args))
            rec["load_end"] = os.getloadavg()[0]
            return rec

        def show(r: dict[str, Any]) -> None:
            if "epoch" in r:
                print(f"  [{name}] epoch {r['epoch']}: loss {r.get('loss', float('nan')):.4f}, valid NDCG@10 "
                      f"{r.get('valid_ndcg@10')}, {r.get('seconds', 0):.1f} s", flush=True)  # fmt: skip

        t0 = time.perf_counter()
        result = engine.fit(seed=0, epochs=args.max_epochs, progress=show)
        rec["fit_wall_s"] = time.perf_counter() - t0
        epochs = len(result.history)
        rec["epochs"], rec["best_epoch"] = epochs, result.best_epoch
        rec["capped"] = args.max_epochs is not None and epochs >= args.max_epochs
        rec["epoch_s"] = statistics.median(float(h["seconds"]) for h in result.history) if epochs else float("nan")
        # to the best epoch, plus what follows the epochs (the item-item channel, saving)
        rec["fit_best_s"] = result.seconds_to_best + (rec["fit_wall_s"] - result.seconds_total)
        rec["valid_ndcg"] = result.best_valid.get("ndcg@10", float("nan"))
        rec["fit_rss_gb"] = peak_rss_gb()

        trained = engine.model
        splits, item_scene = trained.splits, trained.item_scene
        rec["interactions"] = int(sum(splits[s].nnz for s in ("train", "valid", "test")))
        scenes = engine.ranker._written_scenes(trained, None)
        test = splits["test"]
        with_users = []
        for scene in scenes:
            candidates = trained.scene_items(engine.idmap.index("scene", scene))
            if np.isin(test.indices, candidates).any():
                with_users.append(scene)
        runs, metrics = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            metrics = [engine.evaluate(scene) for scene in with_users]
            runs.append(time.perf_counter() - t0)
        rec["evaluate_s"] = statistics.median(runs)
        users = sum(m["users"] for m in metrics)
        rec["test_ndcg"] = sum(m["ndcg@10"] * m["users"] for m in metrics) / users if users else float("nan")
        rec["test_users"] = users
        rec["evaluate_rss_gb"] = peak_rss_gb()

        if name not in args.no_write_back:
            t0 = time.perf_counter()
            wb = engine.write_back(k=10)
            rec["write_back_s"], rec["write_back_edges"] = time.perf_counter() - t0, wb["edges"]
            rec["write_back_rss_gb"] = peak_rss_gb()

        calls = sample_calls(engine, args.calls)
        p50, p99 = [], []
        for _ in range(args.repeats):
            ms = np.asarray(time_recommend(engine, calls, 10)) * 1000
            p50.append(float(np.percentile(ms, 50)))
            p99.append(float(np.percentile(ms, 99)))
        rec["rec_p50_ms"], rec["rec_p99_ms"] = statistics.median(p50), statistics.median(p99)
        rec["peak_rss_gb"] = peak_rss_gb()  # scenerec's stages end here
        rec.update(run_als(splits, item_scene, args))
    rec["load_end"] = os.getloadavg()[0]
    return rec


# --------------------------------------------------------------------------------------------------- the table
def exponent(sizes: list[float], values: list[float]) -> float | None:
    """Slope of log(value) against log(size) by least squares; None with fewer than two distinct sizes."""
    pairs = [
        (s, v) for s, v in zip(sizes, values, strict=True) if s > 0 and v is not None and v > 0 and math.isfinite(v)
    ]
    if len({s for s, _ in pairs}) < 2:
        return None
    x, y = np.log([s for s, _ in pairs]), np.log([v for _, v in pairs])
    return float(np.polyfit(x, y, 1)[0])


def _f(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def print_table(records: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """The per-dataset table, then the exponents of each stage over all sizes and over the Food–Kitchen family
    (the source and its synthetic sizes, one shape); returns the exponents."""
    print()
    print("| dataset | interactions | users | items | load+clean s | embed s (encoded / texts) | graph load s | "
          "epoch s | fit to best s (best / epochs run) | evaluate s | write-back s | recommend p50 / p99 ms | "
          "peak RSS GB (build / all) | NDCG@10 scenerec / ALS (test users) | ALS fit s | fit to best / ALS fit |")  # fmt: skip
    print("|---" * 16 + "|")
    for r in records:
        if "error" in r:
            print(f"| {r['dataset']} | failed: {r['error']} |" + " |" * 14)
            continue
        g = r.get
        reused = " (reused)" if g("reused") else ""
        fit = "not run (--build-only)"
        if "fit_best_s" in r:
            fit = f"{_f(g('fit_best_s'))} ({g('best_epoch')} / {g('epochs')}{' capped' if g('capped') else ''})"
        ratio = g("fit_best_s") / g("als_fit_s") if g("fit_best_s") and g("als_fit_s") else None
        print(
            f"| {r['dataset']} | {r['interactions']:,} | {r['users']:,} | {r['items']:,} | "
            f"{_f(g('load_clean_s'))}{reused} | {_f(g('embed_s'))} ({g('encoded'):,} / {g('texts'):,}) | "
            f"{_f(g('graph_s'))} | {_f(g('epoch_s'))} | {fit} | {_f(g('evaluate_s'), '.2f')} | "
            f"{_f(g('write_back_s'))} | {_f(g('rec_p50_ms'), '.2f')} / {_f(g('rec_p99_ms'), '.2f')} | "
            f"{_f(g('build_rss_gb'), '.2f')} / {_f(g('peak_rss_gb'), '.2f')} | {_f(g('test_ndcg'), '.4f')} / {_f(g('als_test_ndcg'), '.4f')} "
            f"({g('test_users', g('als_test_users', '-'))}) | {_f(g('als_fit_s'), '.2f')} | {_f(ratio)}x |"
        )
    ok = [r for r in records if "error" not in r]
    family = [r for r in ok if r["dataset"] == SYNTH_SOURCE or synth_size(r["dataset"]) is not None]
    groups = {"all sizes": ok, f"{SYNTH_SOURCE} and its synthetic sizes (same shape)": family}
    exps: dict[str, dict[str, float | None]] = {}
    print()
    print("Exponent b of time (or RSS) ~ interactions^b, least squares on log-log over the sizes above:")
    print("| sizes | " + " | ".join(stage for stage, _ in STAGES) + " |")
    print("|---" * (len(STAGES) + 1) + "|")
    for label, rows in groups.items():
        sizes = [float(r["interactions"]) for r in rows]
        exps[label] = {stage: exponent(sizes, [r.get(key) for r in rows]) for stage, key in STAGES}
        print(f"| {label} ({len(rows)}) | " + " | ".join(_f(exps[label][stage], ".2f") for stage, _ in STAGES) + " |")
    print("(peak RSS per size: the column above; load average at start / end of each size: "
          + ", ".join(f"{r['dataset']} {r['load_start']:.1f}/{r['load_end']:.1f}" for r in ok) + ")")  # fmt: skip
    return exps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml100k", "ml1m", "food-kitchen", "synth3m", "synth10m"])
    ap.add_argument("--store-root", type=Path, default=Path("/tmp/scenerec-bench/scale"))
    ap.add_argument("--shared", type=Path, default=SHARED, help="the datasets' folder")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on fit's epochs (default: the model's own)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of evaluate and recommend (medians)")
    ap.add_argument("--calls", type=int, default=1000, help="recommend calls per run")
    ap.add_argument("--threads", type=int, default=0, help="torch and ALS threads (0: their own default)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"], help="text model precision")
    ap.add_argument("--als-grid", default="light", choices=["light", "full"])
    ap.add_argument("--swap", type=float, default=0.1, help="synthetic: share of interactions moved to another copy")
    ap.add_argument(
        "--build-only",
        nargs="*",
        default=[],
        help="datasets on which only the build and ALS run (no fit, evaluate, write-back, recommend)",
    )
    ap.add_argument("--no-als", nargs="*", default=[], help="datasets on which ALS does not run")
    ap.add_argument("--no-write-back", nargs="*", default=[], help="datasets on which the write-back does not run")
    ap.add_argument("--json", type=Path, default=None, help="save the records and exponents here")
    ap.add_argument(
        "--table-from", nargs="+", type=Path, default=None, help="print the table of saved --json files and stop"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table_from:  # runs made separately, one table (a later file's record replaces an earlier one's)
        merged = {r["dataset"]: r for f in args.table_from for r in json.loads(f.read_text("utf-8"))["records"]}
        print_table(sorted(merged.values(), key=lambda r: r.get("interactions", 0)))
        return
    args.store_root = args.store_root.resolve()
    args.store_root.mkdir(parents=True, exist_ok=True)
    if args.child is not None:  # one dataset, in this process
        rec = run_one(args.child, args)
        args.out.write_text(json.dumps(rec), encoding="utf-8")
        return

    records = []
    passed = _without(_without(sys.argv[1:], "--json"), "--datasets")
    for name in args.datasets:
        out = args.store_root / f"{name}.result.json"
        out.unlink(missing_ok=True)
        print(f"== {name} (load average {os.getloadavg()[0]:.2f})", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, *passed, "--child", name,
                                 "--out", str(out)])  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not out.is_file():
            records.append({"dataset": name, "error": f"exit code {code}"})
            continue
        rec = json.loads(out.read_text(encoding="utf-8"))
        rec["process_rss_gb"] = usage.ru_maxrss / 2**20  # with ALS
        rec["wall_s"] = time.perf_counter() - t0
        records.append(rec)
        print(f"== {name} done in {rec['wall_s']:.0f} s", flush=True)
    exps = print_table(records)
    if args.json is not None:
        args.json.write_text(json.dumps({"records": records, "exponents": exps}, indent=1), encoding="utf-8")
        print(f"saved {args.json}")


def _without(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option`` and the values that follow it (up to the next ``--``)."""
    out, skip = [], False
    for a in argv:
        if a.startswith("--"):
            skip = a == option or a.startswith(option + "=")
            if skip:
                continue
        if not skip:
            out.append(a)
    return out


if __name__ == "__main__":
    main()
