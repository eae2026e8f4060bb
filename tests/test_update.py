"""Incremental update: ``update(delta)`` on a store built from ``base`` gives the graph that a rebuild of
``base + delta`` gives (nodes, properties, relationships, id map, text features), and keeps what only the store
holds."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import SAMPLE
from scenerec.errors import StoreError
from scenerec.kg import current_generation, load_features, load_idmap, open_store, read_manifest
from scenerec.kg.schema import NODES, RELS
from scenerec.pipeline import build, update

TABLES = ("items", "interactions", "triples", "entities", "scenes")


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(SAMPLE / f"{name}.csv", dtype=str, keep_default_na=False)


def _write(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The bundled sample cut into a base dataset and an update, plus their concatenation.

    The update holds: 40 office items never seen (with their facts and interactions), 25 users never seen (all their
    interactions), 150 more interactions of known users with known items, 30 interactions that repeat base ones
    (merged: weight 2), a new fact between a known item and a known entity, a name for an entity that the base
    left blank (a changed node), a repeated item row with another title (the stored one wins), and a row whose item
    exists nowhere (rejected).
    """
    root = tmp_path_factory.mktemp("update")
    items, inter, triples, ents, scenes = (_read(t) for t in TABLES)
    rng = np.random.default_rng(7)
    office = items[items["scene"] == "office"]["item_id"].to_numpy()
    new_items = set(rng.choice(office, 40, replace=False))
    users = inter["user_id"].unique()
    new_users = set(rng.choice(users, 25, replace=False))
    is_new = inter["item_id"].isin(new_items) | inter["user_id"].isin(new_users)
    rest = np.flatnonzero(~is_new.to_numpy())
    moved = rng.choice(rest, 150, replace=False)
    delta_inter_mask = is_new.to_numpy().copy()
    delta_inter_mask[moved] = True
    base_inter, delta_inter = inter[~delta_inter_mask], inter[delta_inter_mask]
    repeats = base_inter.sample(30, random_state=3)
    bad = pd.DataFrame([{"user_id": users[0], "item_id": "no-such-item", "timestamp": "5", "split": "train"}])
    delta_inter = pd.concat([delta_inter, repeats, bad], ignore_index=True)
    key = ["user_id", "item_id", "split"]
    base_keys = set(map(tuple, base_inter[key].to_numpy()))
    merged_keys = {k for k in map(tuple, delta_inter[key].to_numpy()) if k in base_keys}

    tri_new = triples["head"].isin(new_items)
    base_tri = triples[~tri_new]
    known_item = str(items[~items["item_id"].isin(new_items)]["item_id"].iloc[0])
    brands = ents[ents["type"] == "brand"]["entity_id"].tolist()
    linked = set(base_tri[base_tri["head"] == known_item]["tail"])
    extra_brand = next(b for b in brands if b not in linked)
    extra = pd.DataFrame([{"head": known_item, "relation": "brand", "tail": extra_brand}])
    delta_tri = pd.concat([triples[tri_new], extra], ignore_index=True)

    blank_entity = str(ents["entity_id"].iloc[5])
    base_ents = ents.copy()
    base_ents.loc[base_ents["entity_id"] == blank_entity, "name"] = ""
    delta_ents = ents[ents["entity_id"] == blank_entity]

    renamed = items[~items["item_id"].isin(new_items)].iloc[[3]].assign(title="a different title")
    base_items = items[~items["item_id"].isin(new_items)]
    delta_items = pd.concat([items[items["item_id"].isin(new_items)], renamed], ignore_index=True)

    base = _write(
        root / "base",
        {"items": base_items, "interactions": base_inter, "triples": base_tri, "entities": base_ents, "scenes": scenes},
    )
    delta = _write(
        root / "delta",
        {"items": delta_items, "interactions": delta_inter, "triples": delta_tri, "entities": delta_ents},
    )
    union = _write(
        root / "union",
        {
            "items": pd.concat([base_items, delta_items], ignore_index=True),
            "interactions": pd.concat([base_inter, delta_inter], ignore_index=True),
            "triples": pd.concat([base_tri, delta_tri], ignore_index=True),
            "entities": pd.concat([base_ents, delta_ents], ignore_index=True),
            "scenes": scenes,
        },
    )
    return {
        "root": root,
        "base": base,
        "delta": delta,
        "union": union,
        "new_items": new_items,
        "new_users": new_users,
        "repeats": repeats,
        "merged_keys": merged_keys,
        "blank_entity": blank_entity,
        "renamed": renamed,
        "extra": extra,
    }


