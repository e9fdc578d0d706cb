"""Fixtures for the staged-fault tests (helpers are in faultkit.py).

The engine fixtures are tests/engine/conftest.py's own, imported rather than copied; every
conftest module is called ``conftest``, so that one is loaded under a name of its own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultkit import Ccci

from harness.engine import Engine
from harness.faultproxy import FaultProxy, running

_ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"


def _engine_fixtures() -> Any:
    """tests/engine/conftest.py under a name of its own (every conftest is "conftest")."""
    spec = importlib.util.spec_from_file_location("engine_fixtures", _ENGINE_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fixtures = _engine_fixtures()
engine = _fixtures.engine
clean_engine = _fixtures.clean_engine
_gate_filesystem = _fixtures._gate_filesystem
gate_disk = _fixtures.gate_disk


@pytest.fixture
def proxy(engine: Engine) -> Iterator[FaultProxy]:
    """A fault proxy in front of the private engine; a test fails if one of its staged
    actions raised (the fault it meant to stage did not happen)."""
    with running(engine.docker_host) as started:
        yield started
        assert not started.errors, f"staged actions failed: {started.errors}"


@pytest.fixture
def ccci(clean_engine: Engine, gate_disk: str, tmp_path: Path, proxy: FaultProxy) -> Ccci:
    """The real CLI against a freshly reset engine, through the proxy, the disk gate open."""
    cli = Ccci(clean_engine, tmp_path, gate_disk, proxy.docker_host)
    cli.write_inventory()
    cli.write_policies()
    return cli
