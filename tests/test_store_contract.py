"""The contract every :class:`GraphStore` backend passes: one set of tests, run on LadybugDB and on Neo4j.

The ``neo4j`` backend runs against ``$NEO4J_URI`` when it is set (with ``$NEO4J_USER``/``$NEO4J_PASSWORD``) and
otherwise against a FalkorDB stand-in started once per session (``tests/bolt_server.py``). The database is cleared
before every test, so a real Neo4j must hold no nodes when the session starts unless ``SCENEREC_TEST_NEO4J_WIPE=1``.

Expected answers are computed by hand from the small two-scene dataset of :func:`dataset` (drawn below).

    scene books: b1 b2 b3          scene movies: m1 m2 m3
    users: u1 (books), u2 (both: b2, m1), u3 (movies)
    u1-b1 (0.8, t=100)  u1-b2 (rating and timestamp null)  u2-b2  u2-m1  u3-m1  u3-m2
    RELATED: b1,m1,m2 -brand-> e:acme (shared)   b1,b3 -author-> e:tolkien (books)   m2 -director-> e:nolan (movies)
             b2 -sequel_of-> b1                  e:tolkien -influenced-> e:nolan
    SAME_AS: b3 -> m3 (0.9, "title")
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from scenerec.errors import BackendUnavailableError, SchemaError, StoreError, UnknownIdError
from scenerec.ids import IdMap
from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.neo4j_store import STAGING_PREFIX, Neo4jStore, batches
from scenerec.kg.schema import MODEL_EMBEDDING, NODES, RELS, check_label, check_rel
from scenerec.kg.store import GraphStore
from scenerec.kg.tables import EdgeTable, GraphTables, build_tables
from scenerec.records import Alignment, Dataset, Entity, Interaction, Item, Scene, Triple, User

#: Parameter maps the stand-in can take (it crashes on about 4 KB).
STAND_IN_BATCH_BYTES = 3000
#: Ids full of Cypher: they must be stored verbatim and never executed (the third one really deletes everything
#: on the stand-in when sent unescaped; the last one has backslashes, which the stand-in would read as escapes).
EVIL_IDS = [
    'x"}) MATCH (n) DETACH DELETE n //',
    "'); DROP TABLE User; --",
    "x' MATCH (n) DETACH DELETE n RETURN 1 AS v //",
    "C:\\new\\table\\",
]


# -------------------------------------------------------------------- the dataset
def dataset(prefix: str = "") -> Dataset:
    """The two-scene dataset of the module docstring (``prefix`` renames users and items, for a second graph)."""
    u, i = (lambda x: prefix + x), (lambda x: prefix + x)
    return Dataset.from_records(
        "contract",
        scenes=[Scene("books", "Books", "printed"), Scene("movies", "Movies")],
        users=[User(u("u1"), {"age": 30}), User(u("u2")), User(u("u3"))],
        items=[
            Item(i("b1"), "books", "The Hobbit"),
            Item(i("b2"), "books", "The Return"),
            Item(i("b3"), "books", "Inception: the book"),
            Item(i("m1"), "movies", "Acme Movie"),
            Item(i("m2"), "movies", "Tenet"),
            Item(i("m3"), "movies", "Inception"),
        ],
        entities=[
            Entity("e:acme", "brand", "Acme"),
            Entity("e:tolkien", "author", "Tolkien", "books"),
            Entity("e:nolan", "director", "Nolan", "movies"),
        ],
        interactions=[
            Interaction(u("u1"), i("b1"), 100, 0.8, split="train"),
            Interaction(u("u1"), i("b2")),
            Interaction(u("u2"), i("b2"), 200, 0.6, split="train"),
            Interaction(u("u2"), i("m1"), 300, 1.0, split="test"),
            Interaction(u("u3"), i("m1"), 400, 0.2, split="valid"),
            Interaction(u("u3"), i("m2"), 500, 0.4, weight=2.0, split="train"),
        ],
        triples=[
            Triple(i("b1"), "brand", "e:acme"),
            Triple(i("m1"), "brand", "e:acme"),
            Triple(i("m2"), "brand", "e:acme"),
            Triple(i("b1"), "author", "e:tolkien"),
            Triple(i("b3"), "author", "e:tolkien"),
            Triple(i("m2"), "director", "e:nolan"),
            Triple(i("b2"), "sequel_of", i("b1")),
            Triple("e:tolkien", "influenced", "e:nolan"),
        ],
        alignment=[Alignment(i("b3"), i("m3"), 0.9, "title")],
    )


COUNTS = {
    "nodes": {"Scene": 2, "User": 3, "Item": 6, "Entity": 3},
    "edges": {"INTERACTED": 6, "IN_SCENE": 6, "RELATED": 8, "SAME_AS": 1, "RECOMMENDED": 0},
}
#: Rows per stage of loading the dataset (the recommender's RECOMMENDED relationships are not part of it).
LOADED_ROWS = {**COUNTS["nodes"], **{rel: n for rel, n in COUNTS["edges"].items() if rel != "RECOMMENDED"}}
EMPTY = {"nodes": dict.fromkeys(NODES, 0), "edges": dict.fromkeys(COUNTS["edges"], 0)}


# -------------------------------------------------------------------- fixtures
def _neo4j_store(root: Neo4jStore, **kwargs: Any) -> Neo4jStore:
    options: dict[str, Any] = {"max_batch_bytes": STAND_IN_BATCH_BYTES, "timeout": 10.0, **kwargs}
    return Neo4jStore(driver=root.driver, **options)


@pytest.fixture(params=["ladybug", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store with the schema created."""
    s: GraphStore
    if request.param == "ladybug":
        s = LadybugStore(tmp_path / "g.lbug")
    else:
        s = _neo4j_store(request.getfixturevalue("neo4j_root"))
        s.clear()
    try:
        s.create_schema()
        yield s
    finally:
        s.close()


@pytest.fixture
def loaded(store: GraphStore) -> GraphStore:
    store.load_tables(build_tables(dataset()))
    return store


@pytest.fixture
def neo(neo4j_root: Neo4jStore) -> Iterator[Neo4jStore]:
    """A cleared Neo4j store (for the Neo4j-only tests)."""
    s = _neo4j_store(neo4j_root)
    s.clear()
    s.create_schema()
    try:
        yield s
    finally:
        s.clear()
        s.close()


