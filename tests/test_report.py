"""The run log (:mod:`scenerec.runlog`) written by the engine and the HTML report (:mod:`scenerec.report`), rendered
in headless Chromium (Debian's ``chromium``, installed by ``make chromium``)."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import main
from scenerec.engine import Engine
from scenerec.errors import DataFormatError
from scenerec.gnn import TrainConfig
from scenerec.kg import EdgeTable, current_generation, open_store
from scenerec.report import REPORT_FILE, alignment_quality, make_report, write_report
from scenerec.runlog import RUNS_FILE, RunLog, json_safe

SCENES = ("arts", "office")
POP = TrainConfig(epochs=1, seed=1, threads=1)
BPR = TrainConfig(epochs=6, seed=1, threads=1, eval_every=2)
CROSS_EPOCHS = 2
#: (arts index, office index, score) of the "aligner's" pairs and the gold pairs (index into the scene's first items).
PREDICTED = [(0, 0, 0.95), (1, 4, 0.85), (2, 2, 0.65), (3, 3, 0.35), (4, 5, 0.90), (5, 1, 0.55)]
GOLD = [(0, 0), (1, 1), (2, 2), (3, 3)]  # (3, 3) is stored office -> arts

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROBE = (
    "<script>window.addEventListener('load', () => { document.documentElement.setAttribute('data-images', "
    "JSON.stringify(Array.from(document.images, i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]))); });"
    "</script>"
)


def _copy(sample_store: Path, dest: Path) -> Path:
    shutil.copytree(sample_store, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


def _scene_items(store: Path) -> dict[str, list[str]]:
    with open_store(store) as graph:
        df = graph.query(
            "MATCH (i:Item) WHERE i.scene IN $scenes RETURN i.id AS id, i.scene AS scene", scenes=list(SCENES)
        )
    return {s: sorted(df.loc[df["scene"] == s, "id"].astype(str))[:6] for s in SCENES}


def _write_pairs(store: Path, items: dict[str, list[str]]) -> None:
    """Gold SAME_AS pairs (loaded as the dataset's own, one of them office -> arts) and an aligner's scored pairs."""
    arts, office = items["arts"], items["office"]
    gold = pd.DataFrame(
        [(arts[a], office[o]) if a != 3 else (office[o], arts[a]) for a, o in GOLD], columns=["from", "to"]
    ).assign(score=1.0, method="gold")
    predicted = pd.DataFrame(
        {
            "left": [arts[a] for a, _, _ in PREDICTED],
            "right": [office[o] for _, o, _ in PREDICTED],
            "kind": "item",
            "score": [s for _, _, s in PREDICTED],
        }
    )
    with open_store(store, read_only=False) as graph:
        assert graph.load_edges(EdgeTable("SAME_AS", "Item", "Item", gold)) == len(GOLD)
        assert graph.write_alignments(predicted, "gcn", scenes=("arts", "office")) == len(PREDICTED)


@pytest.fixture(scope="module")
def logged(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the sample store with alignment pairs and a run log: pop (both scenes evaluated), two crossscene
    variants and an office-only BPR (office evaluated), then the saved BPR evaluated on arts by a fresh engine."""
    store = _copy(sample_store, tmp_path_factory.mktemp("report") / "store")
    items = _scene_items(store)
    _write_pairs(store, items)
    out: dict[str, Any] = {"store": store, "items": items, "evaluations": []}
    with Engine.open(store) as engine:
        out["fits"] = [engine.fit("pop", config=POP)]
        out["evaluations"] += [engine.evaluate(s) for s in SCENES]
        out["fits"].append(engine.fit("crossscene", seed=1, epochs=CROSS_EPOCHS, options={"gate": False}))
        out["evaluations"].append(engine.evaluate("office"))
        out["fits"].append(engine.fit("crossscene", seed=1, epochs=CROSS_EPOCHS))
        out["evaluations"].append(engine.evaluate("office"))
        out["fits"].append(engine.fit("bpr", config=BPR, scenes=["office"]))
        out["evaluations"].append(engine.evaluate("office"))
    with Engine.open(store) as engine:  # the model comes from disk: the label from its saved meta
        out["evaluations"].append(engine.evaluate("arts", ks=(5, 10)))
    return out


FIT_LABELS = ["pop", "crossscene [gate=False]", "crossscene", "bpr [scenes=office]"]
EVAL_LABELS = ["pop", "pop", "crossscene [gate=False]", "crossscene", "bpr [scenes=office]", "bpr [scenes=office]"]


def test_the_engine_logs_every_fit_and_evaluation(logged: dict[str, Any]) -> None:
    log = RunLog.for_store(logged["store"])
    assert log.path == current_generation(logged["store"]) / RUNS_FILE
    records = log.read()
    kinds = ["fit", "evaluate", "evaluate"] + ["fit", "evaluate"] * 3 + ["evaluate"]
    assert [r["kind"] for r in records] == kinds
    fits, evaluations = log.read("fit"), log.read("evaluate")
    assert [f["label"] for f in fits] == FIT_LABELS
    assert [f["model"] for f in fits] == ["pop", "crossscene", "crossscene", "bpr"]
    for record, result in zip(fits, logged["fits"], strict=True):
        assert record["seed"] == result.seed == 1
        assert record["best_epoch"] == result.best_epoch
        assert record["seconds_total"] == pytest.approx(result.seconds_total)
        assert record["history"] == json_safe(result.history)
        assert record["valid"] == json_safe(result.best_valid)
        assert record["time"].endswith("+00:00")
    assert [len(f["history"]) for f in fits] == [0, CROSS_EPOCHS, CROSS_EPOCHS, BPR.epochs]
    assert {"epoch", "loss", "valid_ndcg@10", "seconds"} <= set(fits[-1]["history"][0])
    assert fits[-1]["history"][0]["valid_ndcg@10"] is None  # evaluated every 2nd epoch only
    # the crossscene runs propagate over the 4 gold + 6 predicted item links; the others use none
    assert [f["alignment"] for f in fits] == [None, len(GOLD) + len(PREDICTED), len(GOLD) + len(PREDICTED), None]
    assert [f["scenes"] for f in fits] == [None, None, None, ["office"]]
    assert [f["options"] for f in fits] == [{}, {"gate": False}, {}, {}]
    # every evaluation is logged with exactly the numbers it returned
    assert [e["label"] for e in evaluations] == EVAL_LABELS
    assert [e["scene"] for e in evaluations] == ["arts", "office", "office", "office", "office", "arts"]
    for record, result in zip(evaluations, logged["evaluations"], strict=True):
        assert record["metrics"] == json_safe(result)
        assert record["metrics"]["ndcg@10"] == result["ndcg@10"]
    assert "ndcg@5" in evaluations[-1]["metrics"] and evaluations[-1]["model"] == "bpr"


def test_run_log_is_json_safe_and_names_a_corrupt_line(tmp_path: Path) -> None:
    log = RunLog(tmp_path / RUNS_FILE)
    assert log.read() == []
    written = log.append("x", {"nan": float("nan"), "inf": math.inf, "f32": np.float32(1.5), "arr": np.arange(2)})
    log.append("y", {"n": np.int64(3), "t": (1, "a")})
    assert written["kind"] == "x" and written["nan"] is None
    assert log.read("x") == [written]
    assert log.read("x")[0] | {"time": None} == {
        "kind": "x",
        "time": None,
        "nan": None,
        "inf": None,
        "f32": 1.5,
        "arr": [0, 1],
    }
    assert log.read("y")[0]["t"] == [1, "a"] and log.read("y")[0]["n"] == 3
    with log.path.open("a", encoding="utf-8") as f:
        f.write('{"kind": "fit", "broken\n')
    with pytest.raises(DataFormatError, match=r"runs\.jsonl, line 3: not a JSON run record") as info:
        log.read()
    assert info.value.line == 3 and info.value.file == str(log.path)


def test_alignment_precision_at_each_threshold(logged: dict[str, Any]) -> None:
    with open_store(logged["store"]) as graph:
        quality = alignment_quality(graph)
    assert set(zip(quality["method"], quality["left"], quality["right"], strict=True)) == {("gcn", "arts", "office")}
    assert quality["threshold"].tolist() == pytest.approx([i / 10 for i in range(11)])
    gold = set(GOLD)
    partnered = {a for a, _ in GOLD}
    for t in (0.3, 0.5, 0.9):
        accepted = [(a, o) for a, o, s in PREDICTED if s >= t]
        with_gold = [(a, o) for a, o in accepted if a in partnered]
        correct = [p for p in with_gold if p in gold]
        row = quality[np.isclose(quality["threshold"], t)].iloc[0]
        assert (row["accepted"], row["with_gold"], row["correct"]) == (len(accepted), len(with_gold), len(correct))
        assert row["precision"] == pytest.approx(len(correct) / len(with_gold))
        assert row["recall"] == pytest.approx(len(correct) / len(GOLD))
    # by hand at 0.5: five pairs accepted, three of them have a gold partner, two are right
    row = quality[np.isclose(quality["threshold"], 0.5)].iloc[0]
    assert (row["accepted"], row["with_gold"], row["correct"], row["precision"]) == (5, 3, 2, pytest.approx(2 / 3))
    top = quality[np.isclose(quality["threshold"], 1.0)].iloc[0]
    assert top["accepted"] == 0 and math.isnan(top["precision"]) and top["recall"] == 0.0


def _render(page: Path, tmp: Path) -> list[list[Any]]:
    """``[alt, complete, naturalWidth, naturalHeight]`` of every image of ``page`` after Chromium loaded it."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail(
            "chromium is not installed: run `make chromium` (installs Debian's chromium package; `make test` does it)",
            pytrace=False,
        )
    probe = tmp / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    profile = tmp / "chromium-profile"
    profile.mkdir()
    proc = subprocess.run(
        [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            "--virtual-time-budget=10000",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    found = re.search(r'data-images="([^"]*)"', proc.stdout)
    assert found, f"chromium printed no image report (exit {proc.returncode}): {proc.stderr[-2000:]}"
    images: list[list[Any]] = json.loads(html.unescape(found.group(1)))
    return images


def _sections(text: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', text, flags=re.S))


def _check_page(text: str) -> None:
    """One self-contained page: no scripts, links, external sources or unescaped markup from data."""
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert re.findall(r'src="([^"]*)"', text) and all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', text)
    )
    assert "http://" not in text and "https://" not in text


def test_report_renders_every_image(logged: dict[str, Any], tmp_path: Path) -> None:
    path = write_report(logged["store"], tmp_path / "out")
    assert path == tmp_path / "out" / REPORT_FILE
    text = path.read_text(encoding="utf-8")
    _check_page(text)
    sections = _sections(text)
    assert list(sections) == ["dataset", "evaluation", "ablation", "alignment", "training"]
    for key, body in sections.items():  # every section has data here: a figure and a table, no "no data" note
        assert body.count("<img ") == 1 and "<table>" in body and 'class="none"' not in body, key
    # the numbers of the latest evaluation per (label, scene) are in the tables; older ones not
    evaluation = sections["evaluation"]
    for label in ("pop", "crossscene [gate=False]", "crossscene", "bpr [scenes=office]"):
        assert f"<td>{html.escape(label)}</td>" in evaluation
    assert f"{logged['evaluations'][-1]['ndcg@10']:.4f}" in evaluation
    ablation = sections["ablation"]
    assert ablation.index("<td>+ alignment</td>") < ablation.index("<td>+ gate</td>")
    assert "<td>pop</td>" not in ablation
    assert f'<td class="num">{2 / 3:.4f}</td>' in sections["alignment"]  # precision at 0.5
    assert "bpr [scenes=office]" in sections["training"]
    assert html.escape(str(current_generation(logged["store"]).name)) in text

    images = _render(path, tmp_path)
    assert len(images) == text.count("<img ") == 5
    assert len(images) >= sum('class="none"' not in body for body in sections.values())
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    assert all(alt for alt, *_ in images)


def test_report_without_runs_says_so(sample_store: Path, tmp_path: Path) -> None:
    store = _copy(sample_store, tmp_path / "store")
    report = make_report(store)
    assert [s.key for s in report.sections if s.empty] == ["evaluation", "ablation", "alignment", "training"]
    path = report.write(tmp_path / "out")
    text = path.read_text(encoding="utf-8")
    _check_page(text)
    sections = _sections(text)
    for key in ("evaluation", "ablation", "alignment", "training"):
        assert "<img " not in sections[key] and 'class="none"' in sections[key], key
    assert "No evaluation has been logged" in sections["evaluation"]
    assert "no SAME_AS pairs written by an aligner" in sections["alignment"]
    assert "No training run has been logged" in sections["training"]
    images = _render(path, tmp_path)
    assert len(images) == text.count("<img ") == 1  # the dataset statistics
    assert all(complete and width > 0 and height > 0 for _, complete, width, height in images)
    assert not RunLog.for_store(store).path.exists()  # writing the report logs nothing


def test_cli_report(logged: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["report", "--store", str(logged["store"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / REPORT_FILE}" in printed and "5 images" in printed
    assert "Alignment quality: 1 image" in printed and "Training curves: 1 image" in printed
    assert (out / REPORT_FILE).is_file()

    assert main(["report", "--store", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no graph has been built" in err and err.count("\n") == 1
    (tmp_path / "file").write_text("x")
    assert main(["report", "--store", str(logged["store"]), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
