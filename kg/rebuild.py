"""Atomic batch rebuild: load a dataset, build a new graph, and swap it in only when everything succeeded.

A store folder looks like::

    STORE/
      CURRENT               name of the live generation (replaced atomically with os.replace)
      gen-<time>-<pid>/     one generation: graph.lbug (embedded backend), manifest.json, idmap.json, rejects.csv

A rebuild writes ``STORE/.building-<time>-<pid>/`` and renames it to a generation when done; only then is
``CURRENT`` switched. A failed or killed rebuild therefore leaves the previous generation live and queryable.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scenerec.config import Backend, Neo4jConfig, check_backend
from scenerec.errors import StoreError, StoreNotFoundError
from scenerec.ids import IdMap
from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.store import GraphStore, LoadStats
from scenerec.kg.tables import build_tables
from scenerec.loaders import LoadOptions, LoadResult, load_dataset

GRAPH_FILE = "graph.lbug"
MANIFEST = "manifest.json"
IDMAP = "idmap.json"
REJECTS = "rejects.csv"
CURRENT = "CURRENT"


@dataclass
class RebuildReport:
    """What a rebuild did: where, from what, how many rows per stage, how long, and the rejects."""

    store: Path
    generation: str
    backend: str
    load: LoadResult
    stats: LoadStats
    counts: dict[str, dict[str, int]]
    scenes: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejects_file(self) -> Path:
        return self.store / self.generation / REJECTS


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_builds(store: Path) -> None:
    """Remove build folders left by rebuilds that were killed (their process no longer exists)."""
    for d in store.glob(".building-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def current_generation(store: str | Path) -> Path:
    """The live generation folder of ``store``; :class:`StoreNotFoundError` if it has none."""
    store = Path(store)
    pointer = store / CURRENT
    if not pointer.is_file():
        raise StoreNotFoundError(
            f"{store}: no graph has been built here (run `scenerec rebuild DATASET --store {store}`)"
        )
    gen = store / pointer.read_text(encoding="utf-8").strip()
    if not (gen / MANIFEST).is_file():
        raise StoreError(f"{store}: CURRENT names {gen.name!r}, which has no manifest; rebuild the store")
    return gen


def read_manifest(store: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((current_generation(store) / MANIFEST).read_text(encoding="utf-8"))
    return data


def open_store(store: str | Path, *, read_only: bool = True, neo4j: Neo4jConfig | None = None) -> GraphStore:
    """Open the live graph of a store folder built by :func:`rebuild` (embedded or Neo4j, per its manifest)."""
    gen = current_generation(store)
    manifest = json.loads((gen / MANIFEST).read_text(encoding="utf-8"))
    backend = manifest.get("backend", "ladybug")
    if backend == "ladybug":
        return LadybugStore(gen / GRAPH_FILE, read_only=read_only)
    from scenerec.kg.neo4j_store import Neo4jStore

    cfg = neo4j or Neo4jConfig.from_env()
    uri = os.environ.get("NEO4J_URI") or manifest.get("neo4j", {}).get("uri") or cfg.uri
    return Neo4jStore(uri, cfg.user, cfg.password, database=cfg.database)


def load_idmap(store: str | Path) -> IdMap:
    return IdMap.load(current_generation(store) / IDMAP)


ProgressFactory = Callable[[str, int], Callable[[str, int], None]]


def rebuild(
    dataset: str | Path,
    store: str | Path,
    *,
    backend: Backend | str = "ladybug",
    format: str | None = None,
    options: LoadOptions | None = None,
    neo4j: Neo4jConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    keep_generations: int = 2,
) -> RebuildReport:
    """Load ``dataset``, build its knowledge graph in a new generation of ``store`` and make it live.

    Nothing already stored is touched until the new graph is complete. ``progress(stage, rows, total)`` is called
    once with stage ``"read"`` before the dataset is read, then after each bulk-load stage with the rows it wrote
    and the total number of graph rows to write. Returns a :class:`RebuildReport`.
    """
    backend = check_backend(backend)
    store = Path(store)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if progress:
        progress("read", 0, 0)
    result = load_dataset(dataset, format=format, options=options)
    seconds["load+clean"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tables = build_tables(result.dataset)
    idmap = IdMap(
        {
            "scene": result.dataset.scenes["id"].tolist(),
            "user": result.dataset.users["id"].tolist(),
            "item": result.dataset.items["id"].tolist(),
            "entity": result.dataset.entities["id"].tolist(),
        }
    )
    seconds["tables"] = time.perf_counter() - t0
    total = tables.total_rows

    def step(stage: str, rows: int) -> None:
        if progress:
            progress(stage, rows, total)

    store.mkdir(parents=True, exist_ok=True)
    _clean_stale_builds(store)
    name = f"gen-{_now()}-{os.getpid()}"
    building = store / f".building-{_now()}-{os.getpid()}"
    building.mkdir()
    try:
        t0 = time.perf_counter()
        graph: GraphStore
        if backend == "ladybug":
            graph = LadybugStore(building / GRAPH_FILE)
            with graph:
                graph.create_schema()
                stats = graph.load_tables(tables, progress=step)
                counts = graph.counts()
                scenes = graph.scene_counts().to_dict("records")
        else:
            from scenerec.kg.neo4j_store import Neo4jStore

            cfg = neo4j or Neo4jConfig.from_env()
            neo = Neo4jStore(cfg.uri, cfg.user, cfg.password, database=cfg.database)
            with neo:
                neo.create_schema()
                stats = neo.replace_with(tables, progress=step)
                counts = neo.counts()
                scenes = neo.scene_counts().to_dict("records")
        seconds["graph"] = time.perf_counter() - t0

        idmap.save(building / IDMAP)
        result.rejects.write_csv(building / REJECTS)
        manifest = {
            "format_version": 1,
            "backend": backend,
            "created": datetime.now(UTC).isoformat(),
            "dataset": {
                "path": str(Path(dataset).resolve()),
                "format": result.format,
                "name": result.dataset.name,
            },
            "tables": result.dataset.counts(),
            "meta": {k: v for k, v in result.dataset.meta.items() if isinstance(v, (str, int, float, list, dict))},
            "counts": counts,
            "scenes": scenes,
            "rejects": len(result.rejects),
            "load_seconds": stats.seconds,
            "neo4j": (neo4j or Neo4jConfig.from_env()).public() if backend == "neo4j" else None,
        }
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        os.rename(building, store / name)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    tmp = store / f".{CURRENT}.{os.getpid()}"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, store / CURRENT)
    _prune(store, keep_generations)
    return RebuildReport(
        store=store,
        generation=name,
        backend=backend,
        load=result,
        stats=stats,
        counts=counts,
        scenes=scenes,
        seconds=seconds,
    )


def _prune(store: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest generations (never the live one)."""
    live = (store / CURRENT).read_text(encoding="utf-8").strip()
    gens = sorted((d for d in store.glob("gen-*") if d.is_dir()), key=lambda d: d.name, reverse=True)
    for d in gens[max(keep, 1) :]:
        if d.name != live:
            shutil.rmtree(d, ignore_errors=True)
