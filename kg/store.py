"""The :class:`GraphStore` interface: one API over the embedded (LadybugDB) and the Neo4j backends.

Public methods validate their arguments and raise clear errors; backends implement the private ``_method``
counterparts (template method). Queries that read the graph are written once here in the Cypher subset both
backends speak; the few dialect differences are hooks (:meth:`GraphStore._label_expr`).
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pandas as pd

from scenerec.errors import SchemaError, StoreError, UnknownIdError
from scenerec.ids import IdMap
from scenerec.kg.cypher_guard import check_read_only
from scenerec.kg.schema import (
    DERIVED_RELS,
    LABEL_OF_KIND,
    MODEL_EMBEDDING,
    NODES,
    PROTECTED_ALIGNMENT_METHODS,
    RELS,
    check_label,
    check_rel,
)
from scenerec.kg.tables import EdgeTable, GraphTables

Progress = Callable[[str, int], None]
"""Callback ``progress(stage, rows_done)`` used by bulk loads to drive progress bars."""


@dataclass
class LoadStats:
    """Rows and seconds per stage of a bulk load."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def add(self, stage: str, rows: int, seconds: float) -> None:
        self.rows[stage] = self.rows.get(stage, 0) + rows
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass
class Subgraph:
    """Nodes (``label``, ``id``) and edges (``src_label``, ``src``, ``rel``, ``dst_label``, ``dst``, ``props``)."""

    nodes: pd.DataFrame
    edges: pd.DataFrame

    def to_networkx(self) -> nx.MultiDiGraph:
        """A MultiDiGraph whose node keys are ``(label, id)`` and whose edges carry ``rel`` and the properties."""
        g = nx.MultiDiGraph()
        for label, ident in zip(self.nodes["label"], self.nodes["id"], strict=True):
            g.add_node((label, ident), label=label, id=ident)
        for row in self.edges.itertuples(index=False):
            props = dict(row.props) if isinstance(row.props, Mapping) else {}
            g.add_edge((row.src_label, row.src), (row.dst_label, row.dst), rel=row.rel, **props)
        return g


@dataclass
class EdgeIndex:
    """Typed edge tables for the GNN: index arrays aligned with an :class:`IdMap`.

    ``edges[(src_kind, rel, dst_kind)]`` is a DataFrame with int64 ``src``, ``dst`` and the relationship's
    properties; kinds are id-map kinds (``user``, ``item``, ``entity``, ``scene``).
    """

    idmap: IdMap
    edges: dict[tuple[str, str, str], pd.DataFrame]
    item_scene: np.ndarray  # item index -> scene index (-1: none)


