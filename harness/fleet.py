"""Three test hosts in network namespaces: a dockerd and an sshd each, joined into one swarm.

Every node lives in a network namespace the harness creates (``ccci-fleet-N``) on a bridge
it creates (``ccci-fleet0``), with an address of a private /24 that exists only there; the
root namespace gets one address on the bridge so tests can ssh in. No node has a default
route, so traffic only ever goes between the nodes and the root namespace.

- dockerd is started with ``nsenter --net`` plus ``unshare --uts --mount``: ``ip netns exec``
  remounts /sys and hides the cgroup tree ("Devices cgroup isn't mounted"); its own hostname
  names its swarm node; its own mount namespace takes every mount it makes (overlays, netns
  files) with it when it dies, so a SIGKILL leaves no mount in the root namespace.
- sshd runs in the same network namespace with its own UTS and mount namespace, in which a
  small tmpfs of the node's own size covers ``<state>/remote``: the one path at which files
  and disk usage differ between the nodes and the machine, as they would between hosts.
  There too the node's own root home (``<state>/nN/home``, Debian's skeleton) is bound over
  /root: bash under sshd reads ~/.bashrc for every remote command, and this machine's runs
  ``pyenv init`` (~45 ms each), which a real farm node's home does not. The bind lives in
  sshd's mount namespace only and dies with it.
- Ownership: a process is ours when its pidfile and command line say so, or when it lives
  in a network namespace the harness created (identified by its own names); nothing else
  is ever signalled. Stop removes the namespaces, veths and bridge of our own names only.

State lives in /var/tmp/ccci-fleet (``CCCI_FLEET_DIR`` moves it); data-roots are kept as a
cache across stops, so a warm start only restarts the daemons and the swarm comes back.
Stdlib only, like the rest of the harness.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import shlex
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness import apt, fleet_registry, locks, mounts, netns, procs, sshd
from harness.engine import (
    Engine,
    EngineError,
    Paths,
    _clean_dirty_state,
    _is_our_dockerd,
    _kill_orphaned_containers,
    _wait_ready,
    daemon_config,
    engine_handle,
    ensure_packages,
    launch_dockerd,
    our_containerd_pids,
    our_dockerd_pid,
    ping,
    swarm_listen_addr,
)
from harness.registry import Registry

DEFAULT_DIR = "/var/tmp/ccci-fleet"
# A /24 the machine does not use; checked at start. Only the bridge and the nodes have it.
SUBNET = ipaddress.IPv4Network("10.213.77.0/24")
HOST_ADDRESS = "10.213.77.1"
BRIDGE = "ccci-fleet0"
NODE_COUNT = 3
NETNS_PREFIX = "ccci-fleet-"
VETH_PREFIX = "cccifleet"  # + index: the root end; the namespace end is renamed eth0
SSH_PORT = 2222
SWARM_PORT = 2577  # neither 2377 (Docker's) nor 2477 (the private engine's)
DATA_PATH_PORT = 4799  # overlay VXLAN, off Docker's 4789
REMOTE_MB = (24, 32, 40)  # each node's own tmpfs at <state>/remote: distinct disk usage
ROOT_HOME = "/root"  # root's home in /etc/passwd, where each sshd sees its node's own home


@dataclass(frozen=True)
class NodePaths:
    """Where node ``index`` (1-based) keeps its state, and the names that are its own."""

    state_dir: str
    index: int

    @property
    def name(self) -> str:
        """The inventory name, the hostname and the network namespace's name."""
        return f"{NETNS_PREFIX}{self.index}"

    @property
    def address(self) -> str:
        return str(SUBNET.network_address + 10 + self.index)

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.index}"

    @property
    def member(self) -> netns.Member:
        return netns.Member(self.name, self.veth, self.address)

    @property
    def dir(self) -> str:
        return os.path.join(self.state_dir, f"n{self.index}")

    @property
    def engine(self) -> Paths:
        """dockerd's socket, data-root, exec-root, pidfile and log, as the private engine's."""
        return Paths(self.dir)

    @property
    def sshd_config(self) -> str:
        return os.path.join(self.dir, "sshd_config")

    @property
    def sshd_pidfile(self) -> str:
        return os.path.join(self.dir, "sshd.pid")

    @property
    def sshd_log(self) -> str:
        return os.path.join(self.dir, "sshd.log")

    @property
    def host_key(self) -> str:
        return os.path.join(self.dir, "ssh_host_ed25519_key")

    @property
    def home(self) -> str:
        """root's home on this node: bound over /root where its sshd runs."""
        return os.path.join(self.dir, "home")

    @property
    def remote_mb(self) -> int:
        return REMOTE_MB[(self.index - 1) % len(REMOTE_MB)]


