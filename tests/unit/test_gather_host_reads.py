"""What a host's gathering reads beyond the engine, and when: its disks, env files and
systemd are read while the engine still lists (over SSH each is a remote command, which
one after another were most of a remote host's gather); in a plan, no unit file where
systemd is not usable (the timer rule then plans nothing), while a full gather (``ccci
facts``) and a host whose systemd runs still read every one."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ccci.config.inventory import Host
from ccci.facts.docker import gather
from ccci.facts.model import SCOPE_FULL
from ccci.plan.needs import systemd_needs
from ccci.policy.load import HostPolicies
from ccci.run.gather import gather_with
from tests.rules.test_rule_cases import policies_from_text
from tests.unit.fakes import FakeConnector
from tests.unit.test_facts_parse import NOW, recorded_connector

TIMERS = """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: schedules}
spec:
  unit_dir: /etc/systemd/system
  present:
    - name: ccci-reconcile
      on_calendar: daily
      exec: /usr/local/bin/ccci reconcile --apply --yes
  absent:
    - docker-prune.timer
"""
ORPHANS = """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
spec:
  abra_dir: /srv/abra
  run_apps: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
  orphan_after: 3h
  reap: [services, secrets, configs, networks, volumes]
"""
UNIT_FILES = [
    "/etc/systemd/system/ccci-reconcile.service",
    "/etc/systemd/system/ccci-reconcile.timer",
    "/etc/systemd/system/docker-prune.timer",
]


def _host(systemd: str) -> FakeConnector:
    conn = recorded_connector()
    assert conn.facts is not None
    conn.facts = replace(conn.facts, systemd=systemd)
    return conn


def _target(tmp_path: Path) -> HostPolicies:
    host = Host("cc-ci", {"inventory_hostname": "cc-ci"}, ("all",))
    return HostPolicies(host, tuple(policies_from_text(TIMERS, tmp_path)))


def _unit_files_read(conn: FakeConnector) -> list[str]:
    return sorted(r[1] for r in conn.reads if r[0] == "unit_file")


@pytest.mark.parametrize("state", ["offline", "starting", "maintenance"])
def test_a_plan_reads_no_unit_file_where_systemd_is_not_usable(tmp_path: Path, state: str) -> None:
    conn = _host(state)
    facts = gather_with(conn, _target(tmp_path), SCOPE_FULL, plan_at=NOW + timedelta(hours=1))
    assert facts.systemd == state
    assert _unit_files_read(conn) == []
    assert facts.unit_files == ()


@pytest.mark.parametrize("state", ["running", "degraded"])
def test_a_plan_reads_every_unit_file_where_systemd_is_usable(tmp_path: Path, state: str) -> None:
    conn = _host(state)
    target = _target(tmp_path)
    facts = gather_with(conn, target, SCOPE_FULL, plan_at=NOW + timedelta(hours=1))
    assert _unit_files_read(conn) == UNIT_FILES
    # In the policies' order, whichever read finished first.
    assert [f.path for f in facts.unit_files] == systemd_needs(target.policies)[1]


def test_a_full_gather_reads_every_unit_file_even_where_systemd_is_offline(
    tmp_path: Path,
) -> None:
    conn = _host("offline")
    facts = gather_with(conn, _target(tmp_path), SCOPE_FULL, plan_at=None)
    assert _unit_files_read(conn) == UNIT_FILES
    assert sorted(f.path for f in facts.unit_files) == UNIT_FILES


def _lists_while(conn: FakeConnector, read: str) -> list[bool]:
    """Make the engine's container list wait (10 s at most, so a regression fails rather
    than hangs) for the host read ``read``; returns, per list, whether that read came."""
    came = threading.Event()
    own = getattr(conn, read)

    def host_read(*args: object) -> object:
        came.set()
        return own(*args)

    setattr(conn, read, host_read)
    sdk = conn.api
    listed = sdk.containers
    waited: list[bool] = []

    def containers(all: bool = False) -> object:
        waited.append(came.wait(timeout=10))
        return listed(all=all)

    sdk.containers = containers
    return waited


def test_the_disks_are_measured_while_the_engine_still_lists_its_containers() -> None:
    conn = recorded_connector()
    waited = _lists_while(conn, "disk_usage")
    facts = gather(conn, ["/srv"], now=NOW)
    assert waited == [True]
    assert [d.path for d in facts.disks] == ["/var/lib/docker", "/srv"]


@pytest.mark.parametrize("read", ["units", "glob"])
def test_a_hosts_systemd_and_env_files_are_read_while_the_engine_still_lists(
    tmp_path: Path, read: str
) -> None:
    conn = _host("running")
    waited = _lists_while(conn, read)
    policies = policies_from_text(TIMERS + "---\n" + ORPHANS, tmp_path)
    target = HostPolicies(Host("cc-ci", {"inventory_hostname": "cc-ci"}, ("all",)), tuple(policies))
    gather_with(conn, target, SCOPE_FULL, plan_at=NOW + timedelta(hours=1))
    assert waited == [True]
