"""Fixtures for the harness's own tests (engine policy lives in harness.pytest_support)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Allow plain `pytest` (not only `python3 -m pytest`) from the repo root.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from harness import swarm  # noqa: E402
from harness.engine import Engine  # noqa: E402
from harness.images import ensure_busybox_image  # noqa: E402
from harness.pytest_support import engine_or_fail  # noqa: E402


@pytest.fixture
def engine() -> Engine:
    """The running private engine; fails under CI if it cannot start."""
    return engine_or_fail()


@pytest.fixture
def clean_engine(engine: Engine) -> Iterator[Engine]:
    """Engine reset to swarm + busybox base image, before and after the test."""
    ensure_busybox_image(engine)
    swarm.reset(engine)
    yield engine
    swarm.reset(engine)
