"""The engine policy: an engine that cannot start fails under CI, skips locally."""

from __future__ import annotations

import pytest

from harness import pytest_support
from harness.engine import EngineError


def _broken(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise EngineError("dockerd not ready after 90s")

    monkeypatch.setattr(pytest_support, "ensure_engine", boom)
    monkeypatch.setattr(pytest_support, "_start_error", None)


def test_unstartable_engine_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    _broken(monkeypatch)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dockerd not ready"):
        pytest_support.engine_or_fail()
    with pytest.raises(pytest.fail.Exception):  # remembered, not retried
        pytest_support.engine_or_fail()


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_unstartable_engine_skips_outside_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    _broken(monkeypatch)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="dockerd not ready"):
        pytest_support.engine_or_fail()
