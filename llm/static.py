"""A static text encoder for million-item catalogues: token vectors distilled once from the bundled model.

:class:`StaticTextEncoder` distils all-MiniLM-L6-v2 with model2vec (``model2vec.distill.distill_from_model``: each
token of its vocabulary is run through the transformer alone, its output vector weighted by the token's
frequency rank (SIF)), on first use, from the weights of the installed package, and caches the result under
:func:`~scenerec.llm.encoder.model_cache_dir`, named by the model's fingerprint. Encoding is then a table look-up
and a mean per text: orders of magnitude faster than the transformer, and less exact (word order and context are
lost; ``benchmarks/README.md``, "Text-model routes", has the figures). No PCA is applied, so the vectors keep the
transformer's 384 dimensions and space (their cosine to its vectors is meaningful). Needs the ``fast`` extra
(``model2vec``, ``skeletoken``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.config import STATIC_MODEL
from scenerec.errors import ConfigError, require_extra
from scenerec.llm.encoder import Progress, TextEncoder, default_model_path, model_cache_dir, model_fingerprint

#: Version of the distillation recipe: part of the cached folder's name and of the identity.
STATIC_FORMAT = "v1"

#: model2vec's default: the BERT vocabulary's ``[unusedN]`` placeholder tokens are left out.
DEFAULT_TOKEN_FILTER = r"\[unused\d+\]"

#: model2vec's default SIF coefficient (a token's weight is ``c / (c + p)``, ``p`` its Zipf probability).
SIF_COEFFICIENT = 1e-4


class StaticTextEncoder(TextEncoder):
    """Static (model2vec) vectors distilled from the bundled all-MiniLM-L6-v2: mean of the token vectors of a text,
    L2-normalised.

    ``max_length``: tokens per text (default 256, as the transformer). ``threads``: torch CPU threads for the
    one-off distillation. ``cache_dir``: where the distilled model is kept (default :func:`model_cache_dir`).
    ``token_filter``: a regular expression of the transformer's tokens to leave out of the distillation
    (model2vec's ``token_remove_pattern``; default the ``[unusedN]`` placeholders): a narrower vocabulary distils
    faster and maps the tokens left out to ``[UNK]``. ``batch_size``: texts per look-up batch. The filter and the
    recipe are part of :attr:`identity`.
    """

    name = STATIC_MODEL
    precision = "fp32"
    runtime = "model2vec"

    def __init__(
        self,
        *,
        max_length: int | None = None,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        token_filter: str = DEFAULT_TOKEN_FILTER,
        batch_size: int = 1024,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be positive")
        if threads is not None and threads < 1:
            raise ConfigError("threads must be positive")
        if max_length is not None and max_length < 1:
            raise ConfigError("max_length must be positive")
        try:
            re.compile(token_filter)
        except re.error as exc:
            raise ConfigError(f"token_filter {token_filter!r} is not a regular expression: {exc}") from exc
        self.folder = default_model_path()
        self.fingerprint = model_fingerprint(self.folder)
        self.max_length = int(max_length or 256)
        self.threads = threads
        self.batch_size = batch_size
        self.token_filter = token_filter
        self.cache_dir = model_cache_dir(cache_dir)
        filter_key = hashlib.sha256(token_filter.encode()).hexdigest()[:8]
        self.path = self.cache_dir / f"static-{self.fingerprint}-{filter_key}-{STATIC_FORMAT}"
        self.identity = (
            f"{STATIC_MODEL}|{self.fingerprint}|model2vec-{STATIC_FORMAT}|sif{SIF_COEFFICIENT:g}|tokens-{filter_key}"
            f"|mean|l2|{self.max_length}"
        )
        # no PCA: the static vectors keep the transformer's width
        config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config["hidden_size"])
        self.forward_passes = 0
        #: Seconds the first load spent distilling (0 when the distilled model came from the cache).
        self.prepare_seconds = 0.0
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            static = require_extra("model2vec", "fast", "the static text model")
            if not (self.path / "config.json").is_file():
                t0 = time.perf_counter()
                distill_static(self.folder, self.path, token_filter=self.token_filter, threads=self.threads)
                self.prepare_seconds = time.perf_counter() - t0
            try:
                self._model = static.StaticModel.from_pretrained(str(self.path))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"cannot load the static text model {self.path}: {exc}; delete it to distil it again"
                ) from exc
            self.dim = int(self._model.dim)
        return self._model

    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = self._load()
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            vectors = np.asarray(
                model.encode(chunk, max_length=self.max_length, batch_size=len(chunk), use_multiprocessing=False),
                dtype=np.float32,
            )
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            # a text none of whose tokens is in the table has no vector: its row stays zero
            out[start : start + len(chunk)] = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
            self.forward_passes += 1
            if progress:
                progress(len(chunk))
        return out

    def __repr__(self) -> str:
        return f"StaticTextEncoder(dim={self.dim}, max_length={self.max_length}, path={str(self.path)!r})"


def distill_static(
    folder: Path, target: Path, *, token_filter: str = DEFAULT_TOKEN_FILTER, threads: int | None
) -> None:
    """Distil the transformer in ``folder`` into a model2vec static model saved in the folder ``target`` (written
    beside it and renamed into place, so a reader never sees half a model)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    distill = require_extra(
        "model2vec.distill", "fast", "the static text model", needs="'model2vec' with 'skeletoken' (its distiller)"
    )
    try:
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the text model from {folder} for distillation: {exc}") from exc
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        static = distill.distill_from_model(
            model,
            tokenizer,
            device="cpu",
            pca_dims=None,
            sif_coefficient=SIF_COEFFICIENT,
            token_remove_pattern=token_filter,
        )
    except ValueError as exc:  # e.g. a filter that leaves no token
        raise ConfigError(f"cannot distil the static text model: {exc}") from exc
    finally:
        torch.set_num_threads(before)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        static.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not another process that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