def _is_scalar_param(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters must be plain values, lists or maps of them; NaN becomes null."""

    def norm(v: Any) -> Any:
        if v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            return None
        if isinstance(v, np.generic):
            return v.item()
        if _is_scalar_param(v):
            return v
        if isinstance(v, Mapping):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray, pd.Series)):
            return [norm(x) for x in list(v)]
        raise TypeError(f"query parameter of type {type(v).__name__} is not supported")

    return {k: norm(v) for k, v in params.items()}


class GraphStore(abc.ABC):
    """A Cypher graph database holding the scene knowledge graph of :mod:`scenerec.kg.schema`."""

    backend: ClassVar[str]

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> GraphStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and file handles."""

    # ---------------------------------------------------------------- queries
    #: False (the default): :meth:`query` runs only statements that read the graph. True (a store opened with
    #: ``unsafe=True``): any statement, including ones that write, read or write files or load extensions.
    unsafe: bool = False

    def query(self, cypher: str, /, **params: Any) -> pd.DataFrame:
        """Run parameterised Cypher and return the rows as a DataFrame (one column per returned expression).

        Values always travel as parameters (``$name``); never format data into ``cypher``.

        Sandboxed unless the store was opened with ``unsafe=True``: the statement must only read the graph (read
        clauses, catalog procedures; see :mod:`scenerec.kg.cypher_guard`), else :class:`UnsafeQueryError` is raised
        before it reaches the database; on Neo4j it runs in a read transaction.
        """
        if not isinstance(cypher, str) or not cypher.strip():
            raise StoreError("empty Cypher query")
        checked = _check_params(params)
        if self.unsafe:
            return self._query(cypher, checked)
        check_read_only(cypher)
        return self._read_query(cypher, checked)

    def _cypher(self, cypher: str, /, **params: Any) -> pd.DataFrame:
        """Cypher written by this library (writes included), never sandboxed; user text never goes here."""
        return self._query(cypher, _check_params(params))

    def _read_query(self, cypher: str, params: dict[str, Any]) -> pd.DataFrame:
        """A statement that the sandbox let through; backends that can run it read-only override this."""
        return self._query(cypher, params)

    @abc.abstractmethod
    def _query(self, cypher: str, params: dict[str, Any]) -> pd.DataFrame: ...

    def _label_expr(self, var: str) -> str:
        """Cypher expression for the (single) label of node variable ``var``."""
        return f"labels({var})[0]"

    # ---------------------------------------------------------------- writing
    def create_schema(self, embedding_dims: Mapping[str, int] | None = None) -> None:
        """Create node tables / constraints for every label and relationship type (idempotent).

        ``embedding_dims`` (label -> size) declares the ``embedding`` float-array property of those labels.
        """
        dims = {}
        for label, dim in (embedding_dims or {}).items():
            check_label(label)
            if not isinstance(dim, (int, np.integer)) or dim < 1:
                raise SchemaError(f"embedding size of :{label} must be a positive integer, not {dim!r}")
            dims[label] = int(dim)
        self._create_schema(dims)

    @abc.abstractmethod
    def _create_schema(self, embedding_dims: dict[str, int]) -> None: ...

    def load_nodes(self, label: str, rows: pd.DataFrame, embeddings: np.ndarray | None = None) -> int:
        """Bulk-insert nodes of ``label``; ``rows`` has the label's schema columns and unique new ids.

        ``embeddings``: optional float array ``(len(rows), dim)`` stored as the nodes' ``embedding`` property.
        """
        nt = check_label(label)
        missing = [c for c in nt.columns if c not in rows.columns]
        if missing:
            raise SchemaError(f"rows for :{label} lack columns {missing}")
        if rows["id"].duplicated().any():
            raise SchemaError(f":{label} id {rows.loc[rows['id'].duplicated(), 'id'].iloc[0]!r} occurs twice")
        if rows.empty:
            return 0
        rows = rows[nt.columns].reset_index(drop=True)
        if embeddings is None:
            return self._load_nodes(label, rows)
        vectors = _check_vectors(label, embeddings, len(rows))
        return self._load_nodes_with_embeddings(label, rows, vectors)

    @abc.abstractmethod
    def _load_nodes(self, label: str, rows: pd.DataFrame) -> int: ...

    def _load_nodes_with_embeddings(self, label: str, rows: pd.DataFrame, vectors: np.ndarray) -> int:
        """Nodes, then their embeddings; backends that can load both at once override this."""
        n = self._load_nodes(label, rows)
        self._set_embeddings(label, [str(i) for i in rows["id"]], vectors)
        return n

    def set_embeddings(self, label: str, ids: Sequence[str], vectors: np.ndarray) -> int:
        """Set the ``embedding`` property of existing nodes ``ids`` of ``label`` (rows of ``vectors``)."""
        check_label(label)
        vectors = _check_vectors(label, vectors, len(ids))
        if not len(ids):
            return 0
        return self._set_embeddings(label, [str(i) for i in ids], vectors)

    @abc.abstractmethod
    def _set_embeddings(self, label: str, ids: list[str], vectors: np.ndarray) -> int: ...

    def node_embeddings(self, label: str) -> tuple[list[str], np.ndarray]:
        """Ids and ``embedding`` vectors (float32, one row each) of the nodes of ``label`` that have one."""
        return self._node_vectors(check_label(label).label, "embedding")

    def _node_vectors(self, label: str, prop: str) -> tuple[list[str], np.ndarray]:
        """Ids and float32 vectors of the array property ``prop`` (a fixed name, never data) of ``label``'s nodes."""
        df = self._cypher(f"MATCH (n:{label}) WHERE n.{prop} IS NOT NULL RETURN n.id AS id, n.{prop} AS e")
        if df.empty:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [str(i) for i in df["id"]], np.asarray(df["e"].tolist(), dtype=np.float32)

    def node_features(self, idmap: IdMap) -> dict[str, np.ndarray]:
        """Embeddings as arrays aligned with ``idmap``: ``{kind: float32 (idmap.size(kind), dim)}`` for the kinds
        whose nodes carry embeddings; rows of nodes without one are zero."""
        out: dict[str, np.ndarray] = {}
        for kind, label in LABEL_OF_KIND.items():
            ids, vectors = self.node_embeddings(label)
            if not ids:
                continue
            arr = np.zeros((idmap.size(kind), vectors.shape[1]), dtype=np.float32)
            arr[idmap.indices(kind, ids)] = vectors
            out[kind] = arr
        return out

    def load_edges(self, table: EdgeTable) -> int:
        """Bulk-insert relationships of one type between one label pair (endpoints must exist)."""
        if table.rows.empty:
            return 0
        return self._load_edges(table)

    @abc.abstractmethod
    def _load_edges(self, table: EdgeTable) -> int: ...

    def load_tables(self, tables: GraphTables, progress: Progress | None = None) -> LoadStats:
        """Bulk-load all rows of ``tables`` into an empty store (nodes first, then relationships)."""
        stats = LoadStats()
        for label, rows in tables.nodes.items():
            t0 = time.perf_counter()
            n = self.load_nodes(label, rows, tables.embeddings.get(label))
            stats.add(label, n, time.perf_counter() - t0)
            if progress:
                progress(label, n)
        for table in tables.edges:
            t0 = time.perf_counter()
            n = self.load_edges(table)
            stats.add(table.rel, n, time.perf_counter() - t0)
            if progress:
                progress(table.rel, n)
        return stats

    def assign_item_scenes(self, assignments: pd.DataFrame) -> int:
        """Give items a scene: rows ``id``, ``scene``, ``confidence``. Sets ``scene`` and ``scene_confidence``
        and links each item to its scene with ``IN_SCENE``. Items and scenes must exist; returns items updated."""
        missing = [c for c in ("id", "scene", "confidence") if c not in assignments.columns]
        if missing:
            raise SchemaError(f"scene assignments lack columns {missing}")
        rows = check_rows(
            {"id": str(r.id), "scene": str(r.scene), "confidence": float(r.confidence)}
            for r in assignments.itertuples(index=False)
        )
        if not rows:
            return 0
        known = set(self._cypher("MATCH (s:Scene) RETURN s.id AS id")["id"])
        unknown = sorted({r["scene"] for r in rows} - known)
        if unknown:
            raise UnknownIdError("scene", unknown[0], hint=f"known scenes: {', '.join(sorted(known))}")
        done = 0
        for start in range(0, len(rows), 500):
            batch = rows[start : start + 500]
            self._cypher(
                "UNWIND $rows AS row MATCH (i:Item)-[r:IN_SCENE]->(:Scene) WHERE i.id = row.id DELETE r", rows=batch
            )
            updated = self._cypher(
                "UNWIND $rows AS row MATCH (i:Item) WHERE i.id = row.id "
                "SET i.scene = row.scene, i.scene_confidence = row.confidence RETURN count(i) AS n",
                rows=batch,
            )
            done += int(updated["n"].iloc[0]) if len(updated) else 0
            self._cypher(
                "UNWIND $rows AS row MATCH (i:Item), (s:Scene) WHERE i.id = row.id AND s.id = row.scene "
                "CREATE (i)-[:IN_SCENE]->(s)",
                rows=batch,
            )
        if done != len(rows):
            raise StoreError(f"{len(rows) - done} of the items given a scene are not in the store")
        return done

    # ---------------------------------------------------------------- incremental updates
    def set_node_properties(self, label: str, rows: pd.DataFrame) -> int:
        """Overwrite properties of existing nodes of ``label``: ``rows`` has ``id`` and any of the label's other
        schema properties (missing values become null). Every id must exist: otherwise :class:`StoreError` is raised
        before anything is written. Returns the nodes updated."""
        nt = check_label(label)
        cols = [c for c in rows.columns if c != "id"]
        unknown = [c for c in cols if c not in nt.columns]
        if "id" not in rows.columns or unknown:
            raise SchemaError(f"rows for :{label} need an id column and schema properties only (not {unknown})")
        if rows.empty or not cols:
            return 0
        absent = self._missing(label, rows["id"].astype(str))
        if absent:
            raise StoreError(f"no :{label} node with id {', '.join(map(repr, absent[:5]))}; nothing was updated")
        records = check_rows(rows[["id", *cols]].astype(object).to_dict("records"))
        done = 0
        for sets, group in _set_groups("n", cols, records):  # names checked against the schema above
            for start in range(0, len(group), 500):
                df = self._cypher(
                    f"UNWIND $rows AS row MATCH (n:{label}) WHERE n.id = row.id SET {sets} RETURN count(n) AS n",
                    rows=group[start : start + 500],
                )
                done += int(df["n"].iloc[0]) if len(df) else 0
        return done

    def set_interaction_properties(self, rows: pd.DataFrame) -> int:
        """Overwrite ``weight``, ``timestamp`` and ``rating`` of existing ``INTERACTED`` relationships, found by
        ``user``, ``item`` and ``split`` (columns of ``rows``). Returns the relationships updated; a row that
        matches none raises :class:`StoreError` (the rows before it stay written)."""
        need = ["user", "item", "split", "weight", "timestamp", "rating"]
        missing = [c for c in need if c not in rows.columns]
        if missing:
            raise SchemaError(f"interaction rows lack columns {missing}")
        records = check_rows(rows[need].astype(object).to_dict("records"))
        done = 0
        for sets, group in _set_groups("r", ["weight", "timestamp", "rating"], records):
            for start in range(0, len(group), 500):
                batch = group[start : start + 500]
                df = self._cypher(
                    "UNWIND $rows AS row MATCH (u:User)-[r:INTERACTED]->(i:Item) "
                    f"WHERE u.id = row.user AND i.id = row.item AND r.split = row.split SET {sets} RETURN count(r) AS n",
                    rows=batch,
                )
                n = int(df["n"].iloc[0]) if len(df) else 0
                if n != len(batch):
                    raise StoreError(f"{len(batch) - n} of {len(batch)} interactions to update are not in the store")
                done += n
        return done

    # ---------------------------------------------------------------- recommender write-back
    def write_recommendations(self, rows: pd.DataFrame, users: Sequence[str] | None = None) -> int:
        """Replace every ``(:User)-[:RECOMMENDED]->(:Item)`` relationship of the graph by ``rows``.

        ``rows``: columns ``user``, ``item``, ``score`` (finite), ``rank`` (positive integer), ``model`` (name);
        one row per (user, item). Every user and item must exist: otherwise :class:`StoreError` is raised before
        anything is deleted. An empty ``rows`` removes all recommendations. Returns the relationships written.
        ``users``: replace only these users' relationships (every row must be one of theirs); the others stay.
        """
        cols = ["user", "item", "score", "rank", "model"]
        missing = [c for c in cols if c not in rows.columns]
        if missing:
            raise SchemaError(f"recommendation rows lack columns {missing}")
        frame = pd.DataFrame(
            {
                "from": rows["user"].astype(str).to_numpy(dtype=object),
                "to": rows["item"].astype(str).to_numpy(dtype=object),
                "score": pd.to_numeric(rows["score"], errors="coerce").astype("float64").to_numpy(),
                "rank": pd.to_numeric(rows["rank"], errors="coerce").to_numpy(),
                "model": rows["model"].astype(str).to_numpy(dtype=object),
            }
        )
        if not np.isfinite(frame["score"].to_numpy()).all():
            raise SchemaError("recommendation scores must be finite numbers")
        rank = frame["rank"].to_numpy(dtype="float64")
        if not (np.isfinite(rank).all() and (rank >= 1).all() and (rank == np.floor(rank)).all()):
            raise SchemaError("recommendation ranks must be positive integers")
        frame["rank"] = rank.astype(np.int64)
        dup = frame.duplicated(["from", "to"])
        if dup.any():
            first = frame.loc[dup].iloc[0]
            raise SchemaError(f"item {first['to']!r} is recommended to user {first['from']!r} twice")
        for end, label in (("from", "User"), ("to", "Item")):
            absent = self._missing(label, frame[end]) if len(frame) else []
            if absent:
                raise StoreError(
                    f"no :{label} node with id {', '.join(map(repr, absent))}; cannot write recommendations for it"
                )
        if users is None:
            self._delete_relationships("RECOMMENDED", "User", "Item")
        else:
            chosen = [str(u) for u in users]
            stray = sorted(set(frame["from"]) - set(chosen))
            if stray:
                raise SchemaError(f"recommendation rows for user {stray[0]!r}, which is not among the users replaced")
            absent = self._missing("User", pd.Series(chosen, dtype=object)) if chosen else []
            if absent:
                raise StoreError(f"no :User node with id {', '.join(map(repr, absent))}; nothing was replaced")
            for start in range(0, len(chosen), 500):
                self._cypher(
                    "MATCH (u:User)-[r:RECOMMENDED]->(:Item) WHERE u.id IN $users DELETE r",
                    users=chosen[start : start + 500],
                )
        return self.load_edges(EdgeTable("RECOMMENDED", "User", "Item", frame))

    # ---------------------------------------------------------------- entity alignment write-back
    def write_alignments(
        self,
        frame: pd.DataFrame,
        method: str | Sequence[str] | None = None,
        *,
        scenes: tuple[str, str] | None = None,
    ) -> int:
        """Replace the predicted ``SAME_AS`` relationships of ``method`` by the rows of ``frame``.

        ``frame``: columns ``left``, ``right`` (node ids), ``kind_left`` and ``kind_right`` (or one ``kind`` for
        both: ``entity``, ``item``, ``user``, or the labels ``Entity``, ``Item``, ``User``; the pair must be one
        that ``SAME_AS`` connects), ``score`` (finite) and ``method`` (optional when ``method`` names one method).
        ``method``: the method(s) whose earlier ``SAME_AS`` relationships are deleted first (default: those of the
        frame's rows); every row's method must be one of them. The methods :data:`PROTECTED_ALIGNMENT_METHODS`
        (``gold``, ``seed``: the dataset's own alignment) are refused, and relationships of any method not named
        are never touched. ``scenes``: only delete relationships whose two ends lie in these two scenes (their
        ``scene`` property; users have none, so User-User links are then left alone).

        Every id must exist under its label: otherwise :class:`StoreError` is raised before anything is deleted.
        An empty ``frame`` with ``method`` removes that method's relationships. Returns the relationships written.
        """
        rows, methods = self._alignment_rows(frame, method)
        if scenes is not None and (len(scenes) != 2 or not all(isinstance(s, str) and s for s in scenes)):
            raise SchemaError(f"scenes must be two scene ids, not {scenes!r}")
        pairs = sorted(set(zip(rows["label_left"], rows["label_right"], strict=True)))
        for a, b in pairs:
            check_rel("SAME_AS", a, b)
        for a, b in pairs:
            part = rows[(rows["label_left"] == a) & (rows["label_right"] == b)]
            for end, label in (("left", a), ("right", b)):
                absent = self._missing(label, part[end])
                if absent:
                    raise StoreError(
                        f"no :{label} node with id {', '.join(map(repr, absent))}; cannot write an alignment for it"
                    )
        for a, b in RELS["SAME_AS"].pairs:
            if scenes is not None and "User" in (a, b):
                continue
            self._delete_alignments(a, b, sorted(methods), scenes)
        written = 0
        for a, b in pairs:
            part = rows[(rows["label_left"] == a) & (rows["label_right"] == b)]
            table = pd.DataFrame(
                {
                    "from": part["left"].to_numpy(dtype=object),
                    "to": part["right"].to_numpy(dtype=object),
                    "score": part["score"].to_numpy(dtype=np.float64),
                    "method": part["method"].to_numpy(dtype=object),
                }
            )
            written += self.load_edges(EdgeTable("SAME_AS", a, b, table))
        return written

    @staticmethod
    def _alignment_rows(frame: pd.DataFrame, method: str | Sequence[str] | None) -> tuple[pd.DataFrame, set[str]]:
        """The checked rows of :meth:`write_alignments` (labels resolved) and the methods to replace."""
        kinds = ["kind_left", "kind_right"] if "kind_left" in frame.columns else ["kind"]
        need = ["left", "right", *kinds, "score"] + ([] if isinstance(method, str) else ["method"])
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise SchemaError(f"alignment rows lack columns {missing}")
        if isinstance(method, str):
            named = {method}
        elif method is None:
            named = {str(m) for m in frame["method"]}
            if not named:
                raise SchemaError("name the method whose alignments an empty frame replaces")
        else:
            named = {str(m) for m in method}
            if not named:
                raise SchemaError("name at least one alignment method to replace")
        for m in named:
            if not m or not m.strip():
                raise SchemaError("an alignment method name is empty")
        protected = sorted(named & PROTECTED_ALIGNMENT_METHODS)
        if protected:
            raise SchemaError(
                f"SAME_AS relationships of method {protected[0]!r} are the dataset's own alignment; "
                "they cannot be replaced by write_alignments (rebuild the store to change them)"
            )

        def label(values: pd.Series, side: str) -> np.ndarray:
            out = []
            for v in values.astype(str):
                name = LABEL_OF_KIND.get(v, v)
                if name not in NODES:
                    raise SchemaError(
                        f"{side} kind {v!r} is not a node kind; expected one of {', '.join(LABEL_OF_KIND)}"
                    )
                out.append(name)
            return np.asarray(out, dtype=object)

        k_left, k_right = (frame[kinds[0]], frame[kinds[-1]])
        rows = pd.DataFrame(
            {
                "left": frame["left"].astype(str).to_numpy(dtype=object),
                "right": frame["right"].astype(str).to_numpy(dtype=object),
                "label_left": label(k_left, "left"),
                "label_right": label(k_right, "right"),
                "score": pd.to_numeric(frame["score"], errors="coerce").astype("float64").to_numpy(),
                "method": (
                    frame["method"].astype(str).to_numpy(dtype=object)
                    if "method" in frame.columns
                    else np.full(len(frame), method, dtype=object)
                ),
            }
        )
        if not np.isfinite(rows["score"].to_numpy()).all():
            raise SchemaError("alignment scores must be finite numbers")
        other = sorted(set(rows["method"]) - named)
        if other:
            raise SchemaError(
                f"alignment rows of method {other[0]!r} are not among the methods replaced ({', '.join(sorted(named))})"
            )
        dup = rows.duplicated(["label_left", "left", "label_right", "right", "method"])
        if dup.any():
            first = rows.loc[dup].iloc[0]
            raise SchemaError(f"the pair ({first['left']!r}, {first['right']!r}) occurs twice for {first['method']!r}")
        return rows, named

    def _delete_alignments(self, src: str, dst: str, methods: list[str], scenes: tuple[str, str] | None) -> int:
        """Delete the ``SAME_AS`` relationships from ``src`` to ``dst`` nodes (checked labels) whose ``method`` is
        one of ``methods`` (and, with ``scenes``, whose ends lie in those two scenes); returns how many."""
        rt = check_rel("SAME_AS", src, dst)
        where, params = _alignment_filter(scenes)
        match = f"MATCH (a:{src})-[r:{rt.type}]->(b:{dst}) WHERE r.method IN $methods{where}"
        n = int(self._cypher(f"{match} RETURN count(r) AS n", methods=methods, **params)["n"].iloc[0])
        if n:
            self._cypher(f"{match} DELETE r", methods=methods, **params)
        return n

    def set_model_embeddings(self, label: str, ids: Sequence[str], vectors: np.ndarray) -> int:
        """Replace the :data:`~scenerec.kg.schema.MODEL_EMBEDDING` property (a float array) of every node of
        ``label``: row ``k`` of ``vectors`` for node ``ids[k]``, none for the nodes not in ``ids``. The size may
        differ from an earlier call (the property column is replaced). Returns the nodes given a vector."""
        check_label(label)
        ids = [str(i) for i in ids]
        vectors = _check_vectors(label, vectors, len(ids))
        if len(set(ids)) != len(ids):
            raise SchemaError(f":{label} id {pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]!r} occurs twice")
        absent = self._missing(label, pd.Series(ids, dtype=object)) if ids else []
        if absent:
            raise StoreError(f"no :{label} node with id {', '.join(map(repr, absent))}; cannot set its embedding")
        return self._set_model_embeddings(label, ids, vectors)

    @abc.abstractmethod
    def _set_model_embeddings(self, label: str, ids: list[str], vectors: np.ndarray) -> int: ...

    def model_embeddings(self, label: str) -> tuple[list[str], np.ndarray]:
        """Ids and :data:`~scenerec.kg.schema.MODEL_EMBEDDING` vectors (float32) of the nodes of ``label`` that
        have one (written by :meth:`set_model_embeddings`)."""
        return self._node_vectors(check_label(label).label, MODEL_EMBEDDING)

    @abc.abstractmethod
    def _delete_relationships(self, rel: str, src: str, dst: str) -> int:
        """Delete every relationship of type ``rel`` from ``src`` to ``dst`` nodes (checked names); returns how many."""

    #: Above this many distinct ids, :meth:`_missing` reads every id of the label once instead of matching a list
    #: parameter (on 52k users, one scan takes a fraction of the time of ``WHERE n.id IN $ids``).
    MISSING_SCAN_FROM = 2_000

    def _missing(self, label: str, ids: pd.Series) -> list[str]:
        """Up to five of ``ids`` that no node of ``label`` has."""
        unique = [str(i) for i in pd.unique(ids.astype(str))]
        if len(unique) > self.MISSING_SCAN_FROM:
            known = self._cypher(f"MATCH (n:{label}) RETURN n.id AS id")["id"]
        else:
            known = self._cypher(f"MATCH (n:{label}) WHERE n.id IN $ids RETURN n.id AS id", ids=unique)["id"]
        present = set(known.astype(str))
        return [i for i in unique if i not in present][:5]

    def _rel_types(self) -> list[str]:
        """The relationship types of the schema that this store holds (all of them, unless a backend says less)."""
        return list(RELS)

    # ---------------------------------------------------------------- reading
    def counts(self) -> dict[str, dict[str, int]]:
        """``{"nodes": {label: n}, "edges": {type: n}}`` over the whole graph."""
        nodes = {label: int(self._cypher(f"MATCH (n:{label}) RETURN count(n) AS n")["n"].iloc[0]) for label in NODES}
        edges = dict.fromkeys(RELS, 0)
        for rel in self._rel_types():
            edges[rel] = int(self._cypher(f"MATCH ()-[r:{rel}]->() RETURN count(r) AS n")["n"].iloc[0])
        return {"nodes": nodes, "edges": edges}

    def scene_counts(self) -> pd.DataFrame:
        """One row per scene: items, users (with an interaction there), interactions, KG facts, own entities."""
        scenes = self._cypher("MATCH (s:Scene) RETURN s.id AS scene, s.name AS name ORDER BY scene")
        items = self._cypher("MATCH (i:Item) RETURN i.scene AS scene, count(i) AS items")
        inter = self._cypher(
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) "
            "RETURN i.scene AS scene, count(r) AS interactions, count(DISTINCT u.id) AS users"
        )
        kg = self._cypher("MATCH (i:Item)-[r:RELATED]-() RETURN i.scene AS scene, count(r) AS item_facts")
        ents = self._cypher("MATCH (e:Entity) WHERE e.scene <> '' RETURN e.scene AS scene, count(e) AS own_entities")
        out = scenes
        for part in (items, inter, kg, ents):
            out = out.merge(part, on="scene", how="left")
        return out.fillna(0).astype({c: "int64" for c in out.columns if c not in ("scene", "name")})

    def shared_entities(self, limit: int = 20) -> pd.DataFrame:
        """Entities that items of two or more scenes point to, most-shared first."""
        return self._cypher(
            "MATCH (i:Item)-[:RELATED]->(e:Entity) "
            "WITH e, count(DISTINCT i.scene) AS scenes, count(i) AS items WHERE scenes > 1 "
            "RETURN e.id AS entity, e.type AS type, e.name AS name, scenes, items "
            "ORDER BY items DESC, entity LIMIT $limit",
            limit=int(limit),
        )

    def node(self, label: str, ident: str) -> dict[str, Any]:
        """The properties of one node; :class:`UnknownIdError` if it does not exist."""
        nt = check_label(label)
        cols = ", ".join(f"n.{c} AS {c}" for c in nt.columns)
        df = self._cypher(f"MATCH (n:{label}) WHERE n.id = $id RETURN {cols}", id=str(ident))
        if df.empty:
            raise UnknownIdError(nt.kind, str(ident))
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in df.iloc[0].items()}

    def k_hop(
        self,
        ident: str,
        k: int = 2,
        label: str | None = None,
        rels: Sequence[str] = ("INTERACTED", "RELATED", "SAME_AS"),
        limit: int = 10_000,
    ) -> pd.DataFrame:
        """Nodes within ``k`` hops of node ``ident`` (any direction): columns ``label``, ``id``, ``hops``.

        Breadth-first over the relationship types ``rels`` (``IN_SCENE`` is left out by default: the scene node
        joins every item of a scene); one parameterised query per hop; stops after ``limit`` nodes.
        """
        if not isinstance(k, int) or k < 1 or k > 6:
            raise ValueError("k must be an integer between 1 and 6")
        if not rels:
            raise ValueError("rels must name at least one relationship type")
        rel_pattern = "|".join(check_rel(r).type for r in rels)
        labels = (
            [check_label(label).label]
            if label
            else [
                lb for lb in NODES if not self._cypher(f"MATCH (n:{lb}) WHERE n.id = $id RETURN n.id", id=ident).empty
            ]
        )
        if not labels:
            raise UnknownIdError("node", str(ident))
        seen: dict[tuple[str, str], int] = {(lb, str(ident)): 0 for lb in labels}
        frontier = {lb: [str(ident)] for lb in labels}
        lab = self._label_expr("b")
        for hop in range(1, k + 1):
            nxt: dict[str, list[str]] = {}
            for lb, ids in frontier.items():
                if not ids:
                    continue
                df = self._cypher(
                    f"MATCH (a:{lb})-[:{rel_pattern}]-(b) WHERE a.id IN $ids RETURN DISTINCT {lab} AS label, b.id AS id",
                    ids=ids,
                )
                for blabel, bid in zip(df["label"], df["id"], strict=True):
                    key = (str(blabel), str(bid))
                    if key not in seen and len(seen) < limit + 1:
                        seen[key] = hop
                        nxt.setdefault(key[0], []).append(key[1])
            frontier = nxt
            if not frontier:
                break
        rows = [(lb, i, h) for (lb, i), h in seen.items() if h > 0]
        return pd.DataFrame(rows, columns=["label", "id", "hops"]).sort_values(
            ["hops", "label", "id"], ignore_index=True
        )

    def explanation_paths(self, user_id: str, item_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """Graph paths from user ``user_id`` to item ``item_id``: the candidate explanations of a recommendation.

        Each path starts with one of the user's interactions (an ``INTERACTED`` relationship whose ``split`` is
        not ``'test'``; a null or empty split counts) with an item other than the target, then reaches the target:

        ==================  =============================================================================
        kind                path
        ==================  =============================================================================
        ``shared_entity``   user -INTERACTED-> item -RELATED- entity -RELATED- target
        ``related_item``    user -INTERACTED-> item -RELATED- target
        ``co_interaction``  user -INTERACTED-> item <-INTERACTED- other user -INTERACTED-> target
        ``same_as``         user -INTERACTED-> item -SAME_AS- target
        ``same_as_entity``  user -INTERACTED-> item -SAME_AS- item -RELATED- entity -RELATED- target
        ``aligned_entity``  user -INTERACTED-> item -RELATED- entity -SAME_AS- entity -RELATED- target
        ==================  =============================================================================

        ``RELATED`` and ``SAME_AS`` hops are followed in either direction; every ``INTERACTED`` hop (the other
        user's too) skips test interactions; no item but the last is the target. One parameterised query per kind,
        each returning at most ``limit`` paths (ordered by their node ids, so the cut is the same on every backend).

        Returns a list of ``{"kind", "nodes", "relations", "hop_scores"}``: ``nodes`` in path order, each
        ``{"label", "id", "name"}`` (name: the user id, the item title, the entity name; ``""`` when missing),
        ``relations`` the relationship types in path order (``RELATED`` as ``"RELATED:<relation>"``; a hop walked
        against its direction keeps its type), ``hop_scores`` the ``score`` property of each relationship
        (``SAME_AS``; ``None`` for the others or when missing). Kinds come in the order of the table, paths of a
        kind in the order of their node ids. Raises :class:`UnknownIdError` for an unknown user or item.
        """
        if not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        ends: dict[str, dict[str, str]] = {}
        for var, label, ident in (("u", "User", user_id), ("t", "Item", item_id)):
            name = _NAME_PROPERTY[label]
            df = self._cypher(f"MATCH (n:{label}) WHERE n.id = $id RETURN n.{name} AS name", id=str(ident))
            if df.empty:
                raise UnknownIdError(NODES[label].kind, str(ident))
            ends[var] = {"label": label, "id": str(ident), "name": _text(df["name"].iloc[0])}
        paths: list[dict[str, Any]] = []
        for path in _EXPLANATION_PATHS:
            inner = [(v, lb) for v, lb in path.nodes if v not in ends]
            rel_cols = [(v, t, _REL_PROPERTY[t]) for v, t in path.rels if t in _REL_PROPERTY]
            where = ["u.id = $user", "t.id = $item"]
            where += [f"{v}.id <> t.id" for v, lb in inner if lb == "Item"]
            where += [f"({v}.split IS NULL OR {v}.split <> 'test')" for v, t in path.rels if t == "INTERACTED"]
            where += list(path.where)
            returns = [f"{v}.id AS {v}_id, {v}.{_NAME_PROPERTY[lb]} AS {v}_name" for v, lb in inner]
            returns += [f"{v}.{prop} AS {v}_{prop}" for v, _, prop in rel_cols]
            order = [f"{v}_id" for v, _ in inner] + [f"{v}_{prop}" for v, _, prop in rel_cols]
            df = self._cypher(
                f"MATCH {path.pattern} WHERE {' AND '.join(where)} "
                f"RETURN DISTINCT {', '.join(returns)} ORDER BY {', '.join(order)} LIMIT $limit",
                user=str(user_id),
                item=str(item_id),
                limit=limit,
            )
            for row in df.to_dict("records"):
                nodes = [
                    ends[v] if v in ends else {"label": lb, "id": str(row[f"{v}_id"]), "name": _text(row[f"{v}_name"])}
                    for v, lb in path.nodes
                ]
                relations: list[str] = []
                hop_scores: list[float | None] = []
                for v, t in path.rels:
                    value = row.get(f"{v}_{_REL_PROPERTY.get(t, '')}")
                    if t == "RELATED":
                        relations.append(f"RELATED:{_text(value)}" if _text(value) else "RELATED")
                    else:
                        relations.append(t)
                    hop_scores.append(_number(value) if t == "SAME_AS" else None)
                paths.append({"kind": path.kind, "nodes": nodes, "relations": relations, "hop_scores": hop_scores})
        return paths

    def _edges_between(self, rel: str, src: str, dst: str, where: str = "", **params: Any) -> pd.DataFrame:
        rt = check_rel(rel, src, dst)
        props = "".join(f", r.{c} AS {c}" for c in rt.columns)
        return self._cypher(
            f"MATCH (a:{src})-[r:{rel}]->(b:{dst}) {where} RETURN a.id AS src, b.id AS dst{props}", **params
        )

    def scene_subgraph(self, scene: str, include_users: bool = True) -> Subgraph:
        """The subgraph of one scene: its items, the users who interacted with them, the KG facts of those
        items and of the scene's own entities (one hop), and the SAME_AS links that touch them."""
        if self._cypher("MATCH (s:Scene) WHERE s.id = $s RETURN s.id", s=scene).empty:
            raise UnknownIdError("scene", scene, hint=f"known scenes: {', '.join(self.scene_ids())}")
        parts: list[pd.DataFrame] = []

        def add(rel: str, src: str, dst: str, where: str, **params: Any) -> None:
            df = self._edges_between(rel, src, dst, where, **params)
            props = [c for c in df.columns if c not in ("src", "dst")]
            parts.append(
                pd.DataFrame(
                    {
                        "src_label": src,
                        "src": df["src"],
                        "rel": rel,
                        "dst_label": dst,
                        "dst": df["dst"],
                        "props": df[props].to_dict("records") if props else [{}] * len(df),
                    }
                )
            )

        add("IN_SCENE", "Item", "Scene", "WHERE b.id = $s", s=scene)
        if include_users:
            add("INTERACTED", "User", "Item", "WHERE b.scene = $s", s=scene)
        for a, b in RELS["RELATED"].pairs:
            cond = []
            if a == "Item":
                cond.append("a.scene = $s")
            if b == "Item":
                cond.append("b.scene = $s")
            if a == "Entity" and b == "Entity":
                cond = ["a.scene = $s", "b.scene = $s"]
            add("RELATED", a, b, "WHERE " + " OR ".join(cond), s=scene)
        for a, b in RELS["SAME_AS"].pairs:
            if a == "User":
                continue
            cond = [f"{v}.scene = $s" for v in ("a", "b")]
            add("SAME_AS", a, b, "WHERE " + " OR ".join(cond), s=scene)
        edges = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame(columns=["src_label", "src", "rel", "dst_label", "dst", "props"])
        )
        nodes = pd.concat(
            [
                edges[["src_label", "src"]].set_axis(["label", "id"], axis=1),
                edges[["dst_label", "dst"]].set_axis(["label", "id"], axis=1),
                self._cypher("MATCH (i:Item) WHERE i.scene = $s RETURN 'Item' AS label, i.id AS id", s=scene),
                self._cypher("MATCH (e:Entity) WHERE e.scene = $s RETURN 'Entity' AS label, e.id AS id", s=scene),
            ],
            ignore_index=True,
        ).drop_duplicates(ignore_index=True)
        return Subgraph(nodes=nodes, edges=edges)

    def scene_ids(self) -> list[str]:
        return [str(s) for s in self._cypher("MATCH (s:Scene) RETURN s.id AS id ORDER BY id")["id"]]

    def named_nodes(self, idmap: IdMap) -> pd.DataFrame:
        """Every Item node, then every Entity node, each kind in ``idmap`` order (row ``idmap.size("item") + j`` is
        entity ``j``): columns ``kind`` (``item``/``entity``), ``id``, ``name`` (an item's title, an entity's name)
        and ``scene``, both ``""`` where the graph has none. The nodes an entity alignment compares
        (:meth:`scenerec.aligner.Aligner.align`). :class:`StoreError` when the graph's items or entities are not
        those of ``idmap``."""
        parts = []
        for kind, label, var, name in (("item", "Item", "i", "title"), ("entity", "Entity", "e", "name")):
            df = self._cypher(
                f"MATCH ({var}:{label}) RETURN {var}.id AS id, {var}.{name} AS name, {var}.scene AS scene"
            )
            ids = df["id"].astype(str)
            if len(df) != idmap.size(kind) or not all((kind, i) in idmap for i in ids):
                raise StoreError(
                    f"the graph holds {len(df)} {label} nodes that are not the {idmap.size(kind)} {kind} ids of its "
                    "id map; rebuild the store"
                )
            out = pd.DataFrame({"kind": kind, "id": idmap.ids(kind), "name": "", "scene": ""}, dtype=object)
            at = idmap.indices(kind, ids)
            out.loc[at, "name"] = df["name"].fillna("").astype(str).to_numpy(dtype=object)
            out.loc[at, "scene"] = df["scene"].fillna("").astype(str).to_numpy(dtype=object)
            parts.append(out)
        return pd.concat(parts, ignore_index=True)

    def to_networkx(self, scene: str | None = None) -> nx.MultiDiGraph:
        """The whole graph (or one scene's subgraph) as a networkx MultiDiGraph keyed by ``(label, id)``."""
        if scene is not None:
            return self.scene_subgraph(scene).to_networkx()
        parts = []
        for rel in self._rel_types():
            for a, b in RELS[rel].pairs:
                df = self._edges_between(rel, a, b)
                props = [c for c in df.columns if c not in ("src", "dst")]
                parts.append(
                    pd.DataFrame(
                        {
                            "src_label": a,
                            "src": df["src"],
                            "rel": rel,
                            "dst_label": b,
                            "dst": df["dst"],
                            "props": df[props].to_dict("records") if props else [{}] * len(df),
                        }
                    )
                )
        nodes = pd.concat(
            [self._cypher(f"MATCH (n:{lb}) RETURN '{lb}' AS label, n.id AS id") for lb in NODES],
            ignore_index=True,
        )
        return Subgraph(nodes=nodes, edges=pd.concat(parts, ignore_index=True)).to_networkx()

    def edge_index(self, idmap: IdMap | None = None) -> EdgeIndex:
        """Typed edge tables as integer indices for the GNN, aligned with ``idmap`` (built here if not given;
        new nodes are appended to a given map, so indices of known ids never change). Relationships written back
        by a recommender (:data:`~scenerec.kg.schema.DERIVED_RELS`) are left out."""
        idmap = idmap if idmap is not None else IdMap()
        for kind, label in LABEL_OF_KIND.items():
            idmap.add(kind, self._cypher(f"MATCH (n:{label}) RETURN n.id AS id ORDER BY id")["id"].astype(str))
        kind_of = {label: kind for kind, label in LABEL_OF_KIND.items()}
        edges: dict[tuple[str, str, str], pd.DataFrame] = {}
        for rel in self._rel_types():
            if rel in DERIVED_RELS:  # written by a recommender: never an input of the GNN
                continue
            for a, b in RELS[rel].pairs:
                df = self._edges_between(rel, a, b)
                if df.empty:
                    continue
                out = df.drop(columns=["src", "dst"])
                out.insert(0, "dst", idmap.indices(kind_of[b], df["dst"].astype(str)))
                out.insert(0, "src", idmap.indices(kind_of[a], df["src"].astype(str)))
                edges[(kind_of[a], rel, kind_of[b])] = out
        items = self._cypher("MATCH (i:Item) RETURN i.id AS id, i.scene AS scene")
        item_scene = np.full(idmap.size("item"), -1, dtype=np.int64)
        has = items["scene"].fillna("") != ""
        item_scene[idmap.indices("item", items.loc[has, "id"].astype(str))] = idmap.indices(
            "scene", items.loc[has, "scene"].astype(str)
        )
        return EdgeIndex(idmap=idmap, edges=edges, item_scene=item_scene)


