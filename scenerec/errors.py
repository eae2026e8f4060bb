"""Named exceptions shared by every layer.

Each message says what is wrong and where (file, line, column or id) and, where it can, how to fix it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType


class ScenerecError(Exception):
    """Base class of every error scenerec raises on purpose."""


class ConfigError(ScenerecError):
    """A setting is missing or has an invalid value."""


#: Characters that end a line for ``str.splitlines``: escaped in data error messages, which quote input text.
_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)}


def one_line(text: str) -> str:
    """``text`` with its line breaks escaped (``\\n``, ``\\r``, ``\\u2028`` ...), so that it prints as one line."""
    return text.translate(_LINE_BREAKS)


class MissingExtraError(ConfigError, ImportError):
    """An optional dependency is not installed (or does not import): the message names the extra of ``scenerec``
    that installs it, e.g. ``pip install 'scenerec[neo4j]'``.

    Also an :class:`ImportError`, so that code guarding an optional import with ``except ImportError`` still works.
    """

    def __init__(self, what: str, module: str, extra: str, *, needs: str | None = None, reason: str = "") -> None:
        self.what = what
        self.extra = extra
        needed = needs or repr(module.partition(".")[0])
        state = f"which failed to import ({reason})" if reason else "which is not installed"
        super().__init__(one_line(f"{what} needs {needed}, {state}: pip install 'scenerec[{extra}]'"), name=module)


def require_extra(module: str, extra: str, what: str, *, needs: str | None = None) -> ModuleType:
    """Import the optional module ``module`` (e.g. ``"neo4j"``, ``"matplotlib.figure"``) that the extra ``extra``
    of ``scenerec`` installs, for ``what`` (e.g. ``"the Neo4j backend"``); ``needs`` names it in the message
    (default: its top-level package, quoted).

    Raises :class:`MissingExtraError` when it is not installed, or when it is installed but does not import (a
    dependency of its own missing or broken: the message then quotes the reason).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.partition(".")[0]
        absent = isinstance(exc, ModuleNotFoundError) and exc.name in {module, top}
        raise MissingExtraError(what, module, extra, needs=needs, reason="" if absent else str(exc)) from exc


class DataFormatError(ScenerecError):
    """Input data that cannot be read: names the file and, where known, the line and column."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        # Messages quote input (ids, column names): one error is one line, whatever the input holds.
        super().__init__(one_line(f"{prefix}: {message}" if prefix else message))
        self.reason = message


class MissingColumnError(DataFormatError):
    """A required column is absent from a table file."""

    def __init__(self, file: str | Path, column: str, present: Iterable[str]) -> None:
        cols = ", ".join(sorted(map(str, present))) or "(none)"
        super().__init__(f"required column is missing (columns present: {cols})", file=file, column=column)


class ConflictingIdError(DataFormatError):
    """The same id is declared twice in incompatible ways (e.g. one item id in two scenes)."""


class UnknownFormatError(ScenerecError):
    """The dataset format could not be detected or the named format does not exist."""


class SchemaError(ScenerecError):
    """A label, relationship type or property is not part of the graph schema."""


class StoreError(ScenerecError):
    """A graph-store operation failed; the message carries the backend's own reason."""


class UnsafeQueryError(StoreError):
    """A query that the sandbox of :meth:`GraphStore.query <scenerec.kg.store.GraphStore.query>` refuses: it does
    more than read the graph (writes, files, extensions, other databases, procedures); the message names what and
    how a trusted user opts in."""


class StoreNotFoundError(StoreError):
    """The store path holds no built graph."""


class StoreLockedError(StoreError):
    """Another process is writing the store (its writer lock is held); the message names the holder."""


class GenerationChangedError(StoreError):
    """The store's live generation changed since it was read: the work done on the old one is not saved."""


class BackendUnavailableError(StoreError):
    """The configured graph-database backend cannot be reached or is not installed."""


class UnknownIdError(ScenerecError, KeyError):
    """A user, item, entity or scene id that the graph does not contain."""

    def __init__(self, kind: str, ident: str, hint: str = "") -> None:
        self.kind = kind
        self.ident = ident
        msg = f"unknown {kind} id {ident!r}"
        super().__init__(msg + (f"; {hint}" if hint else ""))

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class StoreFileError(StoreError):
    """A file of a store folder is missing, truncated or not what scenerec wrote: names the file (and for JSON the
    line and column of the parse error) and what to do (rebuild the store, fit again)."""

    def __init__(
        self, file: str | Path, reason: str, fix: str = "", *, line: int | None = None, column: int | None = None
    ) -> None:
        self.file = str(file)
        self.reason = reason
        self.fix = fix
        self.line = line
        self.column = column
        where = self.file + (f", line {line}" if line is not None else "") + (f", column {column}" if column else "")
        super().__init__(f"{where}: {reason}" + (f"; {fix}" if fix else ""))
