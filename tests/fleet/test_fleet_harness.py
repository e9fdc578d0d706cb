"""Behaviour of the fleet harness: three test hosts, each with a dockerd and an sshd in its
own network namespace, joined into one swarm.

The stop test stops the whole fleet (and starts it again), so it is kept last in this file.
"""

from __future__ import annotations

import os
import subprocess
import time

from harness import fleet as fleet_mod
from harness import procs
from harness.fleet import Fleet


def _ssh(fleet: Fleet, node: fleet_mod.FleetNode, command: str) -> str:
    done = subprocess.run(
        fleet.ssh_argv(node, command), capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def _swarm_nodes(fleet: Fleet) -> dict[str, tuple[str, str]]:
    """Node ID → (role, state), as the manager sees them."""
    return {
        n["ID"]: (n["Spec"]["Role"], n["Status"]["State"])
        for n in fleet.manager.engine.api("/nodes")
    }


def test_each_node_answers_over_ssh_from_the_root_namespace_as_its_own_host(
    fleet: Fleet,
) -> None:
    for node in fleet.nodes:
        said = _ssh(fleet, node, "hostname && ip -o -4 addr show dev eth0")
        name, addresses = said.split("\n", 1)
        assert name == node.name
        assert f" {node.address}/24 " in addresses
    # Each node has its own address, only inside its namespace: not on the machine.
    local = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
    assert all(n.address not in local for n in fleet.nodes)


def test_ssh_refuses_a_node_whose_host_key_is_not_the_known_one(fleet: Fleet, tmp_path) -> None:
    first, second = fleet.nodes[:2]
    with open(fleet.known_hosts) as fh:
        second_key = next(line for line in fh if line.startswith(f"[{second.address}]"))
    wrong = tmp_path / "known_hosts"
    wrong.write_text(second_key.replace(second.address, first.address, 1))
    argv = fleet.ssh_argv(first, "true")
    argv[argv.index(f"UserKnownHostsFile={fleet.known_hosts}")] = f"UserKnownHostsFile={wrong}"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr


def test_the_nodes_mount_their_own_remote_filesystem_which_the_machine_does_not_see(
    fleet: Fleet,
) -> None:
    sizes = set()
    for node in fleet.nodes:
        fs, size = _ssh(fleet, node, f"stat -f -c '%T %b' {fleet.remote_dir}").split()
        assert fs == "tmpfs"
        sizes.add(int(size))
    assert len(sizes) == len(fleet.nodes)
    local = subprocess.run(
        ["stat", "-f", "-c", "%T", fleet.remote_dir], capture_output=True, text=True, check=True
    )
    assert local.stdout.strip() != "tmpfs"


def test_the_swarm_has_one_manager_and_two_workers_identified_by_node_id(fleet: Fleet) -> None:
    seen = _swarm_nodes(fleet)
    assert set(seen) == {n.node_id for n in fleet.nodes}
    assert seen[fleet.manager.node_id] == ("manager", "ready")
    assert [seen[w.node_id] for w in fleet.workers] == [("worker", "ready")] * 2
    for node in fleet.workers:
        info = node.engine.api("/info")["Swarm"]
        assert info["NodeID"] == node.node_id
        assert info["NodeAddr"] == node.address
        assert [m["Addr"] for m in info["RemoteManagers"]] == [
            f"{fleet.manager.address}:{fleet_mod.SWARM_PORT}"
        ]


def test_a_global_service_on_an_overlay_network_runs_a_task_on_each_node(
    clean_fleet: Fleet,
) -> None:
    boss = clean_fleet.manager.engine
    boss.docker("network", "create", "--driver", "overlay", "fleet-test-net")
    boss.docker(
        "service", "create", "--quiet", "--detach", "--no-resolve-image",
        "--name", "fleet-test-global", "--mode", "global", "--network", "fleet-test-net",
        "ccci-test/busybox:1", "sleep", "3600",
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        tasks = boss.api('/tasks?filters={"service":["fleet-test-global"]}')
        running = {t["NodeID"] for t in tasks if t["Status"]["State"] == "running"}
        if running == {n.node_id for n in clean_fleet.nodes} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert running == {n.node_id for n in clean_fleet.nodes}
    for node in clean_fleet.nodes:
        mine = node.engine.docker("ps", "-q", "--filter", "name=fleet-test-global").stdout.split()
        assert len(mine) == 1


def test_a_node_whose_dockerd_was_sigkilled_comes_back_into_the_swarm(fleet: Fleet) -> None:
    worker = fleet.workers[0]
    fleet_mod.kill_dockerd(worker)
    assert not procs.alive(worker.engine.pid)
    again = fleet_mod.ensure_fleet()
    back = next(n for n in again.nodes if n.name == worker.name)
    assert back.engine.pid != worker.engine.pid
    assert back.node_id == worker.node_id
    assert _swarm_nodes(again)[worker.node_id] == ("worker", "ready")
    assert _ssh(again, back, "hostname").strip() == worker.name


def test_stop_leaves_nothing_of_ours_running_and_start_brings_the_same_swarm_back(
    fleet: Fleet,
) -> None:
    fleet_mod.stop_fleet()
    assert fleet_mod.leftovers() == []
    ours = procs.find(lambda argv: any(fleet.state_dir + "/" in a for a in argv))
    assert ours == []
    assert not any(name.startswith("ccci-fleet-") for name in _netns_names())
    again = fleet_mod.ensure_fleet()
    assert {n.node_id for n in again.nodes} == {n.node_id for n in fleet.nodes}


def _netns_names() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []
