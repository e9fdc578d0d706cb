"""An sshd for a fleet test host (harness/fleet.py): Debian's openssh-server, keys the
harness generates, root login by key only, listening on one address. Stdlib only."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from dataclasses import dataclass

from harness import netns, procs
from harness.engine import EngineError

SSHD = "/usr/sbin/sshd"  # absolute: sshd re-executes itself for every connection
SKEL = "/etc/skel"  # Debian's default home, as useradd copies it

# What a test host's root home holds when the machine has no /etc/skel: Debian's own
# skeleton does just this for a shell that is not interactive (every remote command).
MINIMAL_HOME = {
    ".bashrc": (
        "# ~/.bashrc of a fleet test host (the harness wrote it: this machine has no /etc/skel)\n"
        "case $- in *i*) ;; *) return ;; esac\n"
    ),
    ".profile": (
        "# ~/.profile of a fleet test host (the harness wrote it: this machine has no /etc/skel)\n"
        'if [ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi\n'
    ),
}


@dataclass(frozen=True)
class HostKey:
    """One host's key file, and where known_hosts says it answers."""

    path: str
    comment: str
    address: str
    port: int


def write_private(path: str, text: str) -> None:
    """Replace a file whole, readable by its owner only."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_keys(
    client_key: str, authorized_keys: str, known_hosts: str, hosts: list[HostKey]
) -> None:
    """A client key, each host's key, and the authorized_keys and known_hosts files that
    trust exactly those (rewritten every time: cheap, and never stale)."""
    for key, comment in ((client_key, "ccci-fleet-client"), *((h.path, h.comment) for h in hosts)):
        if not os.path.exists(key):
            os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
            netns.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key)
    with open(client_key + ".pub") as fh:
        write_private(authorized_keys, fh.read())
    lines = []
    for host in hosts:
        with open(host.path + ".pub") as fh:
            kind, blob = fh.read().split()[:2]
        lines.append(f"[{host.address}]:{host.port} {kind} {blob}\n")
    write_private(known_hosts, "".join(lines))


def ensure_home(home: str, skel: str = SKEL) -> None:
    """A test host's own root home: a real node's sessions read its own dotfiles, never
    this build machine's (whose ~/.bashrc runs ``pyenv init``, ~45 ms per remote command).

    The skeleton's files are copied when missing, never over what is there: idempotent,
    and what a session wrote stays, as on a real host."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)  # root's home is private, as /root is on Debian
    files = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        files = sorted(e.name for e in os.scandir(skel) if e.is_file(follow_symlinks=False))
    for name in files:
        target = os.path.join(home, name)
        if not os.path.lexists(target):
            shutil.copy2(os.path.join(skel, name), target)
    if files:
        return
    for name, text in MINIMAL_HOME.items():
        target = os.path.join(home, name)
        if not os.path.lexists(target):
            with open(target, "w") as fh:
                fh.write(text)


def config(address: str, port: int, host_key: str, pidfile: str, authorized_keys: str) -> str:
    """sshd_config of a test host: root by key only, nothing forwarded but local sockets."""
    return "\n".join([
        f"ListenAddress {address}:{port}",
        f"HostKey {host_key}",
        f"PidFile {pidfile}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "AllowUsers root",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The keys live under /var/tmp, whose mode (1777) StrictModes would refuse.
        "StrictModes no",
        "PermitUserEnvironment no",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        # -L to the engine's unix socket carries the Docker API over the SSH connection.
        # sshd lets a socket path through only when TCP forwarding is allowed too (one
        # permission for both); the namespace reaches no other host, so nothing leaks.
        "AllowTcpForwarding local",
        "AllowStreamLocalForwarding local",
        "MaxSessions 32",
        "MaxStartups 32:50:64",
        "PrintMotd no",
        "PrintLastLog no",
        "LogLevel VERBOSE",
        "",
    ])  # fmt: skip


def check_config(path: str) -> None:
    """``sshd -t``: a bad configuration is the harness's error, said before any start."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    test = netns.run(SSHD, "-t", "-f", path, check=False)
    if test.returncode != 0:
        raise EngineError(f"sshd -t -f {path}: {test.stderr.strip()}")


def is_sshd(pid: int, ns_inode: int | None) -> bool:
    """sshd rewrites its command line, so ours is: an sshd inside our namespace."""
    argv = procs.cmdline(pid)
    return (
        netns.lives_in(pid, ns_inode)
        and bool(argv)
        and os.path.basename(argv[0].split()[0]).startswith("sshd")
    )


def _port_open(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
        return True
    return False


def wait_listening(address: str, port: int, pid: int, log: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(address, port):
        if not procs.alive(pid) or time.monotonic() >= deadline:
            raise EngineError(f"sshd on {address}:{port} not listening; log tail:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: str) -> str:
    try:
        with open(log, errors="replace") as fh:
            return "".join(fh.readlines()[-15:])
    except OSError:
        return "(no sshd log)"
