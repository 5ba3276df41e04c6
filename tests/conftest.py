"""Shared fixtures: where the real recordings live, and skipping cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EVSTREAM_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or ``$EVSTREAM_DATA``); tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real recordings not found at {DATA} (set EVSTREAM_DATA to the shared/data folder)")
    return DATA


def data_file(rel: str) -> Path:
    """Path to one file under the shared data folder, or skip the test with a clear message."""
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"real recording {rel} not found under {DATA} (set EVSTREAM_DATA)")
    return path


@pytest.fixture
def shared_file():
    return data_file
