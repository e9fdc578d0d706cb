"""Behaviour of the fleet harness: three test hosts, each with a dockerd and an sshd in its
own network namespace, joined into one swarm.

The stop test stops the whole fleet (and starts it again), so it is kept last in this file.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from harness import fleet as fleet_mod
from harness import fleet_registry, procs, sshd
from harness.engine import Engine, daemon_config
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


def _global_service(fleet: Fleet, name: str) -> None:
    """A global service on an overlay network: one task on every node."""
    boss = fleet.manager.engine
    boss.docker("network", "create", "--driver", "overlay", f"{name}-net")
    boss.docker(
        "service", "create", "--quiet", "--detach", "--no-resolve-image",
        "--name", name, "--mode", "global", "--network", f"{name}-net",
        "ccci-test/busybox:1", "sleep", "3600",
    )  # fmt: skip
    _running_on(boss, name)


def _running_on(boss: Engine, service: str, timeout: float = 90) -> set[str]:
    """Node IDs with a running task of the service, once every node has one (or timeout)."""
    want = {n["ID"] for n in boss.api("/nodes")}
    deadline = time.monotonic() + timeout
    while True:
        tasks = boss.api(f'/tasks?filters={{"service":["{service}"]}}')
        running = {t["NodeID"] for t in tasks if t["Status"]["State"] == "running"}
        if running == want or time.monotonic() > deadline:
            return running
        time.sleep(0.5)


def _shims(node: fleet_mod.NodePaths) -> list[int]:
    socket = node.engine.containerd_socket
    return procs.find(lambda argv: procs.flag_value(argv, "-address") == socket)


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


MACHINE_HOME = "/root"  # this build machine's root home, which no node's session may see


@contextmanager
def _file_in_the_machines_home() -> Iterator[str]:
    """A file of a unique name in the machine's own /root, removed after the test."""
    name = f".ccci-fleet-test-{uuid.uuid4().hex}"
    path = os.path.join(MACHINE_HOME, name)
    with open(path, "x") as fh:
        fh.write("this build machine's, not a test host's\n")
    try:
        yield name
    finally:
        os.unlink(path)


def _home_of(fleet: Fleet, node: fleet_mod.FleetNode, probe: str) -> tuple[str, list[str], str]:
    """$HOME, ``ls -A ~`` and whether ``~/probe`` exists, as a session on the node sees them."""
    command = f'echo "$HOME"; ls -A ~; test -e ~/{probe} && echo seen || echo unseen'
    said = _ssh(fleet, node, command)
    home, *listing, probe_seen = said.splitlines()
    return home, listing, probe_seen


def _node_home(node: fleet_mod.FleetNode) -> str:
    return next(p for p in fleet_mod.node_paths() if p.name == node.name).home


def _skeleton() -> set[str]:
    if os.path.isdir(sshd.SKEL) and (found := set(os.listdir(sshd.SKEL))):
        return found
    return set(sshd.MINIMAL_HOME)


def test_each_nodes_sessions_see_the_nodes_own_root_home_with_the_skeleton_not_the_machines(
    fleet: Fleet,
) -> None:
    with _file_in_the_machines_home() as probe:
        for node in fleet.nodes:
            home, listing, probe_seen = _home_of(fleet, node, probe)
            assert home == MACHINE_HOME  # root's home as /etc/passwd says, on every node
            assert probe_seen == "unseen"
            assert _skeleton() <= set(listing)
            # What a session lists is the harness-made folder of that node, file for file.
            assert sorted(listing) == sorted(os.listdir(_node_home(node)))
            assert os.stat(_node_home(node)).st_mode & 0o777 == 0o700
    # The bind lives in sshd's mount namespace: the machine's /root is no mount point and
    # is still the machine's own.
    with open("/proc/self/mountinfo") as fh:
        assert MACHINE_HOME not in {line.split()[4] for line in fh}


