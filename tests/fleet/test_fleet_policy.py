"""The fleet policy: test hosts that cannot start fail the run under CI, skip locally."""

from __future__ import annotations

import fleetkit
import pytest

from harness import fleet as fleet_mod
from harness.engine import EngineError


def _broken(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(timeout: float = 0) -> None:
        raise EngineError("10.213.77.0/24 is already in use on this machine")

    monkeypatch.setattr(fleet_mod, "ensure_fleet", boom)
    monkeypatch.setattr(fleetkit, "_start_error", None)


def test_test_hosts_that_cannot_start_fail_under_ci_and_the_failure_is_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _broken(monkeypatch)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="already in use"):
        fleetkit.fleet_or_fail()
    with pytest.raises(pytest.fail.Exception):
        fleetkit.fleet_or_fail()


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_test_hosts_that_cannot_start_skip_outside_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    _broken(monkeypatch)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="already in use"):
        fleetkit.fleet_or_fail()
