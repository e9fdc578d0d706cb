"""TimerPolicy and `ccci systemd install` against a real systemd.

ccci runs INSIDE the systemd test host (installed from wheels into /opt/ccci) and manages
that host's own systemd through systemctl; the Docker engine it reaches there is the
harness's private one. Each test puts the units it needs into a known state first, because
the host container is reused across tests and sessions.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from harness.systemd import SystemdHost

if TYPE_CHECKING:
    from conftest import Ccci

# The same layout as conftest.py sets up in the host (not imported: every test folder
# has a module named conftest).
REPO = Path(__file__).resolve().parents[2]
VENV = "/opt/ccci"
CONFIG_DIR = "/etc/ccci"
STATE_DIR = "/var/lib/ccci"
RO_UNIT_DIR = "/etc/systemd/ro-units"
INVENTORY_HOST = "cc-ci"
UNIT_DIR = "/etc/systemd/system"
VENDOR_DIR = "/usr/lib/systemd/system"
PATH_WITH_CCCI = f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NIGHTLY = "ccci-reconcile"
RECAP = re.compile(
    rf"^{INVENTORY_HOST} : ok=(\d+) changed=(\d+) failed=(\d+) skipped=(\d+) unreachable=0$",
    re.MULTILINE,
)
ANSI = "\x1b["

# NixOS's virtualisation.docker.autoPrune, as its module writes it (vendor units, enabled).
DOCKER_PRUNE_SERVICE = """\
[Unit]
Description=Prune docker resources
After=docker.service
Requires=docker.service

[Service]
Type=oneshot
ExecStart=/usr/bin/docker system prune -f --all
"""
DOCKER_PRUNE_TIMER = """\
[Unit]
Description=Prune docker resources weekly

[Timer]
OnCalendar=weekly
Persistent=true

