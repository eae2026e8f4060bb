"""One writer at a time (the store's writer lock), and generations that go live only when all their work is done.

Real processes hold and lose the lock here (``fcntl.flock`` is per process), real rebuilds, fits and updates race
on the bundled sample, and readers query the live graph while a writer writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from scenerec.cli import SAMPLE, main
from scenerec.engine import MODEL_DIR, Engine
from scenerec.errors import GenerationChangedError, StoreError, StoreLockedError, StoreNotFoundError
from scenerec.gnn import TrainConfig
from scenerec.kg import current_generation, open_store, read_manifest, rebuild
from scenerec.kg.lock import LOCK_FILE, StagedGeneration, StoreLock, holds_lock, read_holder, switch_generation

#: Holds the lock of argv[1] as command argv[2] for argv[3] seconds (or until killed), saying when it has it.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from scenerec.kg.lock import StoreLock
    with StoreLock(sys.argv[1], sys.argv[2]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)
POP = TrainConfig(epochs=1, seed=1, threads=1)


def _hold(store: Path, command: str = "rebuild", seconds: float = 600.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), command, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    store = tmp_path / "store"
    store.mkdir()
    proc = _hold(store)
    yield store, proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("lock") / "store"
    rebuild(SAMPLE, store)
    return store


def _copy(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns(LOCK_FILE))
    return dest


# ---------------------------------------------------------------- the lock itself
def test_a_second_writer_fails_at_once_naming_the_holder(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    store, proc = holder
    t0 = time.monotonic()
    with pytest.raises(StoreLockedError) as err:
        StoreLock(store, "update").acquire()
    assert time.monotonic() - t0 < 1.0
    message = str(err.value)
    assert "\n" not in message
    assert f"pid {proc.pid} (rebuild), since 20" in message and "--wait SECONDS" in message
    assert read_holder(store)["pid"] == proc.pid and not holds_lock(store)


def test_a_writer_waits_for_the_holder_up_to_its_timeout(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    proc = _hold(store, "fit", seconds=2.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError, match=rf"after waiting 0.5 s: pid {proc.pid} \(fit\)"):
            StoreLock(store, "update", wait=0.5).acquire()
        assert 0.5 <= time.monotonic() - t0 < 1.5
        with StoreLock(store, "update", wait=30):  # the holder lets go after 2 s
            assert holds_lock(store) and read_holder(store)["pid"] == os.getpid()
            assert read_holder(store)["command"] == "update"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert not holds_lock(store) and read_holder(store) == {}


def test_the_lock_of_a_killed_writer_is_taken_over_at_once(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    store, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_holder(store)["pid"] == proc.pid  # its record is still there, its lock is not
    t0 = time.monotonic()
    with StoreLock(store, "rebuild"):
        assert time.monotonic() - t0 < 1.0
        assert read_holder(store)["pid"] == os.getpid()


def test_the_lock_is_reentrant_within_a_process_and_checks_its_folder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pytest.raises(StoreNotFoundError, match="no graph has been built here"):
        StoreLock(store, "fit").acquire()
    assert not store.exists()
    with StoreLock(store, "update", create=True), StoreLock(store, "rebuild"):
        assert holds_lock(store)
    assert not holds_lock(store)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a store folder"):
        StoreLock(tmp_path / "file", "rebuild", create=True).acquire()
    with pytest.raises(StoreError, match="non-negative"):
        StoreLock(store, "fit", wait=-1)


def test_generations_switch_only_under_the_lock(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(StoreError, match="writer lock"):
        switch_generation(store, "gen-x")
    with pytest.raises(StoreError, match="writer lock"), StagedGeneration(store):
        pass
    with StoreLock(store, "rebuild"):
        with pytest.raises(RuntimeError), StagedGeneration(store) as failed:
            (failed.path / "manifest.json").write_text("{}")
            raise RuntimeError("the writer failed")
        assert not failed.path.exists() and not (store / "CURRENT").exists()
        with StagedGeneration(store) as staged:
            (staged.path / "manifest.json").write_text("{}")
        assert current_generation(store).name == staged.name and not staged.path.exists()


# ---------------------------------------------------------------- every writer of the CLI takes it
WRITERS = {
    "rebuild": ["rebuild", str(SAMPLE), "--no-embed", "--quiet"],
    "update": ["update", str(SAMPLE), "--quiet"],
    "fit": ["fit", "--model", "pop", "--epochs", "1", "--quiet"],
    "align": ["align", "--left", "arts", "--right", "office"],
    "classify-scenes": ["classify-scenes"],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_every_writer_refuses_while_another_writes(
    command: str, built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _copy(built, tmp_path / "store")
    live = current_generation(store).name
    proc = _hold(store, "scenerec rebuild")
    try:
        argv = WRITERS[command]
        t0 = time.monotonic()
        code = main([argv[0], *argv[1:], "--store", str(store)])
        err = capsys.readouterr().err
        assert code == 2 and time.monotonic() - t0 < 10
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"another writer holds the store: pid {proc.pid} (scenerec rebuild), since" in err
        assert current_generation(store).name == live and sorted(p.name for p in store.glob("gen-*")) == [live]
    finally:
        proc.kill()
        proc.wait()


def test_read_only_commands_do_not_wait_for_a_writer(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = _hold(built, "scenerec rebuild")
    try:
        assert main(["query", "--store", str(built), "MATCH (i:Item) RETURN count(i) AS n"]) == 0
        assert "2211" in capsys.readouterr().out
        assert main(["info", "--store", str(built)]) == 0
        assert main(["rebuild", str(SAMPLE), "--store", str(built), "--dry-run"]) == 0
    finally:
        proc.kill()
        proc.wait()


def test_fit_waits_for_the_writer_with_wait(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _copy(built, tmp_path / "store")
    proc = _hold(store, "scenerec update", seconds=2.0)
    try:
        t0 = time.monotonic()
        code = main(["fit", "--store", str(store), "--model", "pop", "--epochs", "1", "--quiet", "--wait", "60"])
        assert code == 0, capsys.readouterr().err
        assert time.monotonic() - t0 >= 1.0
        assert (current_generation(store) / MODEL_DIR / "meta.json").is_file()
    finally:
        proc.kill()
    for bad in ("-3", "soon", "nan"):
        with pytest.raises(SystemExit):
            main(["fit", "--store", str(store), "--wait", bad])
        assert "non-negative number of seconds" in capsys.readouterr().err


def _cli(*argv: str) -> subprocess.Popen[str]:
    code = "import sys; from scenerec.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_holder(store: Path, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while read_holder(store).get("pid") != pid:
        assert time.monotonic() < deadline, "the writer never took the lock"
        time.sleep(0.02)


def test_rebuild_and_update_started_together_never_lose_work(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The race of the issue: a rebuild and an update a moment apart. Without --wait the update fails naming the
    rebuild; with --wait it runs after it, on the rebuild's generation."""
    store = _copy(built, tmp_path / "store")
    first = _cli("rebuild", str(SAMPLE), "--store", str(store), "--no-embed", "--quiet")
    _wait_for_holder(store, first.pid)
    waiting = _cli("update", str(SAMPLE), "--store", str(store), "--quiet", "--wait", "300", "--output", "json")
    # in this process, so that it reaches the lock within milliseconds, while the rebuild (seconds) holds it
    assert main(["update", str(SAMPLE), "--store", str(store), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"pid {first.pid} (rebuild)" in err and "Traceback" not in err
    assert first.wait(timeout=300) == 0
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    summary = json.loads(out)
    updates = read_manifest(store)["updates"]
    assert current_generation(store).name == summary["generation"]
    assert updates[-1]["from_generation"].endswith(f"-{first.pid}")  # the update read the rebuild's generation


# ---------------------------------------------------------------- work that belongs to a generation
def test_fit_refuses_to_save_into_a_generation_it_did_not_read(built: Path, tmp_path: Path) -> None:
    store = _copy(built, tmp_path / "store")
    with Engine.open(store, read_only=False) as engine:
        read = engine.generation
        rebuild(SAMPLE, store)  # another writer switches the store meanwhile
        newer = current_generation(store).name
        with pytest.raises(GenerationChangedError, match=f"generation {newer} live since this engine read {read}"):
            engine.fit("pop", config=POP, write_back=5)
    assert current_generation(store).name == newer
    assert not (store / newer / MODEL_DIR).exists() and not list(store.glob(".building-*"))


def _recommended(store: Path, generation: str) -> pd.DataFrame:
    with open_store(store, generation=generation) as graph:
        return graph.query("MATCH (:User)-[r:RECOMMENDED]->(:Item) RETURN r.model AS model, count(*) AS n")


def test_a_fit_goes_live_with_its_recommendations_and_readers_never_fail(built: Path, tmp_path: Path) -> None:
    """Readers query the live graph while `scenerec fit` trains, saves and writes back: none fails, and every
    generation they see has a model exactly when it has that model's RECOMMENDED edges."""
    store = _copy(built, tmp_path / "store")
    first = current_generation(store).name
    proc = _cli("fit", "--store", str(store), "--model", "bpr", "--epochs", "5", "--quiet", "--write-k", "5")
    seen: dict[str, tuple[bool, int]] = {}
    reads = 0
    while proc.poll() is None or reads < 5:
        gen = current_generation(store)
        with open_store(store, generation=gen.name) as graph:  # a reader of the live generation
            n = int(graph.query("MATCH (:User)-[r:RECOMMENDED]->(:Item) RETURN count(r) AS n")["n"].iloc[0])
            assert int(graph.query("MATCH (i:Item) RETURN count(i) AS n")["n"].iloc[0]) == 2211
        seen[gen.name] = ((gen / MODEL_DIR / "meta.json").is_file(), n)
        reads += 1
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    last = current_generation(store).name
    seen[last] = ((store / last / MODEL_DIR / "meta.json").is_file(), int(_recommended(store, last)["n"].sum()))
    assert seen[first] == (False, 0) and seen[last][0] and seen[last][1] == 700 * 2 * 5
    assert all(has_model == (n > 0) for has_model, n in seen.values()), seen
    assert reads >= 5


@pytest.mark.parametrize("after", [0.1, 0.3, 0.5, 0.7, 0.9, 1.2])
def test_a_killed_fit_leaves_a_whole_generation_live(built: Path, tmp_path: Path, after: float) -> None:
    """`kill -9` at points spread over the fit's work under the lock (about one second on the sample: open, train,
    copy the generation, save, write back, switch): the live generation has the new model with all its
    RECOMMENDED edges, or neither."""
    store = _copy(built, tmp_path / "store")
    proc = _cli("fit", "--store", str(store), "--model", "bpr", "--epochs", "8", "--quiet", "--write-k", "20")
    _wait_for_holder(store, proc.pid)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    live = current_generation(store)
    has_model = (live / MODEL_DIR / "meta.json").is_file()
    recommended = _recommended(store, live.name)
    assert has_model == (len(recommended) > 0)
    if has_model:
        assert recommended["model"].tolist() == ["bpr"] and int(recommended["n"].sum()) == 700 * 2 * 20
    # the next writer takes the dead fit's lock at once and clears its half-built copy
    assert main(["fit", "--store", str(store), "--model", "pop", "--epochs", "1", "--quiet", "--write-k", "2"]) == 0
    assert not list(store.glob(".building-*"))
    assert _recommended(store, current_generation(store).name)["model"].tolist() == ["pop"]


def test_update_refreshes_recommendations_before_the_switch(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generation an update makes live already holds the refreshed RECOMMENDED edges of its new user."""
    import scenerec.kg.lock as lock

    store = _copy(built, tmp_path / "store")
    with Engine.open(store, read_only=False) as engine:
        engine.fit("bpr", config=TrainConfig(epochs=3, seed=1, threads=1), write_back=4)
    delta = tmp_path / "delta"
    delta.mkdir()
    items = pd.read_csv(SAMPLE / "items.csv", dtype=str, keep_default_na=False)
    office = items.loc[items["scene"] == "office", "item_id"].head(3).tolist()
    items[items["item_id"].isin(office)].to_csv(delta / "items.csv", index=False)  # known items: nothing changes
    pd.DataFrame({"user_id": ["NEWUSER"] * 3, "item_id": office, "timestamp": ["1", "2", "3"]}).to_csv(
        delta / "interactions.csv", index=False
    )
    at_switch: list[pd.DataFrame] = []
    real_switch = lock.switch_generation

    def observed_switch(store_: Path, name: str, keep: int = 2) -> None:
        with open_store(store_, generation=name) as graph:
            at_switch.append(
                graph.query(
                    "MATCH (u:User {id: 'NEWUSER'})-[r:RECOMMENDED]->(i:Item) RETURN i.scene AS scene, r.rank AS rank"
                )
            )
        real_switch(store_, name, keep)

    monkeypatch.setattr(lock, "switch_generation", observed_switch)
    with Engine.open(store, read_only=False) as engine:
        out = engine.update(delta, k=4)
        assert out["refreshed_users"] == 1 and out["model"] == "bpr"
        assert engine.generation == current_generation(store).name == out["generation"]
    assert len(at_switch) == 1
    assert sorted(at_switch[0]["scene"].tolist()) == ["arts"] * 4 + ["office"] * 4