def _warm_cache(sample_store: Path, store: Path) -> None:
    """Start ``store`` with the sample store's embedding cache (same texts, same model: no re-encoding)."""
    shutil.copytree(sample_store / "cache", store / "cache", dirs_exist_ok=True)


@pytest.fixture(scope="module")
def stores(split: dict[str, Any], sample_store: Path, encoder: Any) -> dict[str, Any]:
    root = split["root"]
    updated, rebuilt = root / "updated", root / "rebuilt"
    for s in (updated, rebuilt):
        _warm_cache(sample_store, s)
    build(split["base"], updated, encoder=encoder)
    base_generation = current_generation(updated).name
    report = update(split["delta"], updated, encoder=encoder)
    build(split["union"], rebuilt, encoder=encoder)
    return {"updated": updated, "rebuilt": rebuilt, "report": report, "base_generation": base_generation}


def _graph(store: Path) -> dict[str, Any]:
    """Every node with its properties and every relationship with its properties (sorted, comparable)."""
    out: dict[str, Any] = {}
    with open_store(store) as g:
        for label, nt in NODES.items():
            cols = [c for c in nt.columns if c != "scene_confidence"]
            ret = ", ".join(f"n.{c} AS {c}" for c in cols)
            out[label] = g.query(f"MATCH (n:{label}) RETURN {ret}").sort_values("id").reset_index(drop=True)
        for rel, rt in RELS.items():
            if rel == "RECOMMENDED":
                continue
            for a, b in rt.pairs:
                props = "".join(f", r.{c} AS {c}" for c in rt.columns)
                df = g.query(f"MATCH (x:{a})-[r:{rel}]->(y:{b}) RETURN x.id AS src, y.id AS dst{props}")
                key = ["src", "dst", *rt.columns]
                out[f"{a}-{rel}-{b}"] = df.sort_values(key).reset_index(drop=True) if len(df) else df
    return out


def test_update_equals_rebuild_of_both(stores: dict[str, Any]) -> None:
    updated, rebuilt = _graph(stores["updated"]), _graph(stores["rebuilt"])
    assert updated.keys() == rebuilt.keys()
    for key in updated:
        a, b = updated[key], rebuilt[key]
        assert len(a) == len(b), key
        if len(a):
            pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=key)
    assert load_idmap(stores["updated"]) == load_idmap(stores["rebuilt"])
    fa, fb = load_features(stores["updated"]), load_features(stores["rebuilt"])
    assert fa.keys() == fb.keys()
    for kind in fa:
        np.testing.assert_allclose(fa[kind], fb[kind], atol=1e-6, err_msg=kind)
    with open_store(stores["updated"]) as g:
        vectors = g.node_embeddings("Item")
    ids, emb = vectors
    idx = load_idmap(stores["updated"]).indices("item", ids)
    np.testing.assert_allclose(emb, fa["item"][idx], atol=1e-6)


