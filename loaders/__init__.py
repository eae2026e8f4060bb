"""Readers of real formats into canonical records, and the cleaning that reports every rejected row.

Importing this package registers the built-in loaders; :func:`load_dataset` is the entry point.
"""

from scenerec.loaders import amazon, dbp15k, generic, lastfm, rdf, recbole  # noqa: F401  (registration)
from scenerec.loaders.base import (
    LOADERS,
    Loader,
    LoadOptions,
    LoadResult,
    available_formats,
    detect_format,
    get_loader,
    load_dataset,
    register,
)
from scenerec.loaders.rdf import export_rdf
from scenerec.loaders.rejects import Reject, RejectLog

__all__ = [
    "LOADERS",
    "LoadOptions",
    "LoadResult",
    "Loader",
    "Reject",
    "RejectLog",
    "available_formats",
    "detect_format",
    "export_rdf",
    "get_loader",
    "load_dataset",
    "register",
]