[Install]
WantedBy=timers.target
"""


# ---- helpers -----------------------------------------------------------------------------


def timer_policy(
    present: list[dict[str, Any]] | None = None,
    absent: list[str] | None = None,
    unit_dir: str | None = None,
    name: str = "schedules",
) -> str:
    spec: dict[str, Any] = {}
    if unit_dir:
        spec["unit_dir"] = unit_dir
    if present:
        spec["present"] = present
    if absent:
        spec["absent"] = absent
    doc = {
        "apiVersion": "ccci/v1",
        "kind": "TimerPolicy",
        "metadata": {"name": name},
        "hosts": "ci",
        "spec": spec,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def nightly_spec() -> dict[str, Any]:
    """The TimerPolicy entry with exactly the values `ccci systemd install` uses."""
    return {
        "name": NIGHTLY,
        "description": "ccci: reconcile this Docker CI host with its policies",
        "on_calendar": "daily",
        "persistent": True,
        "randomized_delay": "15m",
        "exec": f"{VENV}/bin/ccci reconcile --apply --yes",
        "working_directory": CONFIG_DIR,
        "success_exit_status": "75",
        "after": "docker.service",
        "hardening": True,
        "read_write_paths": [STATE_DIR, UNIT_DIR],
    }


def closed_prune_policy() -> str:
    """A gated prune whose disk gate cannot open (/run/lock is a nearly empty tmpfs): it
    plans nothing on the shared engine, whatever other sessions left there."""
    doc = {
        "apiVersion": "ccci/v1",
        "kind": "PrunePolicy",
        "metadata": {"name": "ci-docker-prune"},
        "hosts": "ci",
        "spec": {
            "gates": {
                "disk_usage": {"path": "/run/lock", "at_least": "80%"},
                "no_live_stacks": {"match": "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"},
                "no_converging_services": True,
            },
            "prune": {
                "dangling_images": {"older_than": "24h"},
                "stopped_containers": {"older_than": "24h"},
                "dangling_build_cache": {"older_than": "24h"},
            },
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def show(host: SystemdHost, unit: str, *props: str) -> dict[str, str]:
    """`systemctl show` in UTC (what ccci's facts are compared against)."""
    flags = [f"-p{p}" for p in props]
    out = host.exec("env", "TZ=UTC", "systemctl", "show", "--timestamp=unix", *flags, unit).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


def systemd_time(value: str) -> datetime | None:
    """A timestamp as systemctl prints it: ``@<unix>`` or ``Sat 2026-11-28 00:12:23 UTC``."""
    value = value.strip()
    if not value or value == "n/a":
        return None
    if value.startswith("@"):
        return datetime.fromtimestamp(float(value[1:]), tz=UTC)
    return datetime.strptime(value, "%a %Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)


def forget(host: SystemdHost, *units: str) -> None:
    """Stop, disable and unmask units and remove their files wherever a test put them."""
    for unit in units:
        for verb in ("stop", "disable", "unmask"):
            host.systemctl(verb, unit, check=False)
    paths = [f"{d}/{u}" for u in units for d in (UNIT_DIR, VENDOR_DIR)]
    host.exec("rm", "-f", *paths)
    host.systemctl("daemon-reload")
    host.systemctl("reset-failed", check=False)


def install_docker_prune(host: SystemdHost, unit_dir: str) -> None:
    """docker-prune.{service,timer} as NixOS's autoPrune makes them, enabled and started."""
    # Guard: if this ever fired against the shared private engine it would evict every
    # other session's images. The host has no docker CLI, so it can only fail.
    assert host.exec("test", "-e", "/usr/bin/docker", check=False).returncode != 0
    forget(host, "docker-prune.timer", "docker-prune.service")
    host.write_file(f"{unit_dir}/docker-prune.service", DOCKER_PRUNE_SERVICE)
    host.write_file(f"{unit_dir}/docker-prune.timer", DOCKER_PRUNE_TIMER)
    host.systemctl("daemon-reload")
    host.systemctl("enable", "--now", "docker-prune.timer")
    state = show(host, "docker-prune.timer", "UnitFileState", "ActiveState")
    assert state == {"UnitFileState": "enabled", "ActiveState": "active"}


def host_plan(plan: dict[str, Any]) -> dict[str, Any]:
    (found,) = [h for h in plan["hosts"] if h["host"] == INVENTORY_HOST]
    return dict(found)


def changes(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in host_plan(plan)["changes"]}


def noops(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["address"]: n for n in host_plan(plan)["noops"]}


def manual(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["address"]: m for m in host_plan(plan)["manual"]}


def apply(ccci: Ccci) -> subprocess.CompletedProcess[str]:
    return ccci.run("reconcile", "--apply", "--yes")


def service_journal(host: SystemdHost, unit: str, invocation: str) -> list[str]:
    """The messages of one run of `unit` (``journalctl -u``, filtered by invocation id).

    JSON output keeps control characters: journald stores a message holding ESC as a byte
    array, which comes back here decoded so that an ANSI code shows."""
    out = host.exec("journalctl", "-u", unit, "--no-pager", "-o", "json").stdout
    lines = []
    for raw in out.splitlines():
        entry = json.loads(raw)
        if invocation not in (entry.get("_SYSTEMD_INVOCATION_ID"), entry.get("INVOCATION_ID")):
            continue
        message = entry.get("MESSAGE", "")
        if isinstance(message, list):
            message = bytes(message).decode(errors="replace")
        lines.append(str(message))
    return lines


def run_nightly(host: SystemdHost) -> tuple[dict[str, str], str]:
    """`systemctl start ccci-reconcile.service` (a oneshot: returns when the run ended);
    its Result/ExecMainStatus and its journal, once the recap or an error has arrived."""
    host.systemctl("start", f"{NIGHTLY}.service", check=False)
    props = show(host, f"{NIGHTLY}.service", "Result", "ExecMainStatus", "InvocationID")
    deadline = time.monotonic() + 15
    while True:
        text = "\n".join(service_journal(host, f"{NIGHTLY}.service", props["InvocationID"]))
        if "Finished" in text or "Failed" in text or time.monotonic() > deadline:
            return props, text
        time.sleep(0.2)


def prom_samples(text: str) -> dict[str, float]:
    """`name{labels} value` lines of a Prometheus textfile, by `name{labels}`."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


# ---- 1. facts ----------------------------------------------------------------------------

FACTS_PROBE = "ccci-facts-probe"
STOCK_TIMERS = ("dpkg-db-backup.timer", "systemd-tmpfiles-clean.timer")


@pytest.fixture
def facts_probe(host: SystemdHost, ccci: Ccci) -> dict[str, Any]:
    """A calendar timer made by hand, and a policy naming it, stock timers and a missing one;
    returns the unit facts `ccci facts --output json` gathered, by name."""
    forget(host, f"{FACTS_PROBE}.timer", f"{FACTS_PROBE}.service")
    host.write_file(
        f"{UNIT_DIR}/{FACTS_PROBE}.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    host.write_file(
        f"{UNIT_DIR}/{FACTS_PROBE}.timer",
        "[Timer]\nOnCalendar=*-*-* 04:30:00\nPersistent=true\nRandomizedDelaySec=10min\n\n"
        "[Install]\nWantedBy=timers.target\n",
    )
    host.systemctl("daemon-reload")
    host.systemctl("enable", "--now", f"{FACTS_PROBE}.timer")
    # Facts only: this policy is never applied (it would mask the stock timers).
    ccci.set_policies(
        timers=timer_policy(
            present=[{"name": FACTS_PROBE, "on_calendar": "*-*-* 04:30:00", "exec": "/bin/true"}],
            absent=["some-nonexistent.timer", *STOCK_TIMERS],
        )
    )
    snapshot = json.loads(ccci.run("facts", "--output", "json").stdout)
    facts = snapshot["hosts"][INVENTORY_HOST]
    assert facts["systemd"] in ("running", "degraded")
    return {u["name"]: u for u in facts["units"]}


def test_facts_match_systemctl_for_stock_and_calendar_timers(
    host: SystemdHost, facts_probe: dict[str, Any]
) -> None:
    expected = {
        f"{FACTS_PROBE}.timer",
        f"{FACTS_PROBE}.service",
        "some-nonexistent.timer",
        *STOCK_TIMERS,
    }
    assert set(facts_probe) == expected
    for name, unit in facts_probe.items():
        props = show(
            host,
            name,
            "LoadState",
            "ActiveState",
            "UnitFileState",
            "FragmentPath",
            "TimersCalendar",
            "Persistent",
        )
        assert unit["load_state"] == props["LoadState"], name
        assert unit["active_state"] == props["ActiveState"], name
        assert unit["unit_file_state"] == props["UnitFileState"], name
        assert unit["fragment_path"] == props["FragmentPath"], name
        if name.endswith(".timer"):
            calendars = re.findall(r"OnCalendar=([^;}]+?)\s*;", props.get("TimersCalendar", ""))
            assert unit["calendars"] == calendars, name
            assert unit["persistent"] == (props["Persistent"] == "yes"), name

    missing = facts_probe["some-nonexistent.timer"]
    assert (missing["load_state"], missing["fragment_path"]) == ("not-found", "")
    stock = facts_probe["dpkg-db-backup.timer"]
    assert stock["load_state"] == "loaded"
    assert stock["fragment_path"].endswith("/systemd/system/dpkg-db-backup.timer")
    assert stock["calendars"] == ["*-*-* 00:00:00"]  # daily, as systemd normalises it
    monotonic = facts_probe["systemd-tmpfiles-clean.timer"]
    assert (monotonic["unit_file_state"], monotonic["calendars"]) == ("static", [])

    probe = facts_probe[f"{FACTS_PROBE}.timer"]
    assert probe["calendars"] == ["*-*-* 04:30:00"]
    assert probe["persistent"] is True
    assert probe["randomized_delay_seconds"] == 600.0
    assert (probe["unit_file_state"], probe["active_state"]) == ("enabled", "active")
    assert probe["fragment_path"] == f"{UNIT_DIR}/{FACTS_PROBE}.timer"


def test_facts_next_elapse_matches_systemctl(
    host: SystemdHost, facts_probe: dict[str, Any]
) -> None:
    for name in (f"{FACTS_PROBE}.timer", "dpkg-db-backup.timer"):
        systemd_says = systemd_time(
            show(host, name, "NextElapseUSecRealtime")["NextElapseUSecRealtime"]
        )
        assert systemd_says is not None, name
        assert facts_probe[name]["next_elapse"] is not None, name
        facts_say = datetime.fromisoformat(facts_probe[name]["next_elapse"].replace("Z", "+00:00"))
        assert facts_say == systemd_says, name


# ---- 2. docker-prune.timer is masked -----------------------------------------------------


@pytest.mark.parametrize(
    "unit_dir",
    [VENDOR_DIR, UNIT_DIR],
    ids=["vendor-unit-in-usr-lib", "unit-file-in-etc"],
)
def test_docker_prune_timer_is_planned_absent_then_masked(
    host: SystemdHost, ccci: Ccci, unit_dir: str
) -> None:
    install_docker_prune(host, unit_dir)
    fragment = show(host, "docker-prune.timer", "FragmentPath")["FragmentPath"]
    assert fragment.endswith("/systemd/system/docker-prune.timer")  # /lib is /usr/lib
    ccci.set_policies(timers=timer_policy(absent=["docker-prune.timer"]))

    plan = ccci.plan_json()
    change = changes(plan)["timer:docker-prune.timer"]
    assert change["action"] == "delete"
    assert fragment in change["reason"]
    assert change["before"]["fragment_path"] == fragment
    assert (change["before"]["unit_file_state"], change["before"]["active_state"]) == (
        "enabled",
        "active",
    )

    done = apply(ccci)
    assert "- timer docker-prune.timer (docker-prune.timer): ok" in done.stdout
    assert RECAP.search(done.stdout) and "failed=0" in done.stdout
    after = show(host, "docker-prune.timer", "LoadState", "ActiveState", "UnitFileState")
    assert after == {"LoadState": "masked", "ActiveState": "inactive", "UnitFileState": "masked"}
    mask = host.exec("readlink", f"{UNIT_DIR}/docker-prune.timer").stdout.strip()
    assert mask == "/dev/null"  # the unit file in /etc was removed to make way for the mask
    assert "docker-prune.timer" not in host.systemctl("list-timers", "--all").stdout

    again = ccci.plan_json()
    assert "timer:docker-prune.timer" not in changes(again)
    assert noops(again)["timer:docker-prune.timer"]["reason"] == "masked"
    assert ccci.run("reconcile", "--plan", "--detailed-exitcode").returncode == 0
    forget(host, "docker-prune.timer", "docker-prune.service")


# ---- 3 & 4. a present timer --------------------------------------------------------------


def test_missing_ccci_timer_is_created_enabled_and_started(host: SystemdHost, ccci: Ccci) -> None:
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    ccci.set_policies(timers=timer_policy(present=[nightly_spec()]))

    plan = ccci.plan_json()
    found = changes(plan)
    assert {a: c["action"] for a, c in found.items()} == {
        f"unit:{NIGHTLY}.service": "create",
        f"unit:{NIGHTLY}.timer": "create",
        f"timer:{NIGHTLY}.timer": "update",
    }
    assert found[f"unit:{NIGHTLY}.timer"]["after"]["path"] == f"{UNIT_DIR}/{NIGHTLY}.timer"
    assert ccci.run("reconcile", "--plan", "--detailed-exitcode", check=False).returncode == 2

    done = apply(ccci)
    assert "changed=3 failed=0" in done.stdout, done.stdout
    state = show(host, f"{NIGHTLY}.timer", "UnitFileState", "ActiveState", "TimersCalendar")
    assert (state["UnitFileState"], state["ActiveState"]) == ("enabled", "active")
    assert "OnCalendar=*-*-* 00:00:00" in state["TimersCalendar"]
    next_elapse = show(host, f"{NIGHTLY}.timer", "NextElapseUSecRealtime")
    assert systemd_time(next_elapse["NextElapseUSecRealtime"]) is not None
    written = host.exec("cat", f"{UNIT_DIR}/{NIGHTLY}.service").stdout
    assert "SuccessExitStatus=75" in written and "ExecStart=/opt/ccci/bin/ccci" in written

    assert ccci.run("reconcile", "--plan", "--detailed-exitcode").returncode == 0


SCHEDULE_PROBE = "ccci-schedule-probe"


def _schedule_policy(on_calendar: str) -> str:
    spec = {"name": SCHEDULE_PROBE, "on_calendar": on_calendar, "exec": "/bin/true"}
    return timer_policy(present=[spec])


@pytest.fixture
def daily_probe(host: SystemdHost, ccci: Ccci) -> Ccci:
    """ccci-schedule-probe.timer installed through its policy with `on_calendar: daily`."""
    forget(host, f"{SCHEDULE_PROBE}.timer", f"{SCHEDULE_PROBE}.service")
    ccci.set_policies(timers=_schedule_policy("daily"))
    apply(ccci)
    assert ccci.run("reconcile", "--plan", "--detailed-exitcode").returncode == 0
    return ccci


def test_schedule_edit_is_a_unit_diff_and_reaches_systemd(
    host: SystemdHost, daily_probe: Ccci
) -> None:
    ccci = daily_probe
    ccci.set_policies(timers=_schedule_policy("*-*-* 03:00:00"))

    text = ccci.run("reconcile", "--plan").stdout
    assert f"~ unit {SCHEDULE_PROBE}.timer" in text
    diff = [line.strip() for line in text.splitlines()]
    assert "-OnCalendar=daily" in diff
    assert "+OnCalendar=*-*-* 03:00:00" in diff
    assert f"--- {UNIT_DIR}/{SCHEDULE_PROBE}.timer" in diff
    assert f"~ timer {SCHEDULE_PROBE}.timer" in text
    assert ANSI not in text  # not a terminal
    found = changes(ccci.plan_json())
    assert {a: c["action"] for a, c in found.items()} == {
        f"unit:{SCHEDULE_PROBE}.timer": "update",
        f"timer:{SCHEDULE_PROBE}.timer": "update",
    }

    apply(ccci)
    state = show(host, f"{SCHEDULE_PROBE}.timer", "TimersCalendar", "NextElapseUSecRealtime")
    assert "OnCalendar=*-*-* 03:00:00" in state["TimersCalendar"]
    next_run = systemd_time(state["NextElapseUSecRealtime"])
    assert next_run is not None and next_run.strftime("%H:%M:%S") == "03:00:00"
    assert ccci.run("reconcile", "--plan", "--detailed-exitcode").returncode == 0


def test_same_schedule_in_other_words_is_no_change(host: SystemdHost, daily_probe: Ccci) -> None:
    ccci = daily_probe
    ccci.set_policies(timers=_schedule_policy("*-*-* 00:00:00"))
    plan = ccci.plan_json()
    assert changes(plan) == {}
    assert noops(plan)[f"unit:{SCHEDULE_PROBE}.timer"]["reason"] == "matches the policy"
    assert ccci.run("reconcile", "--plan", "--detailed-exitcode").returncode == 0
    on_disk = host.exec("cat", f"{UNIT_DIR}/{SCHEDULE_PROBE}.timer").stdout
    assert "OnCalendar=daily" in on_disk  # left as it was


# ---- 5. read-only unit directory ---------------------------------------------------------


def test_read_only_unit_dir_yields_the_nixos_manual_action(
    ro_host: SystemdHost, ro_ccci: Ccci, ro_units_dir: Path
) -> None:
    host, ccci = ro_host, ro_ccci
    assert host.exec("touch", f"{RO_UNIT_DIR}/.probe", check=False).returncode != 0
    install_docker_prune(host, VENDOR_DIR)
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    ccci.set_policies(
        timers=timer_policy(
            present=[nightly_spec()], absent=["docker-prune.timer"], unit_dir=RO_UNIT_DIR
        )
    )

    plan = ccci.plan_json()
    assert changes(plan) == {}
    todo = manual(plan)
    assert set(todo) == {f"unit:{NIGHTLY}.service", "timer:docker-prune.timer"}
    assert "ccci systemd install --format nix" in todo[f"unit:{NIGHTLY}.service"]["how"]
    assert "NixOS" in todo[f"unit:{NIGHTLY}.service"]["how"]
    prune_how = todo["timer:docker-prune.timer"]["how"]
    assert "virtualisation.docker.autoPrune.enable = lib.mkForce false;" in prune_how
    assert "nixos-rebuild switch" in prune_how
    assert plan["summary"]["empty"] is False

    text = ccci.run("reconcile", "--plan").stdout
    assert "To do by hand" in text and "virtualisation.docker.autoPrune.enable" in text
    assert ccci.run("reconcile", "--plan", "--detailed-exitcode", check=False).returncode == 2

    # An apply attempts nothing: the vendor timer keeps running, nothing is written.
    ccci.run("reconcile", "--apply", "--yes", check=False)
    state = show(host, "docker-prune.timer", "UnitFileState", "ActiveState")
    assert state == {"UnitFileState": "enabled", "ActiveState": "active"}
    assert list(ro_units_dir.iterdir()) == []
    assert show(host, f"{NIGHTLY}.timer", "LoadState")["LoadState"] == "not-found"
    forget(host, "docker-prune.timer", "docker-prune.service")


RO_PROBE = "ccci-ro-probe"


def test_read_only_unit_dir_with_the_units_as_declared_is_no_change(
    ro_host: SystemdHost, ro_ccci: Ccci, ro_units_dir: Path
) -> None:
    host, ccci = ro_host, ro_ccci
    spec = {"name": RO_PROBE, "on_calendar": "daily", "exec": "/bin/true"}
    forget(host, f"{RO_PROBE}.timer", f"{RO_PROBE}.service")
    # What ccci would write, as a writable unit dir's plan shows it ...
    ccci.set_policies(timers=timer_policy(present=[spec]))
    rendered = {
        c["after"]["path"].rsplit("/", 1)[1]: c["after"]["content"]
        for c in changes(ccci.plan_json()).values()
        if c["address"].startswith("unit:")
    }
    assert set(rendered) == {f"{RO_PROBE}.service", f"{RO_PROBE}.timer"}
    try:
        # ... put in place by "the NixOS configuration": read-only files, linked and enabled.
        for filename, content in rendered.items():
            (ro_units_dir / filename).write_text(content, encoding="utf-8")
        for filename in rendered:
            host.systemctl("link", f"{RO_UNIT_DIR}/{filename}")
        host.systemctl("enable", "--now", f"{RO_PROBE}.timer")
        ccci.set_policies(timers=timer_policy(present=[spec], unit_dir=RO_UNIT_DIR))

        plan = ccci.plan_json()
        assert changes(plan) == {}
        assert manual(plan) == {}
        assert ccci.run("reconcile", "--plan", "--detailed-exitcode", check=False).returncode == 0
    finally:
        for filename in rendered:
            host.systemctl("disable", "--now", filename, check=False)
            (ro_units_dir / filename).unlink(missing_ok=True)
        forget(host, f"{RO_PROBE}.timer", f"{RO_PROBE}.service")


# ---- 6. the nightly run, end to end ------------------------------------------------------


def systemd_install(ccci: Ccci) -> str:
    """`ccci systemd install` as an operator runs it: ccci on PATH, config in /etc/ccci."""
    done = ccci.run("systemd", "install", "--working-directory", CONFIG_DIR, env=[PATH_WITH_CCCI])
    return done.stdout


@pytest.fixture
def nightly(host: SystemdHost, ccci: Ccci) -> Ccci:
    """ccci-reconcile installed by `ccci systemd install`, with the policies of a CI host in
    /etc/ccci/policies: a gated prune whose disk gate is closed, and a TimerPolicy that wants
    docker-prune.timer absent (it does not exist here)."""
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    forget(host, "docker-prune.timer", "docker-prune.service")
    host.exec("rm", "-rf", STATE_DIR)
    host.exec("mkdir", "-p", STATE_DIR)
    ccci.set_policies(
        prune=closed_prune_policy(), timers=timer_policy(absent=["docker-prune.timer"])
    )
    out = systemd_install(ccci)
    assert f"wrote {UNIT_DIR}/{NIGHTLY}.service" in out
    assert f"enabled and started {NIGHTLY}.timer" in out
    return ccci


def test_systemd_install_writes_and_enables_the_nightly_timer(
    host: SystemdHost, nightly: Ccci
) -> None:
    state = show(host, f"{NIGHTLY}.timer", "UnitFileState", "ActiveState", "TimersCalendar")
    assert (state["UnitFileState"], state["ActiveState"]) == ("enabled", "active")
    assert "OnCalendar=*-*-* 00:00:00" in state["TimersCalendar"]
    next_run = show(host, f"{NIGHTLY}.timer", "NextElapseUSecRealtime")
    assert systemd_time(next_run["NextElapseUSecRealtime"]) is not None
    service = show(host, f"{NIGHTLY}.service", "Type", "SuccessExitStatus", "WorkingDirectory")
    assert service["Type"] == "oneshot"
    assert "75" in service["SuccessExitStatus"]
    assert service["WorkingDirectory"] == CONFIG_DIR
    assert (
        "ExecStart=/opt/ccci/bin/ccci reconcile --apply --yes"
        in host.exec("cat", f"{UNIT_DIR}/{NIGHTLY}.service").stdout
    )
    # A TimerPolicy with the same values finds nothing to change on the installed units.
    nightly.set_policies(
        prune=closed_prune_policy(),
        timers=timer_policy(present=[nightly_spec()], absent=["docker-prune.timer"]),
    )
    plan = nightly.plan_json()
    assert not [a for a in changes(plan) if NIGHTLY in a]
    assert noops(plan)[f"unit:{NIGHTLY}.service"]["reason"] == "matches the policy"
    assert noops(plan)[f"timer:{NIGHTLY}.timer"]["reason"].startswith("enabled and active")
    assert nightly.run("reconcile", "--plan", "--detailed-exitcode").returncode == 0


METRICS = (
    "ccci_last_run_timestamp_seconds",
    "ccci_last_run_success",
    "ccci_converged",
    "ccci_changes",
    "ccci_bytes_reclaimed",
    "ccci_disk_usage_ratio",
    "ccci_gates_closed",
    "ccci_drift",
)


def _recaps(host: SystemdHost) -> list[dict[str, Any]]:
    lines = host.exec("cat", f"{STATE_DIR}/journal.jsonl").stdout.splitlines()
    return [e for e in map(json.loads, lines) if e.get("type") == "recap"]


def test_nightly_service_reconciles_against_the_private_engine(
    host: SystemdHost, nightly: Ccci
) -> None:
    started = time.time()
    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    assert ANSI not in journal  # the journal is not a terminal
    recap = RECAP.search(journal)
    assert recap, journal
    ok, changed, failed, skipped = map(int, recap.groups())
    assert (changed, failed, skipped) == (0, 0, 0) and ok >= 1, journal
    assert f"{INVENTORY_HOST}: converged" in journal
    # The gated prune ran its gates against the private engine and stayed shut.
    assert re.search(r"disk_usage\s+closed\s+disk \d+% < 80% on /run/lock", journal), journal
    assert "Policy ci-docker-prune does nothing" in journal
    assert RECAP.search(host.exec("journalctl", "-u", f"{NIGHTLY}.service", "-o", "cat").stdout)

    prom = host.exec("cat", f"{STATE_DIR}/ccci.prom").stdout
    for name in METRICS:
        assert f"# TYPE {name} gauge" in prom, name
    samples = prom_samples(prom)
    label = f'{{host="{INVENTORY_HOST}"}}'
    assert samples[f"ccci_last_run_success{label}"] == 1
    assert samples[f"ccci_converged{label}"] == 1
    assert samples[f"ccci_drift{label}"] == 0
    assert samples[f"ccci_bytes_reclaimed{label}"] == 0
    assert samples[f"ccci_gates_closed{label}"] >= 1  # disk (and perhaps others' live stacks)
    ratio = samples[f'ccci_disk_usage_ratio{{host="{INVENTORY_HOST}",path="/run/lock"}}']
    assert 0 <= ratio < 0.8
    first_run = samples[f"ccci_last_run_timestamp_seconds{label}"]
    assert started - 5 <= first_run <= time.time() + 5
    assert [(r["changed"], r["failed"], r["converged"]) for r in _recaps(host)] == [(0, 0, True)]

    # The second night: nothing changes, and the run still says so and refreshes the metrics
    # (a node_exporter alert on a stale ccci_last_run_timestamp_seconds must not fire).
    time.sleep(1.1)
    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    assert "No changes. Host matches policy." in journal
    recap = RECAP.search(journal)
    assert recap and recap.group(2) == "0" and recap.group(3) == "0", journal
    samples = prom_samples(host.exec("cat", f"{STATE_DIR}/ccci.prom").stdout)
    assert samples[f"ccci_last_run_timestamp_seconds{label}"] > first_run
    assert samples[f"ccci_last_run_success{label}"] == 1
    assert not [k for k in samples if k.startswith("ccci_changes")]
    assert len(_recaps(host)) == 2


def test_nightly_service_converges_on_a_timer_policy_naming_itself(
    host: SystemdHost, nightly: Ccci
) -> None:
    nightly.set_policies(
        prune=closed_prune_policy(),
        timers=timer_policy(present=[nightly_spec()], absent=["docker-prune.timer"]),
    )
    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    assert "To do by hand" not in journal, journal
    assert f"{INVENTORY_HOST}: converged" in journal, journal
    samples = prom_samples(host.exec("cat", f"{STATE_DIR}/ccci.prom").stdout)
    assert samples[f'ccci_converged{{host="{INVENTORY_HOST}"}}'] == 1
    assert samples[f'ccci_drift{{host="{INVENTORY_HOST}"}}'] == 0


def test_nightly_service_masks_docker_prune_timer(host: SystemdHost, nightly: Ccci) -> None:
    install_docker_prune(host, VENDOR_DIR)
    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    masked = show(host, "docker-prune.timer", "LoadState", "ActiveState")
    try:
        assert masked == {"LoadState": "masked", "ActiveState": "inactive"}, journal
        assert "- timer docker-prune.timer (docker-prune.timer): ok" in journal
        recap = RECAP.search(journal)
        assert recap and recap.group(2) == "1" and recap.group(3) == "0", journal
        samples = prom_samples(host.exec("cat", f"{STATE_DIR}/ccci.prom").stdout)
        key = f'ccci_changes{{host="{INVENTORY_HOST}",kind="timer",outcome="ok"}}'
        assert samples.get(key) == 1
    finally:
        forget(host, "docker-prune.timer", "docker-prune.service")


def test_nightly_service_with_the_lock_held_is_a_success(host: SystemdHost, nightly: Ccci) -> None:
    holder = "ccci-test-lock-holder"
    host.systemctl("stop", holder, check=False)
    host.systemctl("reset-failed", holder, check=False)
    host.exec("systemd-run", f"--unit={holder}", "flock", f"{STATE_DIR}/ccci.lock", "sleep", "120")
    try:
        deadline = time.monotonic() + 10
        while (
            host.exec("flock", "-n", f"{STATE_DIR}/ccci.lock", "true", check=False).returncode == 0
        ):
            assert time.monotonic() < deadline, "the lock holder never took the lock"
            time.sleep(0.1)
        props, journal = run_nightly(host)
        assert (props["Result"], props["ExecMainStatus"]) == ("success", "75"), journal
        assert "another apply holds the lock" in journal
        assert not RECAP.search(journal)  # it did nothing
        assert host.exec("test", "-e", f"{STATE_DIR}/ccci.prom", check=False).returncode != 0
    finally:
        host.systemctl("stop", holder, check=False)


def test_nightly_service_runs_on_a_fresh_host_without_a_state_dir(
    host: SystemdHost, nightly: Ccci
) -> None:
    host.exec("rm", "-rf", STATE_DIR)
    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    assert RECAP.search(journal), journal


def test_seed_timer_policy_keeps_the_installed_nightly_units(host: SystemdHost, ccci: Ccci) -> None:
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    host.exec("mkdir", "-p", STATE_DIR)
    systemd_install(ccci)
    # The repo's seed policy as shipped; the inventory sets ccci_bin and ccci_config_dir.
    ccci.set_policies(timers=(REPO / "policies" / "timers.yaml").read_text(encoding="utf-8"))
    plan = ccci.plan_json()
    assert [a for a in changes(plan) if NIGHTLY in a] == []


# ---- 7. printing the units ---------------------------------------------------------------


def _host_ccci(*args: str) -> str:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ccci"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_systemd_install_print_and_nix_formats() -> None:
    printed = _host_ccci("systemd", "install", "--print", "--working-directory", "/etc/ccci")
    assert f"# {UNIT_DIR}/{NIGHTLY}.service" in printed
    assert f"# {UNIT_DIR}/{NIGHTLY}.timer" in printed
    lines = printed.splitlines()
    for expected in (
        "Type=oneshot",
        "SuccessExitStatus=75",
        "WorkingDirectory=/etc/ccci",
        "OnCalendar=daily",
        "Persistent=true",
        "RandomizedDelaySec=15m",
        "WantedBy=timers.target",
    ):
        assert expected in lines, expected
    assert any(
        line.startswith("ExecStart=") and "reconcile --apply --yes" in line for line in lines
    )

    nix = _host_ccci("systemd", "install", "--format", "nix", "--working-directory", "/etc/ccci")
    assert "virtualisation.docker.autoPrune.enable = lib.mkForce false;" in nix
    assert 'Type = "oneshot";' in nix
    assert "SuccessExitStatus = [ 75 ];" in nix
    assert 'startAt = "daily";' in nix
    assert 'systemd.timers."ccci-reconcile".timerConfig' in nix
    assert "/usr/local/bin" not in nix and "/etc/systemd/system" not in nix


def test_printed_units_are_what_install_writes(host: SystemdHost, ccci: Ccci) -> None:
    """`--print` inside the host shows byte for byte the files a real install writes."""
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    env = [PATH_WITH_CCCI]
    printed = ccci.run(
        "systemd", "install", "--print", "--working-directory", CONFIG_DIR, env=env
    ).stdout
    systemd_install(ccci)
    for filename in (f"{NIGHTLY}.service", f"{NIGHTLY}.timer"):
        written = host.exec("cat", f"{UNIT_DIR}/{filename}").stdout
        assert f"# {UNIT_DIR}/{filename}\n{written}" in printed, filename


# ---- 8. the nightly's sandbox is derived from its policies -------------------------------

# A run-app prefix of this test only: the engine is shared, and the nightly reaps every
# orphan its selector matches.
ORPHAN_DOMAIN = "ccsd-0a1b2c.ci.example.org"
ORPHAN_STACK = ORPHAN_DOMAIN.replace(".", "_")
ABRA_SERVER = "default"  # abra's folder for a local server is named after the server
ORPHAN_ENV = f"/root/.abra/servers/{ABRA_SERVER}/{ORPHAN_DOMAIN}.env"


def orphan_policy() -> str:
    """Reap killed runs of this test's prefix only, env files included (abra's layout)."""
    doc = {
        "apiVersion": "ccci/v1",
        "kind": "OrphanStackPolicy",
        "metadata": {"name": "reap-killed-runs"},
        "hosts": "ci",
        "spec": {
            "run_apps": {"match": "^ccsd-[0-9a-f]{6}_ci_"},
            "orphan_after": "1h",
            "reap": ["services", "secrets", "configs", "networks", "volumes", "env_file"],
            "env_file": "/root/.abra/servers/{server}/{domain}.env",
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def test_nightly_service_reaps_an_orphan_env_file_under_root_with_protect_home(
    host: SystemdHost, ccci: Ccci
) -> None:
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    host.exec("rm", "-rf", STATE_DIR, "/root/.abra")
    host.exec("mkdir", "-p", STATE_DIR)
    ccci.set_policies(
        prune=closed_prune_policy(),
        timers=timer_policy(absent=["docker-prune.timer"]),
        orphans=orphan_policy(),
    )
    # A run killed before its deploy leaves only the env file `abra app new` wrote.
    host.write_file(ORPHAN_ENV, f"TYPE=redis\nDOMAIN={ORPHAN_DOMAIN}\n", mode="0600")
    host.exec("touch", "-d", "2 days ago", ORPHAN_ENV)
    systemd_install(ccci)
    unit = host.exec("cat", f"{UNIT_DIR}/{NIGHTLY}.service").stdout.splitlines()
    assert "ProtectHome=read-only" in unit
    assert [line for line in unit if line.startswith("ReadWritePaths=")] == [
        f"ReadWritePaths=-{UNIT_DIR}",
        "ReadWritePaths=-/root/.abra/servers",
        f"ReadWritePaths=-{STATE_DIR}",
    ]
    assert show(host, f"{NIGHTLY}.service", "ProtectHome")["ProtectHome"] == "read-only"
    reap = changes(ccci.plan_json())[f"stack:{ORPHAN_STACK}"]
    assert reap["before"]["env_file"] == [ORPHAN_ENV]

    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    assert "Read-only file system" not in journal, journal
    assert host.exec("test", "-e", ORPHAN_ENV, check=False).returncode != 0, journal
    assert f"stack:{ORPHAN_STACK}" not in changes(ccci.plan_json())


def test_a_sandbox_without_the_env_file_folder_cannot_reap_it(
    host: SystemdHost, ccci: Ccci
) -> None:
    """The control: the same run with the writable paths ccci used to write (state and
    unit directories only) fails on the read-only home, and the file stays."""
    forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
    host.exec("rm", "-rf", STATE_DIR, "/root/.abra")
    host.exec("mkdir", "-p", STATE_DIR)
    timers = timer_policy(present=[nightly_spec()], absent=["docker-prune.timer"])
    # The nightly's units as the policy lists them (no runs_ccci), applied from outside the
    # sandbox before the orphan policy exists: this apply must not reap the file itself.
    ccci.set_policies(prune=closed_prune_policy(), timers=timers)
    apply(ccci)
    host.write_file(ORPHAN_ENV, f"TYPE=redis\nDOMAIN={ORPHAN_DOMAIN}\n", mode="0600")
    host.exec("touch", "-d", "2 days ago", ORPHAN_ENV)
    ccci.set_policies(prune=closed_prune_policy(), timers=timers, orphans=orphan_policy())
    try:
        _, journal = run_nightly(host)
        assert host.exec("test", "-e", ORPHAN_ENV, check=False).returncode == 0, journal
        assert "Read-only file system" in journal, journal
    finally:
        forget(host, f"{NIGHTLY}.timer", f"{NIGHTLY}.service")
        host.exec("rm", "-rf", "/root/.abra")


# ---- 9. timers cannot shadow or mask what ccci does not own ------------------------------

SHADOW = "ccci-shadow-probe"
VENDOR_SERVICE = (
    "[Unit]\nDescription=a vendor unit\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
)


def test_a_present_timer_named_like_a_unit_ccci_did_not_write_changes_nothing(
    host: SystemdHost, ccci: Ccci
) -> None:
    forget(host, f"{SHADOW}.timer", f"{SHADOW}.service")
    host.write_file(f"{VENDOR_DIR}/{SHADOW}.service", VENDOR_SERVICE)
    host.systemctl("daemon-reload")
    fragment = show(host, f"{SHADOW}.service", "FragmentPath")["FragmentPath"]
    try:
        spec = {"name": SHADOW, "on_calendar": "daily", "exec": "/bin/false"}
        ccci.set_policies(timers=timer_policy(present=[spec]))
        plan = ccci.plan_json()
        assert changes(plan) == {}
        todo = manual(plan)[f"timer:{SHADOW}.timer"]
        assert todo["reason"] == (
            f"{SHADOW}.service exists at {fragment} and ccci did not write it "
            "(no '# Managed by ccci' header): ccci does not write over it"
        )
        ccci.run("reconcile", "--apply", "--yes", check=False)
        assert host.exec("test", "-e", f"{UNIT_DIR}/{SHADOW}.service", check=False).returncode
        assert host.exec("test", "-e", f"{UNIT_DIR}/{SHADOW}.timer", check=False).returncode
        assert show(host, f"{SHADOW}.service", "FragmentPath")["FragmentPath"] == fragment
        assert show(host, f"{SHADOW}.timer", "LoadState")["LoadState"] == "not-found"
    finally:
        forget(host, f"{SHADOW}.timer", f"{SHADOW}.service")


def test_a_timer_named_docker_is_refused_before_anything_runs(
    host: SystemdHost, ccci: Ccci
) -> None:
    spec = {"name": "docker", "on_calendar": "daily", "exec": "/bin/true"}
    ccci.set_policies(timers=timer_policy(present=[spec]))
    done = ccci.run("reconcile", "--plan", check=False)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ccci: /etc/ccci/policies/timers.yaml:"), line
    assert line.endswith(
        "spec.present[0].name: 'docker' would replace docker.service, which runs the Docker engine"
    ), line
    assert host.exec("test", "-e", f"{UNIT_DIR}/docker.service", check=False).returncode != 0


def test_absent_refuses_a_service_and_masks_nothing(host: SystemdHost, ccci: Ccci) -> None:
    forget(host, f"{SHADOW}.timer", f"{SHADOW}.service")
    host.write_file(f"{VENDOR_DIR}/{SHADOW}.service", VENDOR_SERVICE)
    host.systemctl("daemon-reload")
    try:
        ccci.set_policies(timers=timer_policy(absent=[f"{SHADOW}.service"]))
        done = ccci.run("reconcile", "--apply", "--yes", check=False)
        assert done.returncode == 1
        assert "spec.absent[0]: " in done.stderr and "absent masks timers only" in done.stderr
        assert show(host, f"{SHADOW}.service", "LoadState")["LoadState"] == "loaded"
    finally:
        forget(host, f"{SHADOW}.timer", f"{SHADOW}.service")


def test_a_unit_name_starting_with_a_dash_reaches_systemctl_as_a_unit_name(
    host: SystemdHost, ccci: Ccci
) -> None:
    """ccci's connector puts ``--`` before unit names: ``-H.timer`` is a unit that does not
    exist, not ``systemctl -H`` (connect to another host)."""
    script = (
        "from ccci.connectors.local import LocalConnector\n"
        "print(LocalConnector(host='x').systemctl('show', '-H.timer', options=('-pLoadState',)))"
    )
    done = host.exec(f"{VENV}/bin/python", "-c", script, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LoadState=not-found"
