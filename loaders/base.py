"""Loader registry, format detection and the one entry point :func:`load_dataset`."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from scenerec.errors import DataFormatError, UnknownFormatError
from scenerec.loaders.rejects import RejectLog
from scenerec.records import Dataset


@dataclass(frozen=True)
class LoadOptions:
    """Options every loader understands.

    ``scene``: scene id to use for single-scene formats (default: the format's own name, e.g. ``movielens``).
    ``min_rating``: interactions with a lower raw rating are not positives and are dropped (into the rejects).
    ``rating_scale``: (low, high) used to normalise ratings to [0, 1]; default: observed min/max per scene.
    ``clean``: run :func:`scenerec.loaders.cleaning.clean` after reading (default True).
    """

    scene: str | None = None
    min_rating: float | None = None
    rating_scale: tuple[float, float] | None = None
    clean: bool = True
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    """What :func:`load_dataset` returns: the cleaned dataset, the rejects report and what was detected."""

    dataset: Dataset
    rejects: RejectLog
    format: str
    path: Path

    def summary(self) -> dict[str, object]:
        return {
            "format": self.format,
            "path": str(self.path),
            "tables": self.dataset.counts(),
            "scenes": self.dataset.scene_ids(),
            "rejects": len(self.rejects),
        }


class Loader(abc.ABC):
    """Reads one on-disk format into a raw :class:`Dataset` (tables may carry ``_file``/``_line`` provenance).

    Row-level parse failures go to ``rejects``; missing files or columns raise :class:`DataFormatError`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @classmethod
    @abc.abstractmethod
    def detect(cls, path: Path) -> bool:
        """True if ``path`` (a folder or file) looks like this format."""

    @abc.abstractmethod
    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        """Read ``path`` into canonical (not yet cleaned) tables."""


LOADERS: dict[str, type[Loader]] = {}


def register(cls: type[Loader]) -> type[Loader]:
    """Class decorator that makes a loader available by its ``name`` and to detection."""
    if cls.name in LOADERS and LOADERS[cls.name] is not cls:
        raise ValueError(f"loader name {cls.name!r} registered twice")
    LOADERS[cls.name] = cls
    return cls


def _ensure_builtin_loaders() -> None:
    # Importing the package registers every built-in loader.
    import scenerec.loaders  # noqa: F401


def available_formats() -> list[str]:
    _ensure_builtin_loaders()
    return sorted(LOADERS)


def detect_format(path: str | Path) -> str:
    """Name of the single format whose loader recognises ``path``."""
    _ensure_builtin_loaders()
    p = Path(path)
    if not p.exists():
        raise DataFormatError("dataset path does not exist", file=p)
    hits = [name for name, cls in LOADERS.items() if cls.detect(p)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise UnknownFormatError(
            f"{p}: no loader recognises this dataset; name one with format=... "
            f"(available: {', '.join(available_formats())})"
        )
    # The generic folder format is the fallback when a specific format also matches.
    specific = [h for h in hits if h != "generic"]
    if len(specific) == 1:
        return specific[0]
    raise UnknownFormatError(f"{p}: several formats match ({', '.join(sorted(hits))}); name one with format=...")


def get_loader(name: str) -> Loader:
    _ensure_builtin_loaders()
    try:
        return LOADERS[name]()
    except KeyError:
        raise UnknownFormatError(
            f"unknown dataset format {name!r}; available: {', '.join(available_formats())}"
        ) from None


def load_dataset(path: str | Path, format: str | None = None, options: LoadOptions | None = None) -> LoadResult:
    """Read a dataset in any supported format, clean it, and return it with its rejects report.

    >>> result = load_dataset("data/sample")          # doctest: +SKIP
    >>> result.dataset.counts(), len(result.rejects)  # doctest: +SKIP
    """
    from scenerec.loaders.cleaning import clean

    options = options or LoadOptions()
    p = Path(path)
    if not p.exists():
        raise DataFormatError("dataset path does not exist", file=p)
    fmt = format or detect_format(p)
    loader = get_loader(fmt)
    rejects = RejectLog()
    raw = loader.read(p, rejects, options)
    dataset = clean(raw, rejects, options) if options.clean else raw
    return LoadResult(dataset=dataset, rejects=rejects, format=fmt, path=p)
