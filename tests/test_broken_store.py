"""Broken stores and bad arguments: one clear line naming the file or the argument, never a traceback, never a
wrong value (issue 14, store side and CLI).

Real stores only: the bundled sample rebuilt through the CLI (``--no-embed``) with a most-popular model fitted, then
one file truncated to half its size, deleted or overwritten with garbage; every command is run through ``main``.
The text-embedding file is broken in a copy of the session's embedded sample store.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from scenerec.cli import SAMPLE, main
from scenerec.engine import Engine
from scenerec.errors import ConfigError, StoreError, StoreFileError
from scenerec.gnn import load_artifact
from scenerec.kg import current_generation, load_features, load_idmap, read_manifest

FIT_AGAIN = "fit the model again"
REBUILD = "rebuild the store"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the stderr lines of ``scenerec ARGV``; no traceback ever reaches stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err.splitlines()


def one_error(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 2) -> str:
    """The single ``error: ...`` line of a command that must fail with exit code ``code``."""
    got, _, lines = run(capsys, *argv)
    assert got == code, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def clone(src: Path, dst: Path) -> Path:
    """A copy of the store ``src``; the graph file is hard-linked (it is only read, and each broken file is replaced
    by a new one, never written in place)."""

    def copy(a: str, b: str) -> Any:
        return os.link(a, b) if Path(a).name == "graph.lbug" else shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=copy, ignore=shutil.ignore_patterns("cache"))
    return dst


def break_file(path: Path, how: str) -> None:
    """``truncate`` to half the size, ``delete``, or ``garbage`` (bytes no reader accepts)."""
    data = path.read_bytes()
    path.unlink()  # a new inode: a hard-linked original stays intact
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00garbage {not json, not zip, not a pickle")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sample rebuilt without embeddings through the CLI, with a most-popular model fitted (no write-back)."""
    store = tmp_path_factory.mktemp("broken") / "store"
    assert main(["rebuild", str(SAMPLE), "--store", str(store), "--no-embed", "--quiet"]) == 0
    assert main(["fit", "--store", str(store), "--model", "pop", "--seed", "1", "--quiet", "--no-write-back"]) == 0
    user = load_idmap(store).ids("user")[0]
    return {"store": store, "user": user}


def commands(store: Path, user: str) -> dict[str, list[str]]:
    s = str(store)
    return {
        "query": ["query", "MATCH (s:Scene) RETURN s.id AS id", "--store", s],
        "info": ["info", "--store", s],
        "recommend": ["recommend", "--store", s, "--user", user, "--scene", "office", "-k", "3"],
        "evaluate": ["evaluate", "--store", s, "--scene", "office"],
        "fit": ["fit", "--store", s, "--model", "pop", "--seed", "1", "--quiet", "--no-write-back"],
        "search": ["search", "gel pens", "--store", s],
    }


# ------------------------------------------------------------------ the generation's own files
@pytest.mark.parametrize("how", ["truncate", "delete", "garbage"])
@pytest.mark.parametrize("name", ["manifest.json", "idmap.json"])
def test_broken_generation_file_is_one_line_naming_it(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, how: str
) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    path = current_generation(store) / name
    break_file(path, how)
    cmds = commands(store, fitted["user"])
    failing = list(cmds) if name == "manifest.json" else ["recommend", "evaluate", "fit", "search"]
    for cmd in failing:
        line = one_error(capsys, *cmds[cmd])
        assert str(path) in line and REBUILD in line, (cmd, line)
        if how == "delete":
            assert f"{path}: missing" in line
        else:  # a JSON parse error: line and column
            assert ", line 1, column 1: invalid JSON" in line if how == "garbage" else ", column " in line
    for cmd in set(cmds) - set(failing) - {"search"}:  # what does not need the file still works
        assert run(capsys, *cmds[cmd])[0] == 0, cmd


def test_truncated_manifest_names_line_and_column(fitted: dict[str, Any], tmp_path: Path) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    path = current_generation(store) / "manifest.json"
    text = path.read_text(encoding="utf-8")
    path.unlink()
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(StoreFileError) as info:
        read_manifest(store)
    assert info.value.file == str(path) and info.value.line is not None and info.value.line > 1
    assert f"{path}, line {info.value.line}, column {info.value.column}: invalid JSON" in str(info.value)
    with pytest.raises(StoreFileError, match=r"manifest\.json"):
        Engine.open(store)


