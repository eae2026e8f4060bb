"""The data types every scenerec model is built from, and how they are made from what the store exports.

* :class:`CSR`: a set of (user, item) pairs (a split of the interactions), :class:`Interactions` builds them;
* :class:`GraphInputs` (with :class:`KGEdges`): the inputs of a model: training pairs, scenes, text features,
  knowledge-graph facts, item-item links; :func:`build_inputs` makes them from the store's :class:`EdgeIndex` and
  text features directly;
* :func:`build_hetero`: the whole graph as a PyTorch Geometric ``HeteroData``, for users who work with PyG.

Everything is built from what the store exports (:meth:`scenerec.kg.GraphStore.edge_index` and the text features),
never from a database connection. ``HeteroData`` node types ``user``, ``item``, ``entity`` and ``scene``; edge types:

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from scenerec.errors import DataFormatError, SchemaError
from scenerec.gnn.propagation import normalized_adjacency
from scenerec.ids import IdMap
from scenerec.kg import EdgeIndex

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2, "": -1}
_REL_NAMES = {"INTERACTED": "interacted", "IN_SCENE": "in_scene", "RELATED": "related", "SAME_AS": "same_as"}


@dataclass(frozen=True)
class CSR:
    """A set of (row, column) pairs in compressed sparse row form, without values.

    ``indptr``: int64 (n_rows + 1,); ``indices``: int64 (nnz,), the columns of row ``r`` are
    ``indices[indptr[r]:indptr[r + 1]]``, sorted and without repeats; ``shape``: (n_rows, n_cols).
    """

    indptr: np.ndarray
    indices: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> CSR:
        """Build from parallel index arrays ``rows``, ``cols`` (shape (nnz,)); repeated pairs are kept once."""
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        if r.shape != c.shape or r.ndim != 1:
            raise ValueError(f"rows and cols must be 1-d arrays of one length, got {r.shape} and {c.shape}")
        n_rows, n_cols = int(shape[0]), int(shape[1])
        if len(r) and (r.min() < 0 or r.max() >= n_rows or c.min() < 0 or c.max() >= n_cols):
            raise ValueError(f"an index pair is outside the shape {shape}")
        key = np.unique(r * n_cols + c)
        r, c = key // max(n_cols, 1), key % max(n_cols, 1)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
        return cls(indptr, c.astype(np.int64), (n_rows, n_cols))

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def row_counts(self) -> np.ndarray:
        """Number of columns per row, shape (n_rows,)."""
        return np.diff(self.indptr)

    def rows(self) -> np.ndarray:
        """Row index of each stored pair, shape (nnz,)."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), self.row_counts())

    def keep_columns(self, keep: np.ndarray) -> CSR:
        """The same matrix with only the pairs whose item ``keep`` (bool, (n_items,)) marks; the shape stays."""
        mask = np.asarray(keep, dtype=bool)[self.indices]
        return CSR.from_pairs(self.rows()[mask], self.indices[mask], self.shape)

    def select(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of the rows ``users`` (shape (b,)) as (position in ``users``, column), two arrays of shape (m,)."""
        u = np.asarray(users, dtype=np.int64)
        start, stop = self.indptr[u], self.indptr[u + 1]
        lengths = stop - start
        local = np.repeat(np.arange(len(u), dtype=np.int64), lengths)
        offsets = np.arange(lengths.sum(), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return local, self.indices[np.repeat(start, lengths) + offsets]


class Interactions:
    """Builds the per-split :class:`CSR` sets of a canonical interactions table."""

    SPLITS = ("train", "valid", "test")

    @staticmethod
    def from_frame(df: pd.DataFrame, idmap: IdMap) -> dict[str, CSR]:
        """``{"train": CSR, "valid": CSR, "test": CSR}``, each of shape (idmap users, idmap items).

        ``df`` has the canonical ``user``, ``item`` and ``split`` columns; rows are mapped through ``idmap``
        (an unknown id raises :class:`~scenerec.errors.UnknownIdError`). Every row must have a split: run a protocol
        of :mod:`scenerec.gnn.splits` first, otherwise :class:`DataFormatError` is raised.
        """
        for col in ("user", "item", "split"):
            if col not in df.columns:
                raise DataFormatError(
                    f"required column is missing (columns present: {', '.join(map(str, df.columns))})",
                    file="interactions",
                    column=col,
                )
        split = df["split"].astype("string").fillna("")
        bad = ~split.isin(Interactions.SPLITS)
        if bad.any():
            value = split[bad].iloc[0]
            why = (
                "has no split (run a protocol of scenerec.gnn.splits first)"
                if value == ""
                else "is not train/valid/test"
            )
            raise DataFormatError(f"{int(bad.sum())} interactions: split {value!r} {why}", file="interactions")
        shape = (idmap.size("user"), idmap.size("item"))
        users = idmap.indices("user", df["user"].astype(str).tolist())
        items = idmap.indices("item", df["item"].astype(str).tolist())
        labels = split.to_numpy(dtype=object)
        return {s: CSR.from_pairs(users[labels == s], items[labels == s], shape) for s in Interactions.SPLITS}


@dataclass(frozen=True)
class KGEdges:
    """Item-entity knowledge-graph facts as index tensors, each of shape (F,): ``item``, ``entity``, ``relation``
    (codes ``0 .. num_relations - 1``; a fact stored as (entity, r, item) counts as (item, r, entity))."""

    item: Tensor
    entity: Tensor
    relation: Tensor
    num_entities: int
    num_relations: int

    def __post_init__(self) -> None:
        n = self.item.numel()
        if self.entity.numel() != n or self.relation.numel() != n:
            raise ValueError("KGEdges: item, entity and relation must have one length")
        if n and (int(self.entity.max()) >= self.num_entities or int(self.relation.max()) >= self.num_relations):
            raise ValueError("KGEdges: an entity or relation index is out of range")


@dataclass(frozen=True)
class GraphInputs:
    """Everything a :class:`SceneGNN` is built from, besides its hyper-parameters.

    ``train``: the training interactions (users x items); ``item_scene``: (I,) scene index per item (-1: none);
    ``num_scenes``; ``item_text``: (I, t) LLM embeddings (zero rows where an item has none) or None;
    ``entity_text``: (n_entities, t) or None; ``kg``: item-entity facts or None; ``item_links``: undirected
    item-item links ``(edges (2, L), weights (L,))`` that propagation follows besides the user-item pairs (the
    ``SAME_AS`` alignments between scenes, :mod:`scenerec.transfer`), or None.
    """

    train: CSR
    item_scene: np.ndarray
    num_scenes: int
    item_text: Tensor | None = None
    entity_text: Tensor | None = None
    kg: KGEdges | None = None
    item_links: tuple[Tensor, Tensor] | None = None

    @property
    def num_users(self) -> int:
        return self.train.shape[0]

    @property
    def num_items(self) -> int:
        return self.train.shape[1]

    def adjacency(self) -> Tensor:
        """The normalised symmetric adjacency of the training pairs and the item links (CSR)."""
        edge_index = torch.from_numpy(np.stack([self.train.rows(), self.train.indices]).astype(np.int64))
        links, weights = self.item_links if self.item_links is not None else (None, None)
        return normalized_adjacency(
            edge_index, self.num_users, self.num_items, item_edges=links, item_edge_weight=weights
        )

    @classmethod
    def from_hetero(cls, data: Any, train: CSR) -> GraphInputs:
        """Inputs from the graph's ``HeteroData`` (:func:`scenerec.gnn.build_hetero`) and the training pairs."""
        n_items = int(data["item"].num_nodes)
        n_entities = int(data["entity"].num_nodes)
        item_text = getattr(data["item"], "x", None)
        entity_text = getattr(data["entity"], "x", None)
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        if ("item", "related", "entity") in data.edge_types:
            s = data["item", "related", "entity"]
            parts.append((s.edge_index[0], s.edge_index[1], s.relation))
        if ("entity", "related", "item") in data.edge_types:
            s = data["entity", "related", "item"]
            parts.append((s.edge_index[1], s.edge_index[0], s.relation))
        kg = None
        if parts and n_entities:
            kg = KGEdges(
                item=torch.cat([p[0] for p in parts]),
                entity=torch.cat([p[1] for p in parts]),
                relation=torch.cat([p[2] for p in parts]),
                num_entities=n_entities,
                num_relations=max(len(data.relations), 1),
            )
        scene = data["item"].scene.numpy().astype(np.int64)
        if scene.shape != (n_items,):
            raise ValueError("item scene array does not match the number of items")
        return cls(
            train=train,
            item_scene=scene,
            num_scenes=int(data["scene"].num_nodes),
            item_text=item_text,
            entity_text=entity_text,
            kg=kg,
        )


def _relation_codes(edges: EdgeIndex) -> tuple[dict[tuple[str, str, str], np.ndarray], list[str]]:
    """Per ``RELATED`` edge type, the relation code of each edge, and the relation names by code: codes are given
    in order of first appearance over the edge types in the store's order (the codes :func:`build_hetero` gives)."""
    keys = [key for key in edges.edges if key[1] == "RELATED"]
    names = [edges.edges[key]["relation"].astype(str).to_numpy(dtype=object) for key in keys]
    if not keys:
        return {}, []
    # factorize numbers the values in order of first appearance, over the frames concatenated in the store's order
    codes, uniques = pd.factorize(np.concatenate(names), sort=False)
    parts = np.split(codes.astype(np.int64), np.cumsum([len(n) for n in names])[:-1])
    return dict(zip(keys, parts, strict=True)), [str(u) for u in uniques]


def _features(edges: EdgeIndex, features: Mapping[str, np.ndarray] | None) -> dict[str, Tensor]:
    """The text features as float32 tensors, checked: a known node kind, one finite row per node."""
    out: dict[str, Tensor] = {}
    for kind, arr in (features or {}).items():
        if kind not in ("item", "entity", "scene", "user"):
            raise SchemaError(f"features for unknown node kind {kind!r}")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if x.ndim != 2 or x.shape[0] != edges.idmap.size(kind):
            raise SchemaError(f"{kind} features have shape {tuple(x.shape)}, expected ({edges.idmap.size(kind)}, dim)")
        if not torch.isfinite(x).all():
            raise SchemaError(f"{kind} features contain NaN or infinite values")
        out[kind] = x
    return out


def build_inputs(
    edges: EdgeIndex,
    train: CSR,
    features: Mapping[str, np.ndarray] | None = None,
    *,
    item_links: tuple[np.ndarray, np.ndarray] | None = None,
) -> GraphInputs:
    """The :class:`GraphInputs` of a model, straight from the store's edges and text features: ``train`` the
    training pairs, the item scenes, the item and entity texts, the item-entity facts of every ``RELATED`` edge
    (relation codes as :func:`build_hetero` numbers them) and, when given and not empty, the item-item
    ``item_links`` (edges (2, L) int64, weights (L,) float32) that propagation follows."""
    idmap = edges.idmap
    if train.shape != (idmap.size("user"), idmap.size("item")):
        raise ValueError(f"train has shape {train.shape}, the graph {idmap.size('user')} x {idmap.size('item')}")
    x = _features(edges, features)
    codes, relations = _relation_codes(edges)
    n_entities = idmap.size("entity")
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for (src, _, dst), code in codes.items():
        df = edges.edges[(src, "RELATED", dst)]
        s, d = df["src"].to_numpy(np.int64), df["dst"].to_numpy(np.int64)
        if (src, dst) == ("item", "entity"):
            parts.insert(0, (s, d, code))
        elif (src, dst) == ("entity", "item"):
            parts.append((d, s, code))
    kg = None
    if parts and n_entities:
        kg = KGEdges(
            item=torch.from_numpy(np.concatenate([p[0] for p in parts])),
            entity=torch.from_numpy(np.concatenate([p[1] for p in parts])),
            relation=torch.from_numpy(np.concatenate([p[2] for p in parts])),
            num_entities=n_entities,
            num_relations=max(len(relations), 1),
        )
    scene = np.array(edges.item_scene, dtype=np.int64, copy=True)
    if scene.shape != (idmap.size("item"),):
        raise SchemaError("item scene array does not match the number of items")
    if len(scene) and int(scene.max()) >= idmap.size("scene"):
        raise SchemaError("item scene index out of range")
    links = None
    if item_links is not None and item_links[0].shape[1]:
        links = (torch.from_numpy(np.asarray(item_links[0], dtype=np.int64)), torch.from_numpy(item_links[1]))
    return GraphInputs(
        train=train,
        item_scene=scene,
        num_scenes=idmap.size("scene"),
        item_text=x.get("item"),
        entity_text=x.get("entity"),
        kg=kg,
        item_links=links,
    )


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
    for kind, x in _features(edges, features).items():
        data[kind].x = x
        data[kind].has_text = x.abs().sum(dim=1) > 0
    data["item"].scene = _tensor(edges.item_scene, np.int64)
    codes, relations = _relation_codes(edges)
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
            store.relation = torch.from_numpy(codes[(src, rel, dst)])
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
