"""Graph -> HeteroData on the bundled sample (real store, real text embeddings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scenerec.errors import SchemaError
from scenerec.gnn.data import SPLIT_CODES, build_hetero, validate
from scenerec.kg import load_features, open_store, read_manifest


def test_hetero_from_the_sample_store(sample_store: Path) -> None:
    with open_store(sample_store) as store:
        edges = store.edge_index()
        counts = store.counts()
        split_counts = store.query("MATCH ()-[r:INTERACTED]->() RETURN r.split AS split, count(r) AS n")
    data = build_hetero(edges, load_features(sample_store))
    assert data["user"].num_nodes == counts["nodes"]["User"] == 700
    assert data["item"].x.shape == (2211, 384) and bool(data["item"].has_text.all())
    inter = data["user", "interacted", "item"]
    assert inter.edge_index.shape[1] == counts["edges"]["INTERACTED"]
    for split, n in zip(split_counts["split"], split_counts["n"], strict=True):
        assert int((inter.split == SPLIT_CODES[split]).sum()) == n
    # Each interaction carries its item's scene; both scenes are present.
    assert torch.equal(inter.scene, data["item"].scene[inter.edge_index[1]])
    assert set(inter.scene.tolist()) == {0, 1} and data.scenes == ["arts", "office"]
    related = data["item", "related", "entity"]
    assert {data.relations[i] for i in related.relation.unique().tolist()} == {"brand", "category"}
    total_related = sum(data[et].edge_index.shape[1] for et in data.edge_types if et[1] == "related")
    assert total_related == counts["edges"]["RELATED"]
    # Index -> id round trip through the id map that ships with the store.
    u, i = inter.edge_index[:, 0].tolist()
    with open_store(sample_store) as store:
        hit = store.query(
            "MATCH (u:User)-[:INTERACTED]->(i:Item) WHERE u.id = $u AND i.id = $i RETURN count(*) AS n",
            u=edges.idmap.id("user", u),
            i=edges.idmap.id("item", i),
        )
    assert int(hit["n"].iloc[0]) >= 1
    assert read_manifest(sample_store)["features"]["dim"] == data["item"].x.shape[1]


def test_validation_errors(sample_store: Path) -> None:
    with open_store(sample_store) as store:
        edges = store.edge_index()
    feats = load_features(sample_store)
    with pytest.raises(SchemaError, match="expected"):
        build_hetero(edges, {"item": feats["item"][:10]})
    bad = {k: v.copy() for k, v in feats.items()}
    bad["entity"][0, 0] = np.nan
    with pytest.raises(SchemaError, match="NaN"):
        build_hetero(edges, bad)
    data = build_hetero(edges, feats)
    data["user", "interacted", "item"].weight = torch.ones(3)
    with pytest.raises(SchemaError, match="weight"):
        validate(data)
