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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.config import Backend, Neo4jConfig, check_backend
from scenerec.errors import StoreError, StoreFileError, StoreNotFoundError
from scenerec.ids import IdMap
from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.lock import CURRENT, StagedGeneration, StoreLock
from scenerec.kg.schema import LABEL_OF_KIND
from scenerec.kg.store import GraphStore, LoadStats
from scenerec.kg.tables import build_tables
from scenerec.loaders import LoadOptions, LoadResult, load_dataset
from scenerec.records import Dataset
from scenerec.storefiles import check_store_path, read_idmap_file, read_json_file, read_npz_file, rebuild_hint

GRAPH_FILE = "graph.lbug"
MANIFEST = "manifest.json"
IDMAP = "idmap.json"
REJECTS = "rejects.csv"


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


def current_generation(store: str | Path) -> Path:
    """The live generation folder of ``store``; :class:`StoreNotFoundError` if it has none, a
    :class:`~scenerec.errors.StoreFileError` naming ``CURRENT`` or the manifest when they are broken."""
    store = Path(store)
    pointer = store / CURRENT
    if store.exists() and not store.is_dir():
        raise StoreNotFoundError(f"{store} is a file, not a store folder; give --store the folder of a built store")
    if not pointer.is_file():
        raise StoreNotFoundError(
            f"{store}: no graph has been built here (run `scenerec rebuild DATASET --store {store}`)"
        )
    return _live_generation(store, pointer)


def _live_generation(store: Path, pointer: Path) -> Path:
    """The generation ``CURRENT`` names, checked to exist with its manifest."""
    fix = rebuild_hint(store)
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise StoreFileError(pointer, "cannot be read as text", fix) from None
    if not name:
        raise StoreFileError(pointer, "is empty (it should name the live generation, gen-...)", fix)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise StoreFileError(pointer, f"names {name[:60]!r}, not a generation folder of the store", fix)
    gen = store / name
    if not gen.is_dir():
        raise StoreFileError(pointer, f"names the generation {name!r}, which does not exist", fix)
    if not (gen / MANIFEST).is_file():
        raise StoreFileError(gen / MANIFEST, "missing", fix)
    return gen


def generation_dir(store: str | Path, generation: str | None = None) -> Path:
    """The folder of generation ``generation`` of ``store`` (default: the live one)."""
    if generation is None:
        return current_generation(store)
    gen = Path(store) / generation
    if not (gen / MANIFEST).is_file():
        raise StoreError(f"{store}: generation {generation!r} does not exist (any more); open the store again")
    return gen


def read_manifest(store: str | Path, *, generation: str | None = None) -> dict[str, Any]:
    """The manifest of the live generation of ``store`` (or of ``generation``); a
    :class:`~scenerec.errors.StoreFileError` if it is not valid JSON."""
    data: dict[str, Any] = read_json_file(generation_dir(store, generation) / MANIFEST, rebuild_hint(store))
    return data


def open_store(
    store: str | Path,
    *,
    read_only: bool = True,
    neo4j: Neo4jConfig | None = None,
    generation: str | None = None,
    unsafe: bool = False,
) -> GraphStore:
    """Open the live graph of a store folder built by :func:`rebuild` (embedded or Neo4j, per its manifest), or
    the graph of its generation ``generation``.

    ``unsafe=True`` lets the store's ``query`` run any statement; by default it runs only graph reads."""
    gen = generation_dir(store, generation)
    manifest = read_manifest(store, generation=gen.name)
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


def load_idmap(store: str | Path, *, generation: str | None = None) -> IdMap:
    """The id map of the live generation of ``store`` (or of ``generation``)."""
    return read_idmap_file(generation_dir(store, generation) / IDMAP, rebuild_hint(store))


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


def load_features(store: str | Path, *, generation: str | None = None) -> dict[str, np.ndarray]:
    """The node vectors of the live generation (or of ``generation``), aligned with its id map:
    ``{kind: float32 (n, dim)}``."""
    path = generation_dir(store, generation) / FEATURES
    if not path.is_file():
        return {}
    return read_npz_file(path, rebuild_hint(store))


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
    wait: float = 0.0,
) -> RebuildReport:
    """Load ``dataset``, build its knowledge graph in a new generation of ``store`` and make it live.

    Nothing already stored is touched until the new graph is complete. ``progress(stage, rows, total)`` is called
    once with stage ``"read"`` before the dataset is read, then after each bulk-load stage with the rows it wrote
    and the total number of graph rows to write. With ``backend="neo4j"`` the graph goes to the server of
    ``neo4j`` (default: the ``NEO4J_*`` environment), or into ``graph``, an open Neo4j store (left open).
    ``features`` computes node vectors (stored as ``embedding`` properties and as ``features.npz`` aligned with
    the id map). Returns a :class:`RebuildReport`.

    The rebuild holds the store's writer lock (:class:`scenerec.kg.lock.StoreLock`) from start to end: another
    writer makes it wait ``wait`` seconds, then fail with :class:`scenerec.errors.StoreLockedError`.
    """
    backend = check_backend(backend)
    if backend == "neo4j" and graph is None:
        from scenerec.kg.neo4j_store import neo4j_driver

        neo4j_driver()  # without the driver (scenerec[neo4j]), fail before the dataset is read
    store = Path(store)
    check_store_path(store)
    with StoreLock(store, "rebuild", wait=wait, create=True):
        return _rebuild(dataset, store, backend, format, options, neo4j, graph, features, progress, keep_generations)


def _rebuild(
    dataset: str | Path,
    store: Path,
    backend: str,
    format: str | None,
    options: LoadOptions | None,
    neo4j: Neo4jConfig | None,
    graph: GraphStore | None,
    features: FeatureStep | None,
    progress: Callable[[str, int, int], None] | None,
    keep_generations: int,
) -> RebuildReport:
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

    with StagedGeneration(store, keep=keep_generations) as staged:
        building = staged.path
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
    return RebuildReport(
        store=store,
        generation=staged.name,
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
