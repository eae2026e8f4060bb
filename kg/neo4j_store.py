"""The server backend: Neo4j 5 through the official ``neo4j`` driver (Bolt).

Written for real Neo4j 5 semantics: uniqueness constraints on ``id`` per label, batched ``UNWIND`` writes, each
batch in its own write transaction with a timeout, and an atomic rebuild (:meth:`Neo4jStore.replace_with`) that
swaps a fully loaded staging graph in with one transaction.

The test suite also runs it against FalkorDB, whose Bolt listener answers as "Neo4j/5.13.0" (the *stand-in*, see
``tests/bolt_server.py``). The stand-in differs in ways this module absorbs rather than hides:

* string parameters are pasted into the query text between single quotes without escaping, so a ``'`` in a
  value ends the string (Cypher injection through a *parameter*) and backslashes are read as escapes. The
  constructor probes whether a string parameter comes back verbatim; where it does not, every string parameter
  is escaped before it is sent (:func:`_escape`) and strings with NUL characters are refused;
* an auto-commit query that carries a timeout appears to run against another graph than transactions (its
  writes are invisible to them and the other way round), so every
  query runs in a managed transaction (which is also how the timeout is applied);
* no ``CREATE CONSTRAINT``: when the constraint statement fails and the server is recognised as FalkorDB, a plain
  index on ``id`` is created instead and uniqueness is enforced only by the clash check of :meth:`load_nodes`
  (which runs on every server, so the error is the same everywhere);
* parameters over about 4 KB crash the whole server: batches are bounded by rows (``batch_size``) *and* by their
  serialised size (``max_batch_bytes``; the tests use about 3 KB);
* rollback is a no-op: a failing batch may leave its earlier statements behind, and the swap of
  :meth:`replace_with` is not atomic there (on Neo4j it is one transaction);
* errors carry no message (``Neo.DatabaseError.General.UnknownError``): :class:`StoreError` then names the query;
* a connection opened right after another one closed may never get its handshake answered: connection
  acquisition is bounded by ``connect_timeout`` and the constructor retries the first connection.

No connection is opened at import time; the driver itself is imported lazily (its import is slow), so that
this module imports without it: the driver is the optional extra ``scenerec[neo4j]``, and using the backend without
it raises :class:`~scenerec.errors.MissingExtraError` naming that extra.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from scenerec.errors import BackendUnavailableError, ConfigError, StoreError, require_extra
from scenerec.kg.schema import MODEL_EMBEDDING, NODES, check_label, check_rel
from scenerec.kg.store import GraphStore, LoadStats, Progress, _alignment_filter, check_rows
from scenerec.kg.tables import EdgeTable, GraphTables

if TYPE_CHECKING:
    import neo4j

T = TypeVar("T")

#: Environment variables read when the constructor is not given a URI or credentials.
ENV_URI, ENV_USER, ENV_PASSWORD, ENV_DATABASE = "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"
DEFAULT_URI = "bolt://localhost:7687"
#: Prefix of the labels that :meth:`Neo4jStore.replace_with` loads the new graph under before the swap.
STAGING_PREFIX = "_Staging"
#: A string parameter that a server which pastes parameters into the query text unescaped changes (``\\t``).
_PROBE = "scenerec\\tprobe"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_ENV_HINT = f"set {ENV_URI} (and {ENV_USER}/{ENV_PASSWORD} when the server needs credentials) or pass uri="


def neo4j_driver() -> ModuleType:
    """The ``neo4j`` driver module, imported on first use (the optional extra ``scenerec[neo4j]``).

    Raises :class:`~scenerec.errors.MissingExtraError`, naming the extra, when the driver is not installed.
    """
    return require_extra("neo4j", "neo4j", "the Neo4j backend", needs="the 'neo4j' driver")


def _plain(value: Any, graph: ModuleType | None = None) -> Any:
    """Driver values as plain Python: nodes and relationships become dicts of their properties (``graph``: the
    driver's ``neo4j.graph`` module, looked up once per call tree)."""
    if graph is None:
        graph = neo4j_driver().graph
    if isinstance(value, (graph.Node, graph.Relationship)):
        return {k: _plain(v, graph) for k, v in value.items()}
    if isinstance(value, graph.Path):
        return {
            "nodes": [_plain(n, graph) for n in value.nodes],
            "relationships": [_plain(r, graph) for r in value.relationships],
        }
    if isinstance(value, list):
        return [_plain(v, graph) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, graph) for k, v in value.items()}
    to_native = getattr(value, "to_native", None)  # neo4j.time values
    return to_native() if callable(to_native) else value


