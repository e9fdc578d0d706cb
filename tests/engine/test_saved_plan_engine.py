"""Saved plans are claims, not orders; apply does exactly the plan — on the private engine,
through the real CLI.

``ccci apply PLAN`` plans again with the policies on fresh facts and applies only the saved
changes that fresh plan makes too. Every test here edits a saved plan file the way someone
who can write it would, and proves on the engine (read with the docker CLI, independently
of ccci) that nothing was done, or, for untampered plans, that exactly the plan was done.

Ages: stacks are made old by a deadline label that has passed (``ci.expires=1``) and images
by an old ``created`` time, so every plan here is made at the real time, as ``ccci apply``
plans. Only the test of a plan made ``--now`` ahead uses ``--now``.
"""

from __future__ import annotations

import copy
import json
import os
import pty
import select
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccci_cli import HOST, CliWorkspace, stamp
from enginekit import (
    OLD,
    STACK_LABEL,
    YOUNG,
    JanitorCli,
    ahead,
    eviction,
    full_stack,
    image_ids,
    journal_changes,
    now,
    on_engine,
    recaps,
    retention_policy,
    seed_run_app,
    sleeper,
    wait_until,
)

from harness.engine import Engine
from harness.images import BASE_TAG, load_image, make_dangling_image
from harness.swarm import deploy_stack, remove_all_services

pytestmark = pytest.mark.engine

PROXY = "traefik"  # a stack that is not a run-app, holding data in a named volume
SIBLING = f"{OLD}_uk"  # a run-app whose name starts with OLD's: its secrets start with OLD_
PROMPT = "[y/N]"


# ---- a CI host with an orphan, a leftover image and a stack that must stay ----------------


@dataclass
class SavedPlans(JanitorCli):
    """The orphan janitor's CLI workspace plus a gated prune and a retention policy."""

    def write_retention(self, ensure_present: tuple[str, ...] = ()) -> None:
        lines = [
            "apiVersion: ccci/v1",
            "kind: ImageRetention",
            "metadata: {name: keep-base}",
            "hosts: ci",
            "spec:",
            f"  retain: ['{BASE_TAG}']",
        ]
        if ensure_present:
            lines.append("  ensure_present: [" + ", ".join(f"'{r}'" for r in ensure_present) + "]")
        self.write_policy("retention", "\n".join(lines) + "\n")

    def save_plan(self, *args: str) -> dict[str, Any]:
        self.run("reconcile", "--plan", "--out", "plan.json", *args)
        data: dict[str, Any] = json.loads(self.plan_path.read_text(encoding="utf-8"))
        return data

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    def write_plan(self, data: dict[str, Any]) -> None:
        self.plan_path.write_text(json.dumps(data, indent=2), encoding="utf-8")

    def apply_saved(self, *args: str, expect: tuple[int, ...]) -> subprocess.CompletedProcess[str]:
        return self.run("apply", str(self.plan_path), "--yes", *args, expect=expect)

    def on_terminal(
        self, *args: str, answer: str, at_prompt: Callable[[], None] = lambda: None
    ) -> tuple[int, str]:
        """Run ``ccci ARGS`` with a terminal on stdin, stdout and stderr; when it asks,
        run ``at_prompt`` and then type ``answer``. Returns the exit code and all output."""
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            self.argv(*args), stdin=follower, stdout=follower, stderr=follower,
            cwd=self.root, env=self.env(), close_fds=True,
        )  # fmt: skip
        os.close(follower)
        seen = b""
        try:
            seen = _read_until(leader, proc, PROMPT.encode())
            if PROMPT.encode() in seen:
                at_prompt()
                os.write(leader, answer.encode() + b"\n")
            seen += _read_until(leader, proc, None)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(leader)
        return code, seen.decode("utf-8", "replace").replace("\r\n", "\n")


def _read_until(fd: int, proc: subprocess.Popen[bytes], marker: bytes | None) -> bytes:
    """What the terminal shows until ``marker`` (or, for None, until the process ends)."""
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the process closed the terminal
                return seen
            if not chunk:
                return seen
            seen += chunk
            if marker is not None and marker in seen:
                return seen
        elif proc.poll() is not None and not ready:
            return seen
    pytest.fail(f"no {marker!r} on the terminal within 300s; saw {seen[-2000:]!r}")


