"""Swarm-aware scope, from fact snapshots: cluster objects shared from one manager, images in
use by the services that may schedule on a node, and the janitor's work split between the
swarm's cluster host (cluster objects, once) and every node (its own volumes)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ccci.facts.model import (
    Container,
    Daemon,
    FactGap,
    Facts,
    GapCause,
    Image,
    Network,
    Node,
    Service,
    Task,
    Volume,
)
from ccci.facts.swarm import (
    Constraint,
    may_schedule,
    parse_constraint,
    parse_node,
    placement_fields,
)
from ccci.rules.usage import image_users
from ccci.run.swarmscope import cluster_first, plan_in_scope, share
from tests.rules.test_rule_cases import policies_from_text

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
LONG_AGO = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CLUSTER = "j8eyon3osmddb8ffi3hyvdpf0"
M, W1, W2 = "managernode0000000000001", "workernode00000000000002", "workernode00000000000003"
STACK = "redi-3fa9c1_ci_example_org"
LABEL = {"com.docker.stack.namespace": STACK}
NODES = (
    Node(M, "ci-1", "manager", "active", "ready", os="linux", arch="x86_64"),
    Node(W1, "ci-2", "worker", "active", "ready", {"disk": "ssd"}, os="linux", arch="x86_64"),
    Node(W2, "ci-3", "worker", "drain", "down", os="linux", arch="aarch64"),
)
REDIS = Image("sha256:" + "a1" * 32, ("redis:7",), (), LONG_AGO, 100)
SWARM_GAPS = tuple(
    FactGap(k, GapCause.NOT_MANAGER, "a worker node cannot list them")
    for k in ("configs", "nodes", "secrets", "services", "tasks")
)


def _daemon(name: str, node: str, manager: bool) -> Daemon:
    return Daemon(
        name=name,
        server_version="20.10.24",
        api_version="1.41",
        data_root="/var/lib/docker",
        storage_driver="overlay2",
        swarm_state="active",
        swarm_manager=manager,
        node_id=node,
        cluster_id=CLUSTER if manager else "",
        managers=(M,),
    )


def _service(name: str = "app", image: str = "redis:7", **kw: object) -> Service:
    return Service(
        id=f"svc-{name}",
        name=f"{STACK}_{name}",
        image=image,
        labels=LABEL,
        created=LONG_AGO,
        updated=LONG_AGO,
        **kw,  # type: ignore[arg-type]
    )


def _volume() -> Volume:
    return Volume(f"{STACK}_data", "local", LABEL, LONG_AGO)


def _overlay() -> Network:
    return Network("net1", f"{STACK}_default", "overlay", "swarm", LABEL, LONG_AGO)


def manager_facts(**kw: object) -> Facts:
    base = Facts(
        host="ci-1",
        gathered_at=NOW,
        daemon=_daemon("ci-1", M, True),
        images=(REDIS,),
        services=(_service(),),
        tasks=(Task("t1", "svc-app", "running", "running", image="redis:7", node_id=W1),),
        networks=(_overlay(),),
        nodes=NODES,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def worker_facts(host: str = "ci-2", node: str = W1, **kw: object) -> Facts:
    base = Facts(
        host=host,
        gathered_at=NOW,
        daemon=_daemon(host, node, False),
        images=(REDIS,),
        volumes=(_volume(),),
        gaps=SWARM_GAPS,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_worker_gets_the_swarms_cluster_objects_from_its_manager_and_keeps_its_own() -> None:
    shared = share({"ci-1": manager_facts(), "ci-2": worker_facts()}, ["ci-1", "ci-2"])
    worker = shared["ci-2"]
    assert worker.services == manager_facts().services
    assert worker.nodes == NODES
    assert worker.gaps == ()
    assert worker.volumes == (_volume(),)  # its own: volumes are node-local
    assert worker.networks == (_overlay(),)  # the swarm's overlay, from the manager
    assert worker.swarm is not None and worker.swarm.source == "ci-1"
    assert not worker.swarm.cluster_work
    boss = shared["ci-1"].swarm
    assert boss is not None and boss.cluster_work and boss.source == "ci-1"


def test_the_first_manager_in_inventory_order_does_the_cluster_work() -> None:
    other = replace(manager_facts(), host="ci-0", daemon=_daemon("ci-0", W2, True))
    shared = share({"ci-1": manager_facts(), "ci-0": other}, ["ci-0", "ci-1"])
    assert [h for h, f in shared.items() if f.swarm and f.swarm.cluster_work] == ["ci-0"]
    assert cluster_first(["ci-1", "ci-0"], shared) == [["ci-0"], ["ci-1"]]


def test_a_worker_alone_keeps_its_gaps_and_the_janitor_and_prune_refuse() -> None:
    alone = share({"ci-2": worker_facts()}, ["ci-2"])["ci-2"]
    assert alone == worker_facts()
    assert alone.missing("services", "tasks")


def test_a_worker_of_another_swarm_gets_nothing_from_this_manager() -> None:
    stranger = worker_facts(host="elsewhere", node="nodeofanotherswarm00001")
    shared = share({"ci-1": manager_facts(), "elsewhere": stranger}, ["ci-1", "elsewhere"])
    assert shared["elsewhere"] == stranger


@pytest.mark.parametrize(
    ("constraints", "node", "expected"),
    [
        ((), NODES[1], True),
        (("node.hostname==ci-2",), NODES[1], True),
        (("node.hostname==ci-2",), NODES[2], False),
        (("node.hostname == CI-2",), NODES[1], True),  # values compare without case
        (("node.id!=" + W1,), NODES[1], False),
        (("node.role==manager",), NODES[1], False),
        (("node.role==manager",), NODES[0], True),
        (("node.labels.disk==ssd",), NODES[1], True),
        (("node.labels.disk==ssd",), NODES[0], False),
        (("node.labels.disk!=ssd",), NODES[0], True),  # a missing label reads as ""
        (("node.labels.Disk==ssd",), NODES[1], False),  # label names keep their case
        (("engine.labels.zone==a",), NODES[1], False),
        (("node.platform.arch==aarch64",), NODES[2], True),
        (("node.ip==10.0.0.9",), NODES[1], True),  # a key ccci does not judge: doubt
        (("node.hostname~ci",), NODES[1], True),  # not a constraint swarm takes: doubt
        (("node.role==worker", "node.hostname!=ci-2"), NODES[1], False),  # ANDed
    ],
)
def test_a_service_may_schedule_on_a_node_unless_its_placement_proves_otherwise(
    constraints: tuple[str, ...], node: Node, expected: bool
) -> None:
    assert may_schedule(_service(constraints=constraints), node) is expected


def test_platforms_exclude_a_node_only_when_none_fits() -> None:
    arm_only = _service(platforms=("linux/arm64",))
    assert may_schedule(arm_only, NODES[2])  # aarch64 is arm64
    assert not may_schedule(arm_only, NODES[1])
    assert may_schedule(_service(platforms=("linux/",)), NODES[1])
    assert may_schedule(arm_only, None)  # no facts of the node: doubt


def test_drain_pause_and_down_never_exclude_a_node() -> None:
    assert may_schedule(_service(), NODES[2])  # drained and down


def test_placement_is_read_from_the_service_spec() -> None:
    spec = {
        "Mode": {"Global": {}},
        "TaskTemplate": {
            "Placement": {
                "Constraints": ["node.role==worker"],
                "Platforms": [{"OS": "linux", "Architecture": "amd64"}],
                "MaxReplicas": 2,
            }
        },
    }
    assert placement_fields(spec) == {
        "mode": "global",
        "constraints": ("node.role==worker",),
        "platforms": ("linux/amd64",),
        "max_replicas": 2,
    }
    assert parse_constraint("node.role != worker") == Constraint("node.role", False, "worker")


def test_a_node_is_read_from_the_managers_node_list() -> None:
    raw = {
        "ID": W1,
        "Spec": {"Labels": {"disk": "ssd"}, "Role": "worker", "Availability": "active"},
        "Description": {
            "Hostname": "ci-2",
            "Platform": {"Architecture": "x86_64", "OS": "linux"},
            "Engine": {"Labels": {"zone": "a"}},
        },
        "Status": {"State": "ready"},
    }
    assert parse_node(raw) == Node(
        W1, "ci-2", "worker", "active", "ready", {"disk": "ssd"}, {"zone": "a"}, "linux", "x86_64"
    )


def _in_use(facts: Facts) -> bool:
    return REDIS.id in image_users(facts)


def test_a_global_services_image_is_in_use_on_every_node() -> None:
    worldwide = manager_facts(services=(_service(mode="global"),), tasks=())
    hosts = {"ci-1": worldwide, "ci-2": worker_facts(), "ci-3": worker_facts("ci-3", W2)}
    shared = share(hosts, list(hosts))
    assert all(_in_use(f) for f in shared.values())


def test_an_image_only_a_task_on_another_node_names_is_not_in_use_here() -> None:
    pinned = manager_facts(services=(_service(image="busybox:1"),))  # the task names redis:7
    hosts = {"ci-1": pinned, "ci-2": worker_facts(), "ci-3": worker_facts("ci-3", W2)}
    shared = share(hosts, list(hosts))
    assert _in_use(shared["ci-2"])  # its task runs there
    assert not _in_use(shared["ci-3"])


def test_a_service_pinned_to_one_node_keeps_its_image_in_use_there_alone() -> None:
    pinned = manager_facts(services=(_service(constraints=("node.hostname==ci-2",)),), tasks=())
    hosts = {"ci-1": pinned, "ci-2": worker_facts(), "ci-3": worker_facts("ci-3", W2)}
    shared = share(hosts, list(hosts))
    assert [h for h, f in shared.items() if _in_use(f)] == ["ci-2"]


def test_without_node_facts_every_service_may_schedule_everywhere() -> None:
    pinned = manager_facts(
        services=(_service(constraints=("node.hostname==ci-2",)),), tasks=(), nodes=()
    )
    assert _in_use(pinned)


def test_a_container_keeps_its_image_in_use_whatever_the_swarm_says() -> None:
    stopped = Container("c1", "job", "redis:7", REDIS.id, "exited", LONG_AGO)
    hosts = {"ci-1": manager_facts(services=(), tasks=()), "ci-3": worker_facts("ci-3", W2)}
    shared = share({**hosts, "ci-3": replace(hosts["ci-3"], containers=(stopped,))}, list(hosts))
    assert _in_use(shared["ci-3"])


JANITOR = """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
spec:
  run_apps: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
  orphan_after: 3h
  reap: [services, secrets, configs, networks, volumes]
