"""scenerec classify-scenes on the bundled sample with the scene of some items blanked (real model, real store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import SAMPLE, main
from scenerec.engine import Engine
from scenerec.kg import open_store
from scenerec.pipeline import build


@pytest.fixture(scope="module")
def blanked(
    sample_store: Path, encoder: object, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """The sample with 60 items (30 per scene, seeded) given no scene; their true scenes."""
    folder = tmp_path_factory.mktemp("blank") / "ds"
    shutil.copytree(SAMPLE, folder)
    items = pd.read_csv(folder / "items.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(7)
    picked = np.concatenate(
        [rng.choice(np.flatnonzero(items["scene"] == s), 30, replace=False) for s in ("arts", "office")]
    )
    truth = dict(zip(items.loc[picked, "item_id"], items.loc[picked, "scene"], strict=True))
    items.loc[picked, "scene"] = ""
    items.to_csv(folder / "items.csv", index=False)
    store = folder.parent / "store"
    shutil.copytree(sample_store / "cache", store / "cache")  # same texts: no re-embedding
    report = build(folder, store, encoder=encoder)  # type: ignore[arg-type]
    assert report.features["encoded"] == 0
    return store, truth


def test_classify_scenes_reports_and_assigns(blanked: tuple[Path, dict[str, str]], encoder: object) -> None:
    store, truth = blanked
    with Engine.open(store, read_only=False, encoder=encoder) as engine:  # type: ignore[arg-type]
        result = engine.classify_scenes(min_confidence=0.8)
    report = result.report
    print(report)
    assert report.accuracy > 0.9 and report.macro_f1 > 0.9
    assert set(report.per_scene.index) == {"arts", "office"}
    rows = result.assignments
    assert set(rows["id"]) == set(truth) and len(rows) == 60
    assigned = rows[rows["assigned"]]
    assert (assigned["confidence"] >= 0.8).all() and (rows.loc[~rows["assigned"], "confidence"] < 0.8).all()
    right = sum(truth[i] == s for i, s in zip(assigned["id"], assigned["scene"], strict=True))
    assert right >= 0.9 * len(assigned) and len(assigned) >= 40
    assert result.written == len(assigned)
    with open_store(store) as s:
        got = s.query(
            "MATCH (i:Item)-[:IN_SCENE]->(sc:Scene) WHERE i.id IN $ids RETURN i.id AS id, sc.id AS scene, "
            "i.scene_confidence AS c",
            ids=list(truth),
        )
    assert dict(zip(got["id"], got["scene"], strict=True)) == dict(zip(assigned["id"], assigned["scene"], strict=True))
    assert got["c"].min() >= 0.8


def test_classify_scenes_cli_json_dry_run(
    blanked: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = blanked
    code = main(["classify-scenes", "--store", str(store), "--dry-run", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["accuracy"] > 0.9 and set(out["f1"]) == {"arts", "office"}
    assert out["written"] == 0
    # Whatever is still without a scene and below the threshold is listed, not assigned.
    assert all(r["confidence"] < 0.8 for r in out["low_confidence"])
    assert set(out["per_scene"]["arts"]) == {"precision", "recall", "f1", "support"}