def _interaction_set(df: pd.DataFrame, src: str = "src", dst: str = "dst") -> set[tuple[str, str]]:
    return set(zip(df[src].astype(str), df[dst].astype(str), strict=True))


# -------------------------------------------------------------------- the contract
def test_create_schema_is_idempotent(store: GraphStore) -> None:
    store.create_schema()
    store.create_schema()
    assert store.counts() == EMPTY


def test_load_tables_counts(store: GraphStore) -> None:
    tables = build_tables(dataset())
    stats = store.load_tables(tables)
    assert store.counts() == COUNTS
    assert stats.rows == LOADED_ROWS
    assert stats.total_rows == tables.total_rows


def test_query_with_parameters(loaded: GraphStore) -> None:
    df = loaded.query(
        "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE u.id = $user AND i.scene IN $scenes "
        "RETURN i.id AS item, r.rating AS rating, r.weight AS weight ORDER BY item",
        user="u1",
        scenes=["books"],
    )
    assert list(df.columns) == ["item", "rating", "weight"]
    assert df["item"].tolist() == ["b1", "b2"]
    assert df["rating"].iloc[0] == pytest.approx(0.8)
    assert pd.isna(df["rating"].iloc[1])
    assert df["weight"].tolist() == [1.0, 1.0]
    empty = loaded.query("MATCH (u:User) WHERE u.id = $id RETURN u.id AS id", id="nobody")
    assert empty.empty and list(empty.columns) == ["id"]


def test_bad_cypher_is_a_store_error(loaded: GraphStore) -> None:
    with pytest.raises(StoreError):
        loaded.query("THIS IS NOT CYPHER")
    with pytest.raises(StoreError):
        loaded.query("   ")
    assert loaded.counts() == COUNTS  # the store still answers


def test_cypher_in_ids_is_stored_verbatim(loaded: GraphStore) -> None:
    attributes = ['{"note": "x\\"}) RETURN 1 //"}'] + [""] * (len(EVIL_IDS) - 1)
    users = pd.DataFrame({"id": EVIL_IDS, "attributes": attributes})
    assert loaded.load_nodes("User", users) == len(EVIL_IDS)
    edges = pd.DataFrame(
        {"from": EVIL_IDS[:2], "to": ["b1", "b1"], "timestamp": [1, 2], "rating": [0.5, 0.5], "weight": [1.0, 1.0]}
    ).assign(split=EVIL_IDS[2:])
    assert loaded.load_edges(EdgeTable("INTERACTED", "User", "Item", edges)) == 2
    for ident in EVIL_IDS:
        df = loaded.query("MATCH (u:User) WHERE u.id = $id RETURN u.id AS id", id=ident)
        assert df["id"].tolist() == [ident]
        assert loaded.node("User", ident)["id"] == ident
    assert loaded.node("User", EVIL_IDS[0])["attributes"] == '{"note": "x\\"}) RETURN 1 //"}'
    hops = loaded.k_hop(EVIL_IDS[0], k=1, label="User")
    assert set(zip(hops["label"], hops["id"], strict=True)) == {("Item", "b1")}
    splits = loaded.query(
        "MATCH (u:User)-[r:INTERACTED]->(:Item) WHERE u.id IN $ids RETURN r.split AS split ORDER BY split",
        ids=EVIL_IDS,
    )
    assert splits["split"].tolist() == sorted(EVIL_IDS[2:])
    expected = {
        "nodes": {**COUNTS["nodes"], "User": 3 + len(EVIL_IDS)},
        "edges": {**COUNTS["edges"], "INTERACTED": 8},
    }
    assert loaded.counts() == expected  # nothing was deleted


def test_labels_from_data_are_checked(loaded: GraphStore) -> None:
    with pytest.raises(SchemaError):
        check_label("Item; DROP")
    with pytest.raises(SchemaError):
        loaded.node("Item) DETACH DELETE (n", "b1")
    with pytest.raises(SchemaError):
        loaded.load_nodes("Item; DROP", pd.DataFrame({"id": ["x"]}))
    with pytest.raises(SchemaError):
        loaded.k_hop("u1", rels=["INTERACTED]-() DETACH DELETE (n"])
    with pytest.raises(SchemaError):
        EdgeTable("LIKES", "User", "Item", pd.DataFrame({"from": [], "to": []}))
    assert loaded.counts() == COUNTS


def test_node(loaded: GraphStore) -> None:
    assert loaded.node("Item", "b1") == {
        "id": "b1",
        "scene": "books",
        "title": "The Hobbit",
        "description": "",
        "attributes": "",
        "scene_confidence": None,
    }
    assert loaded.node("User", "u1") == {"id": "u1", "attributes": '{"age": 30}'}
    assert loaded.node("Entity", "e:acme") == {"id": "e:acme", "type": "brand", "name": "Acme", "scene": ""}
    with pytest.raises(UnknownIdError, match="nobody"):
        loaded.node("User", "nobody")
    with pytest.raises(KeyError):
        loaded.node("Item", "u1")  # an id of another label


def test_scene_counts(loaded: GraphStore) -> None:
    df = loaded.scene_counts()
    expected = pd.DataFrame(
        {
            "scene": ["books", "movies"],
            "name": ["Books", "Movies"],
            "items": [3, 3],
            "interactions": [3, 3],
            "users": [2, 2],
            # undirected: b2 -sequel_of-> b1 counts once for each of its two book items
            "item_facts": [5, 3],
            "own_entities": [1, 1],
        }
    )
    got = df[list(expected.columns)].astype({"scene": str, "name": str})
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def test_shared_entities(loaded: GraphStore) -> None:
    df = loaded.shared_entities()
    assert df.to_dict("records") == [{"entity": "e:acme", "type": "brand", "name": "Acme", "scenes": 2, "items": 3}]
    assert loaded.shared_entities(limit=0).empty


