"""The one object that owns the id <-> index maps; it is saved with every artifact."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from scenerec.errors import DataFormatError, UnknownIdError

#: Node kinds that carry an index space.
NODE_KINDS = ("scene", "user", "item", "entity")


class IdMap:
    """Bidirectional string-id <-> contiguous-index maps, one per node kind.

    Indices are assigned in the order ids are first added, so a map built from the same inputs is identical.
    """

    FORMAT_VERSION = 1

    def __init__(self, ids: Mapping[str, Sequence[str]] | None = None) -> None:
        self._ids: dict[str, list[str]] = {k: [] for k in NODE_KINDS}
        self._index: dict[str, dict[str, int]] = {k: {} for k in NODE_KINDS}
        for kind, values in (ids or {}).items():
            self.add(kind, values)

    def _check_kind(self, kind: str) -> None:
        if kind not in self._ids:
            raise KeyError(f"unknown node kind {kind!r}; expected one of {', '.join(NODE_KINDS)}")

    def add(self, kind: str, ids: Iterable[str]) -> None:
        """Append ids of ``kind`` that are not yet known (in order of appearance)."""
        self._check_kind(kind)
        table, index = self._ids[kind], self._index[kind]
        for ident in ids:
            s = str(ident)
            if s not in index:
                index[s] = len(table)
                table.append(s)

    def __len__(self) -> int:
        return sum(len(v) for v in self._ids.values())

    def size(self, kind: str) -> int:
        self._check_kind(kind)
        return len(self._ids[kind])

    def ids(self, kind: str) -> list[str]:
        """All ids of ``kind`` in index order (a copy)."""
        self._check_kind(kind)
        return list(self._ids[kind])

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, ident = key
        return ident in self._index.get(kind, {})

    def index(self, kind: str, ident: str) -> int:
        self._check_kind(kind)
        try:
            return self._index[kind][ident]
        except KeyError:
            raise UnknownIdError(kind, ident) from None

    def indices(self, kind: str, ids: Iterable[str]) -> np.ndarray:
        """Vector of indices for ``ids``; raises :class:`UnknownIdError` on the first unknown id."""
        self._check_kind(kind)
        index = self._index[kind]
        out = []
        for ident in ids:
            try:
                out.append(index[ident])
            except KeyError:
                raise UnknownIdError(kind, str(ident)) from None
        return np.asarray(out, dtype=np.int64)

    def id(self, kind: str, idx: int) -> str:
        self._check_kind(kind)
        return self._ids[kind][idx]

    def to_dict(self) -> dict[str, object]:
        return {"format_version": self.FORMAT_VERSION, "ids": {k: list(v) for k, v in self._ids.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "<dict>") -> IdMap:
        if data.get("format_version") != cls.FORMAT_VERSION or not isinstance(data.get("ids"), dict):
            raise DataFormatError("not a scenerec id map (format_version 1 expected)", file=source)
        ids = data["ids"]
        assert isinstance(ids, dict)
        return cls({str(k): [str(x) for x in v] for k, v in ids.items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", file=p, line=exc.lineno) from exc
        return cls.from_dict(data, source=str(p))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self._ids.items())
        return f"IdMap({sizes})"