def proxy_with_volume() -> str:
    return sleeper(volume="certs")


def volumes(engine: Engine) -> set[str]:
    return set(engine.docker("volume", "ls", "--format", "{{.Name}}").stdout.split())


def secrets(engine: Engine) -> set[str]:
    return set(engine.docker("secret", "ls", "--format", "{{.Name}}").stdout.split())


def host_plan(data: dict[str, Any]) -> dict[str, Any]:
    [host] = data["hosts"]
    assert isinstance(host, dict)
    return host


def change(data: dict[str, Any], address: str) -> dict[str, Any]:
    found = next(c for c in host_plan(data)["changes"] if c["address"] == address)
    assert isinstance(found, dict)
    return found


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert lines[0].startswith("ccci: "), lines[0]
    return lines[0]


@pytest.fixture
def host(clean_engine: Engine, gate_disk: str, tmp_path: Path) -> Iterator[SavedPlans]:
    """A CI host under disk pressure: an orphan run-app past its deadline, an old leftover
    image, and a proxy stack (not a run-app) with a data volume. Policies: the orphan
    janitor, the gated prune, a retention that keeps the base image."""
    cli = SavedPlans(clean_engine, tmp_path)
    cli.write_inventory()
    cli.write_policies(prune_disk=gate_disk)
    cli.write_retention()
    yield cli
    # Services first, and their task containers gone, before anyone's next reset runs
    # `docker stack rm` (which fails while a stack's network is still held by a task).
    remove_all_services(clean_engine)
    wait_until(
        "task containers to go",
        lambda: (
            not clean_engine.docker("ps", "-aq", "--filter", f"label={STACK_LABEL}").stdout.strip()
        ),
    )


def seed(cli: SavedPlans) -> str:
    """The orphan, the proxy and the leftover image; returns the leftover's id."""
    seed_run_app(cli, OLD, expires=1)
    deploy_stack(cli.engine, PROXY, proxy_with_volume())
    return make_dangling_image(cli.engine, _days_ago(3))


def _days_ago(days: int) -> datetime:
    return now() - timedelta(days=days)


# ---- the untampered plan applies: the control for every refusal below ---------------------


def test_an_untampered_saved_plan_applies_exactly_its_changes(host: SavedPlans) -> None:
    leftover = seed(host)
    saved = host.save_plan()
    assert {c["address"] for c in host_plan(saved)["changes"]} == {
        f"stack:{OLD}",
        f"image:{leftover}",
    }
    stack = change(saved, f"stack:{OLD}")
    # The stack change names the exact objects it removes, with the engine's ids.
    service_id = host.engine.docker(
        "service", "inspect", "--format", "{{.ID}}", f"{OLD}_app"
    ).stdout.strip()
    assert {"kind": "services", "name": f"{OLD}_app", "id": service_id} in stack["targets"]
    assert {(t["kind"], t["name"]) for t in stack["targets"]} == {
        ("services", f"{OLD}_app"),
        ("secrets", f"{OLD}_admin_token_v1"),
        ("secrets", f"{OLD}_db_password_v1"),
        ("configs", f"{OLD}_app_conf"),
        ("networks", f"{OLD}_backend"),
        ("volumes", f"{OLD}_data"),
        ("env_file", str(host.env_file(OLD))),
    }

    applied = host.apply_saved("--detailed-exitcode", expect=(0,))

    assert "changed=2 failed=0 skipped=0" in applied.stdout
    assert f"{HOST}: converged" in applied.stdout
    assert on_engine(host.engine, OLD, host.env_file(OLD)) == set()
    assert leftover not in image_ids(host.engine)
    assert f"{PROXY}_certs" in volumes(host.engine)
    assert {(c["address"], c["status"]) for c in journal_changes(host.journal())} == {
        (f"stack:{OLD}", "ok"),
        (f"image:{leftover}", "ok"),
    }


# ---- tampering: each edit refuses the whole plan, and nothing is done ---------------------


