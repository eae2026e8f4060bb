"""The main job: load -> clean -> embed texts -> build the graph, as one atomic rebuild.

This module sits at the end of the flow, so it may wire the layers together: it hands the LLM step to
:func:`scenerec.kg.rebuild` as a feature step (the graph layer itself knows nothing of models).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.config import STATIC_MODEL, Backend, EmbedConfig, Neo4jConfig
from scenerec.errors import ConfigError
from scenerec.kg import GraphStore, NodeVectors, RebuildReport, UpdateReport, read_manifest, rebuild
from scenerec.llm import (
    DEFAULT_MODEL,
    TEXT_LABELS,
    HFTextEncoder,
    StaticTextEncoder,
    TextEncoder,
    TextTemplates,
    embed_dataset,
)
from scenerec.loaders import LoadOptions
from scenerec.records import Dataset
from scenerec.storefiles import check_store_path

#: Where the embedding cache lives inside a store folder (it outlives the store's generations).
CACHE_DIR = Path("cache") / "embeddings"

Progress = Callable[[str, int, int], None]
DEFAULT_EMBED = EmbedConfig()


def make_encoder(config: EmbedConfig) -> TextEncoder:
    """The text encoder that ``config`` names (the weights load on first use): ``model="static"`` the static
    model distilled from the bundled one, else a transformer."""
    if config.model == STATIC_MODEL:
        if config.precision != "fp32" or config.runtime != "auto" or config.device not in (None, "cpu"):
            raise ConfigError(
                "the static text model takes no precision, runtime or device (it is a table look-up on the CPU): "
                "drop those options or name another model"
            )
        return StaticTextEncoder(threads=config.threads, max_length=config.max_length)
    return HFTextEncoder(
        config.model,
        device=config.device,
        threads=config.threads,
        batch_size=config.batch_size,
        max_length=config.max_length,
        download=config.download,
        precision=config.precision,
        runtime=config.runtime,
    )


def store_embed_config(features: Mapping[str, Any]) -> EmbedConfig:
    """The :class:`EmbedConfig` of the encoder a store's texts were embedded with (its manifest's ``features``):
    the same model, never downloaded (a store is trusted for data, not code), precision and runtime. A store
    written before runtimes existed was embedded by torch, as is any model but the bundled one."""
    model = features.get("model")
    runtime = (features.get("runtime") or "torch") if model == DEFAULT_MODEL else "torch"
    return EmbedConfig(
        model=None if model == DEFAULT_MODEL else model,
        download=False,
        precision=features.get("precision") or "fp32",
        runtime="auto" if model == STATIC_MODEL else runtime,
    )


def text_feature_step(
    encoder: TextEncoder,
    *,
    cache: bool = True,
    templates: TextTemplates | None = None,
    progress: Progress | None = None,
) -> Callable[[Dataset, Path], NodeVectors]:
    """A feature step for :func:`scenerec.kg.rebuild` that embeds Scene, Item and Entity texts with ``encoder``.

    Nodes whose text is empty (e.g. an entity with neither name nor type, see :class:`TextTemplates`) are not
    encoded: their rows of the vectors are zero, which :func:`scenerec.gnn.build_hetero` reads as ``has_text =
    False``. A label none of whose nodes has a text still gets its (all-zero) vectors, so the store's schema and the
    feature arrays keep one shape. ``info["texts"]`` counts the non-empty texts, ``info["without_text"]`` the rest.
    """
    t = templates or TextTemplates()

    def step(ds: Dataset, store: Path) -> NodeVectors:
        def bar(done: int, total: int) -> None:
            if progress:
                progress("embed", done, total)

        tables = {"Scene": ds.scenes, "Item": ds.items, "Entity": ds.entities}
        has = {label: np.array([bool(x) for x in t.for_label(label, ds)], dtype=bool) for label in TEXT_LABELS}
        # Only the rows with a text go to the encoder (and count in its statistics).
        with_text = Dataset(ds.name, **{_TABLE[label]: tables[label][has[label]] for label in TEXT_LABELS})
        found, stats = embed_dataset(
            with_text, encoder, cache_dir=store / CACHE_DIR if cache else None, templates=t, progress=bar
        )
        vectors: dict[str, np.ndarray] = {}
        for label in TEXT_LABELS:
            if not len(tables[label]):
                continue
            full = np.zeros((len(tables[label]), encoder.dim), dtype=np.float32)
            full[has[label]] = found[label]
            vectors[label] = full
        info: dict[str, Any] = {
            "model": getattr(encoder, "name", type(encoder).__name__),
            "identity": encoder.identity,
            "precision": getattr(encoder, "precision", "fp32"),
            "runtime": getattr(encoder, "runtime", "torch"),
            "dim": encoder.dim,
            "texts": stats.texts,
            "without_text": {label: int((~has[label]).sum()) for label in TEXT_LABELS},
            "cached": stats.cached,
            "encoded": stats.encoded,
            "forward_passes": stats.forward_passes,
            "seconds": round(stats.seconds, 3),
        }
        return NodeVectors(vectors, info)

    return step


#: The dataset table of each text-bearing node label.
_TABLE = {"Scene": "scenes", "Item": "items", "Entity": "entities"}


def build(
    dataset: str | Path,
    store: str | Path,
    *,
    backend: Backend | str = "ladybug",
    format: str | None = None,
    options: LoadOptions | None = None,
    embed: EmbedConfig | None = DEFAULT_EMBED,
    encoder: TextEncoder | None = None,
    neo4j: Neo4jConfig | None = None,
    graph: GraphStore | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
) -> RebuildReport:
    """Rebuild ``store`` from ``dataset`` with text embeddings (``embed=None`` skips them).

    ``encoder`` overrides the one ``embed`` describes (e.g. to share a loaded model between builds). ``wait``:
    seconds to wait for another writer of the store (:class:`scenerec.kg.lock.StoreLock`).
    """
    check_store_path(store)  # before a text model is loaded for nothing
    step = None
    if embed is not None or encoder is not None:
        cfg = embed or EmbedConfig()
        step = text_feature_step(encoder or make_encoder(cfg), cache=cfg.cache, progress=progress)
    return rebuild(
        dataset,
        store,
        backend=backend,
        format=format,
        options=options,
        neo4j=neo4j,
        graph=graph,
        features=step,
        progress=progress,
        wait=wait,
    )


def update(
    dataset: str | Path,
    store: str | Path,
    *,
    format: str | None = None,
    options: LoadOptions | None = None,
    embed: EmbedConfig | None = DEFAULT_EMBED,
    encoder: TextEncoder | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
    finish: Callable[[Path, UpdateReport], None] | None = None,
) -> UpdateReport:
    """Add ``dataset`` to ``store`` without a rebuild (:func:`scenerec.kg.update`): only new or changed texts are
    embedded, with ``encoder`` or the one ``embed`` describes (which must be the store's own model). The trained
    model is not touched here; :meth:`scenerec.engine.Engine.update` also extends it and refreshes the
    ``RECOMMENDED`` edges of the affected users (in ``finish``, before the new generation goes live; see
    :func:`scenerec.kg.update`). ``wait``: seconds to wait for another writer of the store."""
    from scenerec.kg.rebuild import FEATURES, current_generation
    from scenerec.kg.update import update as update_graph

    step = None
    identity = None
    if (current_generation(store) / FEATURES).is_file() and (embed is not None or encoder is not None):
        cfg = embed or EmbedConfig()
        if encoder is None and embed is DEFAULT_EMBED:  # not named: the store's own model, precision and runtime
            cfg = store_embed_config(read_manifest(store).get("features") or {})
        enc = encoder or make_encoder(cfg)
        identity = enc.identity
        step = text_feature_step(enc, cache=cfg.cache, progress=progress)
    return update_graph(
        dataset,
        store,
        format=format,
        options=options,
        features=step,
        feature_identity=identity,
        progress=progress,
        wait=wait,
        finish=finish,
    )
