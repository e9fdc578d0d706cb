"""What the fleet tests share (a module of its own name, as tests/faults/faultkit.py is:
several ``conftest`` modules cannot be imported by name): the fleet, or a failure under CI
and a skip elsewhere when it cannot start."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import IO

# Allow plain `pytest` (not only `python -m pytest`) from the repo root: harness is not installed.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from harness import fleet as fleet_mod  # noqa: E402
from harness.fleet import Fleet  # noqa: E402
from harness.pytest_support import in_ci  # noqa: E402

# One fleet per machine, as one private engine: test processes take turns, by this lock
# (not the engine's: fleet tests and engine tests may run side by side).
LOCK_PATH = os.environ.get("CCCI_FLEET_TEST_LOCK", "/tmp/ccci-fleet-tests.lock")
_lock: IO[str] | None = None
_start_error: BaseException | None = None


def hold_fleet_lock() -> None:
    """Wait until no other test process uses the fleet, then keep it for this process."""
    global _lock
    if _lock is None:
        handle = open(LOCK_PATH, "a")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(handle, fcntl.LOCK_EX)
        _lock = handle


def fleet_or_fail() -> Fleet:
    """ensure_fleet() (cheap when warm, so a test that kills a node strands no later test),
    or a failure under CI / a skip elsewhere; a start failure is paid for once."""
    import pytest

    global _start_error
    hold_fleet_lock()
    if _start_error is None:
        try:
            return fleet_mod.ensure_fleet()
        except Exception as exc:  # any failure to start means "no fleet"
            _start_error = exc
    reason = f"fleet test hosts unavailable: {_start_error}"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
