"""Explanations (``Engine.explain``, ``recommend(explain=True)``, ``scenerec explain``) on the bundled sample with a
trained SceneGNN: every path is checked hop by hop against the graph with parameterised Cypher, and every score
against a hand computation from the model's item vectors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import main
from scenerec.engine import Engine
from scenerec.errors import UnknownIdError
from scenerec.kg import GraphStore, check_label, check_rel, open_store

SCENES = ("arts", "office")
KINDS = ("aligned_entity", "co_interaction", "related_item", "same_as", "same_as_entity", "shared_entity")


def _copy(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


@pytest.fixture(scope="module")
def explained(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the sample with SceneGNN fitted (5 epochs); the three users with the most training interactions
    and their top 5 of each scene with up to 10 paths each."""
    store = _copy(sample_store, tmp_path_factory.mktemp("explain") / "store")
    out: dict[str, Any] = {"store": store}
    with Engine.open(store) as engine:
        engine.fit("scenegnn", seed=1, epochs=5)
        users = engine.store.query(
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE r.split = 'train' "
            "RETURN u.id AS id, count(i) AS n ORDER BY n DESC, id LIMIT 3"
        )["id"].astype(str)
        out["users"] = list(users)
        out["recs"] = {
            (user, scene): engine.recommend(user, scene, k=5, explain=True, max_paths=10)
            for user in users
            for scene in SCENES
        }
        out["vectors"], out["source"] = engine.item_vectors()
        out["idmap"] = engine.idmap
    return out


def _all_paths(explained: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (user, item, path)
        for (user, _), recs in explained["recs"].items()
        for item, paths in zip(recs["item_id"], recs["explanation"], strict=True)
        for path in paths
    ]


def _hop(store: GraphStore, a: dict[str, Any], rel: str, b: dict[str, Any]) -> pd.DataFrame:
    """The relationships of type ``rel`` (``RELATED:<relation>`` names its relation) between nodes ``a`` and ``b``,
    either direction; INTERACTED rows carry ``split``, SAME_AS rows ``score``."""
    la, lb = check_label(a["label"]).label, check_label(b["label"]).label
    typ, _, relation = rel.partition(":")
    check_rel(typ)
    if typ == "INTERACTED":
        user, item = (a, b) if la == "User" else (b, a)
        return store.query(
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE u.id = $u AND i.id = $i RETURN r.split AS split",
            u=user["id"],
            i=item["id"],
        )
    if typ == "RELATED":
        return store.query(
            f"MATCH (a:{la})-[r:RELATED]-(b:{lb}) WHERE a.id = $a AND b.id = $b AND r.relation = $relation "
            "RETURN r.relation AS relation",
            a=a["id"],
            b=b["id"],
            relation=relation,
        )
    return store.query(
        f"MATCH (a:{la})-[r:{typ}]-(b:{lb}) WHERE a.id = $a AND b.id = $b RETURN r.score AS score",
        a=a["id"],
        b=b["id"],
    )


def _check_path(store: GraphStore, user: str, item: str, path: dict[str, Any]) -> None:
    nodes, rels = path["nodes"], path["relations"]
    assert set(path) == {"kind", "score", "nodes", "relations", "support"} and path["kind"] in KINDS
    assert len(rels) == len(nodes) - 1 >= 2
    assert (nodes[0]["label"], nodes[0]["id"]) == ("User", user)
    assert (nodes[-1]["label"], nodes[-1]["id"]) == ("Item", item)
    assert all(n["id"] != item for n in nodes[:-1]), "the target is never an intermediate node"
    for n in nodes:
        name = store.node(n["label"], n["id"]).get({"User": "id", "Item": "title", "Entity": "name"}[n["label"]])
        assert n["name"] == (name or "")
    for a, rel, b in zip(nodes, rels, nodes[1:], strict=False):
        rows = _hop(store, a, rel, b)
        assert len(rows), f"no {rel} between {a} and {b}"
        if rel == "INTERACTED":
            assert all(s != "test" for s in rows["split"].fillna(""))


