"""Saved models: a folder with ``weights.pt`` (the state dict), ``meta.json`` (the model's class, sizes and constructor
arguments, the training configuration, seed, metrics, history, versions) and ``idmap.json``, from which
:func:`build_model` makes the same model again (the same scores).

Each model records its own constructor arguments (:meth:`Recommender.hyperparameters`) and is built again by its
class's :meth:`Recommender.from_inputs`; the classes are found by name in :data:`MODEL_CLASSES` (this package's) plus
the ``classes`` a caller passes (models defined further along, e.g. :class:`scenerec.transfer.CrossSceneGNN`).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scenerec.errors import StoreFileError
from scenerec.gnn.data import CSR, GraphInputs
from scenerec.gnn.fusion import ItemItemFusion
from scenerec.gnn.models import BPRMF, LightGCN, MostPopular, Recommender
from scenerec.gnn.scenegnn import SceneGNN
from scenerec.gnn.train import FitResult, TrainConfig
from scenerec.ids import IdMap
from scenerec.storefiles import read_idmap_file, read_json_file, read_torch_state

__all__ = [
    "IDMAP",
    "META",
    "MODEL_CLASSES",
    "WEIGHTS",
    "build_model",
    "hyperparameters",
    "load_artifact",
    "save_artifact",
]

#: Files of an artifact folder.
WEIGHTS, META, IDMAP = "weights.pt", "meta.json", "idmap.json"

#: The model classes of this package :func:`build_model` builds, by class name.
MODEL_CLASSES: dict[str, type[Recommender]] = {
    cls.__name__: cls for cls in (MostPopular, BPRMF, LightGCN, SceneGNN, ItemItemFusion)
}


def hyperparameters(model: Recommender) -> dict[str, Any]:
    """What :func:`build_model` needs besides the graph: ``class``, ``num_users``, ``num_items`` and the model's own
    constructor arguments (:meth:`Recommender.hyperparameters`; a wrapper nests its model's under ``base``)."""
    return {
        "class": type(model).__name__,
        "num_users": model.num_users,
        "num_items": model.num_items,
        **model.hyperparameters(),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_artifact(
    path: str | Path,
    model_name: str,
    model: Recommender,
    config: TrainConfig,
    result: FitResult,
    idmap: IdMap,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the folder ``path`` (created) with ``weights.pt`` (the state dict), ``meta.json`` and ``idmap.json``.

    ``meta.json``: ``model`` (``model_name``), ``hyperparameters`` (:func:`hyperparameters`), ``config``, ``seed``,
    ``best_epoch``, ``metrics`` (validation at the best epoch), times, ``loss`` (the objective trained with), ``history``, ``versions`` and ``extra``
    (anything JSON-serialisable the caller adds, e.g. the test metrics or the dataset name). Returns the folder.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / WEIGHTS)
    meta = {
        "model": model_name,
        "hyperparameters": hyperparameters(model),
        "config": asdict(config),
        "seed": result.seed,
        "best_epoch": result.best_epoch,
        "metrics": {"valid": result.best_valid},
        "seconds_to_best": result.seconds_to_best,
        "seconds_total": result.seconds_total,
        "loss": result.loss,
        "history": result.history,
        "versions": {
            "scenerec": _version("scenerec"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "extra": dict(extra or {}),
    }
    (folder / META).write_text(json.dumps(_jsonable(meta), indent=2), encoding="utf-8")
    idmap.save(folder / IDMAP)
    return folder


def load_artifact(path: str | Path, fix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of an artifact folder written by :func:`save_artifact` (``meta["idmap"]``: the
    :class:`IdMap`). Rebuild the model with :func:`build_model`. A missing, truncated or foreign file raises
    :class:`~scenerec.errors.StoreFileError` naming it, with ``fix`` (what to do) appended."""
    folder = Path(path)
    fix = fix or "train and save the model again"
    meta = read_json_file(folder / META, fix)
    _check_meta(folder / META, meta, fix)
    state = read_torch_state(folder / WEIGHTS, fix)
    meta["idmap"] = read_idmap_file(folder / IDMAP, fix)
    return state, meta


def _check_meta(path: Path, meta: dict[str, Any], fix: str) -> None:
    """``meta.json`` has what :func:`build_model` reads: ``model``, and ``hyperparameters`` with ``class`` and
    non-negative ``num_users`` / ``num_items``."""
    hp = meta.get("hyperparameters")
    if not isinstance(meta.get("model"), str) or not isinstance(hp, dict) or not isinstance(hp.get("class"), str):
        raise StoreFileError(path, "lacks the model name or its hyperparameters (class, sizes)", fix)
    for key in ("num_users", "num_items"):
        value = hp.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StoreFileError(path, f"hyperparameters.{key} is {value!r}, not a non-negative integer", fix)


#: Keys of a SceneGNN's hyper-parameters in artifacts saved before the item-item channel moved to
#: :class:`ItemItemFusion` (the channel's weights were then part of the model's state).
_LEGACY_ITEM_ITEM = ("item_item", "item_item_nnz", "item_item_kind")


def _legacy(hp: dict[str, Any], state: Mapping[str, torch.Tensor] | None) -> tuple[dict[str, Any], Any]:
    """An artifact of a SceneGNN (or subclass) with the item-item channel inside, read as the wrapper's: the
    hyper-parameters nested under ``base`` and the state dict's keys renamed (``item_item_channel.*`` ->
    ``channel.*``, ``fusion`` kept, the rest under ``base.``)."""
    if not any(key in hp for key in _LEGACY_ITEM_ITEM):
        return hp, state
    base = {k: v for k, v in hp.items() if k not in _LEGACY_ITEM_ITEM}
    if not hp.get("item_item", False):
        return base, None if state is None else {k: v for k, v in state.items() if k != "fusion"}
    wrapped = {
        "class": ItemItemFusion.__name__,
        "num_users": hp["num_users"],
        "num_items": hp["num_items"],
        "kind": hp.get("item_item_kind", "ease"),
        "nnz": int(hp.get("item_item_nnz", 0)),
        "base": base,
    }
    if state is None:
        return wrapped, None
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("item_item_channel."):
            renamed["channel." + key.removeprefix("item_item_channel.")] = value
        elif key == "fusion":
            renamed[key] = value
        else:
            renamed["base." + key] = value
    return wrapped, renamed


def _build(
    hp: Mapping[str, Any],
    classes: Mapping[str, type[Recommender]],
    inputs: GraphInputs | None,
    adj: torch.Tensor | None,
) -> Recommender:
    params = dict(hp)
    name, n_users, n_items = params.pop("class"), int(params.pop("num_users")), int(params.pop("num_items"))
    cls = classes.get(name)
    if cls is None:
        raise ValueError(f"unknown model class {name!r}; known: {', '.join(sorted(classes))}")
    if inputs is not None and (inputs.num_users, inputs.num_items) != (n_users, n_items):
        raise ValueError(
            f"inputs have {inputs.num_users} users x {inputs.num_items} items, the model {n_users} x {n_items}"
        )
    if cls is ItemItemFusion:
        base = _build(params.pop("base"), classes, inputs, adj)
        if inputs is None:
            raise ValueError(f"{name} needs inputs, the GraphInputs it was trained with")
        return ItemItemFusion(base, inputs, **params)
    if inputs is not None:
        return cls.from_inputs(inputs, **params)
    if cls is LightGCN and adj is not None:  # built from its adjacency alone
        return LightGCN(n_users, n_items, adj, **params)
    if cls in (MostPopular, BPRMF):  # nothing but the sizes (MostPopular's counts are in its state)
        empty = CSR.from_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), (n_users, n_items))
        return cls.from_inputs(GraphInputs(train=empty, item_scene=np.full(n_items, -1), num_scenes=0), **params)
    raise ValueError(f"{name} needs inputs, the GraphInputs it was trained with")


def build_model(
    meta: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    inputs: GraphInputs | None = None,
    adj: torch.Tensor | None = None,
    classes: Mapping[str, type[Recommender]] | None = None,
) -> Recommender:
    """A model of the class and constructor arguments in ``meta["hyperparameters"]`` (:func:`hyperparameters`),
    loaded with ``state_dict`` when given, in eval mode.

    ``inputs``: the :class:`GraphInputs` the model was trained with (training pairs, scenes, text features, KG
    facts): every graph model needs them (:meth:`Recommender.from_inputs`); :class:`LightGCN` may be given ``adj``
    (its normalised training adjacency) instead, :class:`MostPopular` and :class:`BPRMF` need neither.
    ``classes``: model classes defined outside this package, by name (they take precedence over
    :data:`MODEL_CLASSES`). Artifacts saved when SceneGNN held the item-item channel load as an
    :class:`ItemItemFusion` around it (the same scores).
    """
    hp, state = _legacy(dict(meta["hyperparameters"]), state_dict)
    model = _build(hp, {**MODEL_CLASSES, **(classes or {})}, inputs, adj)
    if state is not None:
        model.load_state_dict(dict(state))
    model.eval()
    return model