@dataclass(frozen=True)
class FleetNode:
    """One running test host: its engine (reached from the root namespace through its
    socket) and its sshd; ``node_id`` is its swarm node ID (hostnames may repeat)."""

    name: str
    address: str
    ssh_port: int
    engine: Engine
    role: str
    node_id: str


@dataclass(frozen=True)
class Fleet:
    """The three running test hosts and what a client needs to reach them over SSH."""

    state_dir: str
    client_key: str
    known_hosts: str
    remote_dir: str
    nodes: tuple[FleetNode, ...]
    # The registry every node pulls from (harness/fleet_registry.py): 10.213.77.10:5000.
    registry: Registry

    @property
    def manager(self) -> FleetNode:
        return next(n for n in self.nodes if n.role == "manager")

    @property
    def workers(self) -> tuple[FleetNode, ...]:
        return tuple(n for n in self.nodes if n.role == "worker")

    def ssh_options(self) -> list[str]:
        """OpenSSH options that trust exactly the harness's host keys and key, and nothing
        from the machine's own ssh configuration."""
        return [
            "-F", "/dev/null",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-i", self.client_key,
        ]  # fmt: skip

    def ssh_argv(self, node: FleetNode, command: str) -> list[str]:
        return ["ssh", *self.ssh_options(), "-p", str(node.ssh_port), f"root@{node.address}",
                command]  # fmt: skip

    def host_vars(self, node: FleetNode) -> dict[str, str]:
        """Ansible-style inventory vars that reach ``node`` over SSH."""
        return {
            "ansible_connection": "ssh",
            "ansible_host": node.address,
            "ansible_port": str(node.ssh_port),
            "ansible_user": "root",
            "ansible_ssh_private_key_file": self.client_key,
            "ansible_ssh_common_args": (
                f"-F /dev/null -o UserKnownHostsFile={self.known_hosts} "
                "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "
                "-o IdentitiesOnly=yes"
            ),
            "docker_host": node.engine.docker_host,
        }


def inventory_yaml(fleet: Fleet, group: str = "fleet") -> str:
    """An Ansible-style inventory of the three hosts, reached over SSH (JSON is YAML)."""
    hosts = {n.name: fleet.host_vars(n) for n in fleet.nodes}
    return json.dumps({"all": {"children": {group: {"hosts": hosts}}}}, indent=2) + "\n"


def _members(nodes: tuple[NodePaths, ...]) -> list[netns.Member]:
    """Every namespace of ours on the bridge: the nodes', then the registry's."""
    return [*(n.member for n in nodes), fleet_registry.MEMBER]


def fleet_dir() -> str:
    return os.path.abspath(os.environ.get("CCCI_FLEET_DIR") or DEFAULT_DIR)


def node_paths(state_dir: str | None = None) -> tuple[NodePaths, ...]:
    root = state_dir or fleet_dir()
    return tuple(NodePaths(root, i) for i in range(1, NODE_COUNT + 1))


def _files(state_dir: str) -> tuple[str, str, str, str]:
    """client key, authorized_keys, known_hosts, the remote-only mount point."""
    join = os.path.join
    return (
        join(state_dir, "client_ed25519"),
        join(state_dir, "authorized_keys"),
        join(state_dir, "known_hosts"),
        join(state_dir, "remote"),
    )


# ---- packages ------------------------------------------------------------------------

# What the fleet needs beyond the private engine's docker.io: a tool, and its Debian package.
_TOOLS = {
    sshd.SSHD: "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
}


