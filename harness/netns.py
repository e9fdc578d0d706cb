"""Network namespaces on a bridge of our own, for the fleet test hosts (harness/fleet.py).

Everything here is named by the caller and touches only those names: a namespace, the veth
that joins it to the bridge, the bridge. A process inside one of our namespaces is ours,
since nothing but the harness enters them. Stdlib only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
from dataclasses import dataclass

from harness import procs
from harness.engine import EngineError


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise EngineError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class Member:
    """One namespace on the bridge: its name, its root-side veth and its address."""

    netns: str
    veth: str
    address: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.netns}"


def inode(netns: str) -> int | None:
    """The namespace's inode (what ``/proc/PID/ns/net`` names), or None when it is gone."""
    try:
        return os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return None


def lives_in(pid: int, ns_inode: int | None) -> bool:
    try:
        return ns_inode is not None and os.readlink(f"/proc/{pid}/ns/net") == f"net:[{ns_inode}]"
    except OSError:
        return False


def pids_in(netns: str) -> list[int]:
    """Every live process inside the namespace (all of them ours)."""
    ns_inode = inode(netns)
    if ns_inode is None:
        return []
    return [
        int(name)
        for name in os.listdir("/proc")
        if name.isdigit() and lives_in(int(name), ns_inode) and procs.alive(int(name))
    ]


def link_exists(name: str, netns: str | None = None) -> bool:
    prefix = ["-n", netns] if netns else []
    return run("ip", *prefix, "link", "show", "dev", name, check=False).returncode == 0


def check_unused(subnet: ipaddress.IPv4Network, bridge: str) -> None:
    """Refuse when the machine routes the subnet anywhere but our own bridge."""
    routes = json.loads(run("ip", "-j", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("dev") == bridge:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(dst, strict=False).overlaps(subnet):
                raise EngineError(
                    f"{subnet} is already in use on this machine ({dst} dev "
                    f"{route.get('dev')}); the fleet harness needs it for itself"
                )


def ensure(
    bridge: str, host_address: str, subnet: ipaddress.IPv4Network, members: list[Member]
) -> None:
    """Bridge, namespaces, veths and addresses, each step only if missing (idempotent).
    No default route anywhere: a member reaches the others and the root namespace only."""
    check_unused(subnet, bridge)
    if not link_exists(bridge):
        run("ip", "link", "add", bridge, "type", "bridge")
    if f'"{host_address}"' not in run("ip", "-j", "addr", "show", "dev", bridge).stdout:
        run("ip", "addr", "add", f"{host_address}/{subnet.prefixlen}", "dev", bridge)
    run("ip", "link", "set", bridge, "up")
    for m in members:
        if inode(m.netns) is None:
            run("ip", "netns", "add", m.netns)
        if not link_exists("eth0", m.netns):
            if link_exists(m.veth):  # its peer went with a deleted namespace: start over
                run("ip", "link", "del", m.veth)
            run("ip", "link", "add", m.veth, "type", "veth", "peer", "name", f"{m.veth}p")
            run("ip", "link", "set", f"{m.veth}p", "netns", m.netns)
            run("ip", "-n", m.netns, "link", "set", f"{m.veth}p", "name", "eth0")
        run("ip", "link", "set", m.veth, "master", bridge, "up")
        inside = run("ip", "-n", m.netns, "-j", "addr", "show", "dev", "eth0").stdout
        if f'"{m.address}"' not in inside:
            cidr = f"{m.address}/{subnet.prefixlen}"
            run("ip", "-n", m.netns, "addr", "add", cidr, "dev", "eth0")
        run("ip", "-n", m.netns, "link", "set", "eth0", "up")
        run("ip", "-n", m.netns, "link", "set", "lo", "up")


def remove(bridge: str, members: list[Member]) -> None:
    """Delete our namespaces (each takes its eth0, and so the veth's peer, along), any veth
    left, and the bridge."""
    for m in members:
        if inode(m.netns) is not None:
            run("ip", "netns", "del", m.netns)
        if link_exists(m.veth):
            run("ip", "link", "del", m.veth)
    if link_exists(bridge):
        run("ip", "link", "del", bridge)


def inside(member: Member, hostname: str, setup: str, argv: list[str]) -> list[str]:
    """argv run in the member's network namespace with its own hostname and its own mount
    namespace; ``setup`` is shell run first (``$0`` is the hostname).

    ``nsenter --net``, not ``ip netns exec``: the latter remounts /sys, which hides the
    cgroup tree from dockerd ("Devices cgroup isn't mounted"). Neither nsenter nor unshare
    forks here, so the pid the caller starts is the pid argv ends up running as."""
    return [
        "nsenter", f"--net={member.path}",
        "unshare", "--uts", "--mount", "--propagation", "private",
        "/bin/sh", "-c", f'hostname "$0" && {setup} && exec "$@"', hostname, *argv,
    ]  # fmt: skip