@dataclass
class Tamper:
    """What an edit of a saved plan aims at, and the means to forge its fingerprints."""

    cli: SavedPlans
    canary: Path  # a precious file in /etc, written by this test only
    cron: Path  # where a forged unit would land: must never exist
    leftover: str  # the leftover image the plan removes
    base_id: str  # the base image, retained by policy

    def forge(self, data: dict[str, Any], forged: dict[str, Any]) -> None:
        """Add a correct fingerprint for ``forged``, as anyone who can read ccci's facts
        and its (unkeyed) fingerprint can: the claim itself must be what refuses it."""
        from ccci.facts.model import Facts
        from ccci.plan.fingerprint import fingerprints_for
        from ccci.plan.model import Change
        from ccci.serde import from_jsonable

        snapshot = json.loads(self.cli.run("facts", "--output", "json").stdout)
        facts = Facts.from_dict(snapshot["hosts"][HOST])
        change = from_jsonable(Change, forged)
        prints = fingerprints_for(facts, (change,))
        host_plan(data)["fingerprints"][change.address] = prints[change.address]


def _env_file_to_etc(data: dict[str, Any], t: Tamper) -> str:
    stack = change(data, f"stack:{OLD}")
    for target in stack["targets"]:
        if target["kind"] == "env_file":
            target["name"] = str(t.canary)
    stack["before"]["env_file"] = [str(t.canary)]
    return f"stack:{OLD}: targets, before not as the policies plan it now"


def _unit_written_to_cron(data: dict[str, Any], t: Tamper) -> str:
    pwn = {
        "address": "unit:ccci-pwn.service",
        "action": "create",
        "label": str(t.cron),
        "reason": "missing",
        "policy": "reap-killed-runs",
        "source": {"file": "policies/orphans.yaml", "line": 1, "field": ""},
        "after": {"path": str(t.cron), "content": "* * * * * root touch /tmp/pwned\n"},
        "work": {
            "operation": "write_unit",
            "path": str(t.cron),
            "content": "* * * * * root touch /tmp/pwned\n",
        },
    }
    host_plan(data)["changes"].append(pwn)
    t.forge(data, pwn)
    return "unit:ccci-pwn.service: no policy plans this now"


def _fingerprints_dropped(data: dict[str, Any], t: Tamper) -> str:
    host_plan(data)["fingerprints"] = {}
    return f"stack:{OLD}: has no fingerprint"


def _one_fingerprint_dropped(data: dict[str, Any], t: Tamper) -> str:
    del host_plan(data)["fingerprints"][f"image:{t.leftover}"]
    return f"image:{t.leftover}: has no fingerprint"


def _other_stack_with_its_volume(data: dict[str, Any], t: Tamper) -> str:
    reap = copy.deepcopy(change(data, f"stack:{OLD}"))
    reap["address"] = f"stack:{PROXY}"
    reap["before"] = {"services": [f"{PROXY}_app"], "volumes": [f"{PROXY}_certs"]}
    reap["targets"] = [
        {"kind": "services", "name": f"{PROXY}_app", "id": ""},
        {"kind": "volumes", "name": f"{PROXY}_certs", "id": f"{PROXY}_certs"},
    ]
    host_plan(data)["changes"].insert(0, reap)
    t.forge(data, reap)
    return f"stack:{PROXY}: the policies would not do this now: not a run-app"


def _retained_image_added(data: dict[str, Any], t: Tamper) -> str:
    untag = copy.deepcopy(change(data, f"image:{t.leftover}"))
    untag["address"] = f"image:{t.base_id}"
    untag["before"]["tags"] = [BASE_TAG]
    host_plan(data)["changes"].append(untag)
    t.forge(data, untag)
    # No policy touches a retained tagged image, so no policy even looks at it: no reason.
    return f"image:{t.base_id}: no policy plans this now"


def _gates_removed(data: dict[str, Any], t: Tamper) -> str:
    host_plan(data)["gates"] = []
    return "policy ci-docker-prune: gates none are not the policies'"


def _action_changed(data: dict[str, Any], t: Tamper) -> str:
    change(data, f"image:{t.leftover}")["action"] = "replace"
    return f"image:{t.leftover}: action not as the policies plan it now"


def _address_changed(data: dict[str, Any], t: Tamper) -> str:
    # The leftover's removal re-aimed at the base image, fingerprint and all.
    host = host_plan(data)
    change(data, f"image:{t.leftover}")["address"] = f"image:{t.base_id}"
    host["fingerprints"][f"image:{t.base_id}"] = host["fingerprints"].pop(f"image:{t.leftover}")
    return f"image:{t.base_id}"


