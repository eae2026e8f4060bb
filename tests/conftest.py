"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

from scenerec.kg.neo4j_store import Neo4jStore

REPO = Path(__file__).resolve().parents[1]


#: Set to 1 (as ``.ci/run`` does) to make a missing real-data folder fail the tests that need it instead of
#: skipping them: CI must never pass by skipping.
REQUIRE_DATA = "SCENEREC_REQUIRE_DATA"


def shared_data_dir() -> Path:
    """The real datasets: ``$SCENEREC_SHARED_DATA`` if set, else ``shared/data`` next to the repository."""
    env = os.environ.get("SCENEREC_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def missing_data(path: Path, kind: str = "folder") -> NoReturn:
    """Skip the test that needs the real-data ``path``, a ``kind`` (folder or file) that is missing; fail it when
    ``$SCENEREC_REQUIRE_DATA`` is set."""
    message = (
        f"real-data {kind} {path} not found: put the shared datasets in ../shared/data beside the clone or set "
        "SCENEREC_SHARED_DATA to their folder"
    )
    if os.environ.get(REQUIRE_DATA, "") not in ("", "0"):
        pytest.fail(f"{message} ({REQUIRE_DATA} is set, so missing data fails rather than skips)", pytrace=False)
    pytest.skip(f"{message} ({REQUIRE_DATA}=1 turns this skip into a failure)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real-data folder; skips the test when it is missing (fails with $SCENEREC_REQUIRE_DATA)."""
    path = shared_data_dir()
    if not path.is_dir():
        missing_data(path)
    return path


RealDataset = Callable[..., Path]
"""``real_dataset(folder, *files)``: the dataset ``folder`` (relative to the real-data folder), checked to hold
``files``; a missing folder or file skips the test, naming it (fails it with ``$SCENEREC_REQUIRE_DATA``)."""


@pytest.fixture(scope="session")
def real_dataset(shared_data: Path) -> RealDataset:
    """A function returning a dataset folder of the real-data folder: see :data:`RealDataset`."""

    def dataset(folder: str, *files: str) -> Path:
        path = shared_data / folder
        if not path.is_dir():
            missing_data(path)
        for name in files:
            if not (path / name).is_file():
                missing_data(path / name, "file")
        return path

    return dataset


@pytest.fixture(scope="session")
def movielens_100k(real_dataset: RealDataset) -> Path:
    """MovieLens-100K with its Freebase KG as RecBole atomic files."""
    return real_dataset("movielens_100k_kg", "ml-100k.inter", "ml-100k.item", "ml-100k.kg", "ml-100k.link")


@pytest.fixture(scope="session")
def ml100k_split(real_dataset: RealDataset) -> Path:
    """RecBole's own train/valid/test split of MovieLens-100K (``train.tsv``, ``valid.tsv``, ``test.tsv``)."""
    return real_dataset("movielens_100k_kg/split_recbole", "train.tsv", "valid.tsv", "test.tsv")


@pytest.fixture(scope="session")
def dbp15k_fr_en(real_dataset: RealDataset) -> Path:
    """The FR-EN pair of DBP15K."""
    files = ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ref_ent_ids", "translated_ent_names.json")
    return real_dataset("dbp15k/fr_en", *files)


@pytest.fixture(scope="session")
def amazon_urllm(real_dataset: RealDataset) -> Path:
    """The Amazon Arts-Office release of URLLM (its ``splits_llm`` files)."""
    files = (
        "item_listA_F.csv",
        "item_listO_AA_F.csv",
        "Dualuser_dict.json",
        "train_F2.txt",
        "valid_F2.txt",
        "test_F2.txt",
    )
    return real_dataset("amazon_art_office_urllm", *(f"splits_llm/{name}" for name in files))


def load_by_path(name: str, path: Path) -> ModuleType:
    """The module file ``path`` loaded as ``name`` and registered in ``sys.modules`` (dataclasses look their module
    up there). The tests run with --import-mode=importlib, so helpers beside them and the benchmark scripts are
    loaded by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_module() -> Callable[[str], ModuleType]:
    """Loads ``benchmarks/<name>.py`` (a script, not a package module) as ``bench_<name>``."""
    return lambda name: load_by_path(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")


def _bolt_server_module() -> ModuleType:
    return load_by_path("scenerec_tests_bolt_server", Path(__file__).with_name("bolt_server.py"))


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


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Derived text models (ONNX exports, distilled static models) go to a folder of this test session, not to the
    user's cache: each session exports afresh (a few seconds) and leaves nothing behind."""
    path = tmp_path_factory.mktemp("models")
    before = os.environ.get("SCENEREC_MODEL_CACHE")
    os.environ["SCENEREC_MODEL_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("SCENEREC_MODEL_CACHE", None)
    else:
        os.environ["SCENEREC_MODEL_CACHE"] = before


@pytest.fixture(scope="session")
def encoder() -> Any:
    """The bundled all-MiniLM-L6-v2 (real weights) on the default route (ONNX Runtime fp32), loaded once per
    session."""
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
