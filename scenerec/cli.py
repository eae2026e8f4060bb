"""The ``scenerec`` command line: batch graph rebuilds, Cypher queries, search and recommenders.

Every command exits 0 on success and non-zero with a one-line ``error: ...`` on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import pandas as pd

from scenerec import __version__
from scenerec.config import PRECISIONS, RUNTIMES, EmbedConfig
from scenerec.console import Progress as _Progress
from scenerec.console import print_frame as _print_frame
from scenerec.console import print_paths as _print_paths
from scenerec.console import print_rebuild as _print_rebuild
from scenerec.console import print_write_back as _print_write_back
from scenerec.demo import SAMPLE
from scenerec.errors import ConfigError, ScenerecError, StoreFileError
from scenerec.registry import DEFAULT_RECOMMENDER, MODELS


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``k=v`` gives the string ``v``; ``k:=v`` parses ``v`` as JSON (numbers, lists, booleans, null)."""
    params: dict[str, Any] = {}
    for item in items:
        if ":=" in item and item.index(":=") < item.index("=") + 1:
            key, raw = item.split(":=", 1)
            try:
                params[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ScenerecError(f"--param {item!r}: the value after ':=' is not JSON ({exc.msg})") from None
        elif "=" in item:
            key, value = item.split("=", 1)
            params[key] = value
        else:
            raise ScenerecError(f"--param {item!r}: expected key=value (string) or key:=json")
        if not key.isidentifier():
            raise ScenerecError(f"--param {item!r}: {key!r} is not a valid parameter name")
    return params


class _FitProgress:
    """Progress bars on stderr for ``fit``: training epochs (loss and validation NDCG), then the item-item channel's
    fits (off with --quiet or when stderr is not a terminal)."""

    def __init__(self, quiet: bool, epochs: int | None) -> None:
        self.quiet = quiet
        self.epochs = epochs
        self.bar: Any = None
        self.phase = ""

    def _open(self, phase: str, total: int | None, desc: str, unit: str) -> Any:
        if self.phase != phase:
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(total=total, desc=desc, unit=unit, disable=self.quiet or None, leave=False)
            self.phase = phase
        return self.bar

    def __call__(self, record: dict[str, Any]) -> None:
        if "item_item" in record:
            done, total = record["item_item"]
            bar = self._open("item_item", total, "item-item channel", "fit")
            bar.update(done - bar.n)
            bar.refresh()  # every step shows, however fast (tqdm skips updates within its mininterval)
            return
        bar = self._open("train", self.epochs, "training", "epoch")
        shown = {k: f"{v:.4f}" for k, v in record.items() if k.startswith(("loss", "valid_"))}
        bar.set_postfix(shown, refresh=False)
        bar.update(1)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _embed_config(args: argparse.Namespace) -> EmbedConfig | None:
    if getattr(args, "no_embed", False):
        return None
    return EmbedConfig(
        model=args.model,
        threads=args.threads,
        device=args.device,
        precision=getattr(args, "precision", "fp32"),
        runtime=getattr(args, "runtime", "auto"),
    )


def cmd_rebuild(args: argparse.Namespace) -> int:
    from scenerec.loaders import LoadOptions, load_dataset
    from scenerec.pipeline import build

    options = LoadOptions(scene=args.scene, min_rating=args.min_rating, allow_empty=args.allow_empty)
    if args.dry_run:
        res = load_dataset(args.dataset, format=args.format, options=options)
        print(json.dumps(res.summary(), indent=2))
        return 0
    progress = _Progress(args.quiet)
    try:
        report = build(
            args.dataset,
            args.store,
            backend=args.backend,
            format=args.format,
            options=options,
            embed=_embed_config(args),
            progress=progress,
            wait=args.wait,
        )
    finally:
        progress.close()
    _print_rebuild(report)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine
    from scenerec.loaders import LoadOptions

    options = LoadOptions(scene=args.scene, min_rating=args.min_rating)
    progress = _Progress(args.quiet)
    try:
        with Engine.open(args.store, read_only=False, wait=args.wait) as engine:
            out = engine.update(args.dataset, format=args.format, options=options, k=args.write_k, progress=progress)
    finally:
        progress.close()
    if args.output == "json":
        print(json.dumps(out))
        return 0
    print(f"updated {out['store']} from {out['dataset']} ({out['format']}): generation {out['generation']}")
    rows = [{"table": t, "added": n, "changed": out["changed"].get(t, "")} for t, n in out["added"].items()]
    _print_frame(pd.DataFrame(rows), "table")
    print(
        f"new or changed texts: {out['texts']} ({out['embedded']} encoded, the rest from the embedding cache); "
        f"rows of the update rejected, merged or repaired: {out['rejects']}"
    )
    if out["model"]:
        print(
            f"model {out['model']} extended without retraining; RECOMMENDED edges refreshed for "
            f"{out['refreshed_users']} users ({out['recommended']} edges)"
        )
    else:
        print("no trained model in the store: nothing to refresh (run `scenerec fit`)")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in out["seconds"].items()))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from scenerec.kg import open_store

    params = _parse_params(args.param or [])
    with open_store(args.store, unsafe=args.unsafe) as store:
        df = store.query(args.cypher, **params)
    _print_frame(df, args.format)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from scenerec.kg import read_manifest

    manifest = read_manifest(args.store)
    if args.format == "json":
        print(json.dumps(manifest, indent=2))
        return 0
    try:
        lines = [
            f"store {args.store}: backend {manifest['backend']}, built {manifest['created']}",
            f"dataset {manifest['dataset']['path']} (format {manifest['dataset']['format']})",
            "nodes:   " + ", ".join(f"{k} {v:,}" for k, v in manifest["counts"]["nodes"].items()),
            "edges:   " + ", ".join(f"{k} {v:,}" for k, v in manifest["counts"]["edges"].items()),
        ]
        scenes, rejects = pd.DataFrame(manifest["scenes"]), f"rejects: {manifest['rejects']:,}"
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _manifest_error(args.store, exc)
    print("\n".join(lines))
    _print_frame(scenes, "table")
    print(rejects)
    return 0


