"""Optional parts installed as extras (``scenerec[neo4j]``, ``scenerec[report]``): without them the library still
imports, and using them fails with one line naming the extra to install.

The absence is real, not mocked: ``sys.modules[name] = None`` makes every ``import name`` raise ImportError, the
way Python reports a module that is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scenerec.cli import SAMPLE, main
from scenerec.errors import ConfigError, MissingExtraError, ScenerecError, require_extra
from scenerec.kg import rebuild
from scenerec.kg.neo4j_store import Neo4jStore, neo4j_driver

NEO4J_MESSAGE = "the Neo4j backend needs the 'neo4j' driver, which is not installed: pip install 'scenerec[neo4j]'"
REPORT_MESSAGE = "the HTML report needs 'matplotlib', which is not installed: pip install 'scenerec[report]'"


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``names`` (and their submodules) unimportable for the rest of the test, as if not installed."""
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def without_neo4j(monkeypatch: pytest.MonkeyPatch) -> None:
    _block(monkeypatch, "neo4j")


@pytest.fixture
def without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    _block(monkeypatch, "matplotlib")


def test_require_extra_returns_the_module_when_installed() -> None:
    import json

    assert require_extra("json", "none", "this test") is json


def test_missing_extra_error_names_the_extra_and_is_both_a_config_and_an_import_error() -> None:
    with pytest.raises(MissingExtraError) as err:
        require_extra("scenerec_no_such_module.sub", "thing", "the thing")
    assert str(err.value) == (
        "the thing needs 'scenerec_no_such_module', which is not installed: pip install 'scenerec[thing]'"
    )
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ImportError)
    assert err.value.extra == "thing" and err.value.name == "scenerec_no_such_module.sub"


def test_installed_but_broken_module_quotes_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A package that is there but whose own dependency is missing: not "not installed", the reason is shown.
    pkg = tmp_path / "scenerec_broken_extra"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import scenerec_missing_dependency\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "scenerec_broken_extra", raising=False)
    with pytest.raises(MissingExtraError) as err:
        require_extra("scenerec_broken_extra", "broken", "the broken part")
    assert str(err.value) == (
        "the broken part needs 'scenerec_broken_extra', which failed to import "
        "(No module named 'scenerec_missing_dependency'): pip install 'scenerec[broken]'"
    )


@pytest.mark.usefixtures("without_neo4j")
def test_neo4j_store_without_the_driver_names_the_extra() -> None:
    with pytest.raises(ImportError):
        import neo4j  # noqa: F401  (the state the test relies on)
    with pytest.raises(MissingExtraError) as err:
        neo4j_driver()
    assert str(err.value) == NEO4J_MESSAGE
    with pytest.raises(MissingExtraError, match=r"pip install 'scenerec\[neo4j\]'"):
        Neo4jStore("bolt://127.0.0.1:1")


@pytest.mark.usefixtures("without_neo4j")
def test_rebuild_into_neo4j_without_the_driver_fails_before_reading_the_dataset(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pytest.raises(MissingExtraError, match="the Neo4j backend needs"):
        rebuild(SAMPLE, store, backend="neo4j")
    assert not store.exists()


@pytest.mark.usefixtures("without_neo4j")
def test_cli_rebuild_neo4j_without_the_driver_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    code = main(["rebuild", str(SAMPLE), "--store", str(store), "--backend", "neo4j", "--no-embed", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"error: {NEO4J_MESSAGE}\n"
    assert out == "" and not store.exists()


@pytest.mark.usefixtures("without_matplotlib")
def test_report_without_matplotlib_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    rebuild(SAMPLE, store)
    out_dir = tmp_path / "report"
    code = main(["report", "--store", str(store), "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"error: {REPORT_MESSAGE}\n"
    assert out == "" and not out_dir.exists()


def test_missing_extra_error_is_a_scenerec_error() -> None:
    # What the CLI turns into one `error:` line with exit code 2.
    assert issubclass(MissingExtraError, ScenerecError)


_BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = {"neo4j", "matplotlib"}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def test_library_imports_without_the_optional_packages() -> None:
    """In a fresh interpreter where neo4j and matplotlib cannot be imported, the library, its Neo4j module, the
    report module, the Engine and the CLI all import, and the missing driver is reported with its extra."""
    code = _BLOCKER + textwrap.dedent(
        """
        import scenerec.kg
        import scenerec.kg.neo4j_store
        import scenerec.report
        import scenerec.engine
        import scenerec.cli
        from scenerec.errors import MissingExtraError

        try:
            scenerec.kg.neo4j_store.neo4j_driver()
        except MissingExtraError as exc:
            print(exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == NEO4J_MESSAGE