def _ensure_tools() -> None:
    """apt-get install what is missing (harness.apt keeps the postinst from starting the
    machine's own sshd)."""
    apt.ensure(_TOOLS, EngineError)


# ---- daemons -------------------------------------------------------------------------


def _engine(node: NodePaths, pid: int) -> Engine:
    return engine_handle(node.engine, pid)


def _launch_dockerd(node: NodePaths, settings: Mapping[str, object] | None = None) -> int:
    """The private engine's dockerd, in the node's network, UTS and mount namespaces; its
    daemon.json trusts the fleet registry unless ``settings`` says otherwise."""
    wrap = functools.partial(netns.inside, node.member, node.name, "true")
    if settings is None:
        settings = fleet_registry.daemon_settings()
    return launch_dockerd(node.engine, settings, wrap, banner="harness fleet start")


def _daemon_current(node: NodePaths) -> bool:
    """Whether the node's daemon.json is the one this harness writes now (as
    _sshd_current: a node an older harness started must not pass as warm)."""
    try:
        with open(node.engine.config) as fh:
            return fh.read() == daemon_config(fleet_registry.daemon_settings())
    except OSError:
        return False


def _reload_dockerd(node: NodePaths, pid: int, timeout: float) -> bool:
    """Write the current daemon.json and SIGHUP the running dockerd (ours, re-checked):
    it reloads insecure-registries in place, so the node keeps its containers and its
    swarm. True once /info shows the fleet registry trusted; False leaves a restart.
    (A reload only adds: dockerd keeps a setting the file no longer names, which is why
    success is read from /info and a setting ever dropped would need a restart.)"""
    paths = node.engine
    with open(paths.config, "w") as fh:
        fh.write(daemon_config(fleet_registry.daemon_settings()))
    if not _is_our_dockerd(paths, procs.cmdline(pid)):
        return False
    os.kill(pid, signal.SIGHUP)
    engine = _engine(node, pid)
    return _settle(lambda: fleet_registry.trusted_by(engine.api("/info")), timeout)


def _ensure_keys(state_dir: str, nodes: tuple[NodePaths, ...]) -> None:
    client, authorized, known, _ = _files(state_dir)
    hosts = [sshd.HostKey(n.host_key, n.name, n.address, SSH_PORT) for n in nodes]
    sshd.ensure_keys(client, authorized, known, hosts)


def _sshd_conf(node: NodePaths) -> str:
    authorized = _files(node.state_dir)[1]
    return sshd.config(node.address, SSH_PORT, node.host_key, node.sshd_pidfile, authorized)


def _is_our_sshd(node: NodePaths, pid: int) -> bool:
    return sshd.is_sshd(pid, netns.inode(node.name))


def _sshd_pid(node: NodePaths) -> int | None:
    pid = procs.read_pidfile(node.sshd_pidfile)
    return pid if pid and procs.alive(pid) and _is_our_sshd(node, pid) else None


def _sshd_current(node: NodePaths, pid: int) -> bool:
    """Whether the running sshd is the one this harness starts now: its configuration,
    and the node's own home at /root (an sshd an older harness started sees the machine's)."""
    try:
        with open(node.sshd_config) as fh:
            return fh.read() == _sshd_conf(node) and _home_bound(node, pid)
    except OSError:
        return False


def _home_bound(node: NodePaths, pid: int) -> bool:
    """Whether /root, seen from inside sshd's mount namespace (/proc/PID/root), is the
    node's home: a bind mount is the same directory, so device and inode agree."""
    seen = os.stat(f"/proc/{pid}/root{ROOT_HOME}")
    own = os.stat(node.home)
    return (seen.st_dev, seen.st_ino) == (own.st_dev, own.st_ino)


