"""Pytest policy for engine-backed tests: fail under CI, skip locally.

CI must never go green by silently skipping everything because dockerd could
not start; a developer without a usable engine just gets a skip with the reason.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from harness.engine import Engine, ensure_engine

_start_error: BaseException | None = None
# The private engine is one per machine: two pytest processes resetting it at once would
# break each other's tests. The first engine-backed test of a process waits for this lock
# and holds it until the process ends.
LOCK_PATH = os.environ.get("CCCI_ENGINE_TEST_LOCK", "/tmp/ccci-engine-tests.lock")
_lock: IO[str] | None = None


def hold_engine_lock() -> None:
    """Wait until no other test process uses the private engine, then keep it."""
    global _lock
    if _lock is None:
        handle = open(LOCK_PATH, "a")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(handle, fcntl.LOCK_EX)
        _lock = handle


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def engine_or_fail() -> Engine:
    """ensure_engine(), or pytest.fail under CI / pytest.skip otherwise.

    Re-ensures on every call (cheap when warm), so a test that kills the engine
    does not strand later tests; a start failure is remembered so the bounded
    startup wait is paid once per session, not once per test.
    """
    import pytest

    global _start_error
    hold_engine_lock()
    if _start_error is None:
        try:
            return ensure_engine()
        except Exception as exc:  # any failure to start means "no engine"
            _start_error = exc
    reason = f"private docker engine unavailable: {_start_error}"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
