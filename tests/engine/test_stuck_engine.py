"""Stuck deploys and a partial view, on the private engine, through the real CLI.

Four deploys that never converge, made for real with ``docker stack deploy``:
- a run-app whose only service has a placement constraint no node satisfies (pending for
  ever, "no suitable node");
- a run-app whose healthcheck never passes (its task stays ``starting`` until swarm kills
  it as unhealthy and starts another);
- a crash-looping run-app (exits every second, restarted every second);
- a service of a stack that is not a run-app, pending for ever.

A service's age cannot be faked on a real engine, so "past stuck_after" and "past
orphan_after" are reached by planning with ``--now`` four hours ahead; the real clock then
shows the same services, just deployed, as in flight. What is left is read with the docker
CLI, independently of ccci.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from ccci_cli import CliWorkspace, stamp
from enginekit import (
    ahead,
    changes,
    gate,
    image_ids,
    orphan_policy,
    prune_policy,
    selector_policy,
    tasks_of,
    wait_until,
)

from harness.engine import Engine, ensure_engine
from harness.images import BASE_TAG, make_dangling_image
from harness.swarm import deploy_stack

pytestmark = pytest.mark.engine

PENDING = "pend-3fa9c1_ci_example_org"
UNHEALTHY = "hlth-4b5c6d_ci_example_org"
CRASHING = "cras-0b1c2d_ci_example_org"
INFRA = "infra"  # not a run-app: never reaped, only reported
NO_NODE = "no suitable node"
SETTLE = 90  # seconds a never-converging deploy may take to show its state


def later() -> datetime:
    """Past the policies' orphan_after (3h) and stuck_after (30m)."""
    return ahead()


class Ccci(CliWorkspace):
    """The CLI pointed at the private engine, with policies and state under ``root``."""

    def write(self, disk: str) -> None:
        """The inventory, and one policy file: the selector, the janitor and a prune whose
        converging gate gives a deploy 30m before it counts as stuck."""
        self.write_inventory()
        documents = (
            selector_policy(hosts=None),
            orphan_policy(
                expires_label=None,
                reap=("services", "secrets", "configs", "networks", "volumes"),
                env_file=None,
                abra_dir=str(self.root / "abra"),
                hosts=None,
            ),
            prune_policy(
                disk,
                converging="{stuck_after: 30m}",
                hosts=None,
            ),
        )
        self.write_policy("policies", "---\n".join(documents))


@pytest.fixture
def ccci(clean_engine: Engine, gate_disk: str, tmp_path: Path) -> Ccci:
    cli = Ccci(clean_engine, tmp_path)
    cli.write(gate_disk)
    return cli


# ---- deploys that never converge ---------------------------------------------------------


def compose(service: str) -> str:
    """One service, as a recipe under test would write it, that never converges."""
    body = {
        "pending": (
            '    command: ["sleep", "3600"]\n'
            '    deploy: {placement: {constraints: ["node.labels.nope==1"]}}\n'
        ),
        "unhealthy": (
            '    command: ["sleep", "3600"]\n'
            '    healthcheck: {test: ["CMD", "false"], interval: 2s, timeout: 1s, retries: 2}\n'
            "    deploy: {restart_policy: {condition: any, delay: 1s}}\n"
        ),
        "crashing": (
            '    command: ["sh", "-c", "sleep 1; exit 3"]\n'
            "    deploy: {restart_policy: {condition: any, delay: 1s}}\n"
        ),
    }[service]
    return (
        'version: "3.8"\nservices:\n  app:\n'
        f"    image: {BASE_TAG}\n    stop_grace_period: 1s\n{body}"
    )


def states(engine: Engine, service: str) -> list[str]:
    return [t["Status"]["State"] for t in tasks_of(engine, service)]


def deploy_never_converging(engine: Engine) -> None:
    """The four deploys, each seen in its never-ending state before ccci looks."""
    for stack, kind in (
        (PENDING, "pending"),
        (UNHEALTHY, "unhealthy"),
        (CRASHING, "crashing"),
        (INFRA, "pending"),
    ):
        deploy_stack(engine, stack, compose(kind), wait=False)
    wait_until(
        "the pending tasks", lambda: "pending" in states(engine, f"{PENDING}_app"), timeout=SETTLE
    )
    wait_until(
        "the infra task pending",
        lambda: "pending" in states(engine, f"{INFRA}_app"),
        timeout=SETTLE,
    )
    wait_until(
        "a health check to fail",
        lambda: "failed" in states(engine, f"{UNHEALTHY}_app"),
        timeout=SETTLE,
    )
    wait_until(
        "two crashes",
        lambda: states(engine, f"{CRASHING}_app").count("failed") >= 2,
        timeout=SETTLE,
    )


def services(engine: Engine) -> set[str]:
    out = engine.docker("service", "ls", "--format", "{{.Name}}").stdout
    return {line for line in out.splitlines() if line}


# ---- the stuck cases ---------------------------------------------------------------------


