"""Fixtures for ccci's engine-backed tests: the private engine and a real disk gate.

Nothing here ever talks to the host's Docker: the engine is the harness's private one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Allow plain `pytest` (not only `python -m pytest`) from the repo root: harness is not installed.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from harness import swarm  # noqa: E402
from harness.disk import disk_path, fill_to, small_filesystem, unmount  # noqa: E402
from harness.engine import Engine  # noqa: E402
from harness.images import ensure_busybox_image  # noqa: E402
from harness.pytest_support import engine_or_fail  # noqa: E402
from harness.registry import Registry, ensure_registry  # noqa: E402

HOST_DOCKER_SOCK = "unix:///var/run/docker.sock"
DISK_NAME = "ccci-engine-tests"
DISK_MB = 64
# Usage the default fixture leaves on the gate's filesystem: well over an 80 % threshold.
PRESSURE = 90


@pytest.fixture
def engine() -> Engine:
    """The running private engine; fails (never skips) under CI when it cannot start."""
    found = engine_or_fail()
    assert found.docker_host != HOST_DOCKER_SOCK, "the harness must never use the host's docker"
    return found


@pytest.fixture
def clean_engine(engine: Engine) -> Engine:
    """The engine as "swarm + busybox base image only", with an empty build cache, so that
    every test starts from the same state whatever ran before it."""
    ensure_busybox_image(engine)
    swarm.reset(engine)
    engine.docker("builder", "prune", "--all", "--force")
    return engine


@pytest.fixture(scope="session")
def _gate_filesystem() -> Iterator[str]:
    path = small_filesystem(disk_path(DISK_NAME), DISK_MB)
    yield path
    unmount(path)


@pytest.fixture
def gate_disk(_gate_filesystem: str) -> str:
    """A real 64 MiB tmpfs for the disk gate to measure, filled to 90 % (under pressure).

    Mounted again when gone: stopping the engine (a staged fault does) unmounts everything
    under the engine's state directory, this filesystem included."""
    small_filesystem(_gate_filesystem, DISK_MB)
    fill_to(_gate_filesystem, PRESSURE)
    return _gate_filesystem


@pytest.fixture
def registry() -> Registry:
    """The harness's loopback registry (127.0.0.1:5000), started when it is not running."""
    return ensure_registry()
