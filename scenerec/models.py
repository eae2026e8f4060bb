"""The recommenders :meth:`Engine.fit <scenerec.engine.Engine.fit>` can train, by name (:data:`MODELS`), the
``options`` each takes (:data:`MODEL_OPTIONS`, checked by :func:`check_model_options`) and the cross-scene model's
settings (:data:`CROSSSCENE_KW`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scenerec.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from scenerec.gnn import CSR, GraphInputs, Recommender, TrainConfig

__all__ = [
    "CROSSSCENE_KW",
    "DEFAULT_RECOMMENDER",
    "MODELS",
    "MODEL_OPTIONS",
    "ModelSpec",
    "check_model_options",
    "resolve_model",
]


def _adjacency(train: CSR) -> torch.Tensor:
    """The normalised user-item adjacency of the training pairs (for LightGCN)."""
    import torch

    from scenerec.gnn import normalized_adjacency

    edge_index = torch.from_numpy(np.stack([train.rows(), train.indices]).astype(np.int64))
    return normalized_adjacency(edge_index, train.shape[0], train.shape[1])


def _most_popular(inputs: GraphInputs) -> Recommender:
    import torch

    from scenerec.gnn import MostPopular

    train = inputs.train
    counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
    return MostPopular(torch.from_numpy(counts), num_users=train.shape[0])


def _bprmf(inputs: GraphInputs) -> Recommender:
    from scenerec.gnn import BPRMF

    return BPRMF(inputs.num_users, inputs.num_items, dim=64)


def _lightgcn(inputs: GraphInputs) -> Recommender:
    from scenerec.gnn import LightGCN

    return LightGCN(inputs.num_users, inputs.num_items, _adjacency(inputs.train), dim=64, num_layers=2)


def _scenegnn(inputs: GraphInputs, **options: Any) -> Recommender:
    from scenerec.gnn import SceneGNN

    return SceneGNN(inputs, **options)


def _crossscene(inputs: GraphInputs, **options: Any) -> Recommender:
    from scenerec.transfer import CrossSceneGNN

    return CrossSceneGNN(inputs, **{**CROSSSCENE_KW, **options})


#: :class:`~scenerec.transfer.CrossSceneGNN`'s settings for ``fit("crossscene")``, the ones
#: ``benchmarks/transfer.py`` measures; the item-item channel is item kNN across scenes (``--item-item knn`` there),
#: so that a history in one scene scores another's items (weighted per scene on the validation split).
CROSSSCENE_KW: dict[str, Any] = {
    "gate": True,
    "view_dropout": 0.5,
    "item_bias": True,
    "item_ids": "all",
    "item_item_kind": "knn",
}


#: The ``options`` :meth:`Engine.fit` accepts per model: name -> (type, accepts(value), the accepted range in words).
_OptionSpec = tuple[type, Callable[[Any], bool], str]
_BOOL: _OptionSpec = (bool, lambda v: True, "true or false")


def _choice(*names: str) -> _OptionSpec:
    return (str, lambda v: v in names, "one of " + ", ".join(names))


_SCENEGNN_OPTIONS: dict[str, _OptionSpec] = {
    "dim": (int, lambda v: v >= 1, "an integer >= 1"),
    "num_layers": (int, lambda v: v >= 0, "an integer >= 0"),
    "temperature": (float, lambda v: v > 0, "a number > 0"),
    "item_ids": _choice("all", "missing", "none"),
    "use_text": _BOOL,
    "use_kg": _BOOL,
    "scene_film": _BOOL,
    "item_item": _BOOL,
    "item_item_nnz": (int, lambda v: v >= 0, "an integer >= 0"),
    "kg_min_items": (int, lambda v: v >= 1, "an integer >= 1"),
    "item_item_kind": _choice("ease", "knn"),
}
MODEL_OPTIONS: dict[str, dict[str, _OptionSpec]] = {
    "scenegnn": _SCENEGNN_OPTIONS,
    "crossscene": {
        **_SCENEGNN_OPTIONS,
        "gate": _BOOL,
        "view_dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "item_bias": _BOOL,
        "cold_dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    },
}


def _of_type(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def check_model_options(model: str, options: dict[str, Any] | None) -> None:
    """:class:`ConfigError` naming the first option of ``fit(model, options=...)`` that the model does not take or
    whose value is of the wrong type or out of range (with the accepted range)."""
    if not options:
        return
    accepted = MODEL_OPTIONS.get(model)
    if accepted is None:
        raise ConfigError(f"model {model!r} takes no options (got {', '.join(options)})")
    for key, value in options.items():
        if key not in accepted:
            raise ConfigError(f"model {model!r} has no option {key!r}; its options: {', '.join(sorted(accepted))}")
        kind, accepts, wanted = accepted[key]
        if not (_of_type(value, kind) and accepts(value)):
            raise ConfigError(f"model option {key}={json.dumps(value)}: expected {wanted}")


def _bpr_config() -> TrainConfig:
    from scenerec.gnn import TrainConfig

    return TrainConfig()


def _softmax_config() -> TrainConfig:
    from scenerec.gnn import TrainConfig

    return TrainConfig(loss="softmax", lr=1e-2, batch_size=256, weight_decay=0.0, patience=20)


@dataclass(frozen=True)
class ModelSpec:
    """A recommender :meth:`Engine.fit` can train: ``factory(inputs, **options) -> untrained model`` (``options``:
    constructor arguments, where the model takes any) and its default :class:`~scenerec.gnn.TrainConfig`
    (``config()``)."""

    factory: Callable[..., Recommender]
    config: Callable[[], TrainConfig]
    description: str
    alignment: bool = False
    """Whether the model follows the stored ``SAME_AS`` item links by default (``fit(alignment=None)``)."""


#: The recommenders :meth:`Engine.fit` can train, by name.
MODELS: dict[str, ModelSpec] = {
    "scenegnn": ModelSpec(
        _scenegnn,
        _softmax_config,
        "scenerec's main model: text-initialised, relation-aware, scene-adapted GNN + item-item channel",
    ),
    "crossscene": ModelSpec(
        _crossscene,
        _softmax_config,
        "cross-scene transfer: SceneGNN on the joint graph + SAME_AS item links + the per-scene gate",
        alignment=True,
    ),
    "lightgcn": ModelSpec(_lightgcn, _bpr_config, "LightGCN, 2 layers, 64-d, BPR"),
    "bpr": ModelSpec(_bprmf, _bpr_config, "BPR matrix factorisation, 64-d"),
    "pop": ModelSpec(_most_popular, _bpr_config, "most popular items of the scene (no training)"),
}

#: The model :meth:`Engine.fit` trains when none is named.
DEFAULT_RECOMMENDER = "scenegnn"


def resolve_model(model: str, options: dict[str, Any] | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of the model named ``model`` in :data:`MODELS`, its ``options`` checked
    (:func:`check_model_options`); :class:`ConfigError` listing the known names for an unknown one."""
    spec = MODELS.get(model)
    if spec is None:
        raise ConfigError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    check_model_options(model, options)
    return spec