def test_stuck_deploys_are_reaped_and_pruned_past_stuck_after_and_status_names_the_rest(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    leftover = make_dangling_image(engine, datetime(2026, 1, 1, tzinfo=UTC), marker="stuck")
    deploy_never_converging(engine)

    # With the real clock every one of them was deployed seconds ago: in flight. The prune
    # waits, and no run-app is reaped (younger than orphan_after).
    now = ccci.plan()
    converging = gate(now, "no_converging_services")
    assert not converging["open"]
    assert converging["observed"].startswith(f"service {CRASHING}_app converging (")
    assert changes(now) == {}

    # Four hours on, each is stuck: the three run-apps are reaped although they converge,
    # and the stuck infra service no longer holds the prune back.
    ahead = later()
    plan = ccci.plan(ahead)
    planned = changes(plan)
    for stack in (PENDING, UNHEALTHY):
        reason = planned[f"stack:{stack}"]["reason"]
        assert f"; reaped although service {stack}_app stuck (" in reason, reason
    assert NO_NODE in planned[f"stack:{PENDING}"]["reason"]
    assert "unhealthy container" in planned[f"stack:{UNHEALTHY}"]["reason"]
    # Four hours on, the crash loop's last failure in these facts is four hours old: caught
    # between two crashes it may read as recovered. Either way it is reaped.
    assert planned[f"stack:{CRASHING}"]["reason"].startswith("run-app, newest object 4 hours")
    assert f"image:{leftover}" in planned
    assert not any(address.startswith(f"stack:{INFRA}") for address in planned)
    opened = gate(plan, "no_converging_services")
    assert opened["open"], opened
    # The reaped run-apps' services are gone before the prune runs: only infra's is named.
    assert opened["observed"] == (
        f"no service converging (4 services; not waiting for {INFRA}_app, stuck (1 task "
        f"pending, desired running) for 4 hours: {NO_NODE} (scheduling constraints not "
        "satisfied on 1 node))"
    )
    assert gate(plan, "no_live_stacks")["open"]

    before = ccci.status(ahead)
    assert any(
        p.startswith(f"service {INFRA}_app stuck (") and NO_NODE in p for p in before["problems"]
    ), before["problems"]

    ccci.run("reconcile", "--apply", "--yes", "--now", stamp(ahead))

    assert services(engine) == {f"{INFRA}_app"}
    assert leftover not in image_ids(engine)
    assert "pending" in states(engine, f"{INFRA}_app")  # untouched, still stuck
    after = ccci.status(ahead)
    stuck = [p for p in after["problems"] if p.startswith(f"service {INFRA}_app stuck (")]
    assert stuck and NO_NODE in stuck[0], after["problems"]
    assert after["orphans"] == []

    # An update starts its clock again: with the real clock it is in flight once more and
    # holds the gate, whatever its tasks' age.
    engine.docker("service", "update", "--detach", "--env-add", "X=1", f"{INFRA}_app")
    held = gate(ccci.plan(), "no_converging_services")
    assert not held["open"]
    assert held["observed"].startswith(f"service {INFRA}_app converging ("), held
    assert gate(ccci.plan(later()), "no_converging_services")["open"]


def test_a_crash_loop_holds_the_gate_in_every_plan_then_is_stuck_in_every_plan(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    deploy_stack(engine, CRASHING, compose("crashing"), wait=False)
    wait_until(
        "two crashes",
        lambda: states(engine, f"{CRASHING}_app").count("failed") >= 2,
        timeout=SETTLE,
    )

    # Plans across several restart cycles: the task of the moment may be running, waiting
    # out its delay or starting, but the answer is the same each time.
    phases = []
    answers = []
    for _ in range(8):
        phases.append(sorted(set(states(engine, f"{CRASHING}_app"))))
        answers.append(gate(ccci.plan(), "no_converging_services")["open"])
        answers.append(gate(ccci.plan(later()), "no_converging_services")["open"])
    assert answers == [False, True] * 8, f"task states seen: {phases}"


def test_a_view_without_the_swarm_reaps_nothing_and_prunes_nothing(ccci: Ccci) -> None:
    # A real engine outside any swarm stands in for a worker node or a locked swarm: all
    # three answer the service, task, secret and config lists with nothing, although a
    # swarm may be running services that use these images and volumes.
    engine = ccci.engine
    leftover = make_dangling_image(engine, datetime(2026, 1, 1, tzinfo=UTC), marker="noswarm")
    volume = f"{PENDING}_data"
    engine.docker("volume", "create", "--label", f"com.docker.stack.namespace={PENDING}", volume)
    (ccci.policies / "images.yaml").write_text(
        "apiVersion: ccci/v1\n"
        "kind: PrunePolicy\n"
        "metadata: {name: images-on-pressure}\n"
        "spec:\n"
        "  gates: {}\n"
        "  prune:\n"
        "    dangling_images: {older_than: 24h}\n",
        encoding="utf-8",
    )
    engine.docker("swarm", "leave", "--force")
    try:
        ahead = later()
        plan = ccci.plan(ahead)
        assert changes(plan) == {}
        # Each policy that cannot judge is a manual action: the host is not in sync.
        why = {m["address"]: m["reason"] for h in plan["hosts"] for m in h["manual"]}
        ccci.run("reconcile", "--plan", "--detailed-exitcode", "--now", stamp(ahead), expect=(2,))
        swarm_gap = "not gathered (swarm inactive: this engine is in no swarm)"
        assert why["policy:reap-killed-runs"].startswith("no stack judged: ")
        assert swarm_gap in why["policy:reap-killed-runs"]
        assert why["policy:images-on-pressure"] == (
            f"needed facts missing: services, tasks {swarm_gap}"
        )
        assert gate(plan, "no_live_stacks")["observed"] == f"services {swarm_gap}"

        ccci.run("reconcile", "--apply", "--yes", "--now", stamp(ahead))
        assert volume in engine.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        assert leftover in image_ids(engine)
        status = ccci.status(ahead)
        assert any(swarm_gap in p for p in status["problems"]), status["problems"]
    finally:
        ensure_engine()  # the harness brings its loopback swarm back
        engine.docker("volume", "rm", "-f", volume)