def _by_hand(store: GraphStore, path: dict[str, Any], vectors: np.ndarray, idmap: Any) -> float:
    """Mean cosine of the path's items to its last item, times the stored scores of its SAME_AS hops."""
    nodes = path["nodes"]
    target = vectors[idmap.index("item", nodes[-1]["id"])].astype(np.float64)
    cosines = []
    for n in nodes[:-1]:
        if n["label"] == "Item":
            v = vectors[idmap.index("item", n["id"])].astype(np.float64)
            cosines.append(float(v @ target / (np.linalg.norm(v) * np.linalg.norm(target))))
    weight = 1.0
    for a, rel, b in zip(nodes, path["relations"], nodes[1:], strict=False):
        if rel == "SAME_AS":
            weight *= float(_hop(store, a, rel, b)["score"].iloc[0])
    return sum(cosines) / len(cosines) * weight


def _order_key(path: dict[str, Any]) -> tuple[Any, ...]:
    return (-path["score"], path["kind"], [(n["label"], n["id"]) for n in path["nodes"]])


def test_recommendations_carry_paths_that_exist_in_the_graph(explained: dict[str, Any]) -> None:
    paths = _all_paths(explained)
    assert len(paths) > 20
    with Engine.open(explained["store"]) as engine:
        for user, item, path in paths:
            _check_path(engine.store, user, item, path)
    for recs in explained["recs"].values():
        assert list(recs.columns) == ["item_id", "scene", "score", "rank", "explanation"]
        assert all(len(paths) <= 10 for paths in recs["explanation"])


def test_scores_are_the_model_cosines_and_order_them(explained: dict[str, Any]) -> None:
    assert explained["source"] == "scenegnn"
    with Engine.open(explained["store"]) as engine:
        for _, _, path in _all_paths(explained):
            assert path["score"] == pytest.approx(
                _by_hand(engine.store, path, explained["vectors"], explained["idmap"]), abs=1e-9
            )
    for recs in explained["recs"].values():
        for paths in recs["explanation"]:
            assert [_order_key(p) for p in paths] == sorted(_order_key(p) for p in paths)
            keys = [(p["kind"], tuple((n["label"], n["id"]) for n in p["nodes"]), tuple(p["relations"])) for p in paths]
            assert len(set(keys)) == len(keys)


def test_paths_of_shared_users_and_shared_entities(explained: dict[str, Any]) -> None:
    kinds = {path["kind"] for _, _, path in _all_paths(explained)}
    assert {"co_interaction", "shared_entity"} <= kinds
    co = next(p for _, _, p in _all_paths(explained) if p["kind"] == "co_interaction")
    assert [n["label"] for n in co["nodes"]] == ["User", "Item", "User", "Item"]
    assert co["relations"] == ["INTERACTED"] * 3
    # one explanation stands for every other user between the same two items: support counts them
    user, mine, target = co["nodes"][0]["id"], co["nodes"][1]["id"], co["nodes"][3]["id"]
    with Engine.open(explained["store"]) as engine:
        others = engine.store.query(
            "MATCH (u:User)-[a:INTERACTED]->(i:Item)<-[b:INTERACTED]-(v:User)-[c:INTERACTED]->(t:Item) "
            "WHERE u.id = $u AND i.id = $i AND t.id = $t AND v.id <> $u "
            "AND (a.split IS NULL OR a.split <> 'test') AND (b.split IS NULL OR b.split <> 'test') "
            "AND (c.split IS NULL OR c.split <> 'test') RETURN DISTINCT v.id AS v ORDER BY v",
            u=user,
            i=mine,
            t=target,
        )["v"].tolist()
    assert co["support"] == min(len(others), 200) and co["nodes"][2]["id"] == others[0]
    assert all(p["support"] == 1 for _, _, p in _all_paths(explained) if p["kind"] != "co_interaction")
    shared = next(p for _, _, p in _all_paths(explained) if p["kind"] == "shared_entity")
    assert [n["label"] for n in shared["nodes"]] == ["User", "Item", "Entity", "Item"]
    assert shared["relations"][0] == "INTERACTED"
    assert {r.split(":")[0] for r in shared["relations"][1:]} == {"RELATED"}


