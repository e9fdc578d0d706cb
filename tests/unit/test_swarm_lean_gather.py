"""A worker's lean gather, from fact snapshots: whether its build cache and image sizes (the
engine's slow calls) are worth reading is decided on the swarm's view it is planned on, not
on its own view, where every gate that asks about the swarm is closed for want of services."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ccci.config.inventory import Host
from ccci.facts.model import DiskUsage, FactGap, Facts, GapCause
from ccci.policy.load import HostPolicies
from ccci.rules.swarmreap import NODE_KINDS
from ccci.run.gather import SlowWants, slow_wanted
from ccci.run.swarmscope import borrows, plan_in_scope, share
from tests.rules.test_rule_cases import policies_from_text
from tests.unit.test_swarm_scope import NOW, STACK, manager_facts, worker_facts

PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
spec:
  gates:
    no_live_stacks: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
  prune:
    dangling_build_cache: {older_than: 1h}
"""

EVICT = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
spec:
  retain: ['redis:7-alpine']
  evict:
    when: {disk_usage: {path: /var/lib/docker, at_least: 85%}}
    down_to: 75%
    unused_for: 14d
"""

JANITOR = """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
spec:
  run_apps: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
  orphan_after: 3h
  reap: [services, secrets, configs, networks, volumes]
"""

NOT_ASKED = FactGap("build_cache", GapCause.NOT_ASKED, "")
FULL_DISK = DiskUsage("/var/lib/docker", 100, 90, 10)


def _target(text: str, tmp_path: Path, host: str = "ci-2") -> HostPolicies:
    return HostPolicies(Host(host, {"inventory_hostname": host}, ("all",)), tuple(
        policies_from_text(text, tmp_path)
    ))  # fmt: skip


def _lean_worker() -> Facts:
    """A worker's lean gather: the swarm's kinds not listed (not a manager), the build cache
    not asked for, its disk over the eviction's watermark."""
    own = worker_facts(disks=(FULL_DISK,))
    return replace(own, gaps=(*own.gaps, NOT_ASKED))


def _quiet_swarm() -> dict[str, Facts]:
    """The worker's share of a swarm that runs no run-app and has nothing in flight."""
    hosts = {"ci-1": manager_facts(services=(), tasks=()), "ci-2": _lean_worker()}
    return share(hosts, list(hosts))


def test_a_worker_is_one_whose_cluster_objects_may_come_from_its_manager() -> None:
    assert borrows(worker_facts())
    assert not borrows(manager_facts())


def test_a_workers_own_view_never_wants_its_build_cache_for_a_prune_gated_on_live_stacks(
    tmp_path: Path,
) -> None:
    target = _target(PRUNE, tmp_path)
    assert slow_wanted(target, _lean_worker(), NOW) == SlowWants()


def test_the_swarms_view_opens_the_gate_so_the_workers_build_cache_is_wanted(
    tmp_path: Path,
) -> None:
    target = _target(PRUNE, tmp_path)
    assert slow_wanted(target, _quiet_swarm()["ci-2"], NOW) == SlowWants(build_cache=True)


def test_a_live_run_app_anywhere_in_the_swarm_keeps_the_workers_build_cache_unread(
    tmp_path: Path,
) -> None:
    hosts = {"ci-1": manager_facts(), "ci-2": _lean_worker()}  # the manager runs STACK
    view = share(hosts, list(hosts))["ci-2"]
    assert not slow_wanted(_target(PRUNE, tmp_path), view, NOW)


def test_a_workers_eviction_sizes_are_wanted_once_the_swarms_tasks_are_seen(
    tmp_path: Path,
) -> None:
    target = _target(EVICT, tmp_path)
    # On its own the tasks are not listed: the convergence gate is closed, eviction waits.
    assert slow_wanted(target, _lean_worker(), NOW) == SlowWants()
    assert slow_wanted(target, _quiet_swarm()["ci-2"], NOW) == SlowWants(image_sizes=True)


def test_a_node_reaps_only_node_objects_of_a_stack_the_swarm_no_longer_has(
    tmp_path: Path,
) -> None:
    policies = tuple(policies_from_text(JANITOR, tmp_path))
    hosts = {"ci-1": manager_facts(services=(), tasks=(), networks=()), "ci-2": worker_facts()}
    shared = share(hosts, list(hosts))
    plan, _ = plan_in_scope([(h, policies, shared[h]) for h in hosts], NOW)
    boss, worker = plan.hosts
    assert boss.changes == ()  # the manager has nothing of the stack left to see
    (reap,) = worker.changes
    assert reap.address == f"stack:{STACK}"
    assert [(t.kind, t.name) for t in reap.targets] == [("volumes", f"{STACK}_data")]
    assert set(reap.work.reap) <= set(NODE_KINDS)
    assert "nothing of it is left in the swarm" in reap.reason
