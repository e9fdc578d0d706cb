"""Each decision has one owner that every caller asks (issue 13): the ``--now`` time, the
API version, whether systemd is usable, and a timer's unit names.

Two copies of a decision drift apart (the connectors once read units in states the timer
rule refused to manage); these tests pin the one answer and that its callers use it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ccci.cli.options import parse_now
from ccci.connectors.local import LocalConnector
from ccci.errors import CcciError
from ccci.facts import systemd
from ccci.plan.needs import systemd_needs
from ccci.policy.model import TimerPolicy
from ccci.quantities import parse_api_version
from tests.rules.test_rule_cases import policies_from_text

TIMERS = """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: schedules}
spec:
  present:
    - {name: backup, on_calendar: daily, exec: /usr/bin/backup}
"""


def test_now_reads_rfc3339_in_any_offset_as_utc() -> None:
    assert parse_now("2026-11-27T03:00:00Z") == datetime(2026, 11, 27, 3, tzinfo=UTC)
    assert parse_now("2026-11-27T04:00:00+01:00") == datetime(2026, 11, 27, 3, tzinfo=UTC)


def test_no_now_means_the_clock_decides() -> None:
    assert parse_now(None) is None


def test_a_bad_now_is_one_line_naming_the_option() -> None:
    with pytest.raises(CcciError) as caught:
        parse_now("yesterday")
    assert str(caught.value) == (
        "--now: 'yesterday' is not an RFC 3339 time like 2026-11-27T03:00:00Z"
    )
    assert "\n" not in str(caught.value)


def test_reconcile_and_policy_diff_read_now_through_the_one_parser() -> None:
    from ccci.cli import policy as commands
    from ccci.cli import reconcile as cli

    assert vars(cli)["parse_now"] is parse_now
    assert vars(commands)["parse_now"] is parse_now


def test_api_versions_compare_as_numbers_not_text() -> None:
    assert parse_api_version("1.41") == (1, 41)
    assert parse_api_version("1") == (1, 0)
    assert parse_api_version("1.9") < parse_api_version("1.41")


@pytest.mark.parametrize("text", ["", "v1.41", "1.x", "latest"])
def test_an_unreadable_api_version_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_api_version(text)


@pytest.mark.parametrize("state", ["running", "degraded"])
def test_systemd_is_usable_when_running_even_degraded(state: str) -> None:
    assert systemd.usable(state)


@pytest.mark.parametrize(
    "state", ["starting", "maintenance", "stopping", "offline", "unknown", "not available (x)"]
)
def test_systemd_is_not_usable_while_booting_in_rescue_or_absent(state: str) -> None:
    assert not systemd.usable(state)


def test_the_local_connector_asks_for_no_units_while_systemd_is_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake systemctl: no test host can be held in the middle of its boot. It answers
    # "starting" and records every other call, which must not happen.
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = is-system-running ]; then echo starting; exit 1; fi\n'
        f'echo "$@" >> {calls}\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    state, units = LocalConnector("cc-ci").units(["backup.timer", "backup.service"])
    assert (state, units) == ("starting", ())
    assert not calls.exists()


def test_a_timer_is_gathered_planned_and_shown_under_one_name(tmp_path: Path) -> None:
    (policy,) = policies_from_text(TIMERS, tmp_path)
    assert isinstance(policy, TimerPolicy)
    (spec,) = policy.present
    assert (spec.timer_name, spec.service_name) == ("backup.timer", "backup.service")
    assert list(spec.files) == [spec.service_name, spec.timer_name]
    units, files = systemd_needs([policy])
    assert units == ["backup.timer", "backup.service"]
    assert files == [
        "/etc/systemd/system/backup.service",
        "/etc/systemd/system/backup.timer",
    ]
