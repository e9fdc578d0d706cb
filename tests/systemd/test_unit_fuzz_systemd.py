"""Units rendered from arbitrary strings, read back by a real systemd.

What ccci's load checks let through is written as ``ccci-fuzz.service`` and ``.timer`` into
the systemd test host; ``systemd-analyze verify`` must find no setting it does not know
and no line that is not a setting, and ``systemctl show`` must read each value back as
exactly the one it was given (``%`` included: ccci doubles it, systemd undoes that). What
the checks refuse never reaches a unit file (tests/unit/test_unit_fuzz.py).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccci.policy.build import timer_values
from ccci.systemd.units import render_timer_units
from ccci.systemd.values import FieldError, check_timer
from harness.systemd import SystemdHost

UNIT_DIR = "/etc/systemd/system"
NAME = "ccci-fuzz"
TEXT = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        st.sampled_from(['"', "'", "\\", "%", "%n", "%%", "$", "${X}", ";", "#", "=", "[S]", " "]),
    ),
    min_size=1,
    max_size=24,
).map("".join)
# Warnings that would mean a value left its field: a key or section ccci did not write.
ESCAPED = re.compile(r"Unknown key|Unknown section|Missing '='|Invalid section header|assignment")


@pytest.fixture(autouse=True)
def no_fuzz_units_left(host: SystemdHost) -> Iterator[None]:
    """The host is kept across tests and sessions: the fuzz units go when the test ends."""
    yield
    host.exec("rm", "-f", f"{UNIT_DIR}/{NAME}.service", f"{UNIT_DIR}/{NAME}.timer")
    host.systemctl("daemon-reload")


def write_units(host: SystemdHost, item: dict[str, Any]) -> None:
    units = render_timer_units(timer_values(item, "fuzz"))
    host.write_file(f"{UNIT_DIR}/{NAME}.service", units.service)
    host.write_file(f"{UNIT_DIR}/{NAME}.timer", units.timer)


def show(host: SystemdHost, *props: str) -> dict[str, str]:
    out = host.exec("systemctl", "show", *(f"-p{p}" for p in props), f"{NAME}.service").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same cases on every run, so CI is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(description=TEXT, folder=TEXT, args=TEXT)
def test_what_the_checks_let_through_is_read_by_systemd_as_that_value_in_its_field(
    host: SystemdHost, description: str, folder: str, args: str
) -> None:
    where = "/srv/" + folder
    item = {
        "name": NAME,
        "description": description,
        "on_calendar": "*-*-* 04:00:00",
        "exec": "/bin/echo " + args,
        "working_directory": where,
        "hardening": True,
        "read_write_paths": [where],
    }
    try:
        check_timer(item)
    except FieldError:
        return  # refused at load: never rendered
    assume(description.strip() and description == description.strip())
    write_units(host, item)
    verify = host.exec(
        "systemd-analyze", "verify", f"{UNIT_DIR}/{NAME}.service", f"{UNIT_DIR}/{NAME}.timer",
        check=False,
    )  # fmt: skip
    said = verify.stdout + verify.stderr
    assert not ESCAPED.search(said), said
    host.systemctl("daemon-reload")
    found = show(host, "Description", "WorkingDirectory", "ReadWritePaths", "ExecStartPre")
    assert found["Description"] == description
    assert found["WorkingDirectory"] == where
    # systemctl show quotes or backslash-escapes a path holding characters such as '*' or
    # '$': read it back as a shell word.
    assert shlex.split(found["ReadWritePaths"]) == [f"-{where}"]
    assert found.get("ExecStartPre", "") == ""
    calendars = host.exec("systemctl", "show", "-pTimersCalendar", f"{NAME}.timer").stdout
    assert calendars.count("OnCalendar=") == 1, calendars