def test_k_hop(loaded: GraphStore) -> None:
    two = loaded.k_hop("u1", k=2, label="User")
    assert list(two.columns) == ["label", "id", "hops"]
    assert set(two.itertuples(index=False, name=None)) == {
        ("Item", "b1", 1),
        ("Item", "b2", 1),
        ("Entity", "e:acme", 2),
        ("Entity", "e:tolkien", 2),
        ("User", "u2", 2),
    }
    three = loaded.k_hop("u1", k=3)  # label found from the id
    assert {(lb, i) for lb, i, h in three.itertuples(index=False, name=None) if h == 3} == {
        ("Item", "m1"),
        ("Item", "m2"),
        ("Item", "b3"),
        ("Entity", "e:nolan"),
    }
    same = loaded.k_hop("b3", k=1, label="Item", rels=["SAME_AS"])
    assert same["id"].tolist() == ["m3"]
    with pytest.raises(UnknownIdError):
        loaded.k_hop("nobody")
    with pytest.raises(ValueError):
        loaded.k_hop("u1", k=0)


BOOKS_EDGES = {
    ("Item", "b1", "IN_SCENE", "Scene", "books"),
    ("Item", "b2", "IN_SCENE", "Scene", "books"),
    ("Item", "b3", "IN_SCENE", "Scene", "books"),
    ("User", "u1", "INTERACTED", "Item", "b1"),
    ("User", "u1", "INTERACTED", "Item", "b2"),
    ("User", "u2", "INTERACTED", "Item", "b2"),
    ("Item", "b2", "RELATED", "Item", "b1"),
    ("Item", "b1", "RELATED", "Entity", "e:acme"),
    ("Item", "b1", "RELATED", "Entity", "e:tolkien"),
    ("Item", "b3", "RELATED", "Entity", "e:tolkien"),
    ("Entity", "e:tolkien", "RELATED", "Entity", "e:nolan"),
    ("Item", "b3", "SAME_AS", "Item", "m3"),
}


def test_scene_subgraph(loaded: GraphStore) -> None:
    sub = loaded.scene_subgraph("books")
    edges = set(sub.edges[["src_label", "src", "rel", "dst_label", "dst"]].itertuples(index=False, name=None))
    assert edges == BOOKS_EDGES
    assert len(sub.edges) == len(BOOKS_EDGES)
    nodes = set(sub.nodes.itertuples(index=False, name=None))
    assert nodes == {
        ("Scene", "books"),
        *(("Item", i) for i in ("b1", "b2", "b3", "m3")),
        ("User", "u1"),
        ("User", "u2"),
        *(("Entity", e) for e in ("e:acme", "e:tolkien", "e:nolan")),
    }
    assert len(sub.nodes) == len(nodes)
    same = sub.edges[sub.edges["rel"] == "SAME_AS"]["props"].iloc[0]
    assert same["score"] == pytest.approx(0.9) and same["method"] == "title"
    no_users = loaded.scene_subgraph("books", include_users=False)
    assert not (no_users.edges["rel"] == "INTERACTED").any()
    with pytest.raises(UnknownIdError, match="books, movies"):
        loaded.scene_subgraph("music")


def test_to_networkx(loaded: GraphStore) -> None:
    g = loaded.to_networkx()
    assert g.number_of_nodes() == sum(COUNTS["nodes"].values())
    assert g.number_of_edges() == sum(COUNTS["edges"].values())
    (data,) = g.get_edge_data(("User", "u1"), ("Item", "b1")).values()
    assert data["rel"] == "INTERACTED" and data["rating"] == pytest.approx(0.8) and data["timestamp"] == 100
    books = loaded.to_networkx(scene="books")
    assert books.number_of_edges() == len(BOOKS_EDGES)


def test_named_nodes(loaded: GraphStore) -> None:
    idmap = loaded.edge_index().idmap
    nodes = loaded.named_nodes(idmap)
    assert list(nodes.columns) == ["kind", "id", "name", "scene"]
    assert nodes["kind"].tolist() == ["item"] * 6 + ["entity"] * 3
    assert nodes["id"].tolist() == idmap.ids("item") + idmap.ids("entity")  # row = node index, items first
    named = {row.id: (row.name, row.scene) for row in nodes.itertuples()}
    assert named["b3"] == ("Inception: the book", "books")
    assert named["m2"] == ("Tenet", "movies")
    assert named["e:nolan"] == ("Nolan", "movies")
    assert named["e:acme"] == ("Acme", "")  # an entity of no scene
    short = IdMap(
        {k: idmap.ids(k)[:-1] if k == "entity" else idmap.ids(k) for k in ("scene", "user", "item", "entity")}
    )
    with pytest.raises(StoreError, match="3 Entity nodes that are not the 2 entity ids"):
        loaded.named_nodes(short)


def test_edge_index(loaded: GraphStore) -> None:
    ei = loaded.edge_index()
    assert {k: ei.idmap.size(k) for k in ("scene", "user", "item", "entity")} == {
        "scene": 2,
        "user": 3,
        "item": 6,
        "entity": 3,
    }
    inter = ei.edges[("user", "INTERACTED", "item")]
    assert inter["src"].dtype == np.int64 and inter["dst"].dtype == np.int64
    back = {(ei.idmap.id("user", s), ei.idmap.id("item", d)) for s, d in zip(inter["src"], inter["dst"], strict=True)}
    ds = dataset()
    assert back == _interaction_set(ds.interactions, "user", "item")
    assert len(inter) == len(ds.interactions)
    assert set(ei.edges) == {
        ("user", "INTERACTED", "item"),
        ("item", "IN_SCENE", "scene"),
        ("item", "RELATED", "item"),
        ("item", "RELATED", "entity"),
        ("entity", "RELATED", "entity"),
        ("item", "SAME_AS", "item"),
    }
    scene_of = {ei.idmap.id("item", k): ei.idmap.id("scene", int(v)) for k, v in enumerate(ei.item_scene)}
    assert scene_of == dict(zip(ds.items["id"], ds.items["scene"], strict=True))
    # A given map keeps its indices and gets the new ids appended.
    given = IdMap({"user": ["u3"]})
    assert loaded.edge_index(given).idmap.index("user", "u3") == 0


