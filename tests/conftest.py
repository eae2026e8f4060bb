"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scenerec.kg.neo4j_store import Neo4jStore

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real datasets: ``$SCENEREC_SHARED_DATA`` if set, else ``shared/data`` next to the repository."""
    env = os.environ.get("SCENEREC_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real-data folder; the test fails (not skips) when it is missing."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(
            f"real-data folder {path} not found: clone the repository with shared/data beside it "
            "or set SCENEREC_SHARED_DATA to the folder",
            pytrace=False,
        )
    return path


def _bolt_server_module() -> ModuleType:
    # The tests run with --import-mode=importlib, so the helper next to this file is loaded by path.
    spec = importlib.util.spec_from_file_location(
        "scenerec_tests_bolt_server", Path(__file__).with_name("bolt_server.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _real_neo4j() -> bool:
    return bool(os.environ.get("NEO4J_URI"))


@pytest.fixture(scope="session")
def neo4j_root() -> Iterator[Neo4jStore]:
    """One connection for the whole session: real Neo4j from the environment, else the FalkorDB stand-in.

    Every test store shares this driver: the stand-in may leave a connection opened right after another one
    closed unanswered, so the suite avoids closing and reopening connections.
    """
    with contextlib.ExitStack() as stack:
        if _real_neo4j():
            root = Neo4jStore.from_env(connect_timeout=10.0)
            stack.callback(root.close)
            held = int(root.query("MATCH (n) RETURN count(n) AS n")["n"].iloc[0])
            if held and os.environ.get("SCENEREC_TEST_NEO4J_WIPE") != "1":
                pytest.skip(f"{root.uri} holds {held} nodes; set SCENEREC_TEST_NEO4J_WIPE=1 to let the tests clear it")
        else:
            bolt = _bolt_server_module()
            try:
                uri = stack.enter_context(bolt.bolt_server())
            except bolt.BoltServerError as exc:
                pytest.fail(f"the FalkorDB stand-in did not start: {exc}")
            root = Neo4jStore(uri, connect_timeout=2.0, timeout=10.0)
            stack.callback(root.close)
        yield root


@pytest.fixture(scope="session")
def encoder() -> Any:
    """The bundled all-MiniLM-L6-v2 (real weights), loaded once per session."""
    from scenerec.llm import HFTextEncoder

    return HFTextEncoder(threads=2)


@pytest.fixture(scope="session")
def sample_store(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample rebuilt once with text embeddings (its cache warms later builds of the sample)."""
    from scenerec.cli import SAMPLE
    from scenerec.pipeline import build

    store = tmp_path_factory.mktemp("sample") / "store"
    build(SAMPLE, store, encoder=encoder)
    return store
