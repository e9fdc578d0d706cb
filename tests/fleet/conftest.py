"""Fixtures for the fleet tests: three test hosts in network namespaces (harness/fleet.py).

They fail — never skip — under CI when the fleet cannot start; on a developer machine
without it they skip with the reason. Nothing here talks to the machine's own Docker.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

# Allow plain `pytest` (not only `python -m pytest`) from the repo root: harness is not installed.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from harness import fleet as fleet_mod  # noqa: E402
from harness.fleet import Fleet  # noqa: E402
from harness.pytest_support import in_ci  # noqa: E402

HOST_DOCKER_SOCK = "unix:///var/run/docker.sock"
# One fleet per machine, as one private engine: test processes take turns, by this lock
# (not the engine's: fleet tests and engine tests may run side by side).
LOCK_PATH = os.environ.get("CCCI_FLEET_TEST_LOCK", "/tmp/ccci-fleet-tests.lock")
_lock: IO[str] | None = None
_start_error: BaseException | None = None


def _hold_fleet_lock() -> None:
    global _lock
    if _lock is None:
        handle = open(LOCK_PATH, "a")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(handle, fcntl.LOCK_EX)
        _lock = handle


def fleet_or_fail() -> Fleet:
    """ensure_fleet() (cheap when warm, so a test that kills a node strands no later test),
    or a failure under CI / a skip elsewhere; a start failure is paid for once."""
    global _start_error
    _hold_fleet_lock()
    if _start_error is None:
        try:
            return fleet_mod.ensure_fleet()
        except Exception as exc:  # any failure to start means "no fleet"
            _start_error = exc
    reason = f"fleet test hosts unavailable: {_start_error}"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def fleet() -> Fleet:
    found = fleet_or_fail()
    assert all(n.engine.docker_host != HOST_DOCKER_SOCK for n in found.nodes)
    return found


@pytest.fixture
def clean_fleet(fleet: Fleet) -> Iterator[Fleet]:
    """The fleet as "swarm + busybox base image only", before and after the test."""
    fleet_mod.reset(fleet)
    yield fleet
    fleet_mod.reset(fleet_or_fail())
