"""The test-host policy, for the private engine (harness.pytest_support) and for the fleet
(tests/fleet/fleetkit.py) alike: test hosts that cannot start fail under CI, skip locally.

One test per behaviour, parametrized by guard: the two guards keep the same policy, so
they are held to it by the same assertions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness import fleet as fleet_mod
from harness import pytest_support
from harness.engine import EngineError

_FLEET_TESTS = str(Path(__file__).resolve().parents[1] / "fleet")
if _FLEET_TESTS not in sys.path:  # fleetkit is a module of its own name there
    sys.path.insert(0, _FLEET_TESTS)

import fleetkit  # noqa: E402


@dataclass(frozen=True)
class Guard:
    """A test-host guard: the start it calls (``starts.start``, replaced here by one that
    fails with ``error``), the module remembering a failed start, the guard itself, and
    what of ``error`` its failure or skip says."""

    starts: ModuleType
    start: str
    remembers: ModuleType
    guard: Callable[[], Any]
    error: str
    says: str


GUARDS = {
    "engine": Guard(
        pytest_support,
        "ensure_engine",
        pytest_support,
        pytest_support.engine_or_fail,
        "dockerd not ready after 90s",
        "dockerd not ready",
    ),
    "fleet": Guard(
        fleet_mod,
        "ensure_fleet",
        fleetkit,
        fleetkit.fleet_or_fail,
        "10.213.77.0/24 is already in use on this machine",
        "already in use",
    ),
}


@pytest.fixture(params=sorted(GUARDS))
def broken(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Guard:
    """A guard whose start fails, with no failure remembered yet."""
    guard = GUARDS[request.param]

    def boom(timeout: float = 0) -> None:
        raise EngineError(guard.error)

    monkeypatch.setattr(guard.starts, guard.start, boom)
    monkeypatch.setattr(guard.remembers, "_start_error", None)
    return guard


def test_test_hosts_that_cannot_start_fail_under_ci_and_the_failure_is_remembered(
    broken: Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=broken.says):
        broken.guard()
    with pytest.raises(pytest.fail.Exception):  # remembered, not retried
        broken.guard()


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_test_hosts_that_cannot_start_skip_outside_ci(
    broken: Guard, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=broken.says):
        broken.guard()
