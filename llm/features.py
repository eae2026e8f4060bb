"""Node-feature initialisation: embed the text of every item, entity and scene, through the cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scenerec.llm.cache import EmbeddingCache, text_key
from scenerec.llm.encoder import TextEncoder
from scenerec.llm.templates import TextTemplates
from scenerec.records import Dataset

#: Node labels that carry text, in the order they are embedded.
TEXT_LABELS = ("Scene", "Item", "Entity")


@dataclass
class EmbedStats:
    """Texts per label, how many came from the cache, and the time spent."""

    texts: dict[str, int] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    encoded: int = 0
    forward_passes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        total = sum(self.texts.values())
        hit = sum(self.cached.values())
        return (
            f"{total:,} texts ({hit:,} from the cache, {self.encoded:,} encoded in {self.forward_passes:,} "
            f"forward passes) in {self.seconds:.1f} s"
        )


def embed_dataset(
    ds: Dataset,
    encoder: TextEncoder,
    *,
    cache_dir: str | Path | None = None,
    templates: TextTemplates | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], EmbedStats]:
    """Vectors for every Scene, Item and Entity of ``ds`` (rows in the dataset tables' order).

    Only texts missing from the cache at ``cache_dir`` (keyed by the encoder's identity and the text's hash) go
    through the model; identical texts are encoded once. ``progress(done, total)`` reports texts encoded.
    """
    t0 = time.perf_counter()
    templates = templates or TextTemplates()
    cache = EmbeddingCache(cache_dir, encoder.identity, encoder.dim) if cache_dir is not None else None
    stats = EmbedStats()
    texts = {label: templates.for_label(label, ds) for label in TEXT_LABELS}
    keys = {label: [text_key(t) for t in ts] for label, ts in texts.items()}
    out: dict[str, np.ndarray] = {}
    todo: dict[bytes, str] = {}
    found: dict[str, np.ndarray] = {}
    for label in TEXT_LABELS:
        if cache is not None:
            hit, vectors = cache.lookup(keys[label])
        else:
            hit, vectors = np.zeros(len(keys[label]), dtype=bool), np.zeros((len(keys[label]), encoder.dim), np.float32)
        out[label], found[label] = vectors, hit
        stats.texts[label] = len(texts[label])
        stats.cached[label] = int(hit.sum())
        for k, t, h in zip(keys[label], texts[label], hit, strict=True):
            if not h:
                todo.setdefault(k, t)
    passes = encoder.forward_passes
    if todo:
        done = 0
        total = len(todo)

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        new_keys = list(todo)
        vectors = encoder.encode([todo[k] for k in new_keys], progress=step)
        if cache is not None:
            cache.add(new_keys, vectors)
        fresh = dict(zip(new_keys, vectors, strict=True))
        for label in TEXT_LABELS:
            for i in np.flatnonzero(~found[label]):
                out[label][i] = fresh[keys[label][i]]
    stats.encoded = len(todo)
    stats.forward_passes = encoder.forward_passes - passes
    stats.seconds = time.perf_counter() - t0
    return out, stats
