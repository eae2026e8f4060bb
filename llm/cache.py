"""A persistent embedding cache keyed by (model identity, text hash).

Layout: ``DIR/<sha256(identity)[:16]>/`` holds ``model.json`` (the identity and the vector size) and shards
``part-<n>.npz`` (``keys``: SHA-256 digests of the texts, ``vectors``: float32). Shards are written whole and
renamed into place, so a killed process never leaves a half-written shard. A different model identity gets its
own folder: one model's vectors are never handed to another.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scenerec.errors import DataFormatError


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors of texts already encoded by one model (see module docstring)."""

    def __init__(self, directory: str | Path, identity: str, dim: int) -> None:
        self.identity = identity
        self.dim = int(dim)
        self.path = Path(directory) / hashlib.sha256(identity.encode()).hexdigest()[:16]
        self._index: dict[bytes, tuple[int, int]] = {}  # key -> (shard, row)
        self._shards: list[np.ndarray] = []
        self._load()

    def _load(self) -> None:
        meta = self.path / "model.json"
        if meta.is_file():
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
                raise DataFormatError(
                    "unreadable embedding cache metadata; delete the file to re-embed", file=meta, line=line
                ) from exc
            if data.get("identity") != self.identity or int(data.get("dim", -1)) != self.dim:
                raise DataFormatError(f"embedding cache belongs to another model: {data.get('identity')!r}", file=meta)
        for part in sorted(self.path.glob("part-*.npz")):
            try:
                with np.load(part) as z:
                    keys, vectors = z["keys"], z["vectors"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise DataFormatError(
                    f"unreadable embedding cache shard ({exc}); delete it to re-embed", file=part
                ) from exc
            if vectors.shape[1:] != (self.dim,):
                raise DataFormatError(f"shard holds {vectors.shape[1:]} vectors, expected ({self.dim},)", file=part)
            shard = len(self._shards)
            self._shards.append(vectors)
            for row, key in enumerate(keys):
                self._index[bytes(key)] = (shard, row)

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """``(found, vectors)``: a boolean mask and an array with the cached vectors where found (zeros elsewhere)."""
        found = np.zeros(len(keys), dtype=bool)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            hit = self._index.get(k)
            if hit is not None:
                found[i] = True
                out[i] = self._shards[hit[0]][hit[1]]
        return found, out

    def add(self, keys: Sequence[bytes], vectors: np.ndarray) -> int:
        """Store new vectors (keys already cached are skipped); returns how many were written."""
        new = {}
        for k, v in zip(keys, vectors, strict=True):
            if k not in self._index and k not in new:
                new[k] = v
        if not new:
            return 0
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self.path / "model.json"
        if not meta.exists():
            meta.write_text(json.dumps({"identity": self.identity, "dim": self.dim}), encoding="utf-8")
        shard = len(self._shards)
        while (self.path / f"part-{shard:05d}.npz").exists():
            shard += 1
        key_arr = np.frombuffer(b"".join(new), dtype=np.uint8).reshape(len(new), 32)
        vec_arr = np.asarray(list(new.values()), dtype=np.float32).reshape(len(new), self.dim)
        tmp = self.path / f".part-{shard:05d}.{os.getpid()}.npz"
        np.savez(tmp, keys=key_arr, vectors=vec_arr)
        os.replace(tmp, self.path / f"part-{shard:05d}.npz")
        idx = len(self._shards)
        self._shards.append(vec_arr)
        for row, k in enumerate(new):
            self._index[k] = (idx, row)
        return len(new)
