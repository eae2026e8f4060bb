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
    ``allow_empty``: accept a table file all of whose rows were dropped into the rejects (default False: such a load
    raises :class:`DataFormatError` naming the file, the count and the most common reasons). Checked when cleaning.
    """

    scene: str | None = None
    min_rating: float | None = None
    rating_scale: tuple[float, float] | None = None
    clean: bool = True
    allow_empty: bool = False
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

#: Optional ``Dataset.meta`` key a loader may set: the table files it read (see :func:`check_not_all_rejected`);
#: :func:`load_dataset` removes it from the meta.
TABLE_FILES = "_table_files"


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


def check_not_all_rejected(raw: Dataset, dataset: Dataset, rejects: RejectLog, table_files: set[str]) -> None:
    """Raise :class:`DataFormatError` for the first table file whose rows were all dropped into ``rejects``.

    The table files are those that gave ``raw`` rows (their ``_file``) and ``table_files`` (the loader's own list, so
    that a file whose every line was rejected while reading is checked too). ``dataset`` is the cleaned dataset with
    its provenance columns: a file is empty when no row of it is left. Repaired and merged rows are not drops.
    """
    frame = rejects.to_frame()
    dropped = frame[(frame["action"] == "dropped") & (frame["file"].fillna("") != "")]
    if dropped.empty:
        return

    def files(ds: Dataset) -> set[str]:
        out: set[str] = set()
        for name in Dataset.TABLE_NAMES:
            table = ds.table(name)
            if "_file" in table.columns and len(table):
                out.update(str(f) for f in table["_file"].dropna().unique())
        return out

    checked = files(raw) | table_files
    stored = files(dataset)
    for file, rows in dropped.groupby("file", sort=False):
        if str(file) not in checked or str(file) in stored:
            continue
        common = rows["reason"].value_counts().head(3)
        reasons = "; ".join(f"{reason} ({n:,})" for reason, n in common.items())
        raise DataFormatError(
            f"every row was rejected ({len(rows):,} rows dropped; most common: {reasons}); fix the input, or accept "
            "an empty table with allow_empty=True (CLI: --allow-empty)",
            file=str(file),
        )


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
    table_files = {str(f) for f in raw.meta.pop(TABLE_FILES, [])}
    if options.clean:
        dataset = clean(raw, rejects, options, keep_provenance=True)
        if not options.allow_empty:
            check_not_all_rejected(raw, dataset, rejects, table_files)
        dataset = dataset.without_provenance()
    else:
        dataset = raw
    return LoadResult(dataset=dataset, rejects=rejects, format=fmt, path=p)