def test_a_start_restarts_once_an_sshd_that_an_older_harness_started_on_the_machines_home(
    fleet: Fleet,
) -> None:
    node = fleet.workers[0]
    old = fleet_mod.relaunch_sshd_without_home(node)
    with _file_in_the_machines_home() as probe:
        assert _home_of(fleet, node, probe)[2] == "seen"  # as before: the machine's /root

        again = fleet_mod.ensure_fleet()

        new = fleet_mod.sshd_pid(node)
        assert new is not None and new != old and not procs.alive(old)
        assert _home_of(again, node, probe)[2] == "unseen"
        assert [n.engine.pid for n in again.nodes] == [n.engine.pid for n in fleet.nodes]
    fleet_mod.ensure_fleet()
    assert fleet_mod.sshd_pid(node) == new  # once: the restarted sshd passes as warm


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
    _global_service(clean_fleet, "fleet-test-global")
    assert _running_on(boss, "fleet-test-global") == {n.node_id for n in clean_fleet.nodes}
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


def test_start_cleans_what_a_killed_run_left_of_a_node_and_its_task_runs_there_again(
    clean_fleet: Fleet,
) -> None:
    boss = clean_fleet.manager.engine
    _global_service(clean_fleet, "fleet-test-dirty")
    worker = clean_fleet.workers[-1]
    node = next(p for p in fleet_mod.node_paths(clean_fleet.state_dir) if p.name == worker.name)
    shims_before = _shims(node)
    assert shims_before
    # A killed session: the daemons die at once; the shims and their containers live on,
    # and the node's namespace is gone too.
    for pid in (worker.engine.pid, *fleet_mod.our_containerd_pids(node.engine)):
        os.kill(pid, signal.SIGKILL)
    sshd = procs.read_pidfile(node.sshd_pidfile)
    assert sshd is not None
    os.kill(sshd, signal.SIGKILL)
    procs.wait_dead(worker.engine.pid, 10)
    subprocess.run(["ip", "netns", "del", worker.name], check=True)
    again = fleet_mod.ensure_fleet()
    back = next(n for n in again.nodes if n.name == worker.name)
    assert _ssh(again, back, "hostname").strip() == worker.name
    assert _swarm_nodes(again)[worker.node_id] == ("worker", "ready")
    assert not any(procs.alive(p) for p in shims_before)
    assert _running_on(boss, "fleet-test-dirty") == {n.node_id for n in again.nodes}


def _image(node: fleet_mod.FleetNode, ref: str) -> tuple[list[str], list[str]] | None:
    """(RepoTags, RepoDigests) of ``ref`` on the node, or None when it has no such image."""
    found = node.engine.docker(
        "image", "inspect", "--format", "{{json .RepoTags}}\t{{json .RepoDigests}}", ref,
        check=False,
    )  # fmt: skip
    if found.returncode != 0:
        return None
    tags, digests = found.stdout.strip().split("\t")
    return json.loads(tags), json.loads(digests)