def _format_version(data: dict[str, Any], t: Tamper) -> str:
    data["format_version"] = 999
    return "format_version: 999 is not 3"


TAMPERING: dict[str, Callable[[dict[str, Any], Tamper], str]] = {
    "env-file-path-to-etc": _env_file_to_etc,
    "unit-written-to-cron": _unit_written_to_cron,
    "fingerprints-dropped": _fingerprints_dropped,
    "one-fingerprint-dropped": _one_fingerprint_dropped,
    "another-stack-with-its-data-volume": _other_stack_with_its_volume,
    "a-retained-image-added": _retained_image_added,
    "gates-removed": _gates_removed,
    "action-changed": _action_changed,
    "address-changed": _address_changed,
    "format-version-999": _format_version,
}


@pytest.mark.parametrize("edit", list(TAMPERING))
def test_a_tampered_saved_plan_is_refused_whole_in_one_line_and_nothing_is_done(
    host: SavedPlans, edit: str
) -> None:
    engine = host.engine
    leftover = seed(host)
    base_id = engine.docker("image", "inspect", "--format", "{{.Id}}", BASE_TAG).stdout.strip()
    # Files only this test writes, where an attacker would aim: /etc.
    canary = Path("/etc") / f"ccci-saved-plan-canary-{uuid.uuid4().hex[:8]}"
    cron = canary.with_name(canary.name + ".cron")
    canary.write_text("precious\n", encoding="utf-8")
    try:
        data = host.save_plan()
        expected = TAMPERING[edit](data, Tamper(host, canary, cron, leftover, base_id))
        host.write_plan(data)
        before_stack = on_engine(engine, OLD, host.env_file(OLD))
        before_images = image_ids(engine)

        refused = host.apply_saved(expect=(1,))

        line = one_line(refused.stderr)
        assert expected in line, line
        assert line.endswith("nothing was done") or "stale" in line or "format_version" in line
        assert on_engine(engine, OLD, host.env_file(OLD)) == before_stack
        assert image_ids(engine) == before_images
        assert f"{PROXY}_certs" in volumes(engine)
        assert canary.read_text(encoding="utf-8") == "precious\n"
        assert not cron.exists()
        assert host.journal() == []
    finally:
        canary.unlink(missing_ok=True)
        cron.unlink(missing_ok=True)


def test_a_plan_made_ahead_of_the_clock_is_refused_because_apply_plans_at_the_clock(
    host: SavedPlans,
) -> None:
    # A young run-app looks orphaned four hours from now; the saved plan says so, but the
    # apply plans at the clock's time, where it is a run that may still be going.
    seed_run_app(host, YOUNG)
    saved = host.save_plan("--now", stamp(ahead()))
    assert [c["address"] for c in host_plan(saved)["changes"]] == [f"stack:{YOUNG}"]

    refused = host.apply_saved(expect=(1,))

    line = one_line(refused.stderr)
    assert line.startswith(f"ccci: saved plan refused: {HOST}: stack:{YOUNG}: the policies would")
    assert "ahead of the clock" in line
    assert full_stack(YOUNG, host.env_file(YOUNG)) <= on_engine(
        host.engine, YOUNG, host.env_file(YOUNG)
    )
    assert host.journal() == []


# ---- apply does exactly the plan: what joins a stack after the plan is never removed ------


def _late_volume(engine: Engine) -> Callable[[], None]:
    def create() -> None:
        engine.docker("volume", "create", "--label", f"{STACK_LABEL}={OLD}", f"{OLD}_late")

    return create


def test_an_object_joining_the_stack_after_the_plan_is_reported_and_never_removed(
    host: SavedPlans,
) -> None:
    engine = host.engine
    seed_run_app(host, OLD, expires=1)
    # The plan is shown and the apply asks; while it waits, a volume joins the stack.
    code, shown = host.on_terminal(
        "reconcile", "--apply", "--detailed-exitcode", answer="y", at_prompt=_late_volume(engine)
    )

    assert code == 2, shown
    assert f"volume   {OLD}_data" in shown  # what will be removed was shown before asking
    assert f"left, not in the plan: volume {OLD}_late" in shown
    assert f"{HOST}: not converged" in shown
    assert on_engine(engine, OLD, host.env_file(OLD)) == {("volume", f"{OLD}_late")}
    [line] = journal_changes(host.journal())
    assert line["status"] == "ok"
    assert line["message"] == f"done; left, not in the plan: volume {OLD}_late"
    [recap] = recaps(host.journal())
    assert recap["converged"] is False
    assert recap["remaining"] == [f"stack:{OLD}"]


