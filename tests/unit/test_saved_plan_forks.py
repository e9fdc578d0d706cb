"""``ccci apply PLAN`` gathers a saved plan's hosts ``--forks`` at once, as reconcile does.

The hosts' facts come from a snapshot; the workspace's per-host gather is replaced by one
that hands them out, the only fake here: it stands in for three engines answering at once,
which is what is being counted. A barrier of three passes only when all three gathers run
together (its timeout only keeps a regression from hanging the suite).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ccci.config.inventory import Host
from ccci.connectors.base import Connector
from ccci.facts.model import Facts
from ccci.plan.saved import read_plan
from ccci.policy.load import HostPolicies
from ccci.render import json as render_json
from ccci.run.workspace import Settings, Workspace, connector_for
from ccci.serde import to_jsonable

HOSTS = ("ci-1", "ci-2", "ci-3")
PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: 80%}
  prune:
    dangling_images: {older_than: 24h}
"""


def facts_of(host: str, index: int) -> Facts:
    return Facts.from_dict(
        {
            "host": host,
            "gathered_at": "2026-11-27T03:00:00Z",
            "daemon": {
                "name": host, "server_version": "26.1.5", "api_version": "1.45",
                "data_root": "/var/lib/docker", "storage_driver": "overlay2",
                "swarm_state": "inactive", "swarm_manager": False,
            },
            "disks": [{"path": "/var/lib/docker", "total": 100, "used": 90, "available": 10}],
            "images": [
                {"id": "sha256:" + f"{index:02d}" * 32, "tags": [], "digests": [],
                 "created": "2026-11-20T03:00:00Z", "size": 1000},
            ],
        }
    )  # fmt: skip


@pytest.fixture
def farm(tmp_path: Path) -> tuple[Settings, dict[str, Facts], Any]:
    """Three hosts, each with a leftover image, and a saved plan that removes all three."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "prune.yaml").write_text(PRUNE, encoding="utf-8")
    hosts: dict[str, dict[str, Any]] = {h: {} for h in HOSTS}
    inventory = {"all": {"hosts": hosts}}
    (tmp_path / "inventory.yaml").write_text(json.dumps(inventory), encoding="utf-8")
    facts = {h: facts_of(h, i) for i, h in enumerate(HOSTS, 1)}
    snapshot = {"format_version": 1, "hosts": {h: to_jsonable(f) for h, f in facts.items()}}
    (tmp_path / "snap.json").write_text(json.dumps(snapshot), encoding="utf-8")
    settings = Settings(
        policies=(tmp_path / "policies",),
        inventory=tmp_path / "inventory.yaml",
        state_dir=tmp_path / "state",
        forks=3,
    )
    plan, _ = Workspace(settings).plan(snapshot=tmp_path / "snap.json")
    (tmp_path / "plan.json").write_text(render_json.render_plan(plan), encoding="utf-8")
    return settings, facts, read_plan(tmp_path / "plan.json")


def counting_gather(facts: dict[str, Facts], barrier: threading.Barrier | None) -> Any:
    """The hosts' facts, counting how many gathers run at once."""
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def gather(target: Any, plan_at: Any = None) -> Facts:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        if barrier is not None:
            barrier.wait()
        with lock:
            state["now"] -= 1
        return facts[target.host.name]

    gather.state = state  # type: ignore[attr-defined]
    return gather


def test_a_saved_plans_hosts_are_gathered_at_once_under_forks(farm: Any) -> None:
    settings, facts, saved = farm
    workspace = Workspace(settings)
    gather = counting_gather(facts, threading.Barrier(len(HOSTS), timeout=60))
    workspace.gather = gather  # type: ignore[method-assign]

    fresh = workspace.rederive(saved)

    assert gather.state["most"] == len(HOSTS)
    assert [h.host for h in fresh.hosts] == list(HOSTS)  # the saved plan's order
    assert [len(h.changes) for h in fresh.hosts] == [1, 1, 1]


def test_forks_1_gathers_a_saved_plans_hosts_one_at_a_time_to_the_same_plan(
    farm: Any,
) -> None:
    from dataclasses import replace

    settings, facts, saved = farm
    one = Workspace(replace(settings, forks=1))
    gather = counting_gather(facts, None)
    one.gather = gather  # type: ignore[method-assign]
    three = Workspace(settings)
    three.gather = counting_gather(facts, None)  # type: ignore[method-assign]

    by_one, by_three = one.rederive(saved), three.rederive(saved)

    assert gather.state["most"] == 1
    assert [h.changes for h in by_one.hosts] == [h.changes for h in by_three.hosts]


def test_a_saved_plan_with_a_host_that_cannot_be_reached_ends_before_anything_is_done(
    farm: tuple[Settings, dict[str, Facts], Any],
) -> None:
    from ccci.connectors.local import ConnectionFailed

    settings, facts, saved = farm
    workspace = Workspace(settings)

    def gather(
        target: HostPolicies,
        plan_at: datetime | None = None,
        make: Callable[[Host], Connector] = connector_for,
    ) -> Facts:
        if target.host.name == "ci-2":
            raise ConnectionFailed("ci-2 (root@10.0.0.2): cannot connect over SSH: refused")
        return facts[target.host.name]

    workspace.gather = gather  # type: ignore[method-assign]
    with pytest.raises(ConnectionFailed, match=r"^ci-2 "):
        workspace.rederive(saved)
    assert workspace._planned == {}  # nothing was made ready to apply