def test_manifest_without_its_fields_is_named_by_info(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    path = current_generation(store) / "manifest.json"
    path.unlink()
    path.write_text('{"backend": "ladybug"}', encoding="utf-8")
    line = one_error(capsys, "info", "--store", str(store))
    assert line.startswith(f"error: {path}: lacks 'created'") and REBUILD in line
    path.unlink()
    path.write_text("[1, 2]", encoding="utf-8")  # valid JSON, not an object
    line = one_error(capsys, "query", "MATCH (n) RETURN count(n)", "--store", str(store))
    assert f"{path}: expected a JSON object, found a array" in line


@pytest.mark.parametrize("content", [None, "", "gen-that-does-not-exist\n", "../elsewhere\n"])
def test_current_that_names_no_generation(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    pointer = store / "CURRENT"
    pointer.unlink()
    if content is not None:
        pointer.write_text(content, encoding="utf-8")
    for argv in commands(store, fitted["user"]).values():
        line = one_error(capsys, *argv)
        if content is None:
            assert (
                line == f"error: {store}: no graph has been built here (run `scenerec rebuild DATASET --store {store}`)"
            )
        else:
            assert line.startswith(f"error: {pointer}: ") and REBUILD in line
    if content == "gen-that-does-not-exist\n":
        assert "names the generation 'gen-that-does-not-exist', which does not exist" in line
    with pytest.raises(StoreError):
        current_generation(store)


# ------------------------------------------------------------------ the trained model's files
@pytest.mark.parametrize("how", ["truncate", "delete", "garbage"])
@pytest.mark.parametrize("name", ["weights.pt", "splits.npz", "meta.json", "idmap.json"])
def test_broken_model_file_is_one_line_naming_it_and_fit_repairs_it(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, how: str
) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    path = current_generation(store) / "model" / name
    break_file(path, how)
    cmds = commands(store, fitted["user"])
    for cmd in ("recommend", "evaluate"):
        line = one_error(capsys, *cmds[cmd])
        assert line.startswith(f"error: {path}") and FIT_AGAIN in line, (cmd, line)
        if how == "delete":
            assert f"{path}: missing" in line
        elif name.endswith(".json"):
            assert ", column " in line and "invalid JSON" in line
    for cmd in ("query", "info"):
        assert run(capsys, *cmds[cmd])[0] == 0
    if name != "splits.npz":
        with pytest.raises(StoreFileError) as info:
            load_artifact(path.parent)
        assert info.value.file == str(path)
    assert run(capsys, *cmds["fit"])[0] == 0  # what the message says to do works
    code, out, _ = run(capsys, *cmds["recommend"])
    assert code == 0 and "item_id" in out


def test_weights_of_another_model_or_pickled_objects_are_refused(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    weights = current_generation(store) / "model" / "weights.pt"
    other = clone(fitted["store"], tmp_path / "other")
    assert main(["fit", "--store", str(other), "--model", "bpr", "--epochs", "1", "--quiet", "--no-write-back"]) == 0
    weights.unlink()
    shutil.copy(current_generation(other) / "model" / "weights.pt", weights)
    line = one_error(capsys, "evaluate", "--store", str(store), "--scene", "office")
    assert line.startswith(f"error: {weights}: does not match meta.json") and FIT_AGAIN in line
    # weights_only=True: anything but tensors (here a harmless Fraction) is not unpickled
    weights.unlink()
    torch.save({"item_counts": Fraction(1, 2)}, weights)
    line = one_error(capsys, "recommend", "--store", str(store), "--user", fitted["user"], "--scene", "office")
    assert line.startswith(f"error: {weights}: not a readable weights file")


def test_splits_that_do_not_fit_the_model_are_refused(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = clone(fitted["store"], tmp_path / "store")
    path = current_generation(store) / "model" / "splits.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    path.unlink()
    np.savez(path, **{**arrays, "item_scene": arrays["item_scene"][:-1]})  # one item short: scores would shift
    line = one_error(capsys, "evaluate", "--store", str(store), "--scene", "office")
    assert line.startswith(f"error: {path}: item_scene has shape") and FIT_AGAIN in line
    path.unlink()
    np.savez(path, **{k: v for k, v in arrays.items() if k != "test_items"})
    line = one_error(capsys, "evaluate", "--store", str(store), "--scene", "office")
    assert line.startswith(f"error: {path}: lacks the array(s) test_items")
    path.unlink()
    np.savez(path, **{**arrays, "test_items": arrays["test_items"] + 10**6})
    line = one_error(capsys, "evaluate", "--store", str(store), "--scene", "office")
    assert line.startswith(f"error: {path}: pairs that do not fit the model's")


# ------------------------------------------------------------------ text embeddings
@pytest.mark.parametrize("how", ["truncate", "delete", "garbage", "short"])
def test_broken_features_file_is_one_line_naming_it(
    sample_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    store = clone(sample_store, tmp_path / "store")
    path = current_generation(store) / "features.npz"
    if how == "short":  # one item row dropped: every item after it would get its neighbour's vector
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        path.unlink()
        np.savez(path, **{**arrays, "item": arrays["item"][:-1]})
    else:
        break_file(path, how)
    user = load_idmap(store).ids("user")[0]
    cmds = commands(store, user)
    for cmd in ("search", "recommend", "evaluate", "fit"):
        line = one_error(capsys, *cmds[cmd])
        assert line.startswith(f"error: {path}: ") and REBUILD in line, (cmd, line)
    assert run(capsys, *cmds["query"])[0] == 0
    with pytest.raises(StoreFileError) as info:
        Engine.open(store)
    assert info.value.file == str(path)
    if how in ("truncate", "garbage"):
        with pytest.raises(StoreFileError, match=r"features\.npz"):
            load_features(store)


# ------------------------------------------------------------------ the --store path itself
@pytest.mark.parametrize("kind", ["file", "under-file", "missing", "empty"])
def test_store_path_that_is_no_store(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    (tmp_path / "afile").write_text("not a store\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    store = {
        "file": tmp_path / "afile",
        "under-file": tmp_path / "afile" / "sub",
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
    }[kind]
    argvs = [
        *commands(store, fitted["user"]).values(),
        ["update", str(SAMPLE), "--store", str(store), "--quiet"],
        ["classify-scenes", "--store", str(store)],
        ["explain", "--store", str(store), "--user", fitted["user"], "--item", "x"],
        ["similar", "--store", str(store), "--item", "x"],
        ["align", "--store", str(store), "--left", "arts", "--right", "office"],
        ["report", "--store", str(store), "--out", str(tmp_path / "report")],
    ]
    for argv in argvs:
        line = one_error(capsys, *argv)
        if kind == "file":
            assert line == f"error: {store} is a file, not a store folder; give --store the folder of a built store"
        else:
            assert (
                line == f"error: {store}: no graph has been built here (run `scenerec rebuild DATASET --store {store}`)"
            )
    rebuild = ["rebuild", str(SAMPLE), "--store", str(store), "--no-embed", "--quiet"]
    if kind in ("file", "under-file"):
        line = one_error(capsys, *rebuild)
        assert line.startswith(f"error: {store} ") and "not a store folder" in line
        assert (tmp_path / "afile").read_text(encoding="utf-8") == "not a store\n"
    else:
        assert run(capsys, *rebuild)[0] == 0
        assert run(capsys, "info", "--store", str(store))[0] == 0


# ------------------------------------------------------------------ model options and numeric arguments
@pytest.mark.parametrize(
    ("model", "option", "message"),
    [
        ("scenegnn", "dim=0", "model option dim=0: expected an integer >= 1"),
        ("scenegnn", "dim=6.5", "model option dim=6.5: expected an integer >= 1"),
        ("scenegnn", "num_layers=-1", "model option num_layers=-1: expected an integer >= 0"),
        ("scenegnn", "temperature=0", "model option temperature=0: expected a number > 0"),
        ("scenegnn", "temperature=abc", 'model option temperature="abc": expected a number > 0'),
        ("scenegnn", "use_kg=1", "model option use_kg=1: expected true or false"),
        ("scenegnn", "item_ids=some", 'model option item_ids="some": expected one of all, missing, none'),
        ("crossscene", "view_dropout=1", "model option view_dropout=1: expected a number in [0, 1)"),
        ("crossscene", "cold_dropout=-0.1", "model option cold_dropout=-0.1: expected a number in [0, 1)"),
        ("scenegnn", "dropout=0.5", "model 'scenegnn' has no option 'dropout'; its options: dim, "),
        ("lightgcn", "dim=8", "model 'lightgcn' takes no options (got dim)"),
    ],
)
def test_bad_model_option_is_one_line_and_keeps_the_model(
    fitted: dict[str, Any], capsys: pytest.CaptureFixture[str], model: str, option: str, message: str
) -> None:
    store = fitted["store"]
    weights = current_generation(store) / "model" / "weights.pt"
    before = weights.read_bytes()
    argv = ["fit", "--store", str(store), "--model", model, "--option", option, "--epochs", "1", "--quiet"]
    assert one_error(capsys, *argv).startswith(f"error: {message}")
    assert weights.read_bytes() == before


def test_fit_with_zero_epochs_is_refused_and_keeps_the_trained_model(
    fitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    store = fitted["store"]
    model = current_generation(store) / "model"
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    line = one_error(capsys, "fit", "--store", str(store), "--model", "lightgcn", "--epochs", "0", "--quiet")
    assert line == "error: --epochs 0: expected a positive integer (0 would save an untrained model)"
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    with Engine.open(store) as engine, pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        engine.fit("lightgcn", epochs=0)
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "pens", "-k", "0"], "-k 0: expected a positive integer"),
        (["recommend", "--user", "u", "--scene", "office", "-k", "-3"], "-k -3: expected a positive integer"),
        (["similar", "--item", "i", "-k", "0"], "-k 0: expected a positive integer"),
        (["recommend", "--user", "u", "--scene", "office", "--explain", "--max-paths", "0"], "--max-paths 0: "),
        (["explain", "--user", "u", "--item", "i", "--max-paths", "-1"], "--max-paths -1: expected a positive integer"),
        (["fit", "--write-k", "0"], "--write-k 0: expected a positive integer"),
        (["update", str(SAMPLE), "--write-k", "0"], "--write-k 0: expected a positive integer"),
        (["fit", "--seed", "-1"], "--seed -1: expected an integer in [0, 2**32)"),
        (["classify-scenes", "--min-confidence", "1.5"], "--min-confidence 1.5: expected a number in [0, 1]"),
        (["classify-scenes", "--test-fraction", "0"], "--test-fraction 0.0: expected a number in (0, 1)"),
        (["classify-scenes", "--show", "-1"], "--show -1: expected an integer >= 0"),
        (["align", "--left", "arts", "--right", "office", "--threshold", "2"], "--threshold 2.0: expected a number"),
        (["align", "--left", "arts", "--right", "office", "--seed-fraction", "1"], "--seed-fraction 1.0: expected"),
        (["align", "--left", "arts", "--right", "office", "--threshold", "nan"], "--threshold nan: expected"),
        (["evaluate", "--scene", "office", "--k", "0,10"], "--k '0,10': expected positive integers"),
    ],
)
def test_out_of_range_argument_is_one_line(
    fitted: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    line = one_error(capsys, *argv, "--store", str(fitted["store"]))
    assert line.startswith(f"error: {message}")


def test_rebuild_with_out_of_range_arguments_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    for argv, message in [
        (["--min-rating", "inf"], "--min-rating inf: expected a finite number"),
        (["--threads", "0"], "--threads 0: expected a positive integer"),
    ]:
        line = one_error(capsys, "rebuild", str(SAMPLE), "--store", str(store), "--quiet", *argv)
        assert line == f"error: {message}"
    assert not store.exists()


# ------------------------------------------------------------------ unexpected exceptions and --debug
def test_unexpected_exception_is_one_line_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """torch refuses the device name deep inside the text model: not a ScenerecError, still one line (exit 1)."""
    argv = ["rebuild", str(SAMPLE), "--store", str(tmp_path / "store"), "--quiet", "--device", "bogus"]
    code, _, lines = run(capsys, *argv)
    assert code == 1
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: RuntimeError: ") and "bogus" in lines[0]
    assert lines[1] == "hint: run with --debug for the traceback"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    argv = ["rebuild", str(SAMPLE), "--store", str(tmp_path / "store"), "--quiet", "--device", "bogus"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err and "RuntimeError" in err
    assert err.splitlines()[-1].startswith("error: RuntimeError: ")
    assert "--debug" not in err.splitlines()[-1]
    # a ScenerecError too: exit 2, the traceback and then the same one line
    code = main(["--debug", "info", "--store", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and "StoreNotFoundError" in err
    assert err.splitlines()[-1].startswith(f"error: {tmp_path / 'nowhere'}: no graph has been built here")


@pytest.mark.parametrize("name", ["model.json", "part-*.npz"])
def test_broken_embedding_cache_is_one_line_naming_it(
    sample_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """The store's embedding cache (``STORE/cache/embeddings``) outlives generations; a damaged file of it is named."""
    store = tmp_path / "store"
    shutil.copytree(sample_store / "cache", store / "cache")
    path = sorted(store.glob(f"cache/embeddings/*/{name}"))[0]
    break_file(path, "truncate" if name.endswith(".npz") else "garbage")
    line = one_error(capsys, "rebuild", str(SAMPLE), "--store", str(store), "--quiet")
    assert line.startswith(f"error: {path}") and "delete" in line
    assert not (store / "CURRENT").exists()
