"""The main job: load -> clean -> embed texts -> build the graph, as one atomic rebuild.

This module sits at the end of the flow, so it may wire the layers together: it hands the LLM step to
:func:`scenerec.kg.rebuild` as a feature step (the graph layer itself knows nothing of models).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenerec.config import Backend, EmbedConfig, Neo4jConfig
from scenerec.kg import GraphStore, NodeVectors, RebuildReport, rebuild
from scenerec.llm import HFTextEncoder, TextEncoder, TextTemplates, embed_dataset
from scenerec.loaders import LoadOptions
from scenerec.records import Dataset

#: Where the embedding cache lives inside a store folder (it outlives the store's generations).
CACHE_DIR = Path("cache") / "embeddings"

Progress = Callable[[str, int, int], None]
DEFAULT_EMBED = EmbedConfig()


def make_encoder(config: EmbedConfig) -> HFTextEncoder:
    """The text encoder that ``config`` names (the weights load on first use)."""
    return HFTextEncoder(
        config.model,
        device=config.device,
        threads=config.threads,
        batch_size=config.batch_size,
        max_length=config.max_length,
    )


def text_feature_step(
    encoder: TextEncoder,
    *,
    cache: bool = True,
    templates: TextTemplates | None = None,
    progress: Progress | None = None,
) -> Callable[[Dataset, Path], NodeVectors]:
    """A feature step for :func:`scenerec.kg.rebuild` that embeds Scene, Item and Entity texts with ``encoder``."""

    def step(ds: Dataset, store: Path) -> NodeVectors:
        def bar(done: int, total: int) -> None:
            if progress:
                progress("embed", done, total)

        vectors, stats = embed_dataset(
            ds, encoder, cache_dir=store / CACHE_DIR if cache else None, templates=templates, progress=bar
        )
        info: dict[str, Any] = {
            "model": getattr(encoder, "name", type(encoder).__name__),
            "identity": encoder.identity,
            "dim": encoder.dim,
            "texts": stats.texts,
            "cached": stats.cached,
            "encoded": stats.encoded,
            "forward_passes": stats.forward_passes,
            "seconds": round(stats.seconds, 3),
        }
        return NodeVectors({label: v for label, v in vectors.items() if len(v)}, info)

    return step


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
) -> RebuildReport:
    """Rebuild ``store`` from ``dataset`` with text embeddings (``embed=None`` skips them).

    ``encoder`` overrides the one ``embed`` describes (e.g. to share a loaded model between builds).
    """
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
    )
