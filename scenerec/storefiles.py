"""Reading the files of a store folder so that a missing, truncated or foreign file is one clear error.

Every reader here raises :class:`~scenerec.errors.StoreFileError` naming the file (for JSON with the line and column
of the parse error) and what to do about it (``fix``: rebuild the store, fit the model again), never a bare
``JSONDecodeError``, ``BadZipFile`` or ``UnpicklingError``.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.errors import DataFormatError, StoreError, StoreFileError
from scenerec.ids import IdMap


def rebuild_hint(store: str | Path) -> str:
    """What to do about a broken graph generation of ``store``."""
    return f"rebuild the store (`scenerec rebuild DATASET --store {store}`)"


def fit_hint(store: str | Path) -> str:
    """What to do about a broken trained model of ``store``."""
    return f"fit the model again (`scenerec fit --store {store}`)"


def check_store_path(store: str | Path) -> None:
    """Refuse a store path that is a file, or lies under a file, before anything is created there."""
    path = Path(store)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "is a file" if p == path else f"lies under {p}, which is a file"
            raise StoreError(f"{path} {what}, not a store folder; give --store a folder (created if missing)")


def _missing_or_unreadable(path: Path, fix: str) -> StoreFileError:
    if not path.exists():
        return StoreFileError(path, "missing", fix)
    if path.is_dir():
        return StoreFileError(path, "is a folder, not a file", fix)
    return StoreFileError(path, "cannot be read", fix)


def read_json_file(path: str | Path, fix: str, *, kind: type = dict) -> Any:
    """The JSON value of ``path``, which must be of type ``kind`` (default: an object)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StoreFileError(p, "not UTF-8 text (damaged or not written by scenerec)", fix) from None
    except OSError:
        raise _missing_or_unreadable(p, fix) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON ({exc.msg}; truncated or damaged?)"
        raise StoreFileError(p, reason, fix, line=exc.lineno, column=exc.colno) from None
    if not isinstance(value, kind):
        raise StoreFileError(p, f"expected a JSON {_json_kind(kind)}, found a {_json_kind(type(value))}", fix)
    return value


def _json_kind(kind: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(kind, kind.__name__)


def read_idmap_file(path: str | Path, fix: str) -> IdMap:
    """An :class:`IdMap` saved by :meth:`IdMap.save`."""
    data = read_json_file(path, fix)
    try:
        return IdMap.from_dict(data, source=str(path))
    except (DataFormatError, TypeError, ValueError, AttributeError, KeyError) as exc:
        reason = exc.reason if isinstance(exc, DataFormatError) else str(exc)
        raise StoreFileError(path, f"not an id map ({reason})", fix) from None


def read_npz_file(path: str | Path, fix: str, *, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path``, read now (a damaged member fails here, not later); ``required``
    names arrays that must be present. Object arrays are refused (no pickles)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError, KeyError) as exc:
        if not p.is_file():
            raise _missing_or_unreadable(p, fix) from None
        if isinstance(exc, ValueError):  # numpy refuses object arrays (pickles) with allow_pickle=False
            why = "not a .npz archive of plain arrays (damaged, or not written by scenerec)"
            raise StoreFileError(p, why, fix) from None
        raise StoreFileError(p, f"not a readable .npz archive (truncated or damaged: {_one_line(exc)})", fix) from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise StoreFileError(p, f"lacks the array(s) {', '.join(missing)}", fix)
    return arrays


def read_torch_state(path: str | Path, fix: str) -> dict[str, Any]:
    """A state dict saved with ``torch.save``, loaded with ``weights_only=True`` (tensors only, no pickled code)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise _missing_or_unreadable(p, fix)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, OSError, ... for a bad file
        raise StoreFileError(
            p, f"not a readable weights file (truncated, damaged or not only tensors: {type(exc).__name__})", fix
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StoreFileError(p, "not a state dict of tensors", fix)
    return state


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117] + "..."
