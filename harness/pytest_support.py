"""Pytest policy for engine-backed tests: fail under CI, skip locally.

CI must never go green by silently skipping everything because dockerd could
not start; a developer without a usable engine just gets a skip with the reason.
"""

from __future__ import annotations

import os

from harness.engine import Engine, ensure_engine

_start_error: BaseException | None = None


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
    if _start_error is None:
        try:
            return ensure_engine()
        except Exception as exc:  # any failure to start means "no engine"
            _start_error = exc
    reason = f"private docker engine unavailable: {_start_error}"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
