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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.config import Backend, Neo4jConfig, check_backend
from scenerec.errors import StoreError, StoreNotFoundError
from scenerec.ids import IdMap
from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.schema import LABEL_OF_KIND
from scenerec.kg.store import GraphStore, LoadStats
from scenerec.kg.tables import build_tables
from scenerec.loaders import LoadOptions, LoadResult, load_dataset
from scenerec.records import Dataset

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
    features: dict[str, Any] = field(default_factory=dict)

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


def open_store(
    store: str | Path, *, read_only: bool = True, neo4j: Neo4jConfig | None = None, unsafe: bool = False
) -> GraphStore:
    """Open the live graph of a store folder built by :func:`rebuild` (embedded or Neo4j, per its manifest).

    ``unsafe=True`` lets the store's ``query`` run any statement; by default it runs only graph reads."""
    gen = current_generation(store)
    manifest = json.loads((gen / MANIFEST).read_text(encoding="utf-8"))
    backend = manifest.get("backend", "ladybug")
    if backend == "ladybug":
        return LadybugStore(gen / GRAPH_FILE, read_only=read_only, unsafe=unsafe)
    cfg = neo4j or Neo4jConfig.from_env()
    if neo4j is None and not os.environ.get("NEO4J_URI") and (manifest.get("neo4j") or {}).get("uri"):
        cfg = replace(cfg, uri=manifest["neo4j"]["uri"])  # the server the graph was built on
    return open_neo4j(cfg, unsafe=unsafe)


def open_neo4j(cfg: Neo4jConfig, *, unsafe: bool = False) -> GraphStore:
    """A :class:`~scenerec.kg.neo4j_store.Neo4jStore` for ``cfg``."""
    from scenerec.kg.neo4j_store import Neo4jStore

    return Neo4jStore(
        cfg.uri,
        cfg.user,
        cfg.password,
        database=cfg.database,
        batch_size=cfg.batch_size,
        max_batch_bytes=cfg.max_batch_bytes,
        unsafe=unsafe,
    )


def load_idmap(store: str | Path) -> IdMap:
    return IdMap.load(current_generation(store) / IDMAP)


FEATURES = "features.npz"


@dataclass
class NodeVectors:
    """What a ``features`` step of :func:`rebuild` returns: vectors per node label, rows in the order of the
    dataset's tables (``Item`` -> ``dataset.items``), and facts about them for the manifest (model, size, ...)."""

    vectors: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


FeatureStep = Callable[[Dataset, Path], NodeVectors]
"""``features(dataset, store_folder) -> NodeVectors``: computes node vectors during a rebuild (e.g. text
embeddings, cached in ``store_folder``); injected by the caller so that this layer needs no model."""


def load_features(store: str | Path) -> dict[str, np.ndarray]:
    """The node vectors of the live generation, aligned with its id map: ``{kind: float32 (n, dim)}``."""
    path = current_generation(store) / FEATURES
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def rebuild(
    dataset: str | Path,
    store: str | Path,
    *,
    backend: Backend | str = "ladybug",
    format: str | None = None,
    options: LoadOptions | None = None,
    neo4j: Neo4jConfig | None = None,
    graph: GraphStore | None = None,
    features: FeatureStep | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    keep_generations: int = 2,
) -> RebuildReport:
    """Load ``dataset``, build its knowledge graph in a new generation of ``store`` and make it live.

    Nothing already stored is touched until the new graph is complete. ``progress(stage, rows, total)`` is called
    once with stage ``"read"`` before the dataset is read, then after each bulk-load stage with the rows it wrote
    and the total number of graph rows to write. With ``backend="neo4j"`` the graph goes to the server of
    ``neo4j`` (default: the ``NEO4J_*`` environment), or into ``graph``, an open Neo4j store (left open).
    ``features`` computes node vectors (stored as ``embedding`` properties and as ``features.npz`` aligned with
    the id map). Returns a :class:`RebuildReport`.
    """
    backend = check_backend(backend)
    store = Path(store)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if progress:
        progress("read", 0, 0)
    result = load_dataset(dataset, format=format, options=options)
    seconds["load+clean"] = time.perf_counter() - t0

    vectors = NodeVectors({})
    if features is not None:
        t0 = time.perf_counter()
        store.mkdir(parents=True, exist_ok=True)
        vectors = features(result.dataset, store)
        seconds["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tables = build_tables(result.dataset, embeddings=vectors.vectors)
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
        if backend == "ladybug":
            with LadybugStore(building / GRAPH_FILE) as embedded:
                embedded.create_schema(embedding_dims=tables.embedding_dims)
                stats = embedded.load_tables(tables, progress=step)
                counts = embedded.counts()
                scenes = embedded.scene_counts().to_dict("records")
        else:
            from scenerec.kg.neo4j_store import Neo4jStore

            neo = graph if graph is not None else open_neo4j(neo4j or Neo4jConfig.from_env())
            if not isinstance(neo, Neo4jStore):
                raise StoreError(f"backend 'neo4j' needs a Neo4jStore, not {type(neo).__name__}")
            try:
                neo.create_schema(embedding_dims=tables.embedding_dims)
                stats = neo.replace_with(tables, progress=step)
                counts = neo.counts()
                scenes = neo.scene_counts().to_dict("records")
            finally:
                if graph is None:
                    neo.close()
        seconds["graph"] = time.perf_counter() - t0

        idmap.save(building / IDMAP)
        if vectors.vectors:
            kinds = {label: kind for kind, label in LABEL_OF_KIND.items()}
            arrays: dict[str, Any] = {kinds[label]: v for label, v in vectors.vectors.items()}
            np.savez(building / FEATURES, **arrays)
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
            "features": vectors.info or None,
            "load_seconds": stats.seconds,
            "neo4j": _neo4j_public(graph, neo4j) if backend == "neo4j" else None,
        }
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        os.rename(building, store / name)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    switch_generation(store, name, keep_generations)
    return RebuildReport(
        store=store,
        generation=name,
        backend=backend,
        load=result,
        stats=stats,
        counts=counts,
        scenes=scenes,
        seconds=seconds,
        features=vectors.info,
    )


def _neo4j_public(graph: GraphStore | None, cfg: Neo4jConfig | None) -> dict[str, str | None]:
    """Where the graph lives, for the manifest (never the password)."""
    if graph is not None:
        return {"uri": str(getattr(graph, "uri", "")), "user": None, "database": getattr(graph, "database", None)}
    return (cfg or Neo4jConfig.from_env()).public()


def switch_generation(store: Path, name: str, keep: int = 2) -> None:
    """Make the complete generation ``name`` live (``CURRENT`` replaced by an atomic rename), then keep only the
    ``keep`` newest generations."""
    tmp = store / f".{CURRENT}.{os.getpid()}"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, store / CURRENT)
    _prune(store, keep)


def _prune(store: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest generations (never the live one)."""
    live = (store / CURRENT).read_text(encoding="utf-8").strip()
    gens = sorted((d for d in store.glob("gen-*") if d.is_dir()), key=lambda d: d.name, reverse=True)
    for d in gens[max(keep, 1) :]:
        if d.name != live:
            shutil.rmtree(d, ignore_errors=True)
