"""Fixtures for the fleet tests: three test hosts in network namespaces (harness/fleet.py).

They fail — never skip — under CI when the fleet cannot start (tests/fleet/fleetkit.py);
nothing here talks to the machine's own Docker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleetkit import fleet_or_fail

from harness import fleet as fleet_mod
from harness.fleet import Fleet

HOST_DOCKER_SOCK = "unix:///var/run/docker.sock"


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
