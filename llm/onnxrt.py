"""The bundled text model on ONNX Runtime: exported once from its local weights, cached, run on the CPU.

:func:`ensure_onnx_model` exports all-MiniLM-L6-v2 (with its masked mean pooling and L2 normalisation, so the
graph returns the final vectors) with ``torch.onnx.export`` from the weights of the installed package, and, for
``int8``, quantises that export with ONNX Runtime's dynamic quantisation (int8 weights per output channel,
activations per batch) except the feed-forward blocks of the first two layers, which stay float32: quantising
those moved the vectors most (``benchmarks/README.md``, "Text-model routes"). Both files are cached under
:func:`~scenerec.llm.encoder.model_cache_dir`, named by the model's fingerprint, so only the first run exports;
nothing is downloaded. Needs the ``fast`` extra (``onnxruntime``, ``onnx``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.errors import ConfigError, require_extra

#: Version of the export recipe: part of the file names and of the encoder identity, so a change of recipe never
#: reuses old files or cached vectors.
ONNX_FORMAT = "v1"

#: Transformer layers whose feed-forward matrix products stay float32 in the int8 model.
FP32_FFN_LAYERS = (0, 1)

#: Layer-name parts of a BERT layer's two feed-forward matrix products (``intermediate`` and ``output``; the
#: attention block has its own ``attention/output``).
_FFN_PARTS = ("/intermediate/dense/", "/output/dense/")


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a :class:`~scenerec.errors.MissingExtraError` naming the ``fast`` extra."""
    require_extra("onnx", "fast", "the ONNX text-model runtime")
    return require_extra("onnxruntime", "fast", "the ONNX text-model runtime")


def onnx_model_file(cache: Path, fingerprint: str, precision: str) -> Path:
    """Where the ONNX file of the bundled model with ``fingerprint`` at ``precision`` is cached."""
    return cache / f"minilm-{fingerprint}-{precision}-{ONNX_FORMAT}.onnx"


def ensure_onnx_model(folder: Path, cache: Path, fingerprint: str, precision: str) -> tuple[Path, float]:
    """The cached ONNX file of the model in ``folder`` at ``precision`` (``fp32`` or ``int8``), exported (and
    quantised) first when it is not cached yet; returns the file and the seconds spent building it (0 when it
    was cached)."""
    target = onnx_model_file(cache, fingerprint, precision)
    if target.is_file():
        return target, 0.0
    require_onnxruntime()
    t0 = time.perf_counter()
    cache.mkdir(parents=True, exist_ok=True)
    fp32 = onnx_model_file(cache, fingerprint, "fp32")
    if not fp32.is_file():
        export_onnx(folder, fp32)
    if precision == "int8":
        quantize_onnx(fp32, target)
    elif precision != "fp32":
        raise ConfigError(f"the ONNX runtime takes precision fp32 or int8, not {precision!r}: use runtime torch")
    return target, time.perf_counter() - t0


def _atomic_target(target: Path) -> Path:
    """A fresh temporary file beside ``target`` (moved over it once written, so readers never see half a file)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    return Path(name)


def export_onnx(folder: Path, target: Path) -> None:
    """Export the model in ``folder`` with mean pooling and L2 normalisation to ``target`` (inputs ``input_ids``
    and ``attention_mask``, batch and sequence axes dynamic; output ``embedding``)."""
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    try:
        # eager attention exports as plain matrix products, which ONNX Runtime fuses and quantises
        model = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the text model from {folder} for the ONNX export: {exc}") from exc
    sample = torch.ones(2, 8, dtype=torch.long)
    tmp = _atomic_target(target)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # the TorchScript exporter warns that it is deprecated and that traced shapes are constants: the
            # graph is checked against torch on real titles by the tests
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pooled(model),
                (sample, sample),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fp32_node_names(model: Any, layers: Sequence[int] = FP32_FFN_LAYERS) -> list[str]:
    """Names of the feed-forward ``MatMul`` nodes of ``layers`` in the exported graph ``model`` (an ONNX
    ``ModelProto``); a :class:`ConfigError` when the graph has none of them (an export naming its nodes
    differently must not silently quantise everything)."""
    names = [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul"
        and any(f"layer.{i}{part}" in n.name for i in layers for part in _FFN_PARTS)
        and "/attention/" not in n.name
    ]
    if len(names) != 2 * len(layers):
        raise ConfigError(
            f"the ONNX export has {len(names)} feed-forward MatMul nodes in layers {list(layers)}, expected "
            f"{2 * len(layers)}: delete the cached export or use runtime torch"
        )
    return names


def quantize_onnx(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the float32 export ``source`` into ``target``: weights per output channel,
    the feed-forward blocks of :data:`FP32_FFN_LAYERS` left in float32."""
    onnx = require_extra("onnx", "fast", "the ONNX text-model runtime")
    quantization = require_extra("onnxruntime.quantization", "fast", "the ONNX text-model runtime")
    keep = fp32_node_names(onnx.load(str(source), load_external_data=False))
    tmp = _atomic_target(target)
    logging.disable(logging.WARNING)  # the quantiser logs advice on the root logger ("run pre-processing")
    try:
        quantization.quantize_dynamic(
            str(source),
            str(tmp),
            per_channel=True,
            weight_type=quantization.QuantType.QInt8,
            nodes_to_exclude=keep,
            # the exporter leaves some intermediate types to inference; they are all float32
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, target)
    finally:
        logging.disable(logging.NOTSET)
        tmp.unlink(missing_ok=True)


class OnnxSession:
    """An ONNX Runtime session of an exported text model, on the CPU with ``threads`` threads (``None``: ONNX
    Runtime's choice): :meth:`run` turns token-id lists into the model's unit vectors."""

    def __init__(self, path: Path, threads: int | None, pad_id: int) -> None:
        ort = require_onnxruntime()
        ort.disable_telemetry_events()  # ONNX Runtime's usage events: scenerec sends none, even where it could
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.path = path
        self.threads = threads
        self.pad_id = pad_id
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable or invalid files
            raise ConfigError(f"cannot load the ONNX text model {path}: {exc}; delete it to export it again") from exc

    def run(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Vectors of the token-id lists ``ids`` (padded here to the longest), float32 ``(len(ids), dim)``."""
        width = max(len(x) for x in ids)
        tokens = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            tokens[row, : len(x)] = x
            mask[row, : len(x)] = 1
        out: np.ndarray = self.session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]
        return out.astype(np.float32, copy=False)