def test_a_saved_plan_is_stale_when_an_object_joins_the_stack_while_apply_asks(
    host: SavedPlans,
) -> None:
    engine = host.engine
    seed_run_app(host, OLD, expires=1)
    host.save_plan()
    before = on_engine(engine, OLD, host.env_file(OLD))

    code, shown = host.on_terminal(
        "apply", str(host.plan_path), answer="y", at_prompt=_late_volume(engine)
    )

    assert code == 1, shown
    assert f"saved plan is stale: the facts it was made from have moved ({HOST}: stack:{OLD})" in (
        shown
    )
    assert on_engine(engine, OLD, host.env_file(OLD)) == before | {("volume", f"{OLD}_late")}
    assert journal_changes(host.journal()) == []


def test_a_sibling_run_apps_secrets_survive_the_reap_of_the_shorter_stack(
    host: SavedPlans,
) -> None:
    engine = host.engine
    seed_run_app(host, OLD, expires=1)
    # abra app new + secret generate for the sibling, its deploy still to come: its env file
    # and its secrets, which start with OLD's name and an underscore.
    sibling_env = host.env_file(SIBLING)
    sibling_env.write_text(f"TYPE=redis\nDOMAIN={SIBLING.replace('_', '.')}\n", encoding="utf-8")
    sibling_secrets = {f"{SIBLING}_db_password_v1", f"{SIBLING}_admin_token_v1"}
    for name in sorted(sibling_secrets):
        engine.docker("secret", "create", name, "-", input="s3cret")

    applied = host.run("reconcile", "--apply", "--yes", "--detailed-exitcode")

    assert f"{HOST}: converged" in applied.stdout
    assert sibling_secrets <= secrets(engine)
    assert sibling_env.exists()
    assert on_engine(engine, OLD, host.env_file(OLD)) == {
        ("secret", name) for name in sibling_secrets
    }, "on_engine matches by prefix alone: only the sibling's secrets may be left"
    residual = host.residual(OLD, expect=(0,))
    assert residual.stdout.strip() == f"Nothing of {OLD} is left."


# ---- honest verification -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [("reconcile", "--apply", "--yes"), ("janitor",)], ids=["reconcile", "janitor"]
)
def test_a_reap_only_apply_reports_converged_while_an_ensure_present_image_is_present(
    host: SavedPlans, command: tuple[str, ...]
) -> None:
    host.write_retention(ensure_present=(BASE_TAG,))
    seed_run_app(host, OLD, expires=1)

    applied = host.run(*command)

    assert f"{HOST}: converged" in applied.stdout, applied.stdout
    [recap] = recaps(host.journal())
    assert (recap["converged"], recap["remaining"]) == (True, [])
    assert on_engine(host.engine, OLD, host.env_file(OLD)) == set()


# ---- several hosts -------------------------------------------------------------------------


def test_a_saved_plan_for_two_hosts_applies_on_both(host: SavedPlans) -> None:
    engine = host.engine
    host.write_inventory(("cc-ci-a", "cc-ci-b"))  # each reached at the same engine
    leftover = make_dangling_image(engine, _days_ago(3))
    saved = host.save_plan()
    assert [(h["host"], [c["address"] for c in h["changes"]]) for h in saved["hosts"]] == [
        ("cc-ci-a", [f"image:{leftover}"]),
        ("cc-ci-b", [f"image:{leftover}"]),
    ]

    applied = host.apply_saved(expect=(0,))

    assert "cc-ci-a : ok=" in applied.stdout and "cc-ci-b : ok=" in applied.stdout
    assert leftover not in image_ids(engine)
    # Both hosts are the same engine and apply at once (--forks): whichever comes second
    # finds the image gone already.
    results = sorted((c["status"], c["message"]) for c in journal_changes(host.journal()))
    assert results == [("ok", "already gone"), ("ok", "done")]
    assert {c["host"] for c in journal_changes(host.journal())} == {"cc-ci-a", "cc-ci-b"}
    assert {r["host"]: r["converged"] for r in recaps(host.journal())} == {
        "cc-ci-a": True,
        "cc-ci-b": True,
    }