def test_report_counts_what_was_added_and_changed(split: dict[str, Any], stores: dict[str, Any]) -> None:
    report = stores["report"]
    assert report.added["items"] == 40
    assert set(report.new_ids["item"]) == split["new_items"]
    assert set(report.new_ids["user"]) == split["new_users"]
    assert report.added["triples"] >= 1 + 0  # the new items' facts plus the extra one
    assert report.changed["entities"] == 1 and report.changed_ids["entity"] == [split["blank_entity"]]
    assert report.changed["interactions"] == len(split["merged_keys"]) >= len(split["repeats"])
    assert report.changed["items"] == 0  # the repeated item row with another title: the stored title wins
    rejects = report.rejects.to_frame()
    assert (rejects["reason"] == "unknown item id").sum() == 1
    assert "no-such-item" in set(rejects["id"])
    assert (rejects["action"] == "merged").sum() >= len(split["repeats"]) + 2
    # only the new texts went to the encoder (the rest came from the cache or the store)
    assert report.features["texts"] == {"Scene": 0, "Item": 40, "Entity": 1}  # the new items, the renamed entity
    manifest = read_manifest(stores["updated"])
    assert manifest["updates"][-1]["added"] == report.added
    assert manifest["updates"][-1]["from_generation"] == stores["base_generation"]
    stored = pd.read_csv(current_generation(stores["updated"]) / "rejects.csv", keep_default_na=False)
    assert "no-such-item" in set(stored["id"].astype(str))


def test_merged_interactions_add_their_weights(split: dict[str, Any], stores: dict[str, Any]) -> None:
    r = split["repeats"].iloc[0]
    with open_store(stores["updated"]) as g:
        df = g.query(
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE u.id = $u AND i.id = $i AND r.split = $s "
            "RETURN r.weight AS w",
            u=r["user_id"],
            i=r["item_id"],
            s=r["split"],
        )
        title = g.node("Item", str(split["renamed"]["item_id"].iloc[0]))["title"]
    assert df["w"].tolist() == [2.0]
    assert title != "a different title"


