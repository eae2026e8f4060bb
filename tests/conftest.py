"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