def test_nulls_round_trip(loaded: GraphStore) -> None:
    df = loaded.query(
        "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE u.id = $u AND i.id = $i "
        "RETURN r.rating AS rating, r.timestamp AS timestamp, r.split AS split",
        u="u1",
        i="b2",
    )
    assert len(df) == 1
    assert pd.isna(df["rating"].iloc[0]) and pd.isna(df["timestamp"].iloc[0])
    assert df["split"].iloc[0] == ""
    inter = loaded.edge_index().edges[("user", "INTERACTED", "item")]
    assert int(inter["rating"].isna().sum()) == 1 and int(inter["timestamp"].isna().sum()) == 1
    # NaN and NA parameters travel as null
    got = loaded.query("MATCH (u:User) WHERE u.id IN $ids RETURN u.id AS id", ids=["u1", math.nan, pd.NA])
    assert got["id"].tolist() == ["u1"]


def test_missing_endpoint_refuses_the_whole_table(loaded: GraphStore) -> None:
    """Both backends refuse a relationship table naming a node that does not exist, before writing any of it:
    LadybugDB's COPY fails as a whole; Neo4jStore checks every endpoint first (a MATCH-based CREATE would
    otherwise drop such rows silently)."""
    rows = pd.DataFrame(
        {
            "from": ["u1", "ghost"],
            "to": ["m3", "m3"],
            "timestamp": pd.array([1, 2], dtype="Int64"),
            "rating": [0.5, 0.5],
            "weight": [1.0, 1.0],
            "split": ["", ""],
        }
    )
    with pytest.raises(StoreError, match="ghost"):
        loaded.load_edges(EdgeTable("INTERACTED", "User", "Item", rows))
    assert loaded.counts() == COUNTS


def test_existing_node_id_is_refused(loaded: GraphStore) -> None:
    with pytest.raises(StoreError, match="u2"):
        loaded.load_nodes("User", pd.DataFrame({"id": ["u2"], "attributes": [""]}))
    with pytest.raises(SchemaError, match="twice"):
        loaded.load_nodes("User", pd.DataFrame({"id": ["n1", "n1"], "attributes": ["", ""]}))
    assert loaded.counts() == COUNTS


# -------------------------------------------------------------------- Neo4j only
def _staging_count(store: Neo4jStore) -> int:
    return sum(int(store.query(f"MATCH (n:{STAGING_PREFIX}{lb}) RETURN count(n) AS n")["n"].iloc[0]) for lb in NODES)


@pytest.mark.neo4j
def test_replace_with_swaps_the_graph(neo: Neo4jStore) -> None:
    neo.load_tables(build_tables(dataset()))
    seen: list[str] = []
    stats = neo.replace_with(build_tables(dataset("new-")), progress=lambda stage, n: seen.append(stage))
    assert neo.counts() == COUNTS
    assert neo.node("User", "new-u2")["id"] == "new-u2"
    with pytest.raises(UnknownIdError):
        neo.node("User", "u2")
    assert _staging_count(neo) == 0
    assert seen[-1] == "swap" and stats.rows["swap"] == 0 and "swap" in stats.seconds
    assert stats.total_rows == build_tables(dataset("new-")).total_rows
    assert neo.shared_entities()["entity"].tolist() == ["e:acme"]


@pytest.mark.neo4j
def test_replace_with_failing_load_keeps_the_old_graph(neo: Neo4jStore, monkeypatch: pytest.MonkeyPatch) -> None:
    neo.load_tables(build_tables(dataset()))
    # A driver-side refusal: a relationship table naming a node that is not in the new graph.
    bad = build_tables(dataset("new-"))
    bad.edges.append(
        EdgeTable(
            "SAME_AS", "User", "User", pd.DataFrame({"from": ["new-u1"], "to": ["u1"], "score": [1.0], "method": [""]})
        )
    )
    with pytest.raises(StoreError, match="u1"):
        neo.replace_with(bad)
    assert neo.counts() == COUNTS and neo.node("User", "u1")["id"] == "u1"
    assert _staging_count(neo) == 0

    # A failure midway through the relationships (after nodes and some relationships were loaded).
    real = neo._load_edges
    calls = {"n": 0}

    def flaky(table: EdgeTable) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("connection lost midway")
        return real(table)

    monkeypatch.setattr(neo, "_load_edges", flaky)
    with pytest.raises(RuntimeError, match="midway"):
        neo.replace_with(build_tables(dataset("new-")))
    assert calls["n"] == 3
    assert neo.counts() == COUNTS
    assert _staging_count(neo) == 0
    with pytest.raises(UnknownIdError):
        neo.node("User", "new-u1")


