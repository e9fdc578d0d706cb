"""The swarm's view everywhere, on the three test hosts (one manager, two workers), through
the real ``ccci`` CLI over SSH: a saved plan is re-derived with the swarm's cluster objects
shared as ``reconcile`` shares them, and a node that holds a stack's volume but cannot be
reached leaves the stack not converged until a later run reaches it.

Every run points DOCKER_HOST at a socket that does not exist: anything ccci sent to this
machine's own engine for a remote host would fail.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetkit import (
    JANITOR,
    NO_LIVE_RUN_APPS,
    ccci,
    deploy_on_workers,
    journal,
    prune_policy,
    services,
    stop_sshd,
    volumes,
    workers_app,
    workspace,
)

from harness import fleet as fleet_mod
from harness.fleet import Fleet
from harness.images import buildkit_build

# The build cache is pruned only while no run-app is live: a gate a worker cannot judge on
# its own engine's view (it lists no services).
BUILD_CACHE_PRUNE = prune_policy(
    NO_LIVE_RUN_APPS, kinds=["dangling_build_cache"], name="fleet-build-cache"
)
# Eviction waits for the swarm's tasks (a task may be pulling the very image): a worker
# cannot list them. Its disk gate is the node's root filesystem, well over 2% used.
EVICTION = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: fleet-eviction}
hosts: fleet
spec:
  evict:
    when: {disk_usage: {path: /, at_least: 2%}}
    down_to: 1%
    unused_for: 14d
"""


def _deploy_on_workers(fleet: Fleet, deadline: int) -> str:
    """A killed run's app: one global service on the workers only, each task with the
    stack's named volume, so the volume exists on both workers and not on the manager.
    Its deadline has passed, on the service and on the volume alike (a volume left alone on
    a node is judged by its own labels, as on a lone host)."""
    stack = f"save-{uuid.uuid4().hex[:6]}_ci_example_org"
    compose = workers_app(deadline, volume_expires=True)
    deploy_on_workers(fleet, stack, compose)
    assert volumes(fleet.manager, stack) == []
    return stack


def test_a_saved_plan_reaps_a_stack_whose_volumes_live_on_two_nodes_completely_on_both(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = workspace(fleet, tmp_path, JANITOR)
    stack = _deploy_on_workers(fleet, int(time.time()) - 60)
    saved = root / "plan.json"

    planned = ccci(root, "reconcile", "--plan", "--out", str(saved))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    hosts = {h["host"]: h for h in json.loads(saved.read_text())["hosts"]}
    for worker in fleet.workers:
        (change,) = hosts[worker.name]["changes"]
        assert change["before"] == {"volumes": [f"{stack}_data"]}, change

    applied = ccci(root, "apply", str(saved), "--yes")
    out = applied.stdout + applied.stderr
    assert applied.returncode == 0, out
    assert "refused" not in out, out
    assert services(fleet, stack) == []
    for node in fleet.nodes:
        assert volumes(node, stack) == [], node.name
        assert f"{node.name} : ok=1 changed=1 failed=0" in applied.stdout, applied.stdout
    # The cluster host first: its reap is journalled before either worker's.
    reaps = [e["host"] for e in journal(root) if e.get("address") == f"stack:{stack}"]
    assert reaps[0] == fleet.manager.name, reaps
    assert sorted(reaps[1:]) == sorted(w.name for w in fleet.workers), reaps
    again = ccci(root, "reconcile", "--plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_stacks_volume_on_an_unreachable_node_keeps_it_unconverged_until_that_node_is_back(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = workspace(fleet, tmp_path, JANITOR)
    stack = _deploy_on_workers(fleet, int(time.time()) - 60)
    down, reached = fleet.workers
    stop_sshd(down)
    try:
        applied = ccci(root, "reconcile", "--apply", "--yes")
    finally:
        fleet_mod.ensure_fleet()
    out = applied.stdout + applied.stderr
    assert applied.returncode == 1, out  # a host was unreachable
    assert "Traceback" not in applied.stderr
    assert f"{down.name}: UNREACHABLE! " in applied.stdout, out
    # The manager reaped the swarm's objects, and the reached worker its volume ...
    assert services(fleet, stack) == []
    assert volumes(reached, stack) == []
    assert f"{reached.name} : ok=1 changed=1 failed=0" in applied.stdout, out
    # ... but the stack is not converged: its volume on the node no one reached is named.
    assert volumes(down, stack), "a volume on an unreachable node went away"
    assert f"volumes on node {down.node_id}" in applied.stdout, out
    recap = [e for e in journal(root) if e["type"] == "recap" and e["host"] == fleet.manager.name][
        -1
    ]
    assert recap["converged"] is False, recap
    assert f"stack:{stack}" in recap["remaining"], recap

    back = ccci(root, "reconcile", "--apply", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert volumes(down, stack) == []
    assert f"{down.name} : ok=1 changed=1 failed=0" in back.stdout, back.stdout
    for node in fleet.nodes:
        if node is not down:
            assert f"{node.name} : ok=0 changed=0 failed=0" in back.stdout, back.stdout
    again = ccci(root, "reconcile", "--plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_workers_lean_plan_reads_its_slow_facts_when_the_swarms_view_opens_the_gates(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    from ccci.state import lastuse

    fleet = clean_fleet
    root = workspace(fleet, tmp_path, BUILD_CACHE_PRUNE, EVICTION)
    worker = fleet.workers[0]
    image = buildkit_build(worker.engine, tmp_path / "context", f"evict/{uuid.uuid4().hex[:8]}:1")
    cache = worker.engine.api("/system/df").get("BuildCache") or []
    dangling = {r["ID"] for r in cache if not r["InUse"] and not r["Shared"]}
    assert dangling, cache
    # The worker's record says the image was last used two months ago (ccci's own record).
    long_ago = datetime.now(UTC) - timedelta(days=60)
    lastuse.write(root / "state" / f"last-use-{worker.name}.json", {image: long_ago})
    time.sleep(1.5)  # past the prune's 1s, so age is not what holds it (setup, not a measure)

    planned = ccci(root, "reconcile", "--plan", "-o", "json")
    assert planned.returncode == 0, planned.stderr
    hosts = {h["host"]: h for h in json.loads(planned.stdout)["hosts"]}
    changes = {c["address"]: c for c in hosts[worker.name]["changes"]}
    # The swarm's view (no run-app live, no task in flight anywhere) opened the gates the
    # worker's own view could not judge: its lean gather read the build cache ...
    assert {f"build_cache:{i}" for i in dangling} <= set(changes), hosts[worker.name]
    # ... and, after sharing, what evicting its image frees (the engine's disk-usage call).
    evicted = changes[f"image:{image}"]
    assert isinstance(evicted["before"]["unique_size"], int), evicted
