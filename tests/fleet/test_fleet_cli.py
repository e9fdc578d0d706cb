"""The real ``ccci`` CLI, run from the root namespace, against the three test hosts over SSH:
plan and apply in parallel, ``--forks``, an unreachable host, and nothing done locally.

The policy is local-image only (the hosts cannot reach the loopback registry): exited
containers made from the harness's base image, which every node holds.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetkit import ccci, journal, names, on, prune_policy, stop_sshd, workspace

from harness import fleet as fleet_mod
from harness.fleet import Fleet, FleetNode
from harness.images import BASE_TAG


def _workspace(fleet: Fleet, root: Path, inventory: str | None = None) -> Path:
    # The gate's path exists on this machine too, as an empty folder of the root disk: only
    # the host's own tmpfs (mounted where its sshd runs) has the usage the gate sees.
    gate = f'disk_usage: {{path: "{fleet.remote_dir}", at_least: 10%}}'
    policy = prune_policy(gate, kinds=["stopped_containers"])
    return workspace(fleet, root, policy, inventory=inventory)


def _exited(node: FleetNode, name: str = "done-job") -> str:
    return node.engine.docker("run", "--name", name, BASE_TAG, "true").stdout.strip() or name


def _fill(fleet: Fleet, node: FleetNode, mb: int) -> None:
    """Real bytes in the host's own tmpfs, written there over ssh."""
    on(fleet, node, f"dd if=/dev/zero of={fleet.remote_dir}/fill bs=1M count={mb} 2>/dev/null")


def _seed(fleet: Fleet) -> None:
    """On every host an exited container, and 8 MB in its own tmpfs (past the 10% gate by
    its own share, so each plan's disk line shows whose disk was measured); then a wait
    past the policy's 1s, so no container is too young for it (setup, not a measurement)."""
    for node in fleet.nodes:
        _exited(node)
        _fill(fleet, node, 8)
    time.sleep(1.5)


def _remote_mb(node: FleetNode) -> int:
    return next(p.remote_mb for p in fleet_mod.node_paths() if p.name == node.name)