def _launch_sshd(node: NodePaths, own_home: bool = True) -> int:
    """sshd in the node's namespace; in its own mount namespace the node's own tmpfs
    covers the remote-only folder first, and the node's own home covers /root
    (``own_home=False`` starts it as an older harness did, for tests of the restart)."""
    sshd.write_private(node.sshd_config, _sshd_conf(node))
    sshd.check_config(node.sshd_config)
    remote = _files(node.state_dir)[3]
    os.makedirs(remote, mode=0o755, exist_ok=True)
    mount = f"mount -t tmpfs -o size={node.remote_mb}m,mode=0755 {node.name} {remote}"
    if own_home:
        sshd.ensure_home(node.home)
        mount += f" && mount --bind {shlex.quote(node.home)} {ROOT_HOME}"
    argv = [sshd.SSHD, "-D", "-f", node.sshd_config, "-E", node.sshd_log]
    pid = procs.spawn(
        node.sshd_log, netns.inside(node.member, node.name, mount, argv), "harness fleet start"
    )
    sshd.wait_listening(node.address, SSH_PORT, pid, node.sshd_log, timeout=20)
    return pid


def _stop_dockerd(node: NodePaths, grace: float) -> None:
    """Containers first (busybox ``sleep`` ignores SIGTERM), then dockerd, then what a
    killed one leaves (containerd, shims, mounts, pidfile and socket)."""
    paths = node.engine
    pid = our_dockerd_pid(paths)
    _kill_orphaned_containers(paths)
    if pid:
        procs.terminate(pid, lambda p: _is_our_dockerd(paths, procs.cmdline(p)), grace=grace)
    _clean_dirty_state(paths)


def _stop_namespace_processes(netns_name: str) -> None:
    """Whatever still lives in a namespace of ours (sshd and its sessions, the registry)."""
    inode = netns.inode(netns_name)
    for left in netns.pids_in(netns_name):
        procs.terminate(left, lambda p: netns.lives_in(p, inode), grace=5)