def _frame(result: neo4j.Result) -> pd.DataFrame:
    """The records of ``result`` as a frame of plain Python values, one column per key."""
    graph = neo4j_driver().graph
    keys = list(result.keys())
    return pd.DataFrame([[_plain(v, graph) for v in record.values()] for record in result], columns=keys)


def _row_bytes(row: Any) -> int:
    """Size estimate of one parameter row on the wire (JSON is a little larger than Bolt's PackStream)."""
    return len(json.dumps(row, ensure_ascii=False, default=str).encode()) + 2


def batches(
    rows: Sequence[T], max_rows: int, max_bytes: int, measure: Callable[[T], int] = _row_bytes
) -> Iterator[list[T]]:
    """Consecutive runs of ``rows`` with at most ``max_rows`` rows and about ``max_bytes`` serialised bytes
    (``measure(row)`` bytes a row). A single row larger than ``max_bytes`` travels alone (it cannot be split).
    """
    batch: list[T] = []
    size = 0
    for row in rows:
        n = measure(row)
        if batch and (len(batch) >= max_rows or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += n
    if batch:
        yield batch


def _escape(value: Any) -> Any:
    """String parameters in the form a server that pastes them between single quotes reads back verbatim.

    FalkorDB's Bolt layer turns parameters into a ``CYPHER name='...'`` header without escaping: a ``'`` ends the
    string (Cypher injection through a parameter) and backslashes are read as escapes. Doubling backslashes and
    escaping quotes makes every string round-trip, except NUL characters, which it truncates: those are refused.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise StoreError(f"this server truncates strings at NUL characters: {value[:40]!r}")
        return value.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        bad = [k for k in value if not _IDENT.match(str(k))]
        if bad:
            raise StoreError(f"this server cannot take map keys that are not plain names: {bad[0]!r}")
        return {k: _escape(v) for k, v in value.items()}
    return value


def _short(cypher: str, limit: int = 160) -> str:
    text = " ".join(cypher.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Refused(Exception):
    """Raised inside a write transaction to roll it back with a message for :class:`StoreError`."""


class Neo4jStore(GraphStore):
    """A Neo4j 5 database reached over Bolt.

    Args:
        uri: ``bolt://`` or ``neo4j://`` URI; default ``$NEO4J_URI``, else ``bolt://localhost:7687``.
        user, password: credentials; default ``$NEO4J_USER`` / ``$NEO4J_PASSWORD``; none at all: no auth.
        database: database name for every session (default ``$NEO4J_DATABASE``, else the server's default).
        driver: an existing ``neo4j.Driver`` to use instead of opening one; :meth:`close` leaves it open.
        batch_size: most rows per write transaction.
        max_batch_bytes: most serialised parameter bytes per write transaction (about 3 KB for FalkorDB).
        timeout: seconds each query or write transaction may run.
        connect_timeout: seconds to open a connection (TCP connect, handshake, pool acquisition).
        connect_retries: tries of the first connection before :class:`BackendUnavailableError`.
        unsafe: let :meth:`query` run any statement (default: only graph reads, in read transactions; no
            ``LOAD CSV``, ``apoc.*`` or ``dbms.*``; see :mod:`scenerec.kg.cypher_guard`).
    """

    backend = "neo4j"

    def __init__(
        self,
        uri: str | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        database: str | None = None,
        driver: neo4j.Driver | None = None,
        batch_size: int = 1000,
        max_batch_bytes: int = 1_000_000,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        connect_retries: int = 3,
        unsafe: bool = False,
    ) -> None:
        if batch_size < 1 or max_batch_bytes < 1:
            raise ConfigError("batch_size and max_batch_bytes must be positive")
        if timeout <= 0 or connect_timeout <= 0 or connect_retries < 1:
            raise ConfigError("timeout and connect_timeout must be positive and connect_retries at least 1")
        self.unsafe = bool(unsafe)
        self.batch_size = int(batch_size)
        self.max_batch_bytes = int(max_batch_bytes)
        self.timeout = float(timeout)
        self.database = database if database is not None else (os.environ.get(ENV_DATABASE) or None)
        self._prefix = ""  # STAGING_PREFIX while replace_with loads the new graph
        self._dialect: str | None = None  # "neo4j" or "falkordb", learnt when creating the schema
        self._escape_strings = False  # set by _check_parameters when the server mangles string parameters
        self._driver: neo4j.Driver | None
        nj = neo4j_driver()
        if driver is not None:
            self.uri = uri or "(injected driver)"
            self._driver, self._owns_driver = driver, False
        else:
            self.uri = uri or os.environ.get(ENV_URI) or DEFAULT_URI
            user = user if user is not None else os.environ.get(ENV_USER) or None
            password = password if password is not None else os.environ.get(ENV_PASSWORD) or None
            if user and password is None:
                raise ConfigError(f"a Neo4j user ({user!r}) was given without a password; set {ENV_PASSWORD}")
            auth = (user or "neo4j", password) if password is not None else None
            try:
                self._driver = nj.GraphDatabase.driver(
                    self.uri,
                    auth=auth,
                    connection_timeout=connect_timeout,
                    connection_acquisition_timeout=connect_timeout,
                )
            except (nj.exceptions.ConfigurationError, ValueError) as exc:
                raise ConfigError(f"invalid Neo4j URI {self.uri!r}: {exc}; {_ENV_HINT}") from exc
            self._owns_driver = True
        self._connect(connect_retries)
        self._check_parameters()

    @classmethod
    def from_env(cls, **kwargs: Any) -> Neo4jStore:
        """A store configured by ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD`` and ``NEO4J_DATABASE``."""
        return cls(
            os.environ.get(ENV_URI) or DEFAULT_URI,
            os.environ.get(ENV_USER) or None,
            os.environ.get(ENV_PASSWORD) or None,
            database=os.environ.get(ENV_DATABASE) or None,
            **kwargs,
        )

    def _connect(self, retries: int) -> None:
        """Verify connectivity; a fresh server (or the stand-in) may refuse the first handshake, so retry."""
        nj = neo4j_driver()
        assert self._driver is not None
        for attempt in range(retries):
            try:
                self._driver.verify_connectivity()
                return
            except nj.exceptions.AuthError as exc:
                self.close()
                raise BackendUnavailableError(
                    f"Neo4j at {self.uri} refused the credentials: {exc.message}; check {ENV_USER}/{ENV_PASSWORD}"
                ) from exc
            except (nj.exceptions.DriverError, nj.exceptions.Neo4jError, OSError) as exc:
                if attempt + 1 == retries:
                    self.close()
                    raise BackendUnavailableError(
                        f"cannot reach Neo4j at {self.uri} after {retries} tries: {exc}; {_ENV_HINT}"
                    ) from exc
                time.sleep(0.1 * 2**attempt)

    def _check_parameters(self) -> None:
        """Make sure string parameters reach the server verbatim; escape them where the server needs it."""
        if self._query("RETURN $probe AS probe", {"probe": _PROBE})["probe"].tolist() == [_PROBE]:
            return
        self._escape_strings = True
        probe = _PROBE + "'\\"
        if self._query("RETURN $probe AS probe", {"probe": probe})["probe"].tolist() != [probe]:
            self.close()
            raise BackendUnavailableError(
                f"the Bolt server at {self.uri} does not pass string parameters through unchanged; refusing to use it"
            )

    def _run(self, tx: neo4j.ManagedTransaction, cypher: str, params: dict[str, Any]) -> neo4j.Result:
        return tx.run(cypher, _escape(params) if self._escape_strings else params)

    @property
    def driver(self) -> neo4j.Driver:
        """The driver in use (to share it with another store or a client library); closed stores raise."""
        if self._driver is None:
            raise StoreError("the Neo4j store is closed")
        return self._driver

    def close(self) -> None:
        driver = getattr(self, "_driver", None)
        if driver is not None and getattr(self, "_owns_driver", False):
            driver.close()
        self._driver = None

    # ---------------------------------------------------------------- plumbing
    def _session(self) -> neo4j.Session:
        if self._driver is None:
            raise StoreError("the Neo4j store is closed")
        return self._driver.session(database=self.database)

    def _error(self, exc: Exception, cypher: str) -> Exception:
        """The scenerec error for a driver error (other exceptions are returned unchanged)."""
        ex = neo4j_driver().exceptions
        if isinstance(exc, _Refused):
            return StoreError(str(exc))
        if isinstance(exc, ex.AuthError):
            return BackendUnavailableError(f"Neo4j at {self.uri} refused the credentials: {exc.message}")
        if isinstance(exc, (ex.ServiceUnavailable, ex.SessionExpired, ex.ConnectionAcquisitionTimeoutError)):
            return BackendUnavailableError(f"Neo4j at {self.uri} is unreachable: {exc}; {_ENV_HINT}")
        if isinstance(exc, ex.Neo4jError):
            return StoreError(f"Neo4j: {exc.message or 'error without a message'} [{exc.code}] in: {_short(cypher)}")
        if isinstance(exc, ex.DriverError):
            return StoreError(f"Neo4j driver: {exc} in: {_short(cypher)}")
        return exc

    def _query(self, cypher: str, params: dict[str, Any]) -> pd.DataFrame:
        # A managed write transaction rather than an auto-commit query: it bounds the query by ``timeout``, is
        # retried on transient errors and works for reads, writes and schema commands alike. (The stand-in runs
        # an auto-commit query that carries a timeout against a different graph than transactions use, so
        # auto-commit would need to give up the timeout.) Statements that must run auto-commit, such as
        # ``CALL { ... } IN TRANSACTIONS``, are therefore not supported here.
        def work(tx: neo4j.ManagedTransaction) -> pd.DataFrame:
            return _frame(self._run(tx, cypher, params))

        return self._write(cypher, work)

    def _read_query(self, cypher: str, params: dict[str, Any]) -> pd.DataFrame:
        # What the sandbox of query() let through runs in a managed *read* transaction: a server that enforces
        # access modes (Neo4j) refuses any write that might still be in it.
        def work(tx: neo4j.ManagedTransaction) -> pd.DataFrame:
            return _frame(self._run(tx, cypher, params))

        unit = neo4j_driver().unit_of_work(timeout=self.timeout)(work)
        try:
            with self._session() as session:
                return session.execute_read(unit)
        except Exception as exc:
            raise self._error(exc, cypher) from exc

    def _write(self, cypher: str, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
        """Run ``work(tx)`` in one write transaction (retried on transient errors; bounded by ``timeout``)."""
        unit = neo4j_driver().unit_of_work(timeout=self.timeout)(work)
        try:
            with self._session() as session:
                return session.execute_write(unit)
        except Exception as exc:
            raise self._error(exc, cypher) from exc

    def _write_batch(self, cypher: str, rows: list[dict[str, Any]], check: str = "", refusal: str = "") -> int:
        """One batch in one write transaction; ``check`` (if given) runs first and must return no row, else
        the transaction is rolled back and :class:`StoreError` says ``refusal.format(first value found)``."""

        def work(tx: neo4j.ManagedTransaction) -> int:
            if check:
                found = self._run(tx, check, {"rows": rows}).single()
                if found is not None:
                    raise _Refused(refusal.format(found[0]))
            self._run(tx, cypher, {"rows": rows}).consume()
            return len(rows)

        return self._write(cypher, work)

    def _batches(self, rows: Sequence[T]) -> Iterator[list[T]]:
        if self._escape_strings:
            return batches(rows, self.batch_size, self.max_batch_bytes, lambda row: _row_bytes(_escape(row)))
        return batches(rows, self.batch_size, self.max_batch_bytes)

    def _target(self, label: str) -> str:
        """The label written to: the schema label, or its staging label while :meth:`replace_with` loads."""
        return self._prefix + check_label(label).label

    # ---------------------------------------------------------------- schema
    def _create_schema(self, embedding_dims: dict[str, int]) -> None:
        # Properties need no declaration in Neo4j; the embedding sizes are checked when vectors are written.
        self._ensure_id_index([check_label(lb).label for lb in NODES])

    def _ensure_id_index(self, labels: list[str]) -> None:
        """A uniqueness constraint on ``id`` per label (Neo4j); a plain index where constraints are missing."""
        if self._dialect != "falkordb":
            try:
                for label in labels:
                    self._query(
                        f"CREATE CONSTRAINT {label}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE", {}
                    )
                self._dialect = "neo4j"
                return
            except StoreError:
                if not self._is_falkordb():
                    raise
                self._dialect = "falkordb"
        # FalkorDB: no Cypher constraints and CREATE INDEX is not idempotent, so create only the missing ones.
        have = self._query("CALL db.indexes()", {})
        indexed = {
            str(lb)
            for lb, props in zip(have.get("label", []), have.get("properties", []), strict=True)
            if isinstance(props, list) and "id" in props
        }
        for label in labels:
            if label not in indexed:
                self._query(f"CREATE INDEX FOR (n:{label}) ON (n.id)", {})

    def _is_falkordb(self) -> bool:
        """Whether the server is FalkorDB (its procedure list has ``algo.*`` and ``db.idx.fulltext.*``)."""
        try:
            names = {str(n) for n in self._query("CALL dbms.procedures()", {}).get("name", [])}
        except StoreError:
            return False
        return any(n.startswith("algo.") for n in names) and "db.idx.fulltext.drop" in names

    # ---------------------------------------------------------------- loading
    def _load_nodes(self, label: str, rows: pd.DataFrame) -> int:
        target = self._target(label)
        records = check_rows(rows.to_dict("records"))
        # Ids already in the store are refused in the batch's own transaction, with the same message on every
        # server (Neo4j's constraint would refuse them too; the stand-in has no constraints).
        check = f"UNWIND $rows AS row MATCH (n:{target} {{id: row.id}}) RETURN n.id AS id LIMIT 1"
        cypher = f"UNWIND $rows AS row CREATE (n:{target}) SET n = row"
        refusal = f":{label} id {{!r}} already exists in the store"
        return sum(self._write_batch(cypher, batch, check, refusal) for batch in self._batches(records))

    def _set_embeddings(self, label: str, ids: list[str], vectors: np.ndarray, prop: str = "embedding") -> int:
        """Vectors as list properties ``prop`` (a fixed name, never data), in batches bounded by
        ``max_batch_bytes``. A vector too large for one batch on its own (the stand-in takes ~4 KB of parameters)
        is written in parts and concatenated."""
        target = self._target(label)
        missing = self._missing(label, pd.Series(ids))
        if missing:
            raise StoreError(f"no :{label} node with id {', '.join(map(repr, missing))}; cannot set its embedding")
        dim = vectors.shape[1]
        widest = max(_row_bytes({"id": i, "part": vectors[0].tolist()}) for i in ids[:1000])
        parts = max(1, -(-widest // max(1, self.max_batch_bytes // 2)))
        step = -(-dim // parts)
        for p, start in enumerate(range(0, dim, step)):
            rows = [{"id": i, "part": v[start : start + step].tolist()} for i, v in zip(ids, vectors, strict=True)]
            value = "row.part" if p == 0 else f"n.{prop} + row.part"
            cypher = f"UNWIND $rows AS row MATCH (n:{target} {{id: row.id}}) SET n.{prop} = {value}"
            for batch in self._batches(rows):
                self._write_batch(cypher, batch)
        return len(ids)

    def _set_model_embeddings(self, label: str, ids: list[str], vectors: np.ndarray) -> int:
        """Remove the property from every node of ``label`` (bounded transactions), then set the given vectors."""
        target = self._target(label)
        self._repeat(
            f"MATCH (n:{target}) WHERE n.{MODEL_EMBEDDING} IS NOT NULL WITH n LIMIT $limit "
            f"REMOVE n.{MODEL_EMBEDDING} RETURN count(n) AS n"
        )
        return self._set_embeddings(label, ids, vectors, prop=MODEL_EMBEDDING) if ids else 0

    def _delete_relationships(self, rel: str, src: str, dst: str) -> int:
        a, b = self._target(src), self._target(dst)
        rt = check_rel(rel, src, dst)
        return self._repeat(f"MATCH (:{a})-[r:{rt.type}]->(:{b}) WITH r LIMIT $limit DELETE r RETURN count(r) AS n")

    def _delete_alignments(self, src: str, dst: str, methods: list[str], scenes: tuple[str, str] | None) -> int:
        a, b = self._target(src), self._target(dst)
        rt = check_rel("SAME_AS", src, dst)
        where, params = _alignment_filter(scenes)
        return self._repeat(
            f"MATCH (a:{a})-[r:{rt.type}]->(b:{b}) WHERE r.method IN $methods{where} "
            "WITH r LIMIT $limit DELETE r RETURN count(r) AS n",
            {"methods": methods, **params},
        )

    def _repeat(self, cypher: str, params: dict[str, Any] | None = None) -> int:
        """Run ``cypher`` (taking ``$limit`` = ``batch_size`` and ``params``, returning ``n``) in one transaction
        after another until it reports 0 rows; returns the total (a bounded loop instead of one huge transaction)."""
        total = 0
        while True:

            def work(tx: neo4j.ManagedTransaction) -> int:
                record = self._run(tx, cypher, {**(params or {}), "limit": self.batch_size}).single()
                return int(record["n"]) if record is not None else 0

            n = self._write(cypher, work)
            total += n
            if n == 0:
                return total

    def _missing(self, label: str, ids: pd.Series) -> list[str]:
        """Up to five of ``ids`` that no node of (the target label of) ``label`` has."""
        target = self._target(label)
        unique = [str(i) for i in pd.unique(ids.astype(str))]
        missing: list[str] = []
        for batch in self._batches(unique):
            df = self._query(
                f"UNWIND $ids AS id OPTIONAL MATCH (n:{target} {{id: id}}) WITH id, n WHERE n IS NULL "
                "RETURN id LIMIT 5",
                {"ids": batch},
            )
            missing.extend(str(i) for i in df.get("id", []))
            if len(missing) >= 5:
                break
        return missing[:5]

    def _load_edges(self, table: EdgeTable) -> int:
        rt = check_rel(table.rel, table.src, table.dst)
        src, dst = self._target(table.src), self._target(table.dst)
        # Like LadybugDB's COPY, a table with a missing endpoint is refused whole, before anything is written.
        for end, label in (("from", table.src), ("to", table.dst)):
            missing = self._missing(label, table.rows[end])
            if missing:
                raise StoreError(
                    f"[:{rt.type}] {table.src}->{table.dst}: no :{label} node with id "
                    f"{', '.join(map(repr, missing))}; load the nodes before the relationships"
                )
        records = check_rows(table.rows.rename(columns={"from": "src", "to": "dst"}).to_dict("records"))
        sets = ", ".join(f"r.{c} = row.{c}" for c in rt.columns)
        cypher = (
            f"UNWIND $rows AS row MATCH (a:{src} {{id: row.src}}) MATCH (b:{dst} {{id: row.dst}}) "
            f"CREATE (a)-[r:{rt.type}]->(b)" + (f" SET {sets}" if sets else "")
        )
        return sum(self._write_batch(cypher, batch) for batch in self._batches(records))

    # ---------------------------------------------------------------- maintenance
    def _delete_all(self, match: str, batch: int | None = None) -> int:
        """``DETACH DELETE`` the nodes of ``match`` (a ``MATCH`` clause binding ``n``) in bounded transactions."""
        cypher = f"{match} WITH n LIMIT $limit DETACH DELETE n RETURN count(n) AS deleted"
        limit = batch or self.batch_size
        total = 0
        while True:

            def work(tx: neo4j.ManagedTransaction) -> int:
                record = self._run(tx, cypher, {"limit": limit}).single()
                return int(record["deleted"]) if record is not None else 0

            n = self._write(cypher, work)
            total += n
            if n == 0:
                return total

    def clear(self) -> int:
        """Delete every node and relationship of the database (in batches); returns the nodes deleted.

        ``CALL { ... } IN TRANSACTIONS`` would do this on Neo4j, but the stand-in lacks it, so this loops.
        """
        return self._delete_all("MATCH (n)")

    @contextmanager
    def _staging(self) -> Iterator[None]:
        self._prefix = STAGING_PREFIX
        try:
            yield
        finally:
            self._prefix = ""

    def _drop_staging(self) -> int:
        return sum(self._delete_all(f"MATCH (n:{STAGING_PREFIX}{check_label(lb).label})") for lb in NODES)

    def replace_with(self, tables: GraphTables, progress: Progress | None = None) -> LoadStats:
        """Replace the whole graph by ``tables``; readers see the old graph until the new one is complete.

        The new graph is loaded under staging labels (``_StagingUser``, ...; uniqueness constraints are per label,
        so staging nodes never clash with live ones). Once it is fully loaded, ONE write transaction deletes the
        old nodes of every schema label and relabels the staging nodes. If loading fails, the staging nodes are
        deleted and the error re-raised, leaving the old graph untouched.

        On Neo4j the swap is atomic (one transaction; it needs transaction memory for the whole graph). On the
        FalkorDB stand-in rollback is a no-op, so a swap that fails halfway is not undone. While the staging
        graph loads, relationship counts (``counts()``) include its relationships.
        """
        self.create_schema()
        labels = [check_label(lb).label for lb in NODES]
        self._ensure_id_index([STAGING_PREFIX + lb for lb in labels])
        self._drop_staging()  # leftovers of an interrupted earlier attempt
        try:
            with self._staging():
                stats = self.load_tables(tables, progress)
        except BaseException:
            self._drop_staging()
            raise
        swap = [f"MATCH (n:{lb}) DETACH DELETE n" for lb in labels] + [
            f"MATCH (n:{STAGING_PREFIX}{lb}) REMOVE n:{STAGING_PREFIX}{lb} SET n:{lb}" for lb in labels
        ]

        def work(tx: neo4j.ManagedTransaction) -> None:
            for statement in swap:
                self._run(tx, statement, {}).consume()

        t0 = time.perf_counter()
        try:
            self._write("; ".join(swap), work)
        except BaseException:
            self._drop_staging()
            raise
        # The swap writes no new rows: it is recorded with 0 rows so that ``stats.total_rows`` stays the rows loaded.
        stats.add("swap", 0, time.perf_counter() - t0)
        if progress:
            progress("swap", 0)
        return stats