"""


def _plan(hosts: dict[str, Facts], tmp_path: Path, unreachable: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    policies = tuple(policies_from_text(JANITOR, tmp_path))
    shared = share(hosts, list(hosts), unreachable)
    return plan_in_scope([(h, policies, shared[h]) for h in hosts], NOW)


def test_an_orphan_is_reaped_once_from_the_manager_and_its_volumes_on_every_node(
    tmp_path: Path,
) -> None:
    hosts = {
        "ci-1": manager_facts(volumes=(_volume(),)),
        "ci-2": worker_facts(),
        "ci-3": worker_facts("ci-3", W2, volumes=()),
    }
    plan, planned_on = _plan(hosts, tmp_path)
    boss, worker, empty = plan.hosts
    (reap,) = boss.changes
    assert reap.address == f"stack:{STACK}"
    assert {t.kind for t in reap.targets} == {"services", "networks", "volumes"}
    (local,) = worker.changes
    assert [(t.kind, t.name) for t in local.targets] == [("volumes", f"{STACK}_data")]
    assert "ci-1 reaps the stack in this run" in local.reason
    assert empty.changes == ()
    assert "nothing of it on this node" in empty.noops[0].reason
    assert planned_on["ci-2"].swarm is not None
    assert planned_on["ci-2"].swarm.cluster_reaps == (STACK,)


def test_a_node_never_reaps_volumes_of_a_stack_its_manager_keeps(tmp_path: Path) -> None:
    young = replace(_service(), created=NOW, updated=NOW)
    hosts = {"ci-1": manager_facts(services=(young,)), "ci-2": worker_facts()}
    plan, _ = _plan(hosts, tmp_path)
    assert all(h.changes == () for h in plan.hosts)
    assert "not reaped by its swarm's cluster host ci-1" in plan.hosts[1].noops[0].reason


def test_a_node_no_host_reached_leaves_a_reaped_stack_not_converged(tmp_path: Path) -> None:
    hosts = {"ci-1": manager_facts(volumes=(_volume(),)), "ci-3": worker_facts("ci-3", W2)}
    plan, _ = _plan(hosts, tmp_path, {"ci-2": "cannot connect over SSH"})
    boss = plan.hosts[0]
    # The task history shows ci-2 ran a task of the stack: its volumes may be there.
    (manual,) = boss.manual
    assert manual.address == f"stack:{STACK}"
    assert manual.label == f"volumes on node {W1} (ci-2)"
    assert "unreachable: ci-2: cannot connect over SSH" in manual.reason


def test_a_worker_alone_judges_no_stack(tmp_path: Path) -> None:
    plan, _ = _plan({"ci-2": worker_facts()}, tmp_path)
    (host,) = plan.hosts
    assert host.changes == ()
    assert "no stack judged" in host.manual[0].reason