def test_a_failed_update_leaves_the_store_as_it_was(
    split: dict[str, Any], stores: dict[str, Any], encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores["updated"]
    before = current_generation(store).name
    bad = split["root"] / "bad"
    bad.mkdir(exist_ok=True)
    items = _read("items").iloc[:2].copy()
    items.loc[:, "scene"] = "arts" if items["scene"].iloc[0] == "office" else "office"  # an item in two scenes
    items.to_csv(bad / "items.csv", index=False)
    with pytest.raises(Exception, match="two scenes"):
        update(bad, store, encoder=encoder)
    assert current_generation(store).name == before
    # a failure while the copy is being written (after nodes went in) leaves the live graph untouched
    from scenerec.kg.ladybug_store import LadybugStore

    def broken(self: Any, rows: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(LadybugStore, "set_interaction_properties", broken)
    counts = _graph(store)
    with pytest.raises(RuntimeError, match="disk full"):
        update(split["delta"], store, encoder=encoder)
    assert current_generation(store).name == before
    assert not list(store.glob(".building-*"))
    after = _graph(store)
    for key in counts:
        assert len(after[key]) == len(counts[key]), key


def test_update_needs_the_encoder_of_a_store_with_text(split: dict[str, Any], stores: dict[str, Any]) -> None:
    with pytest.raises(StoreError, match="text encoder"):
        update(split["delta"], stores["updated"], embed=None)


@pytest.fixture(scope="module")
def served(
    split: dict[str, Any], stores: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, encoder: Any
) -> Any:
    """A model trained on the base store, then ``Engine.update(delta)``: the engine before and after."""
    from scenerec.engine import Engine

    store = tmp_path_factory.mktemp("served") / "store"
    shutil.copytree(stores["updated"], store)
    (store / "CURRENT").write_text(stores["base_generation"] + "\n")
    for gen in store.glob("gen-*"):
        if gen.name != stores["base_generation"]:
            shutil.rmtree(gen)
    engine = Engine.open(store, read_only=False, encoder=encoder)
    engine.fit("scenegnn", seed=1, epochs=3)
    engine.write_back(k=5)
    old_users = set(engine.idmap.ids("user"))
    before = engine.store.query(
        "MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN u.id AS user, i.id AS item, r.rank AS rank, r.score AS score"
    )
    summary = engine.update(split["delta"], k=5)
    yield {"engine": engine, "store": store, "summary": summary, "before": before, "old_users": old_users}
    engine.close()


def test_engine_update_serves_new_users_and_items(split: dict[str, Any], served: dict[str, Any]) -> None:
    import torch

    from scenerec.engine import Engine
    from scenerec.gnn import ExtendedRecommender

    engine, summary = served["engine"], served["summary"]
    model = engine.trainer.load().recommender
    assert isinstance(model, ExtendedRecommender)
    base = model.base
    assert summary["model"] == "scenegnn" and summary["added"]["items"] == 40
    new_user = sorted(split["new_users"])[0]
    user = engine.idmap.index("user", new_user)
    history = engine.model.splits["train"]
    hist = history.indices[history.indptr[user] : history.indptr[user + 1]]
    # by hand: the trained model's new-user scoring of its known items; its vector times a new item's text vector
    with torch.no_grad():
        u_emb, i_emb = base()
        known = torch.from_numpy(hist[hist < base.num_items].astype(np.int64))
        expected_old = base.score_histories([known], u_emb, i_emb)[0]
        vector = base.history_vectors([known], u_emb, i_emb)[0]
        new_item = sorted(split["new_items"])[0]
        j = engine.idmap.index("item", new_item)
        text = torch.from_numpy(engine.features["item"][[j]])
        item_vec = base.encode_new_items(text, torch.tensor([engine.idmap.index("scene", "office")]))[0]
        got = engine.model.scores(torch.tensor([user]))[0]
    torch.testing.assert_close(got[: base.num_items], expected_old)
    torch.testing.assert_close(got[j], vector @ item_vec)
    recs = engine.recommend(new_user, "office", k=5)
    assert len(recs) == 5 and not set(recs["item_id"]) & {engine.idmap.id("item", int(i)) for i in hist}
    stored = engine.store.query(
        "MATCH (u:User {id: $u})-[r:RECOMMENDED]->(i:Item) WHERE i.scene = $s RETURN i.id AS item ORDER BY r.rank",
        u=new_user,
        s="office",
    )
    assert stored["item"].tolist() == recs["item_id"].tolist()
    # a fresh engine reloads the trained model and extends it the same way
    with Engine.open(served["store"]) as fresh:
        again = fresh.recommend(new_user, "office", k=5)
    pd.testing.assert_frame_equal(again, recs)


def test_engine_update_refreshes_only_the_affected_users(split: dict[str, Any], served: dict[str, Any]) -> None:
    engine, summary, before = served["engine"], served["summary"], served["before"]
    delta = pd.read_csv(split["delta"] / "interactions.csv", dtype=str, keep_default_na=False)
    affected = set(delta[delta["item_id"] != "no-such-item"]["user_id"])
    assert summary["refreshed_users"] == len(affected)
    after = engine.store.query(
        "MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN u.id AS user, i.id AS item, r.rank AS rank"
    )
    key = ["user", "item", "rank"]
    untouched = served["old_users"] - affected
    same = before[before["user"].isin(untouched)][key].sort_values(key).reset_index(drop=True)
    now = after[after["user"].isin(untouched)][key].sort_values(key).reset_index(drop=True)
    assert len(same) > 1000
    pd.testing.assert_frame_equal(same, now)
    for user in sorted(affected)[:5]:
        for scene in ("arts", "office"):
            recs = engine.recommend(user, scene, k=5)
            mine = after[after["user"] == user]
            got = mine[mine["item"].isin(set(engine.items().query("scene == @scene")["item_id"]))]
            assert got.sort_values("rank")["item"].tolist() == recs["item_id"].tolist()


def test_cli_update(
    split: dict[str, Any], stores: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from scenerec.cli import main

    store = tmp_path / "store"
    shutil.copytree(stores["updated"], store)
    (store / "CURRENT").write_text(stores["base_generation"] + "\n")
    capsys.readouterr()
    assert main(["update", str(split["delta"]), "--store", str(store), "--output", "json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["added"] == stores["report"].added and out["model"] is None and out["embedded"] == 0 and out["texts"] == 41
    )
    assert current_generation(store).name == out["generation"] != stores["base_generation"]
    assert main(["update", str(tmp_path / "missing"), "--store", str(store)]) != 0
    assert "error:" in capsys.readouterr().err