def test_explain_matches_recommend_and_keeps_max_paths(explained: dict[str, Any]) -> None:
    user = explained["users"][0]
    recs = explained["recs"][(user, "office")]
    with Engine.open(explained["store"]) as engine:
        item = str(next(i for i, p in zip(recs["item_id"], recs["explanation"], strict=True) if len(p) >= 4))
        every = engine.explain(user, item, max_paths=10)
        assert every == recs.set_index("item_id").loc[item, "explanation"]
        two = engine.explain(user, item, max_paths=2)
        assert two == every[:2]
        assert engine.explain(user, item) == every[:3]  # default 3
        plain = engine.recommend(user, "office", k=5)
        assert list(plain.columns) == ["item_id", "scene", "score", "rank"]
        assert plain["item_id"].tolist() == recs["item_id"].tolist()
        default = engine.recommend(user, "office", k=2, explain=True)
        assert [len(p) <= 3 for p in default["explanation"]] == [True, True]
        with pytest.raises(ValueError, match="max_paths"):
            engine.explain(user, item, max_paths=0)
        with pytest.raises(ValueError, match="max_paths"):
            engine.recommend(user, "office", explain=True, max_paths=0)


def test_unknown_ids(explained: dict[str, Any]) -> None:
    user = explained["users"][0]
    item = str(explained["recs"][(user, "arts")]["item_id"].iloc[0])
    with Engine.open(explained["store"]) as engine:
        with pytest.raises(UnknownIdError, match="unknown user id 'nobody'"):
            engine.explain("nobody", item)
        with pytest.raises(UnknownIdError, match="unknown item id 'nothing'"):
            engine.explain(user, "nothing")
        with pytest.raises(UnknownIdError, match="unknown item id"):
            engine.explain(user, user)  # a user id is not an item id
        with pytest.raises(UnknownIdError, match="unknown user id 'nobody'"):
            engine.recommend("nobody", "arts", explain=True)


def test_same_as_links_give_paths_across_scenes(explained: dict[str, Any], tmp_path: Path) -> None:
    """Two written SAME_AS links (an arts item of the user -> an office item, 0.8; the same arts item -> another
    office item that shares an entity with the target, 0.6) give a ``same_as`` and a ``same_as_entity`` path."""
    store = _copy(explained["store"], tmp_path / "store")
    user = explained["users"][0]
    with open_store(store, read_only=False) as graph:  # links written by hand, as a user would with Cypher
        q = graph.query
        source = str(
            q(
                "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE u.id = $u AND r.split = 'train' AND i.scene = 'arts' "
                "RETURN i.id AS id ORDER BY id LIMIT 1",
                u=user,
            )["id"].iloc[0]
        )
        target = str(explained["recs"][(user, "office")]["item_id"].iloc[0])
        sibling = q(
            "MATCH (t:Item)-[:RELATED]-(e:Entity)-[:RELATED]-(j:Item) WHERE t.id = $t AND j.id <> t.id "
            "AND j.scene = 'office' RETURN j.id AS id, e.id AS entity ORDER BY id, entity LIMIT 1",
            t=target,
        ).iloc[0]
        links = pd.DataFrame(
            {
                "left": [source, source],
                "right": [target, str(sibling["id"])],
                "kind": "item",
                "score": [0.8, 0.6],
                "method": "manual",
            }
        )
        assert graph.write_alignments(links) == 2
    with Engine.open(store) as engine:
        paths = engine.explain(user, target, max_paths=1000)
        by_kind = {p["kind"]: p for p in paths if p["kind"] in ("same_as", "same_as_entity")}
        assert set(by_kind) == {"same_as", "same_as_entity"}
        same_as = by_kind["same_as"]
        assert [n["id"] for n in same_as["nodes"]] == [user, source, target]
        assert same_as["relations"] == ["INTERACTED", "SAME_AS"]
        vectors, _ = engine.item_vectors()
        assert same_as["score"] == pytest.approx(_by_hand(engine.store, same_as, vectors, engine.idmap), abs=1e-9)
        assert same_as["score"] == pytest.approx(
            0.8 * _by_hand(engine.store, {**same_as, "relations": []}, vectors, engine.idmap)
        )
        linked = [p for p in paths if p["kind"] == "same_as_entity"]
        assert any([n["id"] for n in p["nodes"]][:3] == [user, source, str(sibling["id"])] for p in linked)
        for path in paths:
            _check_path(engine.store, user, target, path)
            assert path["score"] == pytest.approx(_by_hand(engine.store, path, vectors, engine.idmap), abs=1e-9)
        assert [_order_key(p) for p in paths] == sorted(_order_key(p) for p in paths)