@pytest.mark.neo4j
def test_batches_are_bounded_by_bytes_and_rows(neo: Neo4jStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[list[dict[str, Any]]] = []
    real = neo._write_batch

    def spy(cypher: str, rows: list[dict[str, Any]], check: str = "", refusal: str = "") -> int:
        sent.append(rows)
        return real(cypher, rows, check, refusal)

    monkeypatch.setattr(neo, "_write_batch", spy)
    users = pd.DataFrame(
        {"id": [f"user-{k:03d}" for k in range(60)], "attributes": ['{"bio": "' + "x" * 150 + '"}'] * 60}
    )
    assert neo.load_nodes("User", users) == 60
    assert len(sent) >= 4  # about 200 bytes a row, 3000 bytes a batch
    assert all(sum(len(str(r)) for r in rows) < STAND_IN_BATCH_BYTES for rows in sent)
    assert [r["id"] for rows in sent for r in rows] == users["id"].tolist()
    assert neo.counts()["nodes"]["User"] == 60

    sent.clear()
    neo.batch_size = 7
    small = pd.DataFrame({"id": [f"s{k}" for k in range(20)], "attributes": [""] * 20})
    neo.load_nodes("User", small)
    assert [len(rows) for rows in sent] == [7, 7, 6]


def test_batches_helper() -> None:
    rows = [{"id": str(k), "pad": "y" * 90} for k in range(10)]  # about 110 bytes each
    assert [len(b) for b in batches(rows, 4, 10_000)] == [4, 4, 2]
    assert [len(b) for b in batches(rows, 100, 350)] == [3, 3, 3, 1]
    assert [len(b) for b in batches(rows, 100, 10)] == [1] * 10  # an oversized row travels alone
    assert list(batches([], 4, 100)) == []


class _FakeDriver:
    def __init__(self, uri: str, **config: Any) -> None:
        self.uri, self.config, self.closed = uri, config, False

    def verify_connectivity(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


@pytest.mark.neo4j
def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import neo4j

    made: list[_FakeDriver] = []

    def fake_driver(uri: str, **config: Any) -> _FakeDriver:
        made.append(_FakeDriver(uri, **config))
        return made[-1]

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", fake_driver)
    monkeypatch.setattr(Neo4jStore, "_check_parameters", lambda self: None)  # the fake runs no queries
    monkeypatch.setenv("NEO4J_URI", "neo4j://graph.example:7687")
    monkeypatch.setenv("NEO4J_USER", "alice")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret")
    monkeypatch.setenv("NEO4J_DATABASE", "scenes")
    s = Neo4jStore.from_env(batch_size=10)
    assert made[0].uri == "neo4j://graph.example:7687"
    assert made[0].config["auth"] == ("alice", "s3cret")
    assert s.database == "scenes" and s.batch_size == 10
    s.close()
    assert made[0].closed

    for var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(var)
    s = Neo4jStore()
    assert made[1].uri == "bolt://localhost:7687" and made[1].config["auth"] is None and s.database is None

    injected = _FakeDriver("bolt://x")
    s = Neo4jStore(driver=cast(Any, injected))
    s.close()
    assert not injected.closed  # an injected driver belongs to the caller


@pytest.mark.neo4j
def test_unreachable_server_names_the_uri_and_the_variables() -> None:
    with pytest.raises(BackendUnavailableError) as err:
        Neo4jStore("bolt://127.0.0.1:1", connect_timeout=1.0, connect_retries=2)
    assert "bolt://127.0.0.1:1" in str(err.value) and "NEO4J_URI" in str(err.value)


@pytest.mark.neo4j
def test_closed_store_raises(neo4j_root: Neo4jStore) -> None:
    s = _neo4j_store(neo4j_root)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.query("RETURN 1 AS x")
    assert neo4j_root.query("RETURN 1 AS x")["x"].tolist() == [1]  # the shared driver is still open


def test_graph_tables_round_trip_through_both(store: GraphStore) -> None:
    """Loading the tables of an empty dataset is a no-op on every backend."""
    stats = store.load_tables(GraphTables())
    assert stats.total_rows == 0 and store.counts() == EMPTY


# -------------------------------------------------------------------- embeddings
def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_embeddings_round_trip_and_align_with_the_idmap(store: GraphStore) -> None:
    ds = dataset()
    dim = 384  # the default text model's size: one vector is larger than the stand-in's parameter limit
    emb = {"Item": _vectors(len(ds.items), dim, 1), "Entity": _vectors(len(ds.entities), dim, 2)}
    store.create_schema(embedding_dims={"Item": dim, "Entity": dim})
    store.load_tables(build_tables(ds, embeddings=emb))
    assert store.counts() == COUNTS
    # LadybugDB keeps float32 exactly; the Neo4j stand-in prints floats into the query with 6 decimals.
    tol = 0.0 if store.backend == "ladybug" else 1e-6
    ids, vectors = store.node_embeddings("Item")
    got = dict(zip(ids, vectors, strict=True))
    assert sorted(ids) == sorted(ds.items["id"])
    for item_id, expected in zip(ds.items["id"], emb["Item"], strict=True):
        np.testing.assert_allclose(got[item_id], expected, rtol=0, atol=tol)
    assert store.node_embeddings("User") == ([], pytest.approx(np.zeros((0, 0))))
    idmap = store.edge_index().idmap
    feats = store.node_features(idmap)
    assert set(feats) == {"item", "entity"}
    assert feats["item"].shape == (idmap.size("item"), dim)
    np.testing.assert_allclose(feats["entity"][idmap.index("entity", "e:nolan")], emb["Entity"][2], rtol=0, atol=tol)
    # Updating some vectors leaves the others alone.
    new = _vectors(2, dim, 3)
    store.set_embeddings("Item", ["b1", "m3"], new)
    ids, vectors = store.node_embeddings("Item")
    got = dict(zip(ids, vectors, strict=True))
    np.testing.assert_allclose(got["m3"], new[1], rtol=0, atol=tol)
    np.testing.assert_allclose(got["b2"], emb["Item"][1], rtol=0, atol=tol)


def test_embedding_errors(store: GraphStore) -> None:
    ds = dataset()
    store.create_schema(embedding_dims={"Item": 4})
    tables = build_tables(ds, embeddings={"Item": _vectors(len(ds.items), 4, 0)})
    store.load_tables(tables)
    with pytest.raises(SchemaError, match="shape"):
        store.set_embeddings("Item", ["b1"], np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(SchemaError, match="NaN"):
        store.set_embeddings("Item", ["b1"], np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(StoreError, match="nope"):
        store.set_embeddings("Item", ["nope"], np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(SchemaError, match="positive integer"):
        store.create_schema(embedding_dims={"Item": 0})


def test_assign_item_scenes(loaded: GraphStore) -> None:
    n = loaded.assign_item_scenes(pd.DataFrame({"id": ["b3"], "scene": ["movies"], "confidence": [0.75]}))
    assert n == 1
    node = loaded.node("Item", "b3")
    assert node["scene"] == "movies" and node["scene_confidence"] == pytest.approx(0.75)
    linked = loaded.query("MATCH (i:Item)-[:IN_SCENE]->(s:Scene) WHERE i.id = $id RETURN s.id AS s", id="b3")
    assert linked["s"].tolist() == ["movies"]
    assert loaded.counts()["edges"]["IN_SCENE"] == COUNTS["edges"]["IN_SCENE"]
    with pytest.raises(UnknownIdError, match="garden"):
        loaded.assign_item_scenes(pd.DataFrame({"id": ["b1"], "scene": ["garden"], "confidence": [0.9]}))
    with pytest.raises(StoreError, match="not in the store"):
        loaded.assign_item_scenes(pd.DataFrame({"id": ["zz"], "scene": ["books"], "confidence": [0.9]}))


# -------------------------------------------------------------------- recommender write-back
def _recs(rows: list[tuple[str, str, float, int]], model: str = "lightgcn") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "score", "rank"]).assign(model=model)


#: Top-2 per user and scene for the contract dataset (the items are the users' unseen ones).
RECS = [
    ("u1", "b3", 0.9, 1),
    ("u1", "m1", 0.8, 1),
    ("u1", "m2", 0.7, 2),
    ("u2", "b1", 0.6, 1),
    ("u2", "b3", 0.5, 2),
    ("u3", "b1", 0.4, 1),
    ("u3", "m3", 0.3, 1),
]
SERVE = (
    "MATCH (u:User {id: $u})-[r:RECOMMENDED]->(i:Item) WHERE i.scene = $scene "
    "RETURN i.id AS item, r.rank AS rank, r.score AS score, r.model AS model ORDER BY r.rank"
)


def test_recommended_is_a_schema_relationship() -> None:
    rt = check_rel("RECOMMENDED", "User", "Item")
    assert rt.columns == ["score", "rank", "model"]
    with pytest.raises(SchemaError, match="cannot connect"):
        check_rel("RECOMMENDED", "Item", "User")
    assert "RECOMMENDED" in RELS


def test_write_recommendations_serves_cypher_and_replaces(loaded: GraphStore) -> None:
    evil_model = EVIL_IDS[2]  # a model name full of Cypher travels as a parameter
    assert loaded.write_recommendations(_recs(RECS, evil_model)) == len(RECS)
    assert loaded.counts() == {"nodes": COUNTS["nodes"], "edges": {**COUNTS["edges"], "RECOMMENDED": len(RECS)}}
    movies = loaded.query(SERVE, u="u1", scene="movies")
    assert movies["item"].tolist() == ["m1", "m2"] and movies["rank"].tolist() == [1, 2]
    assert movies["score"].tolist() == pytest.approx([0.8, 0.7]) and set(movies["model"]) == {evil_model}
    assert loaded.query(SERVE, u="u2", scene="books")["item"].tolist() == ["b1", "b3"]
    # the whole set is replaced, not added to
    assert loaded.write_recommendations(_recs([("u3", "b2", 1.5, 1)], "bpr")) == 1
    every = loaded.query("MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN u.id AS u, i.id AS i, r.model AS m")
    assert every.to_dict("records") == [{"u": "u3", "i": "b2", "m": "bpr"}]
    assert loaded.counts()["edges"] == {**COUNTS["edges"], "RECOMMENDED": 1}
    # recommendations are output, not input: the GNN's edge tables leave them out, the networkx export has them
    assert not any(rel == "RECOMMENDED" for _, rel, _ in loaded.edge_index().edges)
    assert loaded.to_networkx().number_of_edges() == sum(COUNTS["edges"].values()) + 1
    assert loaded.write_recommendations(_recs([])) == 0
    assert loaded.counts() == COUNTS


@pytest.mark.parametrize("scan_from", [0, GraphStore.MISSING_SCAN_FROM])
def test_write_recommendations_refuses_bad_rows_before_deleting(loaded: GraphStore, scan_from: int) -> None:
    # scan_from 0: the existence checks read every id of the label (the path of large write-backs), not $ids
    loaded.MISSING_SCAN_FROM = scan_from  # type: ignore[misc]
    loaded.write_recommendations(_recs(RECS))
    with pytest.raises(StoreError, match="ghost"):
        loaded.write_recommendations(_recs([("u1", "b3", 0.9, 1), ("ghost", "b1", 0.5, 1)]))
    with pytest.raises(StoreError, match="nope"):
        loaded.write_recommendations(_recs([("u1", "nope", 0.9, 1)]))
    with pytest.raises(SchemaError, match="twice"):
        loaded.write_recommendations(_recs([("u1", "b3", 0.9, 1), ("u1", "b3", 0.8, 2)]))
    with pytest.raises(SchemaError, match="positive integers"):
        loaded.write_recommendations(_recs([("u1", "b3", 0.9, 0)]))
    with pytest.raises(SchemaError, match="finite"):
        loaded.write_recommendations(_recs([("u1", "b3", math.nan, 1)]))
    with pytest.raises(SchemaError, match="lack columns"):
        loaded.write_recommendations(_recs(RECS).drop(columns="model"))
    assert loaded.counts()["edges"]["RECOMMENDED"] == len(RECS)  # nothing was deleted
    assert loaded.query(SERVE, u="u3", scene="movies")["item"].tolist() == ["m3"]


def test_model_embeddings_replace_the_property(store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    if store.backend == "ladybug":  # vectors set a few nodes a statement, as a large graph's are
        monkeypatch.setattr(type(store), "EMBEDDING_CHUNK", 2)
    ds = dataset()
    store.create_schema(embedding_dims={"Item": 4})
    text = _vectors(len(ds.items), 4, 0)
    store.load_tables(build_tables(ds, embeddings={"Item": text}))
    tol = 0.0 if store.backend == "ladybug" else 1e-6
    items = ds.items["id"].tolist()
    # larger than the stand-in's parameter limit, so the vectors travel in parts there
    wide = _vectors(len(items), 200, 1)
    assert store.set_model_embeddings("Item", items, wide) == len(items)
    ids, got = store.model_embeddings("Item")
    by_id = dict(zip(ids, got, strict=True))
    assert sorted(ids) == sorted(items)
    for item, expected in zip(items, wide, strict=True):
        np.testing.assert_allclose(by_id[item], expected, rtol=0, atol=tol)
    users = _vectors(3, 8, 2)
    store.set_model_embeddings("User", ["u1", "u2", "u3"], users)
    # a model of another size replaces the property on every node; nodes not given lose theirs
    narrow = _vectors(2, 3, 3)
    assert store.set_model_embeddings("Item", ["m2", "b1"], narrow) == 2
    ids, got = store.model_embeddings("Item")
    assert got.shape == (2, 3)
    by_id = dict(zip(ids, got, strict=True))
    np.testing.assert_allclose(by_id["m2"], narrow[0], rtol=0, atol=tol)
    np.testing.assert_allclose(by_id["b1"], narrow[1], rtol=0, atol=tol)
    # the text embeddings and the other label are left alone
    text_ids, text_got = store.node_embeddings("Item")
    np.testing.assert_allclose(dict(zip(text_ids, text_got, strict=True))["b2"], text[1], rtol=0, atol=tol)
    assert store.model_embeddings("User")[1].shape == (3, 8)
    served = store.query(f"MATCH (n:Item) WHERE n.id = $id RETURN n.{MODEL_EMBEDDING} AS e", id="b1")["e"].iloc[0]
    np.testing.assert_allclose(np.asarray(served, dtype=np.float32), narrow[1], rtol=0, atol=tol)
    # nodes added later load as before (LadybugDB: COPY fills the array columns with nulls)
    new = pd.DataFrame([{c: "" for c in NODES["Item"].columns} | {"id": "n1", "scene_confidence": None}])
    assert store.load_nodes("Item", new) == 1
    assert store.model_embeddings("Item")[1].shape == (2, 3)
    with pytest.raises(StoreError, match="ghost"):
        store.set_model_embeddings("Item", ["ghost"], narrow[:1])
    with pytest.raises(SchemaError, match="twice"):
        store.set_model_embeddings("Item", ["b1", "b1"], narrow)
    with pytest.raises(SchemaError, match="shape"):
        store.set_model_embeddings("Item", ["b1"], narrow)
    with pytest.raises(SchemaError):
        store.set_model_embeddings("Gadget", ["b1"], narrow[:1])
    assert store.model_embeddings("Item")[1].shape == (2, 3)  # refused calls changed nothing


def test_ladybug_store_without_the_recommended_table(tmp_path: Path) -> None:
    """A store built before RECOMMENDED joined the schema: it counts as empty and write-back adds the table."""
    with LadybugStore(tmp_path / "old.lbug", unsafe=True) as old:  # DROP TABLE needs unsafe
        old.create_schema()
        old.load_tables(build_tables(dataset()))
        old.query("DROP TABLE RECOMMENDED")
        assert old.counts() == COUNTS
        assert old.write_recommendations(_recs(RECS)) == len(RECS)
        assert old.counts()["edges"]["RECOMMENDED"] == len(RECS)


# -------------------------------------------------------------------- entity alignment write-back
SAME_AS = "MATCH (a)-[r:SAME_AS]->(b) RETURN a.id AS a, b.id AS b, r.score AS score, r.method AS method"


def _same_as(store: GraphStore) -> list[tuple[str, str, float, str]]:
    df = store.query(SAME_AS)
    return sorted((str(a), str(b), round(float(s), 6), str(m)) for a, b, s, m in df.itertuples(index=False))


def _ali(rows: list[tuple[str, str, str, str, float]], method: str | None = "propagation") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["left", "right", "kind_left", "kind_right", "score"])
    return frame if method is None else frame.assign(method=method)


def _with_gold(store: GraphStore) -> GraphStore:
    rows = pd.DataFrame({"from": ["e:tolkien"], "to": ["e:nolan"], "score": [1.0], "method": ["gold"]})
    store.load_edges(EdgeTable("SAME_AS", "Entity", "Entity", rows))
    return store


TITLE = ("b3", "m3", 0.9, "title")
GOLD = ("e:tolkien", "e:nolan", 1.0, "gold")


def test_write_alignments_replaces_its_method_only(loaded: GraphStore) -> None:
    store = _with_gold(loaded)
    first = [("b1", "m1", "item", "item", 0.8), ("e:tolkien", "m2", "entity", "item", 0.6)]
    assert store.write_alignments(_ali(first), "propagation") == 2
    assert _same_as(store) == sorted(
        [TITLE, GOLD, ("b1", "m1", 0.8, "propagation"), ("e:tolkien", "m2", 0.6, "propagation")]
    )
    assert store.counts()["edges"]["SAME_AS"] == 4
    # a second run replaces the method's edges (not added to them); gold and the other methods survive
    assert store.write_alignments(_ali([("b2", "m2", "Item", "Item", 0.7)])) == 1
    assert _same_as(store) == sorted([TITLE, GOLD, ("b2", "m2", 0.7, "propagation")])
    # another method is written beside it; the method may come from the argument alone; one `kind` for both ends
    gcn = _ali([("u1", "u2", "user", "user", 0.5)], method=None).rename(columns={"kind_left": "kind"})
    assert store.write_alignments(gcn.drop(columns="kind_right"), "gcn") == 1
    assert _same_as(store) == sorted([TITLE, GOLD, ("b2", "m2", 0.7, "propagation"), ("u1", "u2", 0.5, "gcn")])
    # an empty frame with a method clears that method
    assert store.write_alignments(_ali([]), "gcn") == 0
    assert _same_as(store) == sorted([TITLE, GOLD, ("b2", "m2", 0.7, "propagation")])
    # a method name full of Cypher travels as a parameter
    evil = EVIL_IDS[2]
    assert store.write_alignments(_ali([("b1", "m1", "item", "item", 0.3)], evil)) == 1
    assert store.write_alignments(_ali([("b2", "m1", "item", "item", 0.4)], evil)) == 1
    assert _same_as(store) == sorted([TITLE, GOLD, ("b2", "m2", 0.7, "propagation"), ("b2", "m1", 0.4, evil)])
    assert store.counts()["nodes"] == COUNTS["nodes"]


def test_write_alignments_scoped_to_two_scenes(loaded: GraphStore) -> None:
    store = _with_gold(loaded)
    rows = [("b1", "m1", "item", "item", 0.8), ("e:acme", "m2", "entity", "item", 0.6)]  # e:acme has no scene
    store.write_alignments(_ali(rows))
    assert store.write_alignments(_ali([("b2", "m2", "item", "item", 0.7)]), scenes=("movies", "books")) == 1
    assert _same_as(store) == sorted(
        [TITLE, GOLD, ("b2", "m2", 0.7, "propagation"), ("e:acme", "m2", 0.6, "propagation")]
    )


def test_write_alignments_refuses_bad_rows_before_deleting(loaded: GraphStore) -> None:
    store = _with_gold(loaded)
    store.write_alignments(_ali([("b1", "m1", "item", "item", 0.8)]))
    before = _same_as(store)
    ok = ("b2", "m2", "item", "item", 0.7)
    with pytest.raises(StoreError, match="ghost"):
        store.write_alignments(_ali([ok, ("ghost", "m1", "item", "item", 0.5)]))
    with pytest.raises(StoreError, match="e:nolan"):  # an entity id under the Item label
        store.write_alignments(_ali([ok, ("b1", "e:nolan", "item", "item", 0.5)]))
    with pytest.raises(SchemaError, match="cannot connect"):
        store.write_alignments(_ali([("u1", "b1", "user", "item", 0.5)]))
    with pytest.raises(SchemaError, match="not a node kind"):
        store.write_alignments(_ali([("b1", "m1", "gadget", "item", 0.5)]))
    for protected in ("gold", "seed"):
        with pytest.raises(SchemaError, match="dataset's own alignment"):
            store.write_alignments(_ali([ok], protected))
        with pytest.raises(SchemaError, match="dataset's own alignment"):
            store.write_alignments(_ali([]), ["propagation", protected])
    with pytest.raises(SchemaError, match="not among the methods replaced"):
        store.write_alignments(_ali([ok], "gcn"), "propagation")
    with pytest.raises(SchemaError, match="finite"):
        store.write_alignments(_ali([("b2", "m2", "item", "item", math.nan)]))
    with pytest.raises(SchemaError, match="twice"):
        store.write_alignments(_ali([ok, ok]))
    with pytest.raises(SchemaError, match="lack columns"):
        store.write_alignments(_ali([ok]).drop(columns="score"))
    with pytest.raises(SchemaError, match="lack columns"):
        store.write_alignments(_ali([ok]).drop(columns="method"))  # no method column and none named
    with pytest.raises(SchemaError, match="name the method"):
        store.write_alignments(_ali([]))
    with pytest.raises(SchemaError, match="scenes"):
        store.write_alignments(_ali([ok]), scenes=("books",))  # type: ignore[arg-type]
    assert _same_as(store) == before  # nothing was deleted


def _paths(store: GraphStore, user: str, item: str, **kwargs: Any) -> set[tuple[Any, ...]]:
    return {
        (p["kind"], tuple(n["id"] for n in p["nodes"]), tuple(p["relations"]), tuple(p["hop_scores"]))
        for p in store.explanation_paths(user, item, **kwargs)
    }


def test_explanation_paths(loaded: GraphStore) -> None:
    """Every kind of path, by hand from the drawing plus u1 -> b3 (train) and two written SAME_AS links: b2 -> m1
    (0.5) and e:tolkien -> e:nolan (0.7). Test interactions (u2 -> m1) are never walked; the target is never an
    intermediate item."""
    edge = pd.DataFrame({"from": ["u1"], "to": ["b3"], "timestamp": [600], "rating": [1.0], "weight": [1.0]})
    loaded.load_edges(EdgeTable("INTERACTED", "User", "Item", edge.assign(split="train")))
    links = [("b2", "m1", "item", "item", 0.5), ("e:tolkien", "e:nolan", "entity", "entity", 0.7)]
    loaded.write_alignments(_ali(links))
    brand, author = ("RELATED:brand", "RELATED:brand"), ("RELATED:author", "RELATED:author")
    aligned = ("INTERACTED", "RELATED:author", "SAME_AS", "RELATED:director")
    via_link, linked = ("INTERACTED", "SAME_AS", *brand), (None, 0.5, None, None)
    assert _paths(loaded, "u1", "m2") == {
        ("shared_entity", ("u1", "b1", "e:acme", "m2"), ("INTERACTED", *brand), (None, None, None)),
        ("same_as_entity", ("u1", "b2", "m1", "e:acme", "m2"), via_link, linked),
        ("aligned_entity", ("u1", "b1", "e:tolkien", "e:nolan", "m2"), aligned, (None, None, 0.7, None)),
        ("aligned_entity", ("u1", "b3", "e:tolkien", "e:nolan", "m2"), aligned, (None, None, 0.7, None)),
    }
    assert _paths(loaded, "u2", "b1") == {  # u2 -> m1 -brand- e:acme -brand- b1 would walk a test interaction
        ("related_item", ("u2", "b2", "b1"), ("INTERACTED", "RELATED:sequel_of"), (None, None)),
        ("co_interaction", ("u2", "b2", "u1", "b1"), ("INTERACTED",) * 3, (None,) * 3),
        ("same_as_entity", ("u2", "b2", "m1", "e:acme", "b1"), via_link, linked),
    }
    assert _paths(loaded, "u1", "m1") == {  # u1 -> b2 <- u2 -> m1 is a test interaction
        ("shared_entity", ("u1", "b1", "e:acme", "m1"), ("INTERACTED", *brand), (None, None, None)),
        ("same_as", ("u1", "b2", "m1"), ("INTERACTED", "SAME_AS"), (None, 0.5)),
    }
    assert _paths(loaded, "u1", "b1") == {
        ("shared_entity", ("u1", "b3", "e:tolkien", "b1"), ("INTERACTED", *author), (None, None, None)),
        ("related_item", ("u1", "b2", "b1"), ("INTERACTED", "RELATED:sequel_of"), (None, None)),
        ("same_as_entity", ("u1", "b2", "m1", "e:acme", "b1"), via_link, linked),
    }
    assert _paths(loaded, "u3", "b2") == {  # a valid interaction counts; b2 -> m1 walked backwards
        ("same_as", ("u3", "m1", "b2"), ("INTERACTED", "SAME_AS"), (None, 0.5)),
    }
    assert _paths(loaded, "u2", "m3") == set()
    assert len(_paths(loaded, "u1", "m2", limit=1)) == 3  # at most one per kind
    first = loaded.explanation_paths("u1", "m2")[0]
    assert first["kind"] == "shared_entity"
    assert first["nodes"] == [
        {"label": "User", "id": "u1", "name": "u1"},
        {"label": "Item", "id": "b1", "name": "The Hobbit"},
        {"label": "Entity", "id": "e:acme", "name": "Acme"},
        {"label": "Item", "id": "m2", "name": "Tenet"},
    ]
    for user, item in (("nobody", "b1"), ("b1", "b1"), ("u1", "u1"), ("u1", EVIL_IDS[0])):
        with pytest.raises(UnknownIdError):
            loaded.explanation_paths(user, item)
    with pytest.raises(ValueError, match="limit"):
        loaded.explanation_paths("u1", "m2", limit=0)