def _stop_node_processes(node: NodePaths, grace: float) -> None:
    """dockerd and its containers, then everything else in the node's namespace."""
    _stop_dockerd(node, grace)
    _stop_namespace_processes(node.name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(node.sshd_pidfile)


# ---- swarm ---------------------------------------------------------------------------


def _info(engine: Engine) -> dict[str, object]:
    info = engine.api("/info")
    swarm = info.get("Swarm") if isinstance(info, dict) else None
    return swarm if isinstance(swarm, dict) else {}


def _listen_addr(node: NodePaths) -> str | None:
    return swarm_listen_addr(node.engine)


def _manager_ok(node: NodePaths, swarm: dict[str, object]) -> bool:
    return (
        swarm.get("LocalNodeState") == "active"
        and bool(swarm.get("ControlAvailable"))
        and swarm.get("NodeAddr") == node.address
        and _listen_addr(node) == f"{node.address}:{SWARM_PORT}"
    )


def _worker_ok(node: NodePaths, swarm: dict[str, object], manager: NodePaths) -> bool:
    managers = swarm.get("RemoteManagers")
    return (
        swarm.get("LocalNodeState") == "active"
        and not swarm.get("ControlAvailable")
        and swarm.get("NodeAddr") == node.address
        and _listen_addr(node) == f"{node.address}:{SWARM_PORT}"
        and isinstance(managers, list)
        and any(
            isinstance(m, dict) and m.get("Addr") == f"{manager.address}:{SWARM_PORT}"
            for m in managers
        )
    )


def _cluster_nodes(manager: Engine) -> list[dict[str, object]]:
    nodes = manager.api("/nodes")
    return nodes if isinstance(nodes, list) else []


def _ready_ids(manager: Engine) -> dict[str, str]:
    """Swarm node ID → role, of the nodes the manager sees as ready."""
    ready = {}
    for n in _cluster_nodes(manager):
        status, spec = n.get("Status") or {}, n.get("Spec") or {}
        if isinstance(status, dict) and status.get("State") == "ready" and isinstance(spec, dict):
            ready[str(n.get("ID"))] = str(spec.get("Role"))
    return ready


def _swarm_healthy(nodes: tuple[NodePaths, ...], engines: list[Engine]) -> bool:
    manager, *workers = nodes
    if not _manager_ok(manager, _info(engines[0])):
        return False
    ids = []
    for node, engine in zip(workers, engines[1:], strict=True):
        swarm = _info(engine)
        if not _worker_ok(node, swarm, manager):
            return False
        ids.append(str(swarm.get("NodeID")))
    ready = _ready_ids(engines[0])
    return all(ready.get(i) == "worker" for i in ids) and list(ready.values()).count("manager") == 1


def _settle(done: Callable[[], bool], timeout: float) -> bool:
    """Poll until done() (errors count as not yet: a restarting engine refuses a while)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(EngineError, OSError):
            if done():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _ensure_swarm(nodes: tuple[NodePaths, ...], engines: list[Engine], timeout: float) -> None:
    """Keep the swarm the data-roots bring back when it is ours; otherwise init on the first
    node and join the others as workers, on our addresses and ports only."""
    if _settle(lambda: _swarm_healthy(nodes, engines), 20.0):
        return
    manager, *workers = nodes
    boss = engines[0]
    if not _manager_ok(manager, _info(boss)):
        boss.docker("swarm", "leave", "--force", check=False)
        boss.docker(
            "swarm", "init",
            "--listen-addr", f"{manager.address}:{SWARM_PORT}",
            "--advertise-addr", manager.address,
            "--data-path-port", str(DATA_PATH_PORT),
        )  # fmt: skip
        if not _settle(lambda: _manager_ok(manager, _info(boss)), timeout):
            raise EngineError(f"swarm manager not active on {manager.address}:{SWARM_PORT}")
    token = boss.docker("swarm", "join-token", "-q", "worker").stdout.strip()
    for node, engine in zip(workers, engines[1:], strict=True):
        swarm = _info(engine)
        if _worker_ok(node, swarm, manager) and str(swarm.get("NodeID")) in _ready_ids(boss):
            continue
        engine.docker("swarm", "leave", "--force", check=False)
        engine.docker(
            "swarm", "join", "--token", token,
            "--listen-addr", f"{node.address}:{SWARM_PORT}",
            "--advertise-addr", node.address,
            f"{manager.address}:{SWARM_PORT}",
        )  # fmt: skip
    if not _settle(lambda: _swarm_healthy(nodes, engines), timeout):
        raise EngineError(f"swarm did not become 1 manager + {len(workers)} ready workers")
    _forget_departed(engines)


def _forget_departed(engines: list[Engine]) -> None:
    """Drop node entries earlier joins left behind, so the manager lists exactly ours."""
    current = {str(_info(e).get("NodeID")) for e in engines}
    for n in _cluster_nodes(engines[0]):
        if str(n.get("ID")) not in current:
            engines[0].docker("node", "rm", "--force", str(n.get("ID")), check=False)


# ---- the public face -----------------------------------------------------------------


def _fleet(
    state_dir: str, nodes: tuple[NodePaths, ...], engines: list[Engine], registry: Registry
) -> Fleet:
    client, _, known, remote = _files(state_dir)
    members = []
    for node, engine in zip(nodes, engines, strict=True):
        swarm = _info(engine)
        role = "manager" if swarm.get("ControlAvailable") else "worker"
        members.append(
            FleetNode(node.name, node.address, SSH_PORT, engine, role, str(swarm.get("NodeID")))
        )
    return Fleet(state_dir, client, known, remote, tuple(members), registry)


def _warm(state_dir: str, nodes: tuple[NodePaths, ...]) -> Fleet | None:
    """The running fleet when everything is up and healthy (a few ms), else None."""
    engines = []
    for node in nodes:
        pid = our_dockerd_pid(node.engine)
        up = pid and ping(node.engine.socket) and _daemon_current(node)
        listener = _sshd_pid(node)
        if not (up and pid and listener and _sshd_current(node, listener)):
            return None
        engines.append(_engine(node, pid))
    if not os.path.exists(_files(state_dir)[2]):
        return None
    registry = fleet_registry.running(state_dir)
    if registry is None:
        return None
    try:
        healthy = _swarm_healthy(nodes, engines)
    except (EngineError, OSError):
        return None
    return _fleet(state_dir, nodes, engines, registry) if healthy else None


def ensure_fleet(timeout: float = 120.0) -> Fleet:
    """Return the running fleet, starting or repairing whatever part of it is missing."""
    from harness.images import ensure_busybox_image

    state_dir, nodes = fleet_dir(), node_paths()
    if fleet := _warm(state_dir, nodes):
        return fleet
    ensure_packages()
    _ensure_tools()
    with locks.held(os.path.join(state_dir, "fleet.lock")):
        netns.ensure(BRIDGE, HOST_ADDRESS, SUBNET, _members(nodes))
        _ensure_keys(state_dir, nodes)
        started = {}
        for node in nodes:
            pid = our_dockerd_pid(node.engine)
            if pid and not ping(node.engine.socket):
                with contextlib.suppress(EngineError):
                    _wait_ready(node.engine, pid, min(timeout, 20.0))
                if not ping(node.engine.socket):
                    _stop_node_processes(node, grace=10)
                    pid = None
            if pid and not _daemon_current(node) and not _reload_dockerd(node, pid, 15.0):
                _stop_dockerd(node, grace=10)
                pid = None
            if not pid:
                _clean_dirty_state(node.engine)
                pid = _launch_dockerd(node)
            started[node.index] = pid
        engines = []
        for node in nodes:
            _wait_ready(node.engine, started[node.index], timeout)
            engines.append(_engine(node, started[node.index]))
            listener = _sshd_pid(node)
            if listener and not _sshd_current(node, listener):
                procs.terminate(listener, functools.partial(_is_our_sshd, node), grace=5)
                listener = None
            if not listener:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(node.sshd_pidfile)
                _launch_sshd(node)
        registry = fleet_registry.ensure(state_dir, timeout)
        for engine in engines:
            ensure_busybox_image(engine)
        _ensure_swarm(nodes, engines, timeout)
        return _fleet(state_dir, nodes, engines, registry)


def stop_fleet(purge: bool = False, grace: float = 20.0) -> None:
    """Stop every daemon of ours, drop our namespaces, veths and bridge; purge drops the
    data-roots (the image and swarm cache) and the keys too."""
    state_dir, nodes = fleet_dir(), node_paths()
    if not os.path.isdir(state_dir):
        return
    with locks.held(os.path.join(state_dir, "fleet.lock")):
        for node in nodes:
            _stop_node_processes(node, grace)
        fleet_registry.stop(state_dir, purge)
        _stop_namespace_processes(fleet_registry.NETNS)
        netns.remove(BRIDGE, _members(nodes))
        mounts.unmount_under(state_dir)
        if purge:
            for node in nodes:
                shutil.rmtree(node.dir, ignore_errors=True)
            client, *others = _files(state_dir)
            for path in (client, f"{client}.pub", *others):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(path)


def status() -> dict[str, object]:
    """Read-only view for ``python3 -m harness fleet status``."""
    state_dir, nodes = fleet_dir(), node_paths()
    out: dict[str, object] = {"state_dir": state_dir, "bridge": netns.link_exists(BRIDGE)}
    rows = []
    for node in nodes:
        pid = our_dockerd_pid(node.engine)
        rows.append({
            "name": node.name,
            "address": node.address,
            "netns": netns.inode(node.name) is not None,
            "dockerd": pid,
            "engine": bool(pid) and ping(node.engine.socket),
            "sshd": _sshd_pid(node),
            "docker_host": node.engine.docker_host,
        })  # fmt: skip
    out["nodes"] = rows
    registry = fleet_registry.running(state_dir)
    out["registry"] = {
        "address": fleet_registry.ADDR,
        "netns": netns.inode(fleet_registry.NETNS) is not None,
        "pid": registry.pid if registry else None,
    }
    out["running"] = _warm(state_dir, nodes) is not None
    return out


def kill_dockerd(node: FleetNode) -> None:
    """SIGKILL one node's dockerd (tests of recovery): only if it is provably ours."""
    paths = Paths(node.engine.state_dir)
    pid = our_dockerd_pid(paths)
    if pid and _is_our_dockerd(paths, procs.cmdline(pid)):
        os.kill(pid, signal.SIGKILL)
        procs.wait_dead(pid, 10)


def relaunch_dockerd(node: FleetNode, settings: Mapping[str, object]) -> int:
    """Stop one node's dockerd and start it again with ``settings`` as its daemon.json, as
    an older harness would have (tests of what a start repairs); returns the new pid."""
    paths = next(p for p in node_paths() if p.name == node.name)
    _stop_dockerd(paths, grace=10)
    pid = _launch_dockerd(paths, settings)
    _wait_ready(paths.engine, pid, 60)
    return pid


def relaunch_sshd_without_home(node: FleetNode) -> int:
    """Stop one node's sshd and start it again as an older harness did, seeing the
    machine's /root (tests of what a start repairs); returns the new pid."""
    paths = next(p for p in node_paths() if p.name == node.name)
    listener = _sshd_pid(paths)
    if listener:
        procs.terminate(listener, functools.partial(_is_our_sshd, paths), grace=5)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.sshd_pidfile)
    return _launch_sshd(paths, own_home=False)