def test_text_vectors_without_a_model(sample_store: Path) -> None:
    """No trained model: paths are scored with the text embeddings (:meth:`Engine.item_vectors`)."""
    with Engine.open(sample_store) as engine:
        user = str(engine.store.query("MATCH (u:User) RETURN u.id AS id ORDER BY id LIMIT 1")["id"].iloc[0])
        item = str(
            engine.store.query(
                "MATCH (u:User)-[:INTERACTED]->(:Item)-[:RELATED]-(:Entity)-[:RELATED]-(t:Item) WHERE u.id = $u "
                "RETURN t.id AS id ORDER BY id LIMIT 1",
                u=user,
            )["id"].iloc[0]
        )
        vectors, source = engine.item_vectors()
        assert source == "text"
        paths = engine.explain(user, item, max_paths=5)
        assert paths
        for path in paths:
            _check_path(engine.store, user, item, path)
            assert path["score"] == pytest.approx(_by_hand(engine.store, path, vectors, engine.idmap), abs=1e-9)


def test_cli_explain(explained: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    store, user = str(explained["store"]), explained["users"][0]
    recs = explained["recs"][(user, "office")]
    item = str(recs["item_id"].iloc[0])
    args = ["explain", "--store", store, "--user", user, "--item", item]
    assert main([*args, "--max-paths", "4", "--format", "json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert isinstance(paths, list) and 1 <= len(paths) <= 4
    assert paths == recs["explanation"].iloc[0][:4]
    assert all(math.isfinite(p["score"]) for p in paths)

    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"paths from user {user} to item {item}") and "scenegnn" in out[0]
    assert len(out) == 1 + min(3, len(paths))
    assert out[1].startswith(f"1. {paths[0]['score']:.4f} {paths[0]['kind']}: user {user} -INTERACTED-> item ")

    assert main(["explain", "--store", store, "--user", "nobody", "--item", item]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown user id 'nobody'"
    assert main([*args, "--max-paths", "0"]) == 2
    assert "--max-paths 0: expected a positive integer" in capsys.readouterr().err


def test_cli_recommend_explain(explained: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    store, user = str(explained["store"]), explained["users"][0]
    recs = explained["recs"][(user, "office")]
    base = ["recommend", "--store", store, "--user", user, "--scene", "office", "-k", "3", "--explain"]
    assert main([*base, "--max-paths", "10", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["item_id"] for r in rows] == recs["item_id"].tolist()[:3]
    for row, expected in zip(rows, recs["explanation"].tolist()[:3], strict=True):
        # the CLI reloads the model from disk: the same paths, scores equal up to float32 rounding (comparing
        # rounded decimals flips when a score sits on a rounding boundary)
        assert [{**p, "score": 0.0} for p in row["explanation"]] == [{**p, "score": 0.0} for p in expected]
        assert [p["score"] for p in row["explanation"]] == pytest.approx([p["score"] for p in expected], abs=1e-6)

    assert main(base) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["item_id", "scene", "score", "rank"]
    rows_at = [n for n, line in enumerate(out) if not line.startswith("    ")]
    assert [out[n].split()[0] for n in rows_at[1:]] == recs["item_id"].tolist()[:3]  # each row, then its paths
    for n, paths in zip(rows_at[1:], recs["explanation"][:3], strict=True):
        shown = out[n + 1 : n + 1 + min(3, len(paths))]
        assert [line.split(":")[0].strip() for line in shown] == [
            f"{k}. {p['score']:.4f} {p['kind']}" for k, p in enumerate(paths[:3], 1)
        ]

    assert main(["recommend", "--store", store, "--items", "1,2", "--scene", "office", "--explain"]) == 2
    assert "--explain needs --user" in capsys.readouterr().err
