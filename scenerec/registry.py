"""The recommenders scenerec can train, by name: one registry (:data:`MODELS`) that the :class:`~scenerec.engine.Engine`,
the CLI's ``--model`` choices and the loading of saved models all read.

Each entry (:class:`ModelSpec`) names a model class (imported when first used, so that ``import scenerec`` stays
light), its *preset* (the constructor arguments the name stands for, e.g. ``crossscene``'s), the options a user may
set on top (with their types and ranges, checked before anything is built), the default
:class:`~scenerec.gnn.TrainConfig`, and whether the item-item channel (:class:`~scenerec.gnn.ItemItemFusion`) is
fused with the trained model. An unknown name is a :class:`~scenerec.errors.ConfigError` that lists the known ones,
as PyKEEN's class resolver and PyG's ``resolver`` do.

>>> from scenerec.registry import MODELS
>>> MODELS.names()
['scenegnn', 'crossscene', 'lightgcn', 'bpr', 'pop']
>>> MODELS["crossscene"].preset["gate"]
True
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from scenerec.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from scenerec.gnn import GraphInputs, Recommender, TrainConfig

__all__ = ["DEFAULT_RECOMMENDER", "MODELS", "ModelSpec", "OptionSpec", "Registry", "load_model"]

#: An option a model accepts: (type, accepts(value), the accepted range in words).
OptionSpec = tuple[type, Callable[[Any], bool], str]

_BOOL: OptionSpec = (bool, lambda v: True, "true or false")


def _choice(*names: str) -> OptionSpec:
    return (str, lambda v: v in names, "one of " + ", ".join(names))


def _of_type(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


#: The options of the item-item channel (:class:`~scenerec.gnn.ItemItemFusion`), for models that fuse it:
#: ``item_item`` (fuse it at all), ``item_item_kind`` (``ease`` or ``knn``), ``item_item_nnz`` (buffer size).
ITEM_ITEM_OPTIONS: dict[str, OptionSpec] = {
    "item_item": _BOOL,
    "item_item_nnz": (int, lambda v: v >= 0, "an integer >= 0"),
    "item_item_kind": _choice("ease", "knn"),
}

_SCENEGNN_OPTIONS: dict[str, OptionSpec] = {
    "dim": (int, lambda v: v >= 1, "an integer >= 1"),
    "num_layers": (int, lambda v: v >= 0, "an integer >= 0"),
    "temperature": (float, lambda v: v > 0, "a number > 0"),
    "item_ids": _choice("all", "missing", "none"),
    "use_text": _BOOL,
    "use_kg": _BOOL,
    "scene_film": _BOOL,
    "kg_min_items": (int, lambda v: v >= 1, "an integer >= 1"),
    **ITEM_ITEM_OPTIONS,
}

_CROSSSCENE_OPTIONS: dict[str, OptionSpec] = {
    **_SCENEGNN_OPTIONS,
    "gate": _BOOL,
    "view_dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "item_bias": _BOOL,
    "cold_dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
}


def _bpr_config() -> TrainConfig:
    from scenerec.gnn import TrainConfig

    return TrainConfig()


def _softmax_config() -> TrainConfig:
    """The in-scene softmax, full on small catalogues (256 rows a step) and sampled on large ones (2,048 rows and
    1,024 negatives a scene a step, at most 32 steps an epoch, patience 3 epochs; :func:`scenerec.gnn.resolve_loss` picks by size); early
    stopping on at most 2,000 validation users."""
    from scenerec.gnn import TrainConfig

    return TrainConfig(
        loss="auto",
        lr=1e-2,
        batch_size=2048,
        softmax_batch_size=256,
        negatives=1024,
        weight_decay=0.0,
        patience=20,
        sampled_patience=3,
        max_steps=32,
        eval_users=2000,
    )


def _resolve(target: str) -> type[Recommender]:
    module, _, name = target.partition(":")
    cls: type[Recommender] = getattr(importlib.import_module(module), name)
    return cls


@dataclass(frozen=True)
class ModelSpec:
    """A recommender the engine can train under :attr:`name`.

    ``target``: its class as ``"module:Class"`` (imported on first use, :attr:`model_class`); ``preset``: the
    constructor arguments the name stands for (the user's ``options`` override them); ``options``: what a user may
    set, checked by :meth:`check_options`; ``config()``: the default training configuration; ``item_item``: whether
    the item-item channel is fused after training (the options ``item_item=False`` turns it off,
    ``item_item_kind`` picks its weights); ``alignment``: whether the model follows the stored ``SAME_AS`` item
    links by default.
    """

    name: str
    target: str
    description: str
    config: Callable[[], TrainConfig] = _bpr_config
    preset: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    item_item: bool = False
    alignment: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", MappingProxyType(dict(self.preset)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def model_class(self) -> type[Recommender]:
        """The model class (imported here)."""
        return _resolve(self.target)

    def check_options(self, options: Mapping[str, Any] | None) -> None:
        """:class:`ConfigError` naming the first of ``options`` that the model does not take, or whose value is of
        the wrong type or out of range (with the accepted range)."""
        if not options:
            return
        if not self.options:
            raise ConfigError(f"model {self.name!r} takes no options (got {', '.join(options)})")
        for key, value in options.items():
            if key not in self.options:
                raise ConfigError(
                    f"model {self.name!r} has no option {key!r}; its options: {', '.join(sorted(self.options))}"
                )
            kind, accepts, wanted = self.options[key]
            if not (_of_type(value, kind) and accepts(value)):
                raise ConfigError(f"model option {key}={json.dumps(value)}: expected {wanted}")

    def build(self, inputs: GraphInputs, options: Mapping[str, Any] | None = None) -> Recommender:
        """An untrained model for the graph ``inputs``: the class built from the preset and ``options`` (checked
        first), wrapped in :class:`~scenerec.gnn.ItemItemFusion` when the model fuses the item-item channel."""
        from scenerec.gnn import ItemItemFusion

        self.check_options(options)
        kwargs = {**self.preset, **(options or {})}
        fuse = bool(kwargs.pop("item_item", self.item_item)) and self.item_item
        kind = str(kwargs.pop("item_item_kind", "ease"))
        nnz = int(kwargs.pop("item_item_nnz", 0))
        try:
            model = self.model_class.from_inputs(inputs, **kwargs)
        except TypeError as exc:  # a constructor argument the class does not take
            raise ConfigError(f"model {self.name!r}: {exc}") from None
        return ItemItemFusion(model, inputs, kind=kind, nnz=nnz) if fuse else model


class Registry(Mapping[str, ModelSpec]):
    """Model specs by name; ``registry[name]`` raises :class:`ConfigError` listing the known names."""

    def __init__(self, specs: list[ModelSpec] | None = None) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs or []:
            self.register(spec)

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Add ``spec``; a name that is taken is a :class:`ConfigError`."""
        if spec.name in self._specs:
            raise ConfigError(f"a model named {spec.name!r} is registered already")
        self._specs[spec.name] = spec
        return spec

    def __getitem__(self, name: str) -> ModelSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(self._specs)}")
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        """The registered names, in registration order (the CLI's ``--model`` choices)."""
        return list(self._specs)

    def classes(self) -> dict[str, type[Recommender]]:
        """Every class a saved model may name (the registered ones and the wrappers), by class name."""
        from scenerec.gnn import MODEL_CLASSES

        return {**MODEL_CLASSES, **{spec.model_class.__name__: spec.model_class for spec in self._specs.values()}}


