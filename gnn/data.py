"""The knowledge graph as a PyTorch Geometric ``HeteroData``: the input of every scenerec model.

Built from what the store exports (:meth:`scenerec.kg.GraphStore.edge_index` and the text features), never from a
database connection. Node types ``user``, ``item``, ``entity`` and ``scene``; edge types:

* ``("user", "interacted", "item")``: all interactions, with ``split`` (0 train, 1 valid, 2 test, -1 unset),
  ``weight``, ``rating`` (NaN if none), ``timestamp`` (-1 if none) and ``scene`` (the item's scene index) per edge,
  so that per-scene and per-split views are masks, not copies;
* ``("item", "in_scene", "scene")``;
* ``("item"|"entity", "related", "item"|"entity")``: KG facts, ``relation`` = index into ``data.relations``;
* ``(kind, "same_as", kind)``: alignments, with ``score``.

``x`` holds the text embedding of items, entities and scenes (zeros and ``has_text = False`` where there is none);
``item.scene`` is each item's scene index (-1: none).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from scenerec.errors import SchemaError
from scenerec.kg import EdgeIndex

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2, "": -1}
_REL_NAMES = {"INTERACTED": "interacted", "IN_SCENE": "in_scene", "RELATED": "related", "SAME_AS": "same_as"}


def _tensor(values: np.ndarray | pd.Series, dtype: type) -> torch.Tensor:
    """A tensor owning a copy of ``values`` (pandas may hand out read-only arrays)."""
    return torch.from_numpy(np.array(values, dtype=dtype, copy=True))


def _edge_index(df: pd.DataFrame) -> torch.Tensor:
    return torch.from_numpy(np.stack([df["src"].to_numpy(np.int64), df["dst"].to_numpy(np.int64)]))


def build_hetero(edges: EdgeIndex, features: Mapping[str, np.ndarray] | None = None) -> HeteroData:
    """A validated ``HeteroData`` of the graph (see the module docstring for its layout).

    ``features``: ``{kind: float array (idmap.size(kind), dim)}`` as :func:`scenerec.kg.load_features` returns.
    """
    idmap = edges.idmap
    data = HeteroData()
    for kind in ("user", "item", "entity", "scene"):
        data[kind].num_nodes = idmap.size(kind)
    for kind, arr in (features or {}).items():
        if kind not in ("item", "entity", "scene", "user"):
            raise SchemaError(f"features for unknown node kind {kind!r}")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if x.ndim != 2 or x.shape[0] != idmap.size(kind):
            raise SchemaError(f"{kind} features have shape {tuple(x.shape)}, expected ({idmap.size(kind)}, dim)")
        data[kind].x = x
        data[kind].has_text = x.abs().sum(dim=1) > 0
    data["item"].scene = _tensor(edges.item_scene, np.int64)
    relations: list[str] = []
    rel_index: dict[str, int] = {}
    for (src, rel, dst), df in edges.edges.items():
        name = _REL_NAMES[rel]
        store = data[src, name, dst]
        store.edge_index = _edge_index(df)
        if rel == "INTERACTED":
            split = df["split"].fillna("").map(SPLIT_CODES)
            if split.isna().any():
                raise SchemaError(f"interaction split {df['split'][split.isna()].iloc[0]!r} is not train/valid/test")
            store.split = _tensor(split, np.int64)
            store.weight = _tensor(df["weight"].fillna(1.0), np.float32)
            store.rating = _tensor(pd.to_numeric(df["rating"], errors="coerce").astype("float64"), np.float32)
            store.timestamp = _tensor(pd.to_numeric(df["timestamp"], errors="coerce").fillna(-1), np.int64)
            store.scene = data["item"].scene[store.edge_index[1]]
        elif rel == "RELATED":
            codes = []
            for r in df["relation"].astype(str):
                if r not in rel_index:
                    rel_index[r] = len(relations)
                    relations.append(r)
                codes.append(rel_index[r])
            store.relation = torch.tensor(codes, dtype=torch.long)
        elif rel == "SAME_AS":
            store.score = _tensor(df["score"].fillna(1.0), np.float32)
    data.relations = relations
    data.scenes = idmap.ids("scene")
    validate(data)
    return data


def validate(data: HeteroData) -> None:
    """PyG's structural checks plus scenerec's: indices in range, finite features, edge attributes aligned."""
    try:
        data.validate(raise_on_error=True)
    except ValueError as exc:
        raise SchemaError(f"invalid graph tensors: {exc}") from exc
    for kind in data.node_types:
        x = getattr(data[kind], "x", None)
        if x is not None and not torch.isfinite(x).all():
            raise SchemaError(f"{kind} features contain NaN or infinite values")
    for et in data.edge_types:
        store = data[et]
        n = store.edge_index.shape[1]
        for key in ("split", "weight", "rating", "timestamp", "scene", "relation", "score"):
            value = getattr(store, key, None)
            if value is not None and value.shape[0] != n:
                raise SchemaError(f"{et}: attribute {key!r} has {value.shape[0]} rows for {n} edges")
    scene = data["item"].scene
    if scene.numel() and int(scene.max()) >= data["scene"].num_nodes:
        raise SchemaError("item scene index out of range")
