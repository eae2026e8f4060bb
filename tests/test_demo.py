"""The end-to-end demo (``scenerec.demo.run_demo``) on the bundled sample: the tables it prints and returns."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

from scenerec.demo import SAMPLE, SAMPLE_PRESET, DemoPreset, run_demo


@pytest.mark.slow
def test_run_demo_returns_the_tables_it_prints(sample_store: Path, tmp_path: Path) -> None:
    # A warm embedding cache (from the session's build of the same sample) skips the text model.
    shutil.copytree(sample_store / "cache", tmp_path / "store" / "cache")
    out = io.StringIO()
    result = run_demo(SAMPLE, tmp_path / "store", tmp_path / "report", quiet=True, out=out)
    text, tables = out.getvalue(), result.tables

    titles = [title for title, _, _ in SAMPLE_PRESET.queries]
    assert list(tables) == [
        "scenes",
        "shared_entities",
        *titles,
        "neighbourhood",
        "search",
        "alignment",
        "ablation",
        "served",
        "summary",
    ]
    with pd.option_context("display.max_colwidth", 60, "display.width", 160):
        for name, table in tables.items():
            assert not table.empty, name
            assert table.to_string(index=False) in text, name  # each table is printed as returned

    assert sorted(tables["scenes"]["scene"]) == ["arts", "office"]
    assert set(tables["scenes"]["users"]) == {700}
    assert tables["shared_entities"]["entity"].iloc[0] == "brand:avery"
    assert tables[titles[0]]["shared_users"].tolist() == [700]
    brand_items = tables[titles[2]]["title"]
    assert "Office items of the brand most shared between the scenes (brand:avery)" in text
    assert len(brand_items) == 5 and all("avery" in t for t in brand_items)
    assert set(tables["neighbourhood"]["hops"]) == {1, 2}
    assert set(tables["search"]["scene"]) == {"office"} and "gel" in tables["search"]["title"].iloc[0]

    ablation = tables["ablation"]
    variants = [variant for variant, _, _ in SAMPLE_PRESET.variants]
    assert ablation["variant"].tolist() == [v for v in variants for _ in ("arts", "office")]
    assert ablation["scene"].tolist() == ["arts", "office"] * len(variants)
    assert (ablation["recall@20"] >= ablation["recall@10"]).all()
    assert ablation[["recall@10", "ndcg@10", "recall@20", "ndcg@20"]].stack().between(0, 1).all()

    # The written-back edges serve, through one Cypher query, the ranking that Engine.recommend gave.
    assert len(result.recommendations) == 2
    user, recs = list(result.recommendations.items())[-1]
    served = tables["served"]
    assert served["rank"].tolist() == [1, 2, 3, 4, 5]
    assert served["item"].astype(str).head(3).tolist() == recs["item_id"].astype(str).tolist()
    assert f"== Served from the graph, one Cypher query (user {user}, scene office)" in text
    assert all(len(paths) >= 1 for paths in recs["explanation"])

    steps = [s.step for s in result.steps]
    assert steps == ["rebuild + embed", "align", "train + evaluate", "write back", "explain", "report"]
    assert tables["summary"]["step"].tolist() == steps
    assert result.steps[0].what == "4146 nodes, 15941 relationships, 3446 texts embedded"
    assert "3,446 texts embedded with all-MiniLM-L6-v2 (384 dims): 3,446 from the cache" in text
    assert result.seconds == pytest.approx(sum(s.seconds for s in result.steps))
    assert result.report == tmp_path / "report" / "report.html" and result.report.is_file()
    assert result.rebuild.counts["nodes"]["Item"] == 2211
    assert text.splitlines()[-6].startswith("Query it yourself:  scenerec query --store ")
    assert '"watercolor paper" -k 5' in text


def test_the_preset_names_the_sample_scenes_it_uses() -> None:
    # The preset is data about the sample: its target scene and the scenes its queries name exist there.
    items = pd.read_csv(SAMPLE / "items.csv", dtype=str)
    scenes = set(items["scene"])
    assert SAMPLE_PRESET.target in scenes
    assert {p["scene"] for _, _, p in SAMPLE_PRESET.queries if "scene" in p} <= scenes
    other = DemoPreset(name="x", target="arts", search="s", hint_search="h", queries=())
    assert other.variants[1][2] == {"scenes": ["arts"], "options": {"gate": False}}
    assert [v[0] for v in other.variants] == [v[0] for v in SAMPLE_PRESET.variants]