def _manifest_error(store: str, exc: Exception) -> NoReturn:
    from scenerec.kg.rebuild import MANIFEST, current_generation
    from scenerec.storefiles import rebuild_hint

    what = f"lacks {exc}" if isinstance(exc, KeyError) else f"holds a value of the wrong kind ({exc})"
    raise StoreFileError(current_generation(store) / MANIFEST, what, rebuild_hint(store)) from None


def cmd_search(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    with Engine.open(args.store) as engine:
        try:
            hits = engine.search_items(args.text, scene=args.scene, k=args.k)
        except ValueError as exc:
            raise ScenerecError(str(exc)) from None
    _print_frame(hits, args.format)
    return 0


def cmd_classify_scenes(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    with Engine.open(args.store, read_only=args.dry_run, wait=args.wait) as engine:
        result = engine.classify_scenes(
            min_confidence=args.min_confidence, test_fraction=args.test_fraction, seed=args.seed, write=not args.dry_run
        )
    report, rows = result.report, result.assignments
    assigned, low = rows[rows["assigned"]], rows[~rows["assigned"]]
    if args.format == "json":
        out = {
            **report.summary(),
            "per_scene": {str(k): {c: float(v) for c, v in r.items()} for k, r in report.per_scene.iterrows()},
            "assigned": assigned.drop(columns="assigned").to_dict("records"),
            "low_confidence": low.drop(columns="assigned").to_dict("records"),
            "written": result.written,
        }
        print(json.dumps(out, indent=2, default=float))
        return 0
    print(report)
    print(
        f"\nitems without a scene: {len(rows):,}; assigned {len(assigned):,} (confidence >= {args.min_confidence}), "
        f"left unassigned {len(low):,}" + ("" if not args.dry_run else " (dry run: nothing written)")
    )
    if len(assigned):
        print("\nassigned:")
        _print_frame(assigned.drop(columns="assigned").head(args.show), "table")
    if len(low):
        print("\nlow confidence, not assigned (best guess shown):")
        _print_frame(low.drop(columns="assigned").head(args.show), "table")
    return 0


def _parse_ks(text: str) -> tuple[int, ...]:
    """``"10,20"`` -> ``(10, 20)``; anything else that is not a list of positive integers is an error."""
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ScenerecError(f"--k {text!r}: expected positive integers separated by commas, e.g. 10,20") from None
    if not ks or min(ks) < 1:
        raise ScenerecError(f"--k {text!r}: expected positive integers separated by commas, e.g. 10,20")
    return ks


def _parse_options(items: list[str]) -> dict[str, Any]:
    """``["gate=false", "dim=64"]`` -> ``{"gate": False, "dim": 64}``; a value that is not JSON stays a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScenerecError(f"--option {item!r}: expected KEY=VALUE, e.g. gate=false")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def cmd_fit(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    check_args(args)  # --epochs >= 1, --write-k >= 1 (also when called without main)
    # The model and its write-back go to a new generation, live when both are complete.
    progress = _FitProgress(args.quiet, args.epochs)
    with Engine.open(args.store, read_only=args.no_write_back, wait=args.wait) as engine:
        try:
            result = engine.fit(
                args.model,
                seed=args.seed,
                epochs=args.epochs,
                scenes=args.scenes,
                alignment=args.alignment,
                options=_parse_options(args.option),
                progress=progress,
                write_back=None if args.no_write_back else args.write_k,
            )
        finally:
            progress.close()
        folder = engine.model_dir
        written = engine.last_write_back
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.best_valid.items())
    print(f"fitted {args.model} on {args.store} (seed {result.seed}) -> {folder}")
    print(f"best epoch: {result.best_epoch} of {len(result.history)}")
    print(f"valid:      {metrics}")
    print(f"time:       {result.seconds_total:.1f} s ({result.seconds_to_best:.1f} s to the best epoch)")
    if written is not None:
        _print_write_back(written)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    with Engine.open(args.store) as engine:
        out = engine.evaluate(args.scene, ks=_parse_ks(args.k))
    if args.format == "json":
        print(json.dumps({k: (None if isinstance(v, float) and v != v else v) for k, v in out.items()}))
        return 0
    print(f"scene {out['scene']}: {out['users']} test users")
    rows = [{"metric": k, "value": v} for k, v in out.items() if k not in ("scene", "users")]
    _print_frame(pd.DataFrame(rows), "table")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    items = None
    if args.items is not None:
        items = [part.strip() for part in args.items.split(",") if part.strip()]
        if not items:
            raise ScenerecError(f"--items {args.items!r}: expected item ids separated by commas")
        if args.explain:
            raise ScenerecError("--explain needs --user: a new user given by --items has no paths in the graph")
    with Engine.open(args.store) as engine:
        try:
            if items is not None:
                recs = engine.recommend_for_items(items, args.scene, k=args.k)
            else:
                recs = engine.recommend(args.user, args.scene, k=args.k, explain=args.explain, max_paths=args.max_paths)
        except ValueError as exc:
            raise ScenerecError(str(exc)) from None
    if args.explain and args.format == "table" and not recs.empty:
        lines = recs.drop(columns="explanation").to_string(index=False).splitlines()
        print(lines[0])
        for line, paths in zip(lines[1:], recs["explanation"], strict=True):
            print(line)
            _print_paths(paths, indent="    ")
        return 0
    _print_frame(recs, args.format)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    with Engine.open(args.store) as engine:
        try:
            paths = engine.explain(args.user, args.item, max_paths=args.max_paths)
        except ValueError as exc:
            raise ScenerecError(str(exc)) from None
        source = engine.item_vectors()[1] if args.format == "table" else ""
    if args.format == "json":
        print(json.dumps(paths, ensure_ascii=False))
        return 0
    print(f"paths from user {args.user} to item {args.item}, scored in the {source} item space")
    _print_paths(paths)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    with Engine.open(args.store) as engine:
        try:
            hits = engine.similar_items(args.item, k=args.k, scene=args.scene)
        except ValueError as exc:
            raise ScenerecError(str(exc)) from None
        if args.format == "table":
            print(f"items most similar to {args.item} (cosine of the {hits.attrs['source']} representations)")
            titles = engine.items().set_index("item_id")["title"]
            hits = hits.assign(title=titles.reindex(hits["item_id"]).to_numpy())
    _print_frame(hits, args.format)
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from scenerec.engine import Engine

    with Engine.open(args.store, read_only=args.no_write, wait=args.wait) as engine:
        try:
            result = engine.align(
                args.left,
                args.right,
                seed_fraction=args.seed_fraction,
                seed=args.seed,
                threshold=args.threshold,
                method=args.method,
                write=not args.no_write,
            )
        except ValueError as exc:
            raise ScenerecError(str(exc)) from None
    s = result.summary
    if args.format == "json":
        print(json.dumps(s))
        return 0
    print(
        f"aligned {s['left']} -> {s['right']} ({s['method']}, threshold {s['threshold']}): "
        f"{s['left_nodes']:,} x {s['right_nodes']:,} nodes, {s['edges']:,} RELATED edges, {s['seconds']:.1f} s"
    )
    print(f"gold:     {s['seeds']:,} seeds (seed {s['seed']}), {s['held_out']:,} held out")
    if "hits@1" in s:
        print("held out: " + ", ".join(f"{k} {s[k]:.4f}" for k in ("hits@1", "hits@10", "mrr", "precision", "recall")))
    else:
        print("held out: no gold SAME_AS pairs between the scenes, nothing to measure")
    where = "none written: --no-write" if args.no_write else f"{s['written']:,} SAME_AS edges written"
    print(f"pairs:    {s['pairs']:,} accepted ({where}), {s['review']:,} to review below the threshold")
    print(f"users:    {s['shared_users']:,} with interactions in both scenes (one User node: aligned already)")
    columns = ["left", "right", "name_left", "name_right", "score"]
    if len(result.review):
        print(f"\ntop of the review list ({min(args.show, len(result.review))} of {len(result.review):,}):")
        _print_frame(result.review[columns].head(args.show).round({"score": 4}), "table")
    else:
        print("\nreview list: empty")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from scenerec.report import make_report

    report = make_report(args.store)
    path = report.write(args.out)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:,.0f} KiB, {report.images} image{'s' if report.images != 1 else ''})")
    for section in report.sections:
        print(f"  {section.title}: {section.summary}")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from scenerec.loaders import LOADERS, available_formats

    for name in available_formats():
        print(f"{name:<14} {LOADERS[name].description}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scenerec.demo import run_demo

    run_demo(args.sample, args.store, args.report, quiet=args.quiet)
    return 0


def _add_embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-embed", action="store_true", help="skip the text embeddings")
    p.add_argument(
        "--model",
        "--text-model",
        dest="model",
        default=None,
        help="text model: a local folder or Hugging Face name (default: bundled all-MiniLM-L6-v2), or 'static': "
        "a static model distilled once from the bundled one (model2vec; far faster, less exact)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for the text model")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="fp32; int8: quantised on the CPU (faster; cosine >= 0.99 to fp32 on ONNX Runtime, ~0.98 on torch); "
        "fp16: on a CUDA device",
    )
    p.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="auto (default): ONNX Runtime for the bundled model on the CPU when scenerec[fast] is installed, else "
        "torch; torch; onnx: the bundled model exported once to ONNX (same vectors as torch at fp32, ~2x faster)",
    )


def _wait_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, not {text!r}")
    return value


def _writer(
    command: str, func: Callable[[argparse.Namespace], int], unless: str | None = None
) -> Callable[[argparse.Namespace], int]:
    """``func`` run under the store's writer lock (``--wait`` seconds for another writer), from reading the store
    to its last write, unless the flag ``unless`` (e.g. ``--dry-run``) makes the command read only."""

    def run(args: argparse.Namespace) -> int:
        if unless is not None and getattr(args, unless):
            return func(args)
        from scenerec.kg.lock import StoreLock

        with StoreLock(args.store, f"scenerec {command}", wait=args.wait):
            return func(args)

    return run


def _add_wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        type=_wait_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for another writer of the store (default 0: fail at once, naming it)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="scenerec", description="Knowledge-graph-centric multi-scene recommendation.")
    ap.add_argument("--version", action="version", version=f"scenerec {__version__}")
    ap.add_argument("--debug", action="store_true", help="print the full traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rebuild", help="load a dataset and rebuild the graph store atomically")
    p.add_argument("dataset", help="dataset folder or file")
    p.add_argument("--store", required=True, help="store folder (created if missing)")
    p.add_argument("--backend", default="ladybug", choices=["ladybug", "neo4j"])
    p.add_argument("--format", default=None, help="dataset format (default: detected; see `scenerec formats`)")
    p.add_argument("--scene", default=None, help="scene id for single-scene formats")
    p.add_argument("--min-rating", type=float, default=None, help="drop interactions rated below this")
    p.add_argument("--dry-run", action="store_true", help="load and clean only; print the summary")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept a table file all of whose rows are rejected (default: such a rebuild fails naming the file)",
    )
    _add_embed_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_wait_arg(p)
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("update", help="add a dataset's new rows to a store without a rebuild or retraining")
    p.add_argument("dataset", help="dataset folder or file with the new rows")
    p.add_argument("--store", required=True, help="an existing store folder (embedded backend)")
    p.add_argument("--format", default=None, help="dataset format (default: detected; see `scenerec formats`)")
    p.add_argument("--scene", default=None, help="scene id for single-scene formats")
    p.add_argument("--min-rating", type=float, default=None, help="drop interactions rated below this")
    p.add_argument("--write-k", type=int, default=10, help="RECOMMENDED edges per affected user and scene")
    p.add_argument("--output", default="table", choices=["table", "json"], help="how to print the summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_wait_arg(p)
    p.set_defaults(func=_writer("update", cmd_update))

    p = sub.add_parser("query", help="run a parameterised Cypher query on the store")
    p.add_argument("cypher")
    p.add_argument("--store", required=True)
    p.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="parameter: k=v is a string, k:=v is JSON (repeatable)",
    )
    p.add_argument("--format", default="table", choices=["table", "json", "csv"])
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="trusted users only: run any statement (by default only graph reads run: no files, extensions, "
        "other databases or writes)",
    )
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("info", help="summary of a built store")
    p.add_argument("--store", required=True)
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("search", help="items nearest in meaning to a text (text embeddings)")
    p.add_argument("text")
    p.add_argument("--store", required=True)
    p.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--scene", default=None, help="only items of this scene")
    p.add_argument("--format", default="table", choices=["table", "json", "csv"])
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("classify-scenes", help="learn item scenes from text and attributes; assign missing ones")
    p.add_argument("--store", required=True)
    p.add_argument("--min-confidence", type=float, default=0.8, help="assign only at or above this (default 0.8)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of labelled items (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="report and predict, write nothing")
    p.add_argument("--show", type=int, default=20, help="rows of each list to print (table format)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    _add_wait_arg(p)
    p.set_defaults(func=_writer("classify-scenes", cmd_classify_scenes, unless="dry_run"))

    p = sub.add_parser("fit", help="train a recommender on the store's interactions and save it with the store")
    p.add_argument("--store", required=True)
    p.add_argument(
        "--model",
        default=DEFAULT_RECOMMENDER,
        choices=MODELS.names(),
        help="; ".join(f"{name}: {spec.description}" for name, spec in MODELS.items())
        + f" (default {DEFAULT_RECOMMENDER})",
    )
    p.add_argument("--seed", type=int, default=None, help="training seed (default: drawn and printed)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 300, early stopping)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--scenes", nargs="+", default=None, help="train on these scenes' interactions only (default: all scenes)"
    )
    links = p.add_mutually_exclusive_group()
    links.add_argument(
        "--alignment",
        dest="alignment",
        action="store_true",
        default=None,
        help="propagate over the stored SAME_AS item links (`scenerec align`; default for crossscene)",
    )
    links.add_argument("--no-alignment", dest="alignment", action="store_false", help="ignore the SAME_AS links")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a constructor argument of scenegnn / crossscene, e.g. --option gate=false --option dim=64 (repeatable)",
    )
    p.add_argument(
        "--write-k", type=int, default=10, help="RECOMMENDED edges written back per user and scene (default 10)"
    )
    p.add_argument(
        "--no-write-back", action="store_true", help="leave the graph alone (no RECOMMENDED edges or gnn_embedding)"
    )
    _add_wait_arg(p)
    p.set_defaults(func=_writer("fit", cmd_fit))

    p = sub.add_parser("evaluate", help="test-split metrics of the trained recommender within a scene")
    p.add_argument("--store", required=True)
    p.add_argument("--scene", required=True)
    p.add_argument("--k", default="10,20", help="cut-offs, comma-separated (default 10,20)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top items of a scene for a user (trained recommender)")
    p.add_argument("--store", required=True)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user of the store")
    who.add_argument("--items", help="a new user's items, comma-separated (no retraining)")
    p.add_argument("--scene", required=True)
    p.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--explain", action="store_true", help="the graph paths behind each row (needs --user)")
    p.add_argument("--max-paths", type=int, default=3, help="paths per row with --explain (default 3)")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("explain", help="graph paths that connect a user to an item, ranked by the trained model")
    p.add_argument("--store", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--item", required=True)
    p.add_argument("--max-paths", type=int, default=3, help="how many paths (default 3)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("similar", help="items most similar to an item (trained model, else text embeddings)")
    p.add_argument("--store", required=True)
    p.add_argument("--item", required=True)
    p.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--scene", default=None, help="only items of this scene")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("align", help="align the entities and items of two scenes (SAME_AS), measured on gold pairs")
    p.add_argument("--store", required=True)
    p.add_argument("--left", required=True, help="scene whose nodes are matched")
    p.add_argument("--right", required=True, help="scene they are matched to")
    p.add_argument(
        "--seed-fraction", type=float, default=0.3, help="share of the gold pairs given as seeds (default 0.3)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the gold split and of the GCN (default 0)")
    p.add_argument("--threshold", type=float, default=0.5, help="accept pairs at or above this (default 0.5)")
    p.add_argument(
        "--method",
        default="gcn",
        choices=["gcn", "propagation"],
        help="gcn: a GCN layer trained on the seeds (default); propagation: training-free",
    )
    p.add_argument("--no-write", action="store_true", help="report only; write no SAME_AS edges")
    p.add_argument("--show", type=int, default=10, help="review pairs to print (table format)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    _add_wait_arg(p)
    p.set_defaults(func=_writer("align", cmd_align, unless="no_write"))

    p = sub.add_parser("report", help="write an HTML report: data, evaluations, ablation, alignment, training")
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True, help="folder for report.html (created; one self-contained file)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("formats", help="list the dataset formats")
    p.set_defaults(func=cmd_formats)

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on the bundled sample: rebuild, align, train with and without transfer, explain, report",
    )
    p.add_argument("--store", default="demo-store")
    p.add_argument("--report", default="demo-report", help="folder of the HTML report")
    p.add_argument("--sample", default=str(SAMPLE))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    for p in sub.choices.values():  # --debug also after the command name (default: whatever came before it)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return ap


#: Numeric arguments checked before a command runs: dest -> (accepts(value), the accepted range in words).
ARG_RANGES: dict[str, tuple[Any, str]] = {
    "k": (lambda v: v >= 1, "a positive integer"),
    "write_k": (lambda v: v >= 1, "a positive integer"),
    "max_paths": (lambda v: v >= 1, "a positive integer"),
    "epochs": (lambda v: v >= 1, "a positive integer (0 would save an untrained model)"),
    "show": (lambda v: v >= 0, "an integer >= 0"),
    "threads": (lambda v: v >= 1, "a positive integer"),
    "seed": (lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "threshold": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "min_confidence": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "test_fraction": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "seed_fraction": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "min_rating": (lambda v: True, "a finite number"),
}


def check_args(args: argparse.Namespace) -> None:
    """:class:`ConfigError` naming the first numeric argument out of its range (:data:`ARG_RANGES`), e.g.
    ``--write-k 0: expected a positive integer``; NaN and infinities are refused everywhere."""
    for dest, (accepts, wanted) in ARG_RANGES.items():
        value = getattr(args, dest, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # not given, or not numeric for this command (evaluate's --k is a list)
        if not (math.isfinite(value) and accepts(value)):
            flag = "-k" if dest == "k" else "--" + dest.replace("_", "-")
            raise ConfigError(f"{flag} {value}: expected {wanted}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A :class:`ScenerecError` is one ``error: ...`` line on stderr and exit code 2; any other
    exception one ``error: Type: message`` line and a hint, exit code 1 (``--debug``: the traceback too);
    Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        check_args(args)
        code: int = args.func(args)
    except ScenerecError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug or an unforeseen failure: one line, the traceback only with --debug
        if debug:
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        if not debug:
            print("hint: run with --debug for the traceback", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
