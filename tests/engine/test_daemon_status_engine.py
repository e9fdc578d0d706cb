"""DaemonPolicy and ``ccci status`` proven on the private engine, through the real CLI.

Registry credentials: a Docker client config in the test's tmp dir holds a freshly planted
random token; ccci reads which registries have an entry (and for which user) and must never
let the token out, in any output or any file it writes. Engine settings are compared with
what the private engine reports. ``ccci status`` is checked on the demo scenario
(``python -m demo``) with its inventory and state.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccci_cli import CCCI, CliWorkspace, cli_env
from enginekit import prune_policy

from harness.engine import Engine
from harness.images import make_dangling_image

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "registry.example.org"
USER = "ci-bot"
NO_CHANGES = "No changes. Host matches policy."
EXIT_CHANGES = 2


# ---- the CLI, as a user runs it -----------------------------------------------------------


@dataclass
class Ccci(CliWorkspace):
    """The CLI against the private engine, with policies and state under ``root``; every
    stdout and stderr it printed is kept, so a test can search all of them."""

    printed: list[tuple[str, str]] = field(default_factory=list)

    def write_daemon_policy(self, spec: str) -> None:
        """A DaemonPolicy whose ``spec:`` body is ``spec`` (indented two spaces)."""
        self.write_policy(
            "daemon",
            "apiVersion: ccci/v1\n"
            "kind: DaemonPolicy\n"
            "metadata: {name: daemon}\n"
            "hosts: ci\n"
            "spec:\n" + spec,
        )

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = super().call(*args)
        self.printed.append((f"ccci {' '.join(args)}: stdout", done.stdout))
        self.printed.append((f"ccci {' '.join(args)}: stderr", done.stderr))
        return done


@pytest.fixture
def ccci(clean_engine: Engine, tmp_path: Path) -> Ccci:
    cli = Ccci(clean_engine, tmp_path)
    cli.write_inventory()
    return cli


def engine_info(engine: Engine) -> dict[str, Any]:
    """What the engine itself says (not ccci): data-root, storage driver, API version."""
    info = engine.api("/info")
    version = engine.api("/version")
    return {
        "data_root": info["DockerRootDir"],
        "driver": info["Driver"],
        "api": version["ApiVersion"],
    }


def host_plan(plan: dict[str, Any]) -> dict[str, Any]:
    (host,) = plan["hosts"]
    assert host["host"] == "cc-ci"
    return host


def manual_by_address(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["address"]: m for m in host_plan(plan)["manual"]}


def noops_by_address(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["address"]: n for n in host_plan(plan)["noops"]}


# ---- registry credentials in a client config ---------------------------------------------


def auth_blob(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def write_config(path: Path, auths: dict[str, Any], **extra: Any) -> Path:
    path.write_text(json.dumps({"auths": auths, **extra}, indent="\t"), encoding="utf-8")
    path.chmod(0o600)
    return path


def registry_policy(config: Path, user: str = USER) -> str:
    return f"  registry_auth: {{registry: {REGISTRY}, user: {user}, config: '{config}'}}\n"


AUTH_ADDRESS = f"daemon:registry_auth:{REGISTRY}"


def test_an_auth_entry_for_the_registry_and_user_is_no_manual_action(
    ccci: Ccci, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(48)
    config = write_config(
        tmp_path / "config.json", {f"https://{REGISTRY}/v1/": {"auth": auth_blob(USER, token)}}
    )
    ccci.write_daemon_policy(registry_policy(config))

    plan = ccci.plan()
    assert host_plan(plan)["manual"] == []
    assert plan["summary"]["empty"] is True
    noop = noops_by_address(plan)[AUTH_ADDRESS]
    assert noop["reason"] == f"auth entry present (user {USER})"

    text = ccci.run("reconcile", "--plan", "--detailed-exitcode").stdout
    assert text.splitlines()[0] == NO_CHANGES
    assert "To do by hand" not in text


def test_no_auth_entry_for_the_registry_is_a_manual_action_and_exit_2(
    ccci: Ccci, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(48)
    config = write_config(
        tmp_path / "other-config.json", {"other.example.org": {"auth": auth_blob(USER, token)}}
    )
    ccci.write_daemon_policy(registry_policy(config))

    plan = ccci.plan()
    assert plan["summary"]["empty"] is False
    assert host_plan(plan)["changes"] == []
    manual = manual_by_address(plan)[AUTH_ADDRESS]
    assert manual["reason"] == f"no auth entry for {REGISTRY} in {config}"
    assert manual["how"] == (
        f"run `docker login -u {USER} {REGISTRY}` as the user whose config is {config}"
    )
    assert manual["policy"] == "daemon"
    assert manual["source"]["file"].endswith("daemon.yaml")

    done = ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(EXIT_CHANGES,))
    lines = done.stdout.splitlines()
    assert lines[0] == "To do by hand (ccci does not change these):"
    assert lines[1] == (
        f"! daemon registry_auth:{REGISTRY} (registry auth for {REGISTRY}): "
        f"no auth entry for {REGISTRY} in {config}"
    )
    assert "Plan: 0 to add, 0 to change, 0 to remove, 1 to do by hand." in lines
    assert NO_CHANGES not in lines

    # Apply cannot do it: the run is recorded, the host is not converged until someone logs in.
    applied = ccci.run("reconcile", "--apply", "--yes", "--detailed-exitcode", expect=(2,))
    assert "cc-ci : ok=0 changed=0 failed=0 skipped=0 unreachable=0" in applied.stdout.splitlines()
    assert f"cc-ci: not converged, 1 still to do: daemon registry_auth:{REGISTRY}" in applied.stdout
    recap = [
        json.loads(line)
        for line in (ccci.state_dir / "journal.jsonl").read_text("utf-8").splitlines()
    ][-1]
    assert recap["type"] == "recap"
    assert recap["converged"] is False
    assert recap["remaining"] == [AUTH_ADDRESS]


def test_a_missing_client_config_is_a_manual_action(ccci: Ccci, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.json"
    ccci.write_daemon_policy(registry_policy(missing))
    manual = manual_by_address(ccci.plan())[AUTH_ADDRESS]
    assert manual["reason"] == f"{missing} does not exist"


def _forms(token: str) -> dict[str, str]:
    """Every shape in which the planted token could leak."""
    return {
        "token": token,
        "the token's first half": token[: len(token) // 2],
        "base64(token)": base64.b64encode(token.encode()).decode(),
        "the auth blob": auth_blob(USER, token),
        "urlsafe base64(token)": base64.urlsafe_b64encode(token.encode()).decode(),
    }


def test_the_planted_token_never_leaks_into_output_or_state(
    ccci: Ccci, gate_disk: str, tmp_path: Path
) -> None:
    """Every command that reads the config (facts, plan, apply, status), in every output
    format, and every file ccci writes: none holds the token in any form."""
    token = secrets.token_urlsafe(48)
    password = secrets.token_urlsafe(40)  # a username/password entry
    identity = secrets.token_urlsafe(40)  # an identity-token entry
    (tmp_path / "docker").mkdir()
    config = write_config(
        tmp_path / "docker" / "config.json",
        {
            REGISTRY: {"auth": auth_blob(USER, token)},
            "127.0.0.1:5000": {"username": "mirror", "password": password},
            "https://other.example.org/v1/": {"identitytoken": identity},
        },
        credHelpers={"helper.example.org": "pass"},
    )
    ccci.write_daemon_policy(registry_policy(config) + "  data_root: /srv/docker\n")
    # Something for apply to do, so the journal has change lines and metrics are written.
    ccci.write_policy("prune", prune_policy(gate_disk, live_stacks=None, converging=None))
    old = make_dangling_image(ccci.engine, datetime.now(UTC) - timedelta(days=3))

    # The facts did read the config: entries and users are there (so the search below
    # is not vacuous), the secrets are not.
    facts_json = json.loads(ccci.run("facts", "--output", "json").stdout)
    host_facts = facts_json["hosts"]["cc-ci"]
    (client_config,) = host_facts["client_configs"]
    assert client_config["path"] == str(config)
    assert {(a["registry"], a["user"]) for a in client_config["auths"]} == {
        (REGISTRY, USER),
        ("127.0.0.1:5000", "mirror"),
        ("other.example.org", ""),
        ("helper.example.org", ""),
    }
    ccci.run("facts")

    plan = ccci.plan()
    assert noops_by_address(plan)[AUTH_ADDRESS]["reason"] == f"auth entry present (user {USER})"
    assert [c["address"] for c in host_plan(plan)["changes"]] == [f"image:{old}"]
    ccci.run("reconcile", "--plan")
    ccci.run("reconcile", "--plan", "--verbose")
    ccci.run("reconcile", "--plan", "--out", str(tmp_path / "plan.json"))
    ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(EXIT_CHANGES,))
    ccci.run("reconcile", "--apply", "--yes")
    ccci.run("status")
    ccci.run("status", "--output", "json")
    # A wrong user is reported by name; the secret still stays out.
    ccci.write_daemon_policy(registry_policy(config, user="deploy-bot"))
    wrong = manual_by_address(ccci.plan())[AUTH_ADDRESS]
    assert wrong["reason"] == f"auth entry for {REGISTRY} is for user {USER}, expected deploy-bot"
    ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(EXIT_CHANGES,))
    ccci.run("reconcile", "--apply", "--yes")
    ccci.run("status", "--output", "json")

    written = sorted(p for p in ccci.state_dir.rglob("*") if p.is_file())
    names = {p.name for p in written}
    assert {"journal.jsonl", "ccci.prom"} <= names, names
    journal = (ccci.state_dir / "journal.jsonl").read_text("utf-8")
    assert f"image:{old}" in journal  # the apply did act and journal
    haystacks = [*ccci.printed]
    haystacks += [(str(p), p.read_bytes().decode("utf-8", "replace")) for p in written]
    haystacks.append(("plan.json", (tmp_path / "plan.json").read_text("utf-8")))

    def leaked(text: str, secret: str) -> list[str]:
        return [form for form, needle in _forms(secret).items() if needle in text]

    # The search finds what it looks for: the config itself holds each secret.
    held = config.read_text("utf-8")
    assert leaked(held, token) == ["the auth blob"]  # held only encoded
    assert leaked(held, password)[:2] == ["token", "the token's first half"]
    assert leaked(held, identity)[:2] == ["token", "the token's first half"]
    assert len(haystacks) >= 2 * 14 + 3  # stdout and stderr of 14 runs, and the files
    leaks = [
        f"{form} in {where}"
        for secret in (token, password, identity)
        for form, needle in _forms(secret).items()
        for where, text in haystacks
        if needle in text
    ]
    assert not leaks, "\n".join(leaks)


# ---- engine settings ---------------------------------------------------------------------


def test_a_data_root_mismatch_is_a_manual_action_with_the_exact_message(ccci: Ccci) -> None:
    real = engine_info(ccci.engine)["data_root"]
    assert real != "/srv/docker"
    ccci.write_daemon_policy("  data_root: /srv/docker\n")
    plan = ccci.plan()
    manual = manual_by_address(plan)["daemon:data_root"]
    assert manual["reason"] == f"data-root is {real}, expected /srv/docker"
    assert manual["how"].startswith('set "data-root": "/srv/docker" in /etc/docker/daemon.json')
    assert host_plan(plan)["changes"] == []

    done = ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(EXIT_CHANGES,))
    assert f"! daemon data_root (data-root): data-root is {real}, expected /srv/docker" in (
        done.stdout.splitlines()
    )

    ccci.write_daemon_policy(f"  data_root: '{real}'\n")
    plan = ccci.plan()
    assert host_plan(plan)["manual"] == []
    assert noops_by_address(plan)["daemon:data_root"]["reason"] == f"data-root is {real}"


def test_the_storage_driver_matches_overlay2(ccci: Ccci) -> None:
    assert engine_info(ccci.engine)["driver"] == "overlay2", "the harness engine runs overlay2"
    ccci.write_daemon_policy("  storage_driver: overlay2\n")
    plan = ccci.plan()
    assert host_plan(plan)["manual"] == []
    assert noops_by_address(plan)["daemon:storage_driver"]["reason"] == "storage driver is overlay2"
    ccci.run("reconcile", "--plan", "--detailed-exitcode")

    ccci.write_daemon_policy("  storage_driver: btrfs\n")
    manual = manual_by_address(ccci.plan())["daemon:storage_driver"]
    assert manual["reason"] == "storage driver is overlay2, expected btrfs"


def test_an_api_version_below_the_minimum_is_a_manual_action(ccci: Ccci) -> None:
    api = engine_info(ccci.engine)["api"]
    ccci.write_daemon_policy("  min_api_version: '9.99'\n")
    manual = manual_by_address(ccci.plan())["daemon:api_version"]
    assert manual["reason"] == f"engine API {api} < 9.99"
    assert manual["how"] == "upgrade the Docker engine to one that speaks API 9.99 or later"
    ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(EXIT_CHANGES,))

    # 1.9 < 1.41 as numbers (as text "1.9" would sort after "1.41").
    ccci.write_daemon_policy("  min_api_version: '1.9'\n")
    plan = ccci.plan()
    assert host_plan(plan)["manual"] == []
    assert noops_by_address(plan)["daemon:api_version"]["reason"] == f"engine API {api} ≥ 1.9"


def test_the_shipped_daemon_policy_matches_the_engine(ccci: Ccci) -> None:
    """policies/daemon.yaml with the engine's data-root: nothing to do by hand."""
    info = engine_info(ccci.engine)
    ccci.inventory.write_text(
        "all:\n"
        "  vars:\n"
        f"    docker_data_root: '{info['data_root']}'\n"
        "  children:\n"
        "    ci:\n"
        "      hosts:\n"
        f"        cc-ci: {{docker_host: '{ccci.engine.docker_host}'}}\n",
        encoding="utf-8",
    )
    ccci.write_policy("daemon", (REPO / "policies" / "daemon.yaml").read_text("utf-8"))
    plan = ccci.plan()
    assert host_plan(plan)["manual"] == []
    assert set(noops_by_address(plan)) == {
        "daemon:data_root",
        "daemon:storage_driver",
        "daemon:api_version",
    }