def test_a_fleet_is_planned_over_ssh_with_each_hosts_own_disk_and_engine(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = _workspace(fleet, tmp_path)
    _seed(fleet)
    planned = ccci(root, "reconcile", "--plan")
    assert planned.returncode == 0, planned.stderr
    out = planned.stdout
    # In the inventory's order, each host's own container removal.
    assert [ln.rstrip(":") for ln in out.splitlines() if ln.startswith("ccci-fleet-")] == [
        n.name for n in fleet.nodes
    ]
    assert out.count(f"(done-job ({BASE_TAG}))") == 3, out
    for node in fleet.nodes:
        # 8 MB of the node's own tmpfs (24, 32 or 40 MB): never the local root disk's use.
        share = f"{8 * 100 / _remote_mb(node):.1f}".removesuffix(".0")
        block = out.split(f"{node.name}:", 1)[1].split("ccci-fleet-", 1)[0]
        assert f"disk {share}% on {fleet.remote_dir} ≥ 10%" in block, block
    assert not any(Path(fleet.remote_dir).iterdir()), "a remote file appeared locally"


def test_forks_1_and_forks_3_print_the_same_plan(clean_fleet: Fleet, tmp_path: Path) -> None:
    fleet = clean_fleet
    root = _workspace(fleet, tmp_path)
    _seed(fleet)
    # One --now for both, so no age differs by the seconds between the runs.
    now = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    one = ccci(root, "reconcile", "--plan", "--forks", "1", "--now", now)
    three = ccci(root, "reconcile", "--plan", "--forks", "3", "--now", now)
    assert one.returncode == three.returncode == 0, one.stderr + three.stderr
    assert one.stdout == three.stdout
    as_json = [
        json.loads(ccci(root, "reconcile", "--plan", "-o", "json", "-f", f, "--now", now).stdout)
        for f in ("1", "3")
    ]
    assert as_json[0] == as_json[1]
    assert [h["host"] for h in as_json[0]["hosts"]] == [n.name for n in fleet.nodes]


def test_an_apply_over_ssh_converges_every_host_and_journals_each_recap(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = _workspace(fleet, tmp_path)
    _seed(fleet)
    applied = ccci(root, "reconcile", "--apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for node in fleet.nodes:
        assert "done-job" not in names(node)
        assert f"{node.name} : ok=1 changed=1 failed=0 skipped=0 unreachable=0" in applied.stdout
    recaps = [e for e in journal(root) if e["type"] == "recap"]
    assert sorted(r["host"] for r in recaps) == sorted(n.name for n in fleet.nodes)
    assert all(r["converged"] for r in recaps)


def test_a_host_whose_sshd_is_stopped_is_unreachable_and_the_others_converge(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = _workspace(fleet, tmp_path)
    _seed(fleet)
    down = fleet.workers[0]
    stop_sshd(down)
    try:
        applied = ccci(root, "reconcile", "--apply", "--yes")
        status = ccci(root, "status")
        facts = ccci(root, "facts", "-o", "json")
    finally:
        fleet_mod.ensure_fleet()
    out = applied.stdout
    assert applied.returncode == 1, out + applied.stderr
    assert "Traceback" not in applied.stderr
    assert f"{down.name}: UNREACHABLE! " in out and "cannot connect over SSH" in out, out
    assert f"{down.name} : ok=0 changed=0 failed=0 skipped=0 unreachable=1" in out
    for node in fleet.nodes:
        if node is not down:
            assert "done-job" not in names(node)
            assert f"{node.name} : ok=1 changed=1 failed=0 skipped=0 unreachable=0" in out
    assert "done-job" in names(down)  # its engine was never reached another way
    recap = [e for e in journal(root) if e["type"] == "recap" and e["host"] == down.name]
    assert recap and recap[-1]["unreachable"] == 1 and "cannot connect" in recap[-1]["reason"]
    assert status.returncode == 1
    assert f"{down.name}: UNREACHABLE! " in status.stdout
    assert status.stdout.index(fleet.nodes[0].name) < status.stdout.index(down.name)
    assert facts.returncode == 1
    snapshot = json.loads(facts.stdout)
    assert sorted(snapshot["hosts"]) == sorted(n.name for n in fleet.nodes if n is not down)
    assert "cannot connect over SSH" in snapshot["unreachable"][down.name]


def test_a_host_key_mismatch_is_refused_with_a_clear_error_and_nothing_is_done(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    first, second = fleet.nodes[:2]
    with open(fleet.known_hosts) as fh:
        lines = fh.read().splitlines()
    key = next(line for line in lines if line.startswith(f"[{second.address}]"))
    wrong = tmp_path / "known_hosts"
    others = [ln for ln in lines if not ln.startswith(f"[{first.address}]")]
    wrong.write_text("\n".join([*others, key.replace(second.address, first.address, 1)]) + "\n")
    inventory = fleet_mod.inventory_yaml(fleet).replace(fleet.known_hosts, str(wrong))
    root = _workspace(fleet, tmp_path, inventory)
    _seed(fleet)
    alone = ccci(root, "reconcile", "--apply", "--yes", "--limit", first.name)
    assert alone.returncode == 1
    assert alone.stderr.strip() == (
        f"ccci: {first.name} (root@{first.address}:{first.ssh_port}): the SSH host key does "
        "not match known_hosts; refusing to connect (check the host, then fix known_hosts)"
    )
    assert "done-job" in names(first)
    every = ccci(root, "reconcile", "--apply", "--yes")
    assert every.returncode == 1
    assert f"{first.name}: UNREACHABLE! (root@" in every.stdout, every.stdout
    assert "host key does not match" in every.stdout
    assert "done-job" in names(first)
    assert "done-job" not in names(second)