@dataclass(frozen=True)
class _PathQuery:
    """One kind of :meth:`GraphStore.explanation_paths`: a MATCH pattern from the user ``u`` to the target item
    ``t``, its node variables with their labels and its relationship variables with their types, in path order
    (all names written here, none from input)."""

    kind: str
    pattern: str
    nodes: tuple[tuple[str, str], ...]
    rels: tuple[tuple[str, str], ...]
    where: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for _, label in self.nodes:
            check_label(label)
        for _, rel in self.rels:
            check_rel(rel)


_EXPLANATION_PATHS = (
    _PathQuery(
        "shared_entity",
        "(u:User)-[r0:INTERACTED]->(i:Item)-[r1:RELATED]-(e:Entity)-[r2:RELATED]-(t:Item)",
        (("u", "User"), ("i", "Item"), ("e", "Entity"), ("t", "Item")),
        (("r0", "INTERACTED"), ("r1", "RELATED"), ("r2", "RELATED")),
    ),
    _PathQuery(
        "related_item",
        "(u:User)-[r0:INTERACTED]->(i:Item)-[r1:RELATED]-(t:Item)",
        (("u", "User"), ("i", "Item"), ("t", "Item")),
        (("r0", "INTERACTED"), ("r1", "RELATED")),
    ),
    _PathQuery(
        "co_interaction",
        "(u:User)-[r0:INTERACTED]->(i:Item)<-[r1:INTERACTED]-(v:User)-[r2:INTERACTED]->(t:Item)",
        (("u", "User"), ("i", "Item"), ("v", "User"), ("t", "Item")),
        (("r0", "INTERACTED"), ("r1", "INTERACTED"), ("r2", "INTERACTED")),
        ("v.id <> u.id",),
    ),
    _PathQuery(
        "same_as",
        "(u:User)-[r0:INTERACTED]->(i:Item)-[r1:SAME_AS]-(t:Item)",
        (("u", "User"), ("i", "Item"), ("t", "Item")),
        (("r0", "INTERACTED"), ("r1", "SAME_AS")),
    ),
    _PathQuery(
        "same_as_entity",
        "(u:User)-[r0:INTERACTED]->(i:Item)-[r1:SAME_AS]-(j:Item)-[r2:RELATED]-(e:Entity)-[r3:RELATED]-(t:Item)",
        (("u", "User"), ("i", "Item"), ("j", "Item"), ("e", "Entity"), ("t", "Item")),
        (("r0", "INTERACTED"), ("r1", "SAME_AS"), ("r2", "RELATED"), ("r3", "RELATED")),
        ("j.id <> i.id",),
    ),
    _PathQuery(
        "aligned_entity",
        "(u:User)-[r0:INTERACTED]->(i:Item)-[r1:RELATED]-(e:Entity)-[r2:SAME_AS]-(f:Entity)-[r3:RELATED]-(t:Item)",
        (("u", "User"), ("i", "Item"), ("e", "Entity"), ("f", "Entity"), ("t", "Item")),
        (("r0", "INTERACTED"), ("r1", "RELATED"), ("r2", "SAME_AS"), ("r3", "RELATED")),
        ("f.id <> e.id",),
    ),
)
#: The property that names a node in an explanation path, per label.
_NAME_PROPERTY = {"User": "id", "Item": "title", "Entity": "name"}
#: The relationship property an explanation path reports, per type (RELATED: its name; SAME_AS: its score).
_REL_PROPERTY = {"RELATED": "relation", "SAME_AS": "score"}


