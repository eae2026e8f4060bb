"""Batch rebuild (atomic generations) and the query CLI, on the bundled sample and on real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenerec.cli import SAMPLE, main
from scenerec.kg import open_store, read_manifest, rebuild
from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.neo4j_store import Neo4jStore


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("s") / "store"
    rebuild(SAMPLE, store)
    return store


def test_rebuild_prints_counts_per_label_and_scene_and_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "rebuild", str(SAMPLE), "--store", str(tmp_path / "st"), "--quiet", "--no-embed")
    assert code == 0
    assert "nodes:   Scene 2, User 700, Item 2,211, Entity 1,233" in out
    assert "INTERACTED 8,717" in out and "RELATED 5,013" in out
    assert "office" in out and "arts" in out
    assert "153  merged    repeated interaction merged" in out
    manifest = read_manifest(tmp_path / "st")
    assert manifest["counts"]["nodes"]["Item"] == 2211
    assert manifest["rejects"] == 2364
    rejects = Path(out.split("rejects: 2,364 rows -> ")[1].split("\n")[0])
    assert rejects.is_file() and len(rejects.read_text().splitlines()) == 2364 + 1


def test_query_formats_and_params(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cypher = "MATCH (i:Item) WHERE i.scene = $scene AND i.id IN $ids RETURN i.id AS id, i.scene AS scene ORDER BY id"
    code, out, _ = run_cli(
        capsys,
        "query",
        "--store",
        str(built),
        cypher,
        "--param",
        "scene=office",
        "--param",
        'ids:=["18647", "2"]',
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out) == [{"id": "18647", "scene": "office"}]
    code, out, _ = run_cli(
        capsys, "query", "--store", str(built), "MATCH (s:Scene) RETURN s.id AS id ORDER BY id", "--format", "csv"
    )
    assert out.splitlines() == ["id", "arts", "office"]
    code, out, _ = run_cli(capsys, "query", "--store", str(built), "MATCH (s:Scene) RETURN s.id AS id ORDER BY id")
    assert out.split() == ["id", "arts", "office"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["query", "--store", "{missing}", "RETURN 1"], "no graph has been built here"),
        (["query", "--store", "{built}", "MATCH (n:Nope) RETURN n"], "LadybugDB"),
        (["query", "--store", "{built}", "RETURN $x", "--param", "x"], "expected key=value"),
        (["rebuild", "{missing}", "--store", "{tmp}"], "dataset path does not exist"),
        (["rebuild", "{built}", "--store", "{tmp}", "--format", "nope"], "unknown dataset format 'nope'"),
    ],
)
def test_cli_errors_are_one_line(
    argv: list[str], needle: str, built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(missing=tmp_path / "missing", built=built, tmp=tmp_path / "t") for a in argv]
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err


def test_failed_rebuild_leaves_previous_store_live(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    rebuild(SAMPLE, store)
    before = read_manifest(store)["created"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "items.csv").write_text("item_id,scene\ni1,a\ni1,b\n")
    from scenerec.errors import ConflictingIdError

    with pytest.raises(ConflictingIdError):
        rebuild(bad, store)

    def boom(self: LadybugStore, *a: object, **k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(LadybugStore, "load_tables", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild(SAMPLE, store)
    assert read_manifest(store)["created"] == before
    assert not list(store.glob(".building-*"))
    with open_store(store) as s:
        assert s.counts()["nodes"]["Item"] == 2211


def test_cypher_in_ids_is_stored_verbatim_and_harmless(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    evil = 'x"}) MATCH (n) DETACH DELETE n //'
    evil2 = "'); DROP TABLE Item; --"
    (d / "items.csv").write_text("item_id,scene,title\ni1,s,one\ni2,s,two\n")
    (d / "interactions.csv").write_text(f'user_id,item_id\n"{evil.replace(chr(34), chr(34) * 2)}",i1\n"{evil2}",i2\n')
    rebuild(d, tmp_path / "st")
    with open_store(tmp_path / "st") as s:
        users = sorted(s.query("MATCH (u:User) RETURN u.id AS id")["id"])
        assert users == sorted([evil, evil2])
        hit = s.query("MATCH (u:User)-[:INTERACTED]->(i:Item) WHERE u.id = $u RETURN i.id AS item", u=evil)
        assert hit["item"].tolist() == ["i1"]
        assert s.counts()["nodes"] == {"Scene": 1, "User": 2, "Item": 2, "Entity": 0}


def test_generations_are_pruned_and_readers_see_the_live_one(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for _ in range(3):
        rebuild(SAMPLE, store)
    gens = sorted(p.name for p in store.glob("gen-*"))
    assert len(gens) == 2
    assert (store / "CURRENT").read_text().strip() == gens[-1]


@pytest.mark.slow
def test_killed_rebuild_leaves_previous_store_intact(amazon_urllm: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    rebuild(SAMPLE, store)
    live = (store / "CURRENT").read_text()
    cmd = [
        sys.executable,
        "-m",
        "scenerec.cli",
        "rebuild",
        str(amazon_urllm),
        "--store",
        str(store),
        "--quiet",
        "--no-embed",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(store.glob(".building-*")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert list(store.glob(".building-*")), "the rebuild never started writing"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (store / "CURRENT").read_text() == live
    with open_store(store) as s:
        assert s.counts()["nodes"]["Item"] == 2211
    rebuild(SAMPLE, store)  # the next rebuild clears the dead build folder
    assert not list(store.glob(".building-*"))


def test_demo_command_runs_the_demo_with_its_folders() -> None:
    # The demo itself runs (once per suite) in tests/test_demo.py; here: the command's arguments reach it.
    from scenerec.cli import build_parser, cmd_demo
    from scenerec.demo import SAMPLE as DEMO_SAMPLE

    args = build_parser().parse_args(["demo", "--store", "s", "--report", "r", "--quiet"])
    assert args.func is cmd_demo and (args.store, args.report, args.quiet) == ("s", "r", True)
    assert Path(build_parser().parse_args(["demo"]).sample) == DEMO_SAMPLE


@pytest.mark.neo4j
def test_rebuild_into_neo4j_then_query_through_the_store_folder(
    neo4j_root: Neo4jStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stand-in takes parameter maps of ~4 KB at most; the rebuild shares the session's driver with the suite.
    neo = Neo4jStore(driver=neo4j_root.driver, max_batch_bytes=3000, timeout=30.0)
    neo.clear()
    store = tmp_path / "store"
    report = rebuild(SAMPLE, store, backend="neo4j", graph=neo)
    assert report.counts["nodes"] == {"Scene": 2, "User": 700, "Item": 2211, "Entity": 1233}
    assert report.counts["edges"]["INTERACTED"] == 8717
    manifest = read_manifest(store)
    assert manifest["backend"] == "neo4j" and manifest["neo4j"]["uri"] == neo.uri
    assert "password" not in json.dumps(manifest)
    shared = neo.shared_entities(limit=3)
    assert shared["entity"].iloc[0] == "brand:avery"
    # A second rebuild from a dataset that fails leaves the Neo4j graph as it was.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "items.csv").write_text("item_id,scene\nz1,a\n")
    (bad / "triples.csv").write_text("head,relation,tail\nz1,r,e1\n")
    monkeypatch.setattr(Neo4jStore, "_load_edges", _fail_loading_edges)
    with pytest.raises(RuntimeError, match="injected"):
        rebuild(bad, store, backend="neo4j", graph=neo)
    assert neo.counts()["nodes"]["Item"] == 2211
    assert neo.query("MATCH (i:Item) WHERE i.id = $id RETURN i.id", id="z1").empty
    neo.clear()
    neo.close()


def _fail_loading_edges(self: Neo4jStore, table: object) -> int:
    raise RuntimeError("injected failure while loading relationships")