#: The recommenders :meth:`Engine.fit <scenerec.engine.Engine.fit>` can train, by name.
MODELS = Registry(
    [
        ModelSpec(
            "scenegnn",
            "scenerec.gnn:SceneGNN",
            "scenerec's main model: text-initialised, relation-aware, scene-adapted GNN + item-item channel",
            config=_softmax_config,
            options=_SCENEGNN_OPTIONS,
            item_item=True,
        ),
        ModelSpec(
            "crossscene",
            "scenerec.transfer:CrossSceneGNN",
            "cross-scene transfer: SceneGNN on the joint graph + SAME_AS item links + the per-scene gate",
            config=_softmax_config,
            # the preset: the per-scene gate with view dropout, an item bias, free id vectors for every item and
            # the item-kNN channel across scenes, so that a history in one scene scores another's items
            preset={"gate": True, "view_dropout": 0.5, "item_bias": True, "item_ids": "all", "item_item_kind": "knn"},
            options=_CROSSSCENE_OPTIONS,
            item_item=True,
            alignment=True,
        ),
        ModelSpec(
            "lightgcn", "scenerec.gnn:LightGCN", "LightGCN, 2 layers, 64-d, BPR", preset={"dim": 64, "num_layers": 2}
        ),
        ModelSpec("bpr", "scenerec.gnn:BPRMF", "BPR matrix factorisation, 64-d", preset={"dim": 64}),
        ModelSpec("pop", "scenerec.gnn:MostPopular", "most popular items of the scene (no training)"),
    ]
)

#: The model :meth:`Engine.fit <scenerec.engine.Engine.fit>` trains when none is named.
DEFAULT_RECOMMENDER = "scenegnn"


def load_model(
    meta: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None, inputs: GraphInputs
) -> Recommender:
    """A saved model (:func:`scenerec.gnn.load_artifact`'s ``state_dict`` and ``meta``) built again on the graph
    ``inputs`` it was trained with, whatever registered class it is (:func:`scenerec.gnn.build_model`)."""
    from scenerec.gnn import build_model

    return build_model(meta, state_dict, inputs=inputs, classes=MODELS.classes())