def test_a_saved_plan_naming_a_host_the_inventory_lacks_is_refused(host: SavedPlans) -> None:
    leftover = seed(host)
    data = host.save_plan()
    data["hosts"][0]["host"] = "elsewhere"
    host.write_plan(data)

    refused = host.apply_saved(expect=(1,))

    assert "saved plan refused: elsewhere: not a host" in one_line(refused.stderr)
    assert leftover in image_ids(host.engine)


# ---- asking first --------------------------------------------------------------------------


def test_apply_without_yes_and_without_a_terminal_refuses_and_does_nothing(
    host: SavedPlans,
) -> None:
    leftover = seed(host)
    host.save_plan()
    for args in (("apply", str(host.plan_path)), ("reconcile", "--apply")):
        done = subprocess.run(
            host.argv(*args), cwd=host.root, env=host.env(), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 1, done
        assert one_line(done.stderr) == (
            "ccci: refusing to apply without --yes when stdin is not a terminal; nothing was done"
        )
    assert leftover in image_ids(host.engine)
    assert full_stack(OLD, host.env_file(OLD)) <= on_engine(host.engine, OLD, host.env_file(OLD))
    assert host.journal() == []


@pytest.mark.parametrize("command", ["apply", "reconcile"])
def test_an_interactive_apply_shows_what_it_removes_and_a_no_does_nothing(
    host: SavedPlans, command: str
) -> None:
    leftover = seed(host)
    host.save_plan()
    args = ("apply", str(host.plan_path)) if command == "apply" else ("reconcile", "--apply")

    code, shown = host.on_terminal(*args, answer="n")

    assert code == 1, shown
    assert f"- stack {OLD}" in shown and f"volume   {OLD}_data" in shown
    assert "Apply 2 removal(s) and 0 other change(s) on cc-ci? [y/N]" in shown
    assert leftover in image_ids(host.engine)
    assert full_stack(OLD, host.env_file(OLD)) <= on_engine(host.engine, OLD, host.env_file(OLD))
    assert journal_changes(host.journal()) == []


def test_an_interactive_saved_apply_acts_after_a_yes(host: SavedPlans) -> None:
    leftover = seed(host)
    host.save_plan()

    code, shown = host.on_terminal("apply", str(host.plan_path), answer="y")

    assert code == 0, shown
    assert "changed=2 failed=0 skipped=0" in shown
    assert leftover not in image_ids(host.engine)
    assert on_engine(host.engine, OLD, host.env_file(OLD)) == set()


# ---- an eviction plan, saved while its gate was open ---------------------------------------


def test_a_saved_eviction_plan_applies_when_nothing_moved(
    clean_engine: Engine, gate_disk: str, tmp_path: Path
) -> None:
    # The plan asks the engine's slow disk-usage call for unique sizes, because the
    # eviction's gate is open; the facts gathered before applying need not have them. An
    # image is the same image whether or not its unique size was asked for.
    engine = clean_engine
    cli = CliWorkspace(engine, tmp_path)
    cli.write_inventory()
    seeded = now()
    lru = [
        load_image(engine, f"ccci-evict/{name}:1", seeded - timedelta(days=200), 4 << 20)
        for name in ("a", "b", "c", "d")
    ]
    cli.record_last_use({ident: seeded - timedelta(days=60 - i) for i, ident in enumerate(lru)})
    cli.write_policy("retention", retention_policy(evict=eviction(gate_disk)))
    cli.run("reconcile", "--plan", "--out", "plan.json")
    saved = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    planned = [c["address"] for h in saved["hosts"] for c in h["changes"]]
    assert planned and set(planned) <= {f"image:{i}" for i in lru}

    applied = cli.run("apply", "plan.json", "--yes", expect=(0,))

    assert f"changed={len(planned)} failed=0 skipped=0" in applied.stdout
    assert image_ids(engine).isdisjoint(a.removeprefix("image:") for a in planned)
    assert {(c["address"], c["status"]) for c in journal_changes(cli.journal())} == {
        (a, "ok") for a in planned
    }