def sshd_pid(node: FleetNode) -> int | None:
    """The node's running sshd (a process proven ours), else None."""
    return _sshd_pid(next(p for p in node_paths() if p.name == node.name))


def registry_pid() -> int | None:
    """The fleet registry's pid when it runs (a process proven ours), else None."""
    from harness import registry

    return registry.our_pid(fleet_registry.site(fleet_dir()).paths)


def leftovers() -> list[str]:
    """What of ours still exists after a stop (for tests): processes, links, namespaces."""
    found = []
    for node in node_paths():
        if netns.inode(node.name) is not None:
            found.append(f"netns {node.name}")
        if netns.link_exists(node.veth):
            found.append(f"link {node.veth}")
        if pid := our_dockerd_pid(node.engine):
            found.append(f"dockerd {pid}")
        found += [f"containerd {p}" for p in our_containerd_pids(node.engine)]
        found += [f"process {pid} in {node.name}" for pid in netns.pids_in(node.name)]
    reg = fleet_registry.MEMBER
    if netns.inode(reg.netns) is not None:
        found.append(f"netns {reg.netns}")
    if netns.link_exists(reg.veth):
        found.append(f"link {reg.veth}")
    if pid := registry_pid():
        found.append(f"registry {pid}")
    found += [f"process {pid} in {reg.netns}" for pid in netns.pids_in(reg.netns)]
    if netns.link_exists(BRIDGE):
        found.append(f"link {BRIDGE}")
    return found