def _text(value: Any) -> str:
    """A property value as text; ``""`` for null or NaN."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _number(value: Any) -> float | None:
    """A property value as a float; ``None`` for null or NaN."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _alignment_filter(scenes: tuple[str, str] | None) -> tuple[str, dict[str, Any]]:
    """The extra ``WHERE`` text (``a`` and ``b`` the ends) and parameters restricting alignments to two scenes."""
    if scenes is None:
        return "", {}
    where = " AND ((a.scene = $scene_a AND b.scene = $scene_b) OR (a.scene = $scene_b AND b.scene = $scene_a))"
    return where, {"scene_a": scenes[0], "scene_b": scenes[1]}


def _check_vectors(label: str, vectors: Any, n: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        raise SchemaError(f"embeddings of :{label} must have shape ({n}, dim), not {arr.shape}")
    if not np.isfinite(arr).all():
        raise SchemaError(f"embeddings of :{label} contain NaN or infinite values")
    return arr


def _set_groups(var: str, cols: Sequence[str], records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``records`` grouped by which of ``cols`` are null, each group with its ``SET`` clause: a null is written as
    the literal ``NULL`` (a parameter list whose values are all null has no type that an embedded store accepts)."""
    groups: dict[tuple[bool, ...], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(r.get(c) is None for c in cols), []).append(r)
    out = []
    for nulls, group in groups.items():
        sets = ", ".join(
            f"{var}.{c} = NULL" if null else f"{var}.{c} = row.{c}" for c, null in zip(cols, nulls, strict=True)
        )
        out.append((sets, group))
    return out


def check_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as plain dicts with NaN/NA turned into None (for drivers that take parameter maps)."""
    return [dict(_check_params(r)) for r in rows]
