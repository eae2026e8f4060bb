"""The embedded backend: LadybugDB (PyPI ``ladybug``), an in-process Cypher graph database; the default.

Bulk loads go through ``COPY ... FROM`` an Arrow table, never row by row (speeds: ``benchmarks/README.md``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from scenerec.errors import BackendUnavailableError, StoreError
from scenerec.kg.schema import MODEL_EMBEDDING, NODES, RELS
from scenerec.kg.store import GraphStore
from scenerec.kg.tables import EdgeTable


def _import_ladybug() -> Any:
    try:
        import ladybug
    except ImportError as exc:  # pragma: no cover - ladybug is a hard dependency
        raise BackendUnavailableError("the embedded backend needs the `ladybug` package: pip install ladybug") from exc
    if not hasattr(ladybug, "Database"):
        raise BackendUnavailableError(
            "`import ladybug` found a different package (probably `ladybug-core`); install LadybugDB: pip install ladybug"
        )
    return ladybug


def _arrow(df: pd.DataFrame) -> pa.Table:
    # LadybugDB 0.22 scans only part of a column made of several Arrow chunks (rows silently go missing, seen
    # with a pandas string column that had been assigned to), so every column is made one chunk.
    return pa.Table.from_pandas(df, preserve_index=False).combine_chunks()


class LadybugStore(GraphStore):
    """A LadybugDB database file. ``read_only=True`` lets several processes query while one writes elsewhere.

    ``unsafe=True`` lets :meth:`query` run any statement; by default it runs only graph reads (LadybugDB has no
    setting that turns off extensions or file access, and read-only mode still runs ``LOAD EXTENSION``,
    ``LOAD FROM <file>``, ``COPY ... TO`` and ``INSTALL``, so :mod:`scenerec.kg.cypher_guard` refuses them).
    """

    backend = "ladybug"

    def __init__(self, path: str | Path, *, read_only: bool = False, threads: int = 0, unsafe: bool = False) -> None:
        self.unsafe = bool(unsafe)
        lb = _import_ladybug()
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no LadybugDB database here")
        try:
            self._db = lb.Database(str(self.path), read_only=read_only, max_num_threads=threads)
            self._conn = lb.Connection(self._db)
        except RuntimeError as exc:
            raise StoreError(f"{self.path}: cannot open LadybugDB database: {exc}") from exc
        self.read_only = read_only

    def close(self) -> None:
        conn, db = getattr(self, "_conn", None), getattr(self, "_db", None)
        if conn is not None:
            conn.close()
            self._conn = None
        if db is not None:
            db.close()
            self._db = None

    def _execute(self, cypher: str, params: dict[str, Any] | None = None) -> Any:
        if self._conn is None:
            raise StoreError("the store is closed")
        try:
            return self._conn.execute(cypher, params or {})
        except RuntimeError as exc:
            raise StoreError(f"LadybugDB: {exc}") from exc

    def _query(self, cypher: str, params: dict[str, Any]) -> pd.DataFrame:
        result = self._execute(cypher, params)
        results = result if isinstance(result, list) else [result]
        df: pd.DataFrame = results[-1].get_as_df()
        return df

    def _label_expr(self, var: str) -> str:
        return f"label({var})"

    def _create_schema(self, embedding_dims: dict[str, int]) -> None:
        existing = set(self._query("CALL show_tables() RETURN name", {})["name"])
        for nt in NODES.values():
            dim = embedding_dims.get(nt.label)
            if nt.label in existing:
                if dim is not None:
                    self._ensure_embedding_column(nt.label, dim)
                continue
            cols = ", ".join(f"{name} {typ}" for name, typ in nt.properties)
            emb = f", embedding FLOAT[{int(dim)}]" if dim is not None else ""
            self._execute(f"CREATE NODE TABLE {nt.label}({cols}{emb}, PRIMARY KEY(id))")
        for rt in RELS.values():
            if rt.type in existing:
                continue
            pairs = ", ".join(f"FROM {a} TO {b}" for a, b in rt.pairs)
            props = "".join(f", {name} {typ}" for name, typ in rt.properties)
            self._execute(f"CREATE REL TABLE {rt.type}({pairs}{props})")

    def _array_columns(self, label: str) -> dict[str, int]:
        """The float-array columns of ``label``'s table (``embedding``, ``gnn_embedding``) and their sizes."""
        info = self._query(f"CALL table_info('{label}') RETURN *", {})
        out = {}
        for name, typ in zip(info["name"], info["type"], strict=True):
            m = re.fullmatch(r"FLOAT\[(\d+)\]", str(typ))
            if m:
                out[str(name)] = int(m.group(1))
        return out

    def _embedding_dim(self, label: str, prop: str = "embedding") -> int | None:
        """Size of the float-array column ``prop`` of ``label``'s table, or None when it has none."""
        return self._array_columns(label).get(prop)

    def _rel_types(self) -> list[str]:
        # A store built before a relationship type joined the schema lacks its table (create_schema adds it).
        existing = set(self._query("CALL show_tables() RETURN name", {})["name"])
        return [rel for rel in RELS if rel in existing]

    def _delete_relationships(self, rel: str, src: str, dst: str) -> int:
        if rel not in self._rel_types():
            self.create_schema()  # an older store: add the missing relationship table
            return 0
        n = self._count(f"MATCH (:{src})-[r:{rel}]->(:{dst}) RETURN count(r) AS n")
        if n:
            self._execute(f"MATCH (:{src})-[r:{rel}]->(:{dst}) DELETE r")
        return n

    #: Vectors set by one ``LOAD FROM`` statement (its own transaction) in :meth:`set_model_embeddings`: the time of
    #: one statement grows faster than its rows (52k users: 18.5 s in one, 2.7 s in chunks of 5,000).
    EMBEDDING_CHUNK = 5_000

    def _set_model_embeddings(self, label: str, ids: list[str], vectors: np.ndarray) -> int:
        # The column is dropped and added again with the new size (ALTER TABLE), leaving every node without a
        # vector; then LOAD FROM Arrow tables, EMBEDDING_CHUNK rows each, set the given ones (far faster than UNWIND
        # of parameters). The statements commit one by one: a write-back or an update writes into a staged
        # generation that goes live only when complete, so a failure part-way leaves nothing served half-written.
        dim = int(vectors.shape[1])
        self._execute(f"ALTER TABLE {label} DROP IF EXISTS {MODEL_EMBEDDING}")
        self._execute(f"ALTER TABLE {label} ADD {MODEL_EMBEDDING} FLOAT[{dim}]")
        if not ids:
            return 0
        vectors = vectors.astype(np.float32)
        done = 0
        for start in range(0, len(ids), self.EMBEDDING_CHUNK):
            stop = start + self.EMBEDDING_CHUNK
            flat = pa.array(vectors[start:stop].ravel(), type=pa.float32())
            scan_rows = pa.table(
                {"node_id": pa.array(ids[start:stop], pa.string()), "vec": pa.FixedSizeListArray.from_arrays(flat, dim)}
            )
            df = self._load_from(
                f"LOAD FROM scan_rows MATCH (n:{label} {{id: node_id}}) SET n.{MODEL_EMBEDDING} = vec "
                "RETURN count(n) AS n",
                scan_rows,
            )
            done += int(df["n"].iloc[0]) if len(df) else 0
        if done != len(ids):
            raise StoreError(f"LadybugDB set {MODEL_EMBEDDING} on {done:,} of {len(ids):,} :{label} nodes")
        return done

    def _load_from(self, statement: str, scan_rows: pa.Table) -> pd.DataFrame:
        # LOAD FROM scan_rows reads the Arrow table from this frame's local variable of that name.
        result = self._execute(statement)
        results = result if isinstance(result, list) else [result]
        df: pd.DataFrame = results[-1].get_as_df()
        return df

    def _ensure_embedding_column(self, label: str, dim: int) -> None:
        have = self._embedding_dim(label)
        if have is None:
            self._execute(f"ALTER TABLE {label} ADD embedding FLOAT[{int(dim)}]")
        elif have != dim:
            raise StoreError(f":{label} embeddings have size {have} in this store, not {dim}; rebuild the store")

    def _load_nodes_with_embeddings(self, label: str, rows: pd.DataFrame, vectors: np.ndarray) -> int:
        # One COPY with the vectors as a fixed-size-list column (not an UPDATE per node, which is slow).
        self._ensure_embedding_column(label, vectors.shape[1])
        return self._load_nodes(label, rows, vectors)

    def _set_embeddings(self, label: str, ids: list[str], vectors: np.ndarray) -> int:
        present = set(self._query(f"MATCH (n:{label}) WHERE n.id IN $ids RETURN n.id AS id", {"ids": ids})["id"])
        missing = [i for i in ids if i not in present][:5]
        if missing:
            raise StoreError(f"no :{label} node with id {', '.join(map(repr, missing))}; cannot set its embedding")
        self._ensure_embedding_column(label, vectors.shape[1])
        done = 0
        for start in range(0, len(ids), 2000):
            rows = [
                {"id": i, "e": v.tolist()}
                for i, v in zip(ids[start : start + 2000], vectors[start : start + 2000], strict=True)
            ]
            df = self._query(
                f"UNWIND $rows AS row MATCH (n:{label}) WHERE n.id = row.id SET n.embedding = row.e RETURN count(n) AS n",
                {"rows": rows},
            )
            done += int(df["n"].iloc[0]) if len(df) else 0
        return done

    def _node_vectors(self, label: str, prop: str) -> tuple[list[str], np.ndarray]:
        if self._embedding_dim(label, prop) is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        return super()._node_vectors(label, prop)

    def _copy(self, statement: str, scan_rows: pa.Table) -> None:
        # COPY ... FROM scan_rows reads the Arrow table from this frame's local variable of that name.
        if self._conn is None:
            raise StoreError("the store is closed")
        try:
            self._conn.execute(statement)
        except RuntimeError as exc:
            raise StoreError(f"LadybugDB: {exc}") from exc

    def _load_nodes(self, label: str, rows: pd.DataFrame, vectors: np.ndarray | None = None) -> int:
        # COPY with a duplicate primary key crashes LadybugDB 0.22, so ids already present are refused first.
        if self._count(f"MATCH (n:{label}) RETURN count(n) AS n"):
            clash = self._query(
                f"MATCH (n:{label}) WHERE n.id IN $ids RETURN n.id AS id LIMIT 1",
                {"ids": rows["id"].astype(str).tolist()},
            )
            if len(clash):
                raise StoreError(f":{label} id {clash['id'].iloc[0]!r} already exists in the store")
        before = self._count(f"MATCH (n:{label}) RETURN count(n) AS n")
        table = _arrow(rows)
        # COPY needs every column of the table, in order: the vectors, else nulls for each float-array column.
        for name in self._array_columns(label):
            if name == "embedding" and vectors is not None:
                flat = pa.array(vectors.astype(np.float32).ravel(), type=pa.float32())
                table = table.append_column(name, pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))
            else:
                table = table.append_column(name, pa.nulls(len(rows), pa.list_(pa.float32())))
        self._copy(f"COPY {label} FROM scan_rows", table)
        self._check_copied(f":{label}", before, self._count(f"MATCH (n:{label}) RETURN count(n) AS n"), len(rows))
        return len(rows)

    def _load_edges(self, table: EdgeTable) -> int:
        count = f"MATCH (:{table.src})-[r:{table.rel}]->(:{table.dst}) RETURN count(r) AS n"
        before = self._count(count)
        self._copy(f"COPY {table.rel} FROM scan_rows (from='{table.src}', to='{table.dst}')", _arrow(table.rows))
        self._check_copied(f"[:{table.rel}] {table.src}->{table.dst}", before, self._count(count), len(table.rows))
        return len(table.rows)

    def _count(self, cypher: str) -> int:
        return int(self._query(cypher, {})["n"].iloc[0])

    @staticmethod
    def _check_copied(what: str, before: int, after: int, expected: int) -> None:
        if after - before != expected:
            raise StoreError(f"LadybugDB COPY of {what} stored {after - before:,} of {expected:,} rows")
