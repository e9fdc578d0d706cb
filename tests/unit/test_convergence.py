"""Stuck deploys and partial views, judged as data: the convergence clock, crash loops plan
after plan, fact gaps in snapshots, and what status and metrics say about them.

The gathering cases use a named fake connector (``_Engine``): a worker node and a failing
list are faults the private test engine cannot be made to show on demand (it is a swarm
manager; ``docker swarm leave`` would break every other test that shares it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ccci.errors import InputError
from ccci.facts.docker import gather, refresh_swarm
from ccci.facts.model import Daemon, DiskUsage, FactGap, Facts, GapCause, Service, Task
from ccci.plan.build import plan_host
from ccci.plan.results import HostReport
from ccci.policy.model import GateKind, PrunePolicy
from ccci.rules.convergence import Progress, redeployed, unsettled
from ccci.state.metrics import render as render_metrics
from ccci.views.status import host_status
from tests.rules.test_rule_cases import policies_from_text
from tests.unit.fakes import FakeConnector

_T = TypeVar("_T")
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DAEMON = Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True)
DISK = DiskUsage("/var/lib/docker", 100, 85, 15)
APP = "cras-0b1c2d_ci_example_org"

POLICY = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: 80%}
    no_converging_services: {stuck_after: 30m}
  prune:
    stopped_containers: {older_than: 24h}
"""


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def service(created: datetime, **fields: Any) -> Service:
    labels = {"com.docker.stack.namespace": APP}
    return Service("svc1", f"{APP}_app", "app:1", labels, created, created, **fields)


def crash_loop_tasks(until: datetime, phase: str) -> tuple[Task, ...]:
    """A task that exits every 30 s since the deploy at ``NOW``; the newest is in ``phase``."""
    tasks = []
    moment, i = NOW, 0
    while moment + timedelta(seconds=30) <= until:
        failed_at = moment + timedelta(seconds=25)
        tasks.append(
            Task(
                f"t{i}",
                "svc1",
                "failed",
                "shutdown",
                error="task: non-zero exit (1)",
                created=moment,
                changed=failed_at,
            )
        )
        moment, i = moment + timedelta(seconds=30), i + 1
    desired = "ready" if phase == "ready" else "running"
    tasks.append(Task(f"t{i}", "svc1", phase, desired, created=moment, changed=moment))
    return tuple(tasks[-5:])  # swarm keeps a task history of five per slot


def facts(*services: Service, tasks: tuple[Task, ...] = (), **fields: Any) -> Facts:
    return Facts("cc-ci", NOW, DAEMON, disks=(DISK,), services=services, tasks=tasks, **fields)


def test_a_crash_loop_gives_the_same_answer_in_every_phase_of_its_loop() -> None:
    # Before stuck_after, whether the task of the moment runs, waits out its restart delay
    # or starts: converging, every time. After it: stuck, every time.
    deployed = service(NOW)
    for minutes, expected in ((5, Progress.CONVERGING), (45, Progress.STUCK)):
        for phase in ("running", "ready", "starting", "preparing"):
            moment = at(minutes)
            found = unsettled(facts(deployed, tasks=crash_loop_tasks(moment, phase)), moment)
            assert [u.progress for u in found] == [expected], (minutes, phase)
            assert found[0].errors == ("non-zero exit (1) ×4",) or phase != "running"


def test_the_clock_starts_at_the_last_spec_change_not_at_the_newest_task() -> None:
    pending = Task("t9", "svc1", "pending", "running", error="no suitable node", created=at(119))
    old = service(NOW, replicas=1)
    (found,) = unsettled(facts(old, tasks=(pending,)), at(120))
    assert found.stuck and found.since == NOW
    assert found.describe(at(120)) == (
        "stuck (1 task pending, desired running) for 2 hours: no suitable node"
    )
    # An update restarts the clock, and so does the start of a rolling update.
    updated = service(NOW, update_started=at(110), update_state="updating")
    (found,) = unsettled(facts(updated, tasks=(pending,)), at(120))
    assert found.progress is Progress.CONVERGING and found.since == at(110)


def test_a_paused_update_is_stuck_at_once_and_names_the_swarm_message() -> None:
    paused = service(at(-1), update_state="rollback_paused", update_message="rollback paused")
    (found,) = unsettled(facts(paused), NOW)
    assert found.stuck
    assert found.why == "update rollback_paused: rollback paused"


def test_failures_before_the_last_update_or_long_ago_do_not_count() -> None:
    before = Task("t1", "svc1", "failed", "shutdown", error="x", changed=at(-5))
    long_ago = Task("t2", "svc1", "failed", "shutdown", error="x", changed=at(30))
    running = Task("t3", "svc1", "running", "running", changed=at(31))
    assert unsettled(facts(service(NOW), tasks=(before, running)), at(1)) == ()
    assert unsettled(facts(service(NOW), tasks=(long_ago, running)), at(45)) == ()