def reset(fleet: Fleet, timeout: float = 60) -> None:
    """Back to "swarm + busybox base image only" between tests: cluster objects through
    the manager, then each node's own containers, volumes, networks and other images."""
    from harness import swarm
    from harness.images import BASE_TAG

    boss = fleet.manager.engine
    swarm.remove_all_stacks(boss, timeout)
    swarm.remove_all_services(boss, timeout)
    for kind in ("secret", "config"):
        ids = boss.docker(kind, "ls", "-q").stdout.split()
        if ids:
            boss.docker(kind, "rm", *ids, check=False)
    for node in fleet.nodes:
        engine = node.engine
        ids = engine.docker("ps", "-aq").stdout.split()
        if ids:
            engine.docker("rm", "-f", "-v", *ids, check=False)
        rows = engine.docker("network", "ls", "--format", "{{.ID}} {{.Name}}").stdout.split("\n")
        nets = [r.split()[0] for r in rows if r and r.split()[1] not in swarm.BUILTIN_NETWORKS]
        if nets:
            engine.docker("network", "rm", *nets, check=False)
        vols = engine.docker("volume", "ls", "-q").stdout.split()
        if vols:
            engine.docker("volume", "rm", "-f", *vols, check=False)
        keep = engine.docker("image", "inspect", "-f", "{{.Id}}", BASE_TAG).stdout.strip()
        images = set(engine.docker("image", "ls", "-aq", "--no-trunc").stdout.split()) - {keep}
        if images:
            engine.docker("rmi", "-f", *sorted(images), check=False)