# ---- ccci status on the demo scenario ----------------------------------------------------

DEMO_DIR = Path("/var/tmp/ccci-engine/demo")
DEMO_STACK = "traefik"


@dataclass(frozen=True)
class DemoStatus:
    engine: Engine
    text: str
    document: dict[str, Any]
    journal: list[dict[str, Any]]
    systemd: str
    seconds_after_demo: float


def _systemd_state() -> str:
    try:
        done = subprocess.run(
            ["systemctl", "is-system-running"], capture_output=True, text=True, timeout=30
        )
    except OSError as exc:
        return f"not available ({exc.strerror})"
    return done.stdout.strip() or "unknown"


@pytest.fixture(scope="module")
def demo_status() -> Iterator[DemoStatus]:
    """Run the demo (it resets the engine and seeds its story), then ``ccci status`` in
    text and JSON with the demo's inventory and state, right away and once."""
    from harness.pytest_support import engine_or_fail

    engine = engine_or_fail()
    env = cli_env(engine)
    demo = subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, f"demo failed\n{demo.stdout}\n{demo.stderr}"
    finished = datetime.now(UTC)
    env["CCCI_INVENTORY"] = str(DEMO_DIR / "inventory.yaml")
    env["CCCI_STATE_DIR"] = str(DEMO_DIR / "state")

    def status(*args: str) -> str:
        done = subprocess.run(
            [str(CCCI), "status", "-p", "policies", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"ccci status {args}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    text = status()
    document = json.loads(status("--output", "json"))
    lines = (DEMO_DIR / "state" / "journal.jsonl").read_text("utf-8").splitlines()
    journal = [json.loads(line) for line in lines if line.strip()]
    yield DemoStatus(
        engine,
        text,
        document,
        journal,
        _systemd_state(),
        (datetime.now(UTC) - finished).total_seconds(),
    )


def demo_host(demo: DemoStatus) -> dict[str, Any]:
    assert demo.document["format_version"] == 1
    (host,) = demo.document["hosts"]
    assert host["host"] == "cc-ci"
    return host


def demo_vars() -> dict[str, str]:
    """The demo inventory's vars: the data-root and the gate's tmpfs."""
    found = {}
    for line in (DEMO_DIR / "inventory.yaml").read_text("utf-8").splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("docker_data_root", "disk_gate_path"):
            found[key] = value.split("#", 1)[0].strip()
    return found


def test_status_disks_carry_their_thresholds(demo_status: DemoStatus) -> None:
    host = demo_host(demo_status)
    paths = demo_vars()
    disks = {d["path"]: d for d in host["disks"]}
    assert set(disks) == {paths["docker_data_root"], paths["disk_gate_path"]}
    gate = disks[paths["disk_gate_path"]]
    assert gate["ratio"] == pytest.approx(0.85, abs=0.01)  # the demo fills it to 85%
    assert gate["thresholds"] == [["ci-docker-prune", 0.8]]
    data = disks[paths["docker_data_root"]]
    assert data["thresholds"] == [["recipe-base-images", 0.85]]

    lines = demo_status.text.splitlines()
    gate_line = next(
        ln for ln in lines if ln.startswith("  disk     ") and paths["disk_gate_path"] in ln
    )
    assert gate_line.endswith(f"on {paths['disk_gate_path']} (ci-docker-prune at 80%)")
    data_line = next(
        ln for ln in lines if ln.startswith("  disk     ") and paths["docker_data_root"] in ln
    )
    assert data_line.endswith(f"on {paths['docker_data_root']} (recipe-base-images at 85%)")


def test_status_shows_each_gate_with_its_observed_value(demo_status: DemoStatus) -> None:
    host = demo_host(demo_status)
    paths = demo_vars()
    gates = {(g["policy"], g["gate"]["kind"]): g for g in host["gates"]}
    assert set(gates) == {
        (policy, kind)
        for policy in ("ci-docker-prune", "recipe-base-images")
        for kind in ("disk_usage", "no_live_stacks", "no_converging_services")
    }
    prune_disk = gates[("ci-docker-prune", "disk_usage")]
    assert prune_disk["open"] is True
    assert prune_disk["observed"] == f"disk 85% on {paths['disk_gate_path']} ≥ 80%"
    data_ratio = next(d["ratio"] for d in host["disks"] if d["path"] == paths["docker_data_root"])
    evict_disk = gates[("recipe-base-images", "disk_usage")]
    assert evict_disk["open"] is (data_ratio >= 0.85)
    assert paths["docker_data_root"] in evict_disk["observed"]
    run_apps = "'^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'"
    for policy in ("ci-docker-prune", "recipe-base-images"):
        stacks = gates[(policy, "no_live_stacks")]
        assert stacks["open"] is True
        assert stacks["observed"] == f"no live stack matches {run_apps}"
        converging = gates[(policy, "no_converging_services")]
        assert converging["open"] is True
        assert converging["observed"] == "no service converging (1 service)"

    lines = demo_status.text.splitlines()
    assert (
        f"  gate     ci-docker-prune disk_usage: open   disk 85% on {paths['disk_gate_path']} ≥ 80%"
        in lines
    )
    assert (
        "  gate     ci-docker-prune no_converging_services: open   no service converging "
        "(1 service)" in lines
    )


def test_status_shows_the_live_traefik_stack_with_its_age_and_no_orphans(
    demo_status: DemoStatus,
) -> None:
    host = demo_host(demo_status)
    (stack,) = host["live_stacks"]
    assert stack["name"] == DEMO_STACK
    assert stack["services"] == 1
    assert stack["converging"] == ""
    # Deployed during the demo, which took well under ten minutes.
    assert 0 <= stack["age_seconds"] < 600 + demo_status.seconds_after_demo
    assert host["orphans"] == []
    assert host["pending"] == 0
    assert host["manual"] == []
    assert host["missing_images"] == []

    lines = demo_status.text.splitlines()
    (stack_line,) = [ln for ln in lines if ln.startswith("  stack    ")]
    assert stack_line.startswith(f"  stack    {DEMO_STACK} (1 service, ")
    assert stack_line.endswith(" old)")
    assert "  orphans  none" in lines
    assert "  pending  0 changes (ccci reconcile --plan shows them)" in lines


def test_status_shows_the_last_run_from_the_journal(demo_status: DemoStatus) -> None:
    host = demo_host(demo_status)
    recaps = [e for e in demo_status.journal if e.get("type") == "recap" and e["host"] == "cc-ci"]
    newest = recaps[-1]
    run = host["last_run"]
    assert run["converged"] is True
    assert run["changed"] == 4  # the orphan reaped and three old dangling images pruned
    assert run["failed"] == 0
    assert (run["time"], run["run"], run["bytes_freed"]) == (
        newest["time"],
        newest["run"],
        newest["bytes_freed"],
    )
    assert run["bytes_freed"] > 0
    lines = demo_status.text.splitlines()
    assert lines[-1].startswith(
        f"  last run {newest['time']}: converged, changed=4 failed=0 skipped=0, freed "
    )


def test_status_timers_say_systemd_is_not_running(demo_status: DemoStatus) -> None:
    host = demo_host(demo_status)
    timers = {t["name"]: t for t in host["timers"]}
    assert timers["ccci-reconcile.timer"]["wanted"] == "present"
    assert timers["docker-prune.timer"]["wanted"] == "absent"
    state = demo_status.systemd
    if state in ("running", "degraded", "starting", "maintenance"):
        pytest.fail(f"systemd is {state} on this machine: the demo expects it not running")
    for timer in timers.values():
        assert timer["state"] == f"unknown (systemd {state})"
        assert timer["next_run"] is None and timer["last_run"] is None
    lines = demo_status.text.splitlines()
    assert f"  timer    ccci-reconcile.timer (wanted present): unknown (systemd {state})" in lines
    assert f"  timer    docker-prune.timer (wanted absent): unknown (systemd {state})" in lines


def test_status_is_unhealthy_for_the_disk_over_80_percent(demo_status: DemoStatus) -> None:
    host = demo_host(demo_status)
    paths = demo_vars()
    expected = [f"disk 85% on {paths['disk_gate_path']} is over ci-docker-prune's 80%"]
    data_ratio = next(d["ratio"] for d in host["disks"] if d["path"] == paths["docker_data_root"])
    if data_ratio >= 0.85:  # the machine's own disk is that full: also a problem, rightly
        expected.insert(
            0,
            f"disk {data_ratio:.0%} on {paths['docker_data_root']} is over "
            "recipe-base-images's 85%",
        )
    assert host["problems"] == expected
    assert host["healthy"] is False

    lines = demo_status.text.splitlines()
    assert lines[0] == "cc-ci: needs attention"
    assert lines[1].startswith("  engine   Docker ")
    assert f"data-root {paths['docker_data_root']}, swarm active" in lines[1]
    assert [ln.removeprefix("  !  ") for ln in lines if ln.startswith("  !  ")] == expected


def test_a_token_only_auth_blob_never_leaks(ccci: Ccci, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(48)
    raw = base64.b64encode(token.encode()).decode()
    config = write_config(tmp_path / "config.json", {REGISTRY: {"auth": raw}})
    ccci.write_daemon_policy(registry_policy(config))
    ccci.run("facts", "--output", "json")
    ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(0, EXIT_CHANGES))
    ccci.run("status")
    leaks = [where for where, text in ccci.printed if token in text]
    assert not leaks, leaks