def test_a_stack_deployed_again_since_the_plan_is_named_converging_alone_is_not() -> None:
    planned = facts(service(NOW))
    still_stuck = facts(service(NOW), tasks=(Task("t", "svc1", "pending", "running"),))
    assert redeployed(APP, planned, still_stuck) == ""
    again = facts(replace_updated(service(NOW), at(5)))
    assert redeployed(APP, planned, again) == f"service {APP}_app was updated since the plan"


def replace_updated(svc: Service, moment: datetime) -> Service:
    return Service(svc.id, svc.name, svc.image, svc.labels, svc.created, moment)


def test_status_and_metrics_name_a_stuck_service_with_its_task_error(tmp_path: Path) -> None:
    policies = policies_from_text(POLICY, tmp_path)
    pending = Task("t", "svc1", "pending", "running", error="no suitable node (1 node)")
    snapshot = facts(service(NOW), tasks=(pending,))
    plan = plan_host("cc-ci", policies, snapshot, at(90))

    status = host_status(tuple(policies), snapshot, plan, [], at(90))

    expected = (
        f"service {APP}_app stuck (1 task pending, desired running) for 1 hour: "
        "no suitable node (1 node)"
    )
    assert expected in status.problems
    assert status.live_stacks[0].stuck.startswith(f"{APP}_app stuck (1 task pending")
    report = HostReport("cc-ci", (), 0, ())
    text = render_metrics([report], {"cc-ci": plan}, {"cc-ci": snapshot}, at(90))
    assert (
        f'ccci_service_stuck_seconds{{host="cc-ci",service="{APP}_app",stack="{APP}",'
        'error="no suitable node (1 node)"} 5400'
    ) in text.splitlines()


def test_a_gap_is_an_attention_item_and_a_metric_a_lean_skip_is_neither(tmp_path: Path) -> None:
    policies = policies_from_text(POLICY, tmp_path)
    gaps = (
        FactGap("build_cache", GapCause.NOT_ASKED),
        FactGap("services", GapCause.NOT_MANAGER, "a worker node cannot list them"),
    )
    snapshot = facts(gaps=gaps)
    plan = plan_host("cc-ci", policies, snapshot, NOW)

    status = host_status(tuple(policies), snapshot, plan, [], NOW)

    assert (
        "services not gathered (not a swarm manager: a worker node cannot list them): "
        "what needs them does nothing"
    ) in status.problems
    assert not any("build_cache" in p for p in status.problems)
    closed = [g for g in plan.gates if g.gate.kind is GateKind.NO_CONVERGING_SERVICES]
    assert not closed[0].open
    text = render_metrics(
        [HostReport("cc-ci", (), 0, ())], {"cc-ci": plan}, {"cc-ci": snapshot}, NOW
    )
    assert 'ccci_facts_missing{host="cc-ci",kind="services",cause="not a swarm manager"} 1' in text
    assert 'kind="build_cache"' not in text


def test_a_snapshot_from_before_gaps_still_loads_and_gaps_round_trip() -> None:
    old = json.loads(facts().to_json())
    del old["gaps"]
    old["not_gathered"] = ["build_cache"]
    loaded = Facts.from_dict(old)
    assert loaded.gaps == (FactGap("build_cache", GapCause.NOT_ASKED),)
    assert loaded.not_gathered == ("build_cache",)
    assert Facts.from_dict(json.loads(loaded.to_json())) == loaded


class _Sdk:
    """The SDK client's answers to gathering's lists: a worker node, or a list call that
    fails."""

    def __init__(self, swarm: dict[str, Any], fail: str = "") -> None:
        self.swarm = swarm
        self.fail = fail

    def _maybe(self, name: str, value: _T) -> _T:
        if name == self.fail:
            raise RuntimeError(f"500 Server Error for /{name}: Internal Server Error")
        return value

    def info(self) -> dict[str, Any]:
        return {"Name": "cc-ci", "DockerRootDir": "/var/lib/docker", "Swarm": self.swarm}

    def version(self) -> dict[str, Any]:
        return {"Version": "26.1.5", "ApiVersion": "1.45"}

    def images(self, all: bool = False) -> list[Any]:
        return self._maybe("images", [])

    def containers(self, all: bool = False, filters: Any = None) -> list[Any]:
        return self._maybe("containers", [])

    def volumes(self) -> dict[str, Any]:
        return {"Volumes": []}

    def networks(self) -> list[Any]:
        return []

    def services(self, status: bool = False) -> list[Any]:
        return self._maybe("services", [])

    def tasks(self) -> list[Any]:
        return self._maybe("tasks", [])

    def secrets(self) -> list[Any]:
        return []

    def configs(self) -> list[Any]:
        return []

    def nodes(self) -> list[Any]:
        return []