def _wait(what: str, done: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _manifest_status(fleet: Fleet, repo: str, digest: str) -> int:
    """HEAD of the manifest in the fleet registry, from the root namespace."""
    host, port = fleet.registry.addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(
            "HEAD",
            f"/v2/{repo}/manifests/{digest}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        return conn.getresponse().status
    finally:
        conn.close()


PINNED_STACK = """\
version: "3.8"
services:
  app:
    image: {image}
    deploy:
      placement:
        constraints: ["node.id == {node_id}"]
"""


def test_a_stack_deployed_on_the_manager_pulls_by_digest_from_the_fleet_registry_onto_a_worker(
    clean_fleet: Fleet,
) -> None:
    fleet = clean_fleet
    worker, other = fleet.workers
    repo = f"fleet-test/pinned-{uuid.uuid4().hex[:8]}"
    pinned = fleet_registry.push_test_image(fleet, f"{repo}:1")
    name, digest = pinned.split("@")
    assert name == f"{fleet_registry.ADDR}/{repo}"
    assert all(_image(n, pinned) is None for n in fleet.nodes)  # in the registry only
    since = fleet.registry.log_offset()

    tagged = fleet.registry.ref(f"{repo}:1")
    fleet_registry.deploy(
        fleet, "pinned", PINNED_STACK.format(image=tagged, node_id=worker.node_id)
    )

    boss = fleet.manager.engine
    spec = boss.docker(
        "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        "pinned_app",
    ).stdout.strip()  # fmt: skip
    assert spec == f"{tagged}@{digest}"  # pinned by the manager, as on a real host
    gets = [r for r in fleet.registry.requests(since) if r.method == "GET"]
    by_worker = {r.path for r in gets if r.client == worker.address}
    assert f"/v2/{repo}/manifests/{digest}" in by_worker  # the worker pulled, by digest
    assert f"/v2/{repo}/manifests/1" not in by_worker
    assert not [r for r in fleet.registry.requests(since) if r.client == other.address]
    assert _image(worker, pinned) == ([], [pinned])  # a pull by digest makes no tag
    assert _image(fleet.manager, pinned) is None and _image(other, pinned) is None

    boss.docker("stack", "rm", "pinned")
    stack = "label=com.docker.stack.namespace=pinned"
    _wait("the task's container to go", lambda: not worker.engine.docker(
        "ps", "-aq", "--filter", stack).stdout.split())  # fmt: skip
    assert _image(worker, pinned) == ([], [pinned])  # cache: untagged, with its repo digest
    listed = worker.engine.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert f"{name}:<none>" in listed.split()


def test_each_node_trusts_the_fleet_registry_and_a_start_reloads_one_whose_config_lacks_it(
    fleet: Fleet,
) -> None:
    assert all(fleet_registry.trusted_by(n.engine.api("/info")) for n in fleet.nodes)
    node = fleet.workers[-1]
    # As an older harness started it: a daemon.json that names no registry.
    pid = fleet_mod.relaunch_dockerd(node, settings={})
    assert not fleet_registry.trusted_by(node.engine.api("/info"))

    again = fleet_mod.ensure_fleet()

    back = next(n for n in again.nodes if n.name == node.name)
    assert back.engine.pid == pid  # reloaded in place (SIGHUP), not restarted
    assert fleet_registry.trusted_by(back.engine.api("/info"))
    with open(os.path.join(back.engine.state_dir, "daemon.json")) as fh:
        assert fh.read() == daemon_config(fleet_registry.daemon_settings())
    assert _swarm_nodes(again)[node.node_id] == ("worker", "ready")


def test_a_second_start_finds_the_same_daemons_and_registry_running(fleet: Fleet) -> None:
    again = fleet_mod.ensure_fleet()
    assert [n.engine.pid for n in again.nodes] == [n.engine.pid for n in fleet.nodes]
    assert again.registry == fleet.registry
    argv = procs.cmdline(again.registry.pid)
    assert os.path.basename(argv[0]) == "docker-registry"
    assert argv[1:] == ["serve", os.path.join(again.registry.root, "config.yml")]
    ns = os.readlink(f"/proc/{again.registry.pid}/ns/net")
    assert ns == f"net:[{os.stat(f'/run/netns/{fleet_registry.NETNS}').st_ino}]"


def test_stop_leaves_nothing_of_ours_running_and_start_brings_the_same_swarm_back(
    fleet: Fleet,
) -> None:
    repo = f"fleet-test/kept-{uuid.uuid4().hex[:8]}"
    digest = fleet_registry.push_test_image(fleet, f"{repo}:1").split("@")[1]
    fleet_mod.stop_fleet()
    assert fleet_mod.leftovers() == []
    ours = procs.find(lambda argv: any(fleet.state_dir + "/" in a for a in argv))
    assert ours == []
    assert not any(name.startswith("ccci-fleet-") for name in _netns_names())
    again = fleet_mod.ensure_fleet()
    assert {n.node_id for n in again.nodes} == {n.node_id for n in fleet.nodes}
    assert _manifest_status(again, repo, digest) == 200  # the registry's store is kept


def _netns_names() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []
