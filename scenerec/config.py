"""Typed configuration shared by the layers (no config god object: each stage takes its own small dataclass)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from scenerec.errors import ConfigError

Backend = Literal["ladybug", "neo4j"]
BACKENDS: tuple[Backend, ...] = ("ladybug", "neo4j")


@dataclass(frozen=True)
class Neo4jConfig:
    """Where the Neo4j server is. Credentials default to ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``."""

    uri: str = "bolt://localhost:7687"
    user: str | None = None
    password: str | None = None
    database: str | None = None
    #: Rows per ``UNWIND $rows`` batch, and the most bytes of parameters one batch may carry.
    batch_size: int = 1000
    max_batch_bytes: int = 1_000_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Neo4jConfig:
        """From ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE``,
        ``SCENEREC_NEO4J_BATCH_SIZE`` and ``SCENEREC_NEO4J_MAX_BATCH_BYTES``."""
        env = os.environ if env is None else env

        def positive(name: str, default: int) -> int:
            raw = env.get(name)
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                value = 0
            if value < 1:
                raise ConfigError(f"{name}={raw!r}: expected a positive integer")
            return value

        return cls(
            uri=env.get("NEO4J_URI") or cls.uri,
            user=env.get("NEO4J_USER") or None,
            password=env.get("NEO4J_PASSWORD") or None,
            database=env.get("NEO4J_DATABASE") or None,
            batch_size=positive("SCENEREC_NEO4J_BATCH_SIZE", cls.batch_size),
            max_batch_bytes=positive("SCENEREC_NEO4J_MAX_BATCH_BYTES", cls.max_batch_bytes),
        )

    def public(self) -> dict[str, str | None]:
        """What may be written to a manifest (never the password)."""
        return {"uri": self.uri, "user": self.user, "database": self.database}


def check_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name


#: Text-model precisions (:class:`EmbedConfig`, ``HFTextEncoder``): the model as published (float32); int8 (the
#: weights of its matrix products quantised to int8, activations per batch; CPU only); fp16 (half precision, on a
#: CUDA device only).
PRECISIONS = ("fp32", "int8", "fp16")

#: Text-model runtimes: ``auto`` (ONNX Runtime for the bundled model on the CPU when the ``fast`` extra is installed,
#: else torch), ``torch`` (transformers' model), ``onnx`` (the model exported to ONNX once, run by ONNX Runtime).
RUNTIMES = ("auto", "torch", "onnx")

#: The ``model`` name of the static (model2vec) encoder distilled from the bundled model.
STATIC_MODEL = "static"


def check_precision(name: str) -> str:
    """``name`` if it is one of :data:`PRECISIONS`, else a :class:`ConfigError` naming the choices."""
    if name not in PRECISIONS:
        raise ConfigError(f"text model precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    return name


def check_runtime(name: str) -> str:
    """``name`` if it is one of :data:`RUNTIMES`, else a :class:`ConfigError` naming the choices."""
    if name not in RUNTIMES:
        raise ConfigError(f"text model runtime must be one of {', '.join(RUNTIMES)}, not {name!r}")
    return name


@dataclass(frozen=True)
class EmbedConfig:
    """How node texts are embedded during a rebuild.

    ``model``: ``None`` for the bundled all-MiniLM-L6-v2, a local folder, or a Hugging Face model name.
    ``threads``: torch CPU threads (default: torch's own choice). ``device``: ``cpu``, ``cuda``, ... (default:
    CUDA when available). ``cache``: reuse vectors of unchanged texts from ``STORE/cache/embeddings``.
    ``download``: a Hugging Face name not found locally may be downloaded (off for a model named by a store).
    ``precision``: ``fp32``, ``int8`` (dynamic int8 quantisation, CPU only) or ``fp16`` (CUDA only); ``runtime``:
    ``auto``, ``torch`` or ``onnx`` (see ``HFTextEncoder``). ``model="static"`` (:data:`STATIC_MODEL`) embeds with
    a static model distilled once from the bundled one with model2vec (``StaticTextEncoder``: far faster, less
    exact; it takes neither a precision nor a runtime).
    """

    model: str | None = None
    threads: int | None = None
    batch_size: int = 32
    device: str | None = None
    max_length: int | None = None
    cache: bool = True
    download: bool = True
    precision: str = "fp32"
    runtime: str = "auto"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        check_runtime(self.runtime)


@dataclass(frozen=True)
class AnnConfig:
    """The approximate nearest-neighbour index of serving (:mod:`scenerec.ann`, the ``ann`` extra: faiss-cpu).

    A scene's index is an HNSW graph over its items' vectors, searched by inner product for the ``candidates``
    best items of a user (plus the user's training items of the scene, which are left out), which the served model
    then scores exactly and ranks (with the items its non-dot-product terms reach, e.g. the item-item channel).
    The ``head`` share of the scene's items with the longest vectors is left out of the graph and searched exactly
    (one small matrix product per user): an inner-product graph reaches the long vectors of popular items badly,
    and they are the ones that rank high (on Food–Kitchen's BPR-MF vectors recall@10 0.93 without a head, 0.998
    with 5 %).

    ``enabled``: ``None`` builds an index for the scenes with more than ``min_items`` items, ``True`` for every
    scene, ``False`` for none (exact scoring everywhere). ``m``: HNSW neighbours per node; ``ef_construction``
    and ``ef_search``: HNSW's candidate lists while building and searching (larger: higher recall, slower).
    ``threads``: faiss's OpenMP threads while building and searching (``None``: faiss's own choice).
    """

    enabled: bool | None = None
    min_items: int = 100_000
    candidates: int = 100
    head: float = 0.05
    m: int = 32
    ef_construction: int = 128
    ef_search: int = 256
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.enabled not in (None, True, False):
            raise ConfigError(f"AnnConfig.enabled must be None, True or False, not {self.enabled!r}")
        for name in ("min_items", "candidates", "m", "ef_construction", "ef_search"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"AnnConfig.{name} must be a positive integer, not {value!r}")
        if not isinstance(self.head, int | float) or isinstance(self.head, bool) or not 0 <= self.head < 1:
            raise ConfigError(f"AnnConfig.head must be a share of the items in [0, 1), not {self.head!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"AnnConfig.threads must be a positive integer or None, not {self.threads!r}")

    @classmethod
    def of(cls, value: AnnConfig | bool | None) -> AnnConfig:
        """``value`` as a config: ``None`` the defaults (an index for large scenes), ``True``/``False`` every
        scene/none with the default settings."""
        if isinstance(value, AnnConfig):
            return value
        if value is None or isinstance(value, bool):
            return cls(enabled=value)
        raise ConfigError(f"ann must be an AnnConfig, True, False or None, not {value!r}")

    def wants(self, n_items: int) -> bool:
        """Whether a scene of ``n_items`` items is served through an index."""
        return self.enabled if self.enabled is not None else n_items > self.min_items