def _engine(swarm: dict[str, Any], fail: str = "") -> FakeConnector:
    """The host: its lists from ``_Sdk``, no build cache, and its data root 10 % full."""
    snapshot = Facts("cc-ci", NOW, DAEMON, disks=(DiskUsage("/var/lib/docker", 100, 10, 90),))
    return FakeConnector(sdk=_Sdk(swarm, fail), system_df={"BuildCache": []}, facts=snapshot)


@pytest.mark.parametrize(
    ("swarm", "cause"),
    [
        ({"LocalNodeState": "active", "ControlAvailable": False}, GapCause.NOT_MANAGER),
        ({"LocalNodeState": "locked"}, GapCause.SWARM_LOCKED),
        ({"LocalNodeState": "inactive"}, GapCause.SWARM_INACTIVE),
        ({"LocalNodeState": "pending"}, GapCause.SWARM_UNAVAILABLE),
    ],
)
def test_an_engine_that_cannot_list_the_swarm_leaves_gaps_not_empty_lists(
    swarm: dict[str, Any], cause: GapCause
) -> None:
    gathered = gather(_engine(swarm), now=NOW)
    assert {g.kind: g.cause for g in gathered.gaps} == {
        k: cause for k in ("configs", "nodes", "secrets", "services", "tasks")
    }
    # Re-reading the swarm before a change does not pretend the gaps were filled.
    assert refresh_swarm(_engine(swarm), gathered) == gathered


def test_a_failed_list_is_a_gap_with_the_engines_words_and_the_rest_is_gathered() -> None:
    manager = {"LocalNodeState": "active", "ControlAvailable": True}
    gathered = gather(_engine(manager, fail="services"), now=NOW)
    assert gathered.gaps == (
        FactGap(
            "services",
            GapCause.API_ERROR,
            "500 Server Error for /services: Internal Server Error",
        ),
    )
    assert gathered.daemon.swarm_manager
    # Once the list answers again, the refresh before a change fills the gap.
    assert refresh_swarm(_engine(manager), gathered).gaps == ()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("stopped_containers: {older_than: 24h}", "stopped_containers: {older_than: 0s}"),
            "policies.yaml:9: spec.prune.stopped_containers.older_than: must be longer than 0s",
        ),
        (
            ("at_least: 80%", "at_least: 0%"),
            "policies.yaml:6: spec.gates.disk_usage.at_least: must be above 0% (leave the "
            "disk_usage gate out instead)",
        ),
        (
            ("{stuck_after: 30m}", "{stuck_after: 30s}"),
            "policies.yaml:7: spec.gates.no_converging_services.stuck_after: must be at least 1m",
        ),
        (
            (
                "  gates:\n    disk_usage: {path: /var/lib/docker, at_least: 80%}\n"
                "    no_converging_services: {stuck_after: 30m}\n",
                "",
            ),
            "policies.yaml:4: spec: missing 'gates' (write 'gates: {}' to prune unconditionally)",
        ),
    ],
    ids=["older_than_0s", "at_least_0_percent", "stuck_after_30s", "no_gates_key"],
)
def test_a_prune_rail_is_a_located_error(
    edit: tuple[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as caught:
        policies_from_text(POLICY.replace(*edit), tmp_path)
    assert str(caught.value).replace(str(tmp_path) + "/", "") == message


def test_stuck_after_is_read_and_true_keeps_the_documented_30m(tmp_path: Path) -> None:
    (written,) = policies_from_text(POLICY.replace("30m", "45m"), tmp_path)
    (default,) = policies_from_text(POLICY.replace("{stuck_after: 30m}", "true"), tmp_path)
    assert isinstance(written, PrunePolicy)
    assert isinstance(default, PrunePolicy)
    assert [g.stuck_after for g in written.gates if g.kind.value.startswith("no_")] == [
        timedelta(minutes=45)
    ]
    assert [g.stuck_after for g in default.gates if g.kind.value.startswith("no_")] == [
        timedelta(minutes=30)
    ]
    empty = POLICY.replace(
        "  gates:\n    disk_usage: {path: /var/lib/docker, at_least: 80%}\n"
        "    no_converging_services: {stuck_after: 30m}\n",
        "  gates: {}\n",
    )
    (unconditional,) = policies_from_text(empty, tmp_path)
    assert isinstance(unconditional, PrunePolicy)
    assert unconditional.gates == ()
