"""The farm's nightly options, read back by a real systemd: whatever ``--limit`` pattern
``ccci systemd install`` lets through reaches reconcile as exactly the words it rendered.

The units are rendered here (``nightly_values`` with a ``Farm``, as the command does), written
as ``ccci-farm.service``/``.timer`` into the systemd test host, checked by ``systemd-analyze
verify`` and read back with ``systemctl show -p ExecStart``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccci.errors import CcciError
from ccci.systemd.install import Farm, check_farm, nightly_values
from ccci.systemd.units import render_timer_units
from harness.systemd import SystemdHost

UNIT_DIR = "/etc/systemd/system"
NAME = "ccci-farm"
# Ansible's pattern characters and the ones systemd would read otherwise, mixed.
PATTERN = st.text(
    alphabet=st.sampled_from([*"ci-3:!&*,~[]+?^(){}|@/=.", "$", "%", " ", "'", '"', "\\"]),
    min_size=1,
    max_size=20,
)
ESCAPED = re.compile(r"Unknown key|Unknown section|Missing '='|Invalid section header|assignment")


@pytest.fixture(autouse=True)
def no_farm_units_left(host: SystemdHost) -> Iterator[None]:
    yield
    host.exec("rm", "-f", f"{UNIT_DIR}/{NAME}.service", f"{UNIT_DIR}/{NAME}.timer")
    host.systemctl("daemon-reload")


def exec_argv(host: SystemdHost) -> list[str]:
    """ExecStart's words as systemd split them (``argv[]=a b c ;``)."""
    shown = host.exec("systemctl", "show", "-pExecStart", f"{NAME}.service").stdout
    found = re.search(r"argv\[\]=(.*?) ;", shown)
    assert found, shown
    return found.group(1).split(" ")


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(limit=PATTERN, forks=st.integers(1, 256), scope=st.sampled_from(["all", "node"]))
def test_a_limit_the_install_lets_through_reaches_reconcile_as_one_word(
    host: SystemdHost, limit: str, forks: int, scope: str
) -> None:
    try:
        farm = check_farm(Farm(scope, limit, forks, "ssh"))
    except CcciError:
        return  # refused at install: never rendered
    values = nightly_values(Path("/etc/ccci"), "daily", "15m", Path("/var/lib/ccci"), farm=farm)
    values["name"] = NAME
    units = render_timer_units(values)
    host.write_file(f"{UNIT_DIR}/{NAME}.service", units.service)
    host.write_file(f"{UNIT_DIR}/{NAME}.timer", units.timer)
    verify = host.exec(
        "systemd-analyze", "verify", f"{UNIT_DIR}/{NAME}.service", f"{UNIT_DIR}/{NAME}.timer",
        check=False,
    )  # fmt: skip
    assert not ESCAPED.search(verify.stdout + verify.stderr), verify.stdout + verify.stderr
    host.systemctl("daemon-reload")
    argv = exec_argv(host)
    rendered = values["exec"].split(" ")
    assert argv[argv.index("reconcile") :] == rendered[rendered.index("reconcile") :]
    assert argv[argv.index("--limit") + 1] == limit
