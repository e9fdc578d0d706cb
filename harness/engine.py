"""Start, check and stop the harness's own dockerd and loopback swarm.

Everything lives under one state dir (default /var/tmp/ccci-engine, outside the
repo so the image cache survives fresh CI clones). Only processes proven ours by
pidfile *and* cmdline are ever signalled; the host's docker.sock is never used.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness import apt, locks, mounts, procs

DEFAULT_DIR = "/var/tmp/ccci-engine"
SWARM_LISTEN = "127.0.0.1:2477"
SWARM_ADVERTISE = "127.0.0.1"
# Host-level env that would point the docker CLI somewhere else.
_FOREIGN_ENV = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION")


class EngineError(RuntimeError):
    """The private engine could not be started, reached or stopped."""


class DockerError(subprocess.CalledProcessError):
    """docker CLI failure whose message carries the CLI's stderr."""

    def __str__(self) -> str:
        return f"{' '.join(self.cmd)} exited {self.returncode}: {(self.stderr or '').strip()}"


@dataclass(frozen=True)
class Paths:
    """Where one engine keeps its state; all derived from state_dir."""

    state_dir: str

    @property
    def socket(self) -> str:
        return os.path.join(self.state_dir, "docker.sock")

    @property
    def data_root(self) -> str:
        return os.path.join(self.state_dir, "data")

    @property
    def exec_root(self) -> str:
        return os.path.join(self.state_dir, "exec")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.state_dir, "dockerd.pid")

    @property
    def log(self) -> str:
        return os.path.join(self.state_dir, "dockerd.log")

    @property
    def config(self) -> str:
        return os.path.join(self.state_dir, "daemon.json")

    @property
    def containerd_socket(self) -> str:
        return os.path.join(self.exec_root, "containerd", "containerd.sock")

    @property
    def containerd_pidfile(self) -> str:
        return os.path.join(self.exec_root, "containerd", "containerd.pid")

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


def engine_paths() -> Paths:
    return Paths(os.path.abspath(os.environ.get("CCCI_ENGINE_DIR") or DEFAULT_DIR))


@dataclass(frozen=True)
class Engine:
    """Handle on a running private engine; `docker()` talks only to it."""

    docker_host: str
    socket_path: str
    data_root: str
    state_dir: str
    exec_root: str
    log_path: str
    pid: int

    def env(self) -> dict[str, str]:
        """os.environ with the docker CLI aimed at this engine only."""
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        env["DOCKER_HOST"] = self.docker_host
        return env

    def docker(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        cmd = [docker_cli(), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise DockerError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def api(self, path: str, timeout: float = 10.0) -> Any:
        """GET an engine API path and decode the JSON reply."""
        return json.loads(_http_get(self.socket_path, path, timeout))


# ---- locating binaries -------------------------------------------------------


def docker_cli() -> str:
    cli = apt.which("docker")
    if not cli:
        raise EngineError(
            "docker CLI not found; run `python3 -m harness start` to install docker.io"
        )
    return cli


# What the private engine needs: a tool, and the Debian package that brings it.
_TOOLS = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "containerd": "docker.io",
    "busybox": "busybox-static",
}


def ensure_packages() -> None:
    """apt-get install docker.io / busybox-static if missing (fresh CI machines); the
    guard in harness.apt keeps docker.io's postinst from starting the *system* dockerd."""
    apt.ensure(_TOOLS, EngineError)


# ---- talking to the socket ---------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to the engine over its unix socket at ``path``, for any method: ``_http_get``
    uses it for GETs, benchmarks/benchkit.py also for POSTs and DELETEs."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _http_get(socket_path: str, path: str, timeout: float) -> bytes:
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise EngineError(f"GET {path}: HTTP {resp.status} {body[:200]!r}")
        return body
    finally:
        conn.close()


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    try:
        return _http_get(socket_path, "/_ping", timeout).strip() == b"OK"
    except (OSError, EngineError, http.client.HTTPException):
        return False


# ---- ownership ---------------------------------------------------------------


def _is_our_dockerd(paths: Paths, argv: list[str]) -> bool:
    return (
        bool(argv)
        and os.path.basename(argv[0]) == "dockerd"
        and procs.flag_value(argv, "--pidfile") == paths.pidfile
        and procs.flag_value(argv, "-H") in (None, paths.docker_host)
        and procs.flag_value(argv, "--host") == paths.docker_host
    )


def _is_our_containerd(paths: Paths, argv: list[str]) -> bool:
    # dockerd's managed containerd runs with --config <exec-root>/containerd/containerd.toml
    return (
        bool(argv)
        and os.path.basename(argv[0]) == "containerd"
        and any(a.startswith(paths.exec_root + "/") for a in argv[1:])
    )


def our_dockerd_pid(paths: Paths) -> int | None:
    """Pid of our live dockerd: pidfile first, else a /proc scan by exact cmdline."""
    pid = procs.read_pidfile(paths.pidfile)
    if pid and procs.alive(pid) and _is_our_dockerd(paths, procs.cmdline(pid)):
        return pid
    found = procs.find(lambda argv: _is_our_dockerd(paths, argv))
    return found[0] if found else None


def our_containerd_pids(paths: Paths) -> list[int]:
    pids = set(procs.find(lambda argv: _is_our_containerd(paths, argv)))
    pid = procs.read_pidfile(paths.containerd_pidfile)
    if pid and procs.alive(pid) and _is_our_containerd(paths, procs.cmdline(pid)):
        pids.add(pid)
    return sorted(pids)


def engine_handle(paths: Paths, pid: int) -> Engine:
    """The handle on a running dockerd of ours at ``paths`` (the private engine's or a node's)."""
    return Engine(
        docker_host=paths.docker_host,
        socket_path=paths.socket,
        data_root=paths.data_root,
        state_dir=paths.state_dir,
        exec_root=paths.exec_root,
        log_path=paths.log,
        pid=pid,
    )


def log_tail(paths: Paths, lines: int = 30) -> str:
    try:
        with open(paths.log, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no dockerd.log)"


# ---- start / stop ------------------------------------------------------------


def _is_our_shim(paths: Paths, argv: list[str]) -> bool:
    return (
        bool(argv)
        and os.path.basename(argv[0]).startswith("containerd-shim")
        and procs.flag_value(argv, "-address") == paths.containerd_socket
    )


def _kill_orphaned_containers(paths: Paths) -> None:
    """SIGKILL container inits and shims left behind by a killed engine.

    Otherwise the restarted dockerd stops each container gracefully, and busybox
    `sleep` as PID 1 ignores SIGTERM: every leftover would cost a 10 s timeout.
    """
    shims = procs.find(lambda argv: _is_our_shim(paths, argv))
    for shim in shims:
        for child in procs.children(shim):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    for shim in shims:
        procs.terminate(shim, lambda p: _is_our_shim(paths, procs.cmdline(p)), grace=5)


def _clean_dirty_state(paths: Paths) -> None:
    """Make a killed engine's leftovers look like a reboot, which dockerd handles.

    Kills our containers, shims and containerd, drops stale pidfiles/socket,
    unmounts everything under exec-root and data-root, then empties exec-root
    (runtime state, like /run/docker) so no stale netns files linger.
    """
    _kill_orphaned_containers(paths)
    for pid in our_containerd_pids(paths):
        procs.terminate(pid, lambda p: _is_our_containerd(paths, procs.cmdline(p)), grace=10)
    for stale in (paths.pidfile, paths.socket):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    mounts.unmount_under(paths.exec_root)
    mounts.unmount_under(paths.data_root)
    if os.path.isdir(paths.exec_root) and not mounts.mounts_under(paths.exec_root):
        shutil.rmtree(paths.exec_root)


def daemon_config(settings: Mapping[str, object] | None = None) -> str:
    """The daemon.json text the harness writes for a dockerd: ``settings`` alone. Even an
    empty one is written, to keep the machine's /etc/docker/daemon.json from leaking in."""
    return json.dumps(dict(settings or {}), indent=2, sort_keys=True) + "\n"


def launch_dockerd(
    paths: Paths,
    settings: Mapping[str, object] | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
    banner: str = "harness start",
) -> int:
    """Start a dockerd of ours detached, on ``paths`` alone, and return its pid: the private
    engine's, and each fleet node's (``wrap`` puts it in the node's namespaces, ``settings``
    is its daemon.json). No iptables, masquerading, forwarding or default bridge: the
    machine's own networking is never changed."""
    dockerd = apt.which("dockerd")
    if not dockerd:
        raise EngineError("dockerd not found")
    if len(os.fsencode(paths.socket)) >= 108:  # sun_path limit; dockerd's own error is obscure
        raise EngineError(f"state dir too long for a unix socket path: {paths.socket}")
    os.makedirs(paths.data_root, mode=0o710, exist_ok=True)
    os.makedirs(paths.exec_root, mode=0o700, exist_ok=True)
    with open(paths.config, "w") as fh:
        fh.write(daemon_config(settings))
    argv = [
        dockerd,
        "--host", paths.docker_host,
        "--data-root", paths.data_root,
        "--exec-root", paths.exec_root,
        "--pidfile", paths.pidfile,
        "--config-file", paths.config,
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",  # don't turn on host routing for container traffic
        "--bridge=none",
    ]  # fmt: skip
    return procs.spawn(paths.log, wrap(argv) if wrap else argv, banner)


def _wait_ready(paths: Paths, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ping(paths.socket):
        if not procs.alive(pid):
            raise EngineError(
                f"dockerd (pid {pid}) exited during startup; log tail:\n{log_tail(paths)}"
            )
        if time.monotonic() >= deadline:
            raise EngineError(
                f"dockerd not ready after {timeout:.0f}s; log tail:\n{log_tail(paths)}"
            )
        time.sleep(0.2)


def _swarm_info(engine: Engine) -> dict[str, object]:
    info = engine.api("/info")
    return info.get("Swarm", {}) if isinstance(info, dict) else {}


def swarm_listen_addr(paths: Paths) -> str | None:
    """The swarm listen address: /info has none, dockerd records it in the kept data-root."""
    try:
        with open(os.path.join(paths.data_root, "swarm", "docker-state.json")) as fh:
            addr = json.load(fh).get("ListenAddr")
    except (OSError, ValueError, AttributeError):
        return None
    return addr if isinstance(addr, str) else None


def _swarm_ok(paths: Paths, swarm: dict[str, object]) -> bool:
    return (
        swarm.get("LocalNodeState") == "active"
        and bool(swarm.get("ControlAvailable"))
        and swarm.get("NodeAddr") == SWARM_ADVERTISE
        and swarm_listen_addr(paths) == SWARM_LISTEN
    )


def _swarm_settling(paths: Paths, swarm: dict[str, object]) -> bool:
    """Right after a restart a healthy node can be pending or not yet leader."""
    return swarm.get("LocalNodeState") == "pending" or (
        swarm.get("LocalNodeState") == "active"
        and swarm.get("NodeAddr") == SWARM_ADVERTISE
        and swarm_listen_addr(paths) == SWARM_LISTEN
    )


def _ensure_swarm(engine: Engine, timeout: float) -> None:
    """Init the loopback swarm, or accept the one the kept data-root brings back;
    a node in error, locked or mis-addressed is left (--force) and re-initialised."""
    paths = Paths(engine.state_dir)
    deadline = time.monotonic() + timeout
    settle = time.monotonic() + min(timeout, 20.0)
    swarm = _swarm_info(engine)
    while (
        not _swarm_ok(paths, swarm) and _swarm_settling(paths, swarm) and time.monotonic() < settle
    ):
        time.sleep(0.5)
        swarm = _swarm_info(engine)
    if _swarm_ok(paths, swarm):
        return
    if swarm.get("LocalNodeState") != "inactive":
        engine.docker("swarm", "leave", "--force", check=False)
    init = engine.docker(
        "swarm",
        "init",
        "--listen-addr",
        SWARM_LISTEN,
        "--advertise-addr",
        SWARM_ADVERTISE,
        check=False,
    )
    if init.returncode != 0 and "already part of a swarm" not in init.stderr:
        raise EngineError(f"docker swarm init failed: {init.stderr.strip()}")
    while not _swarm_ok(paths, swarm := _swarm_info(engine)):
        if time.monotonic() >= deadline:
            raise EngineError(f"swarm not active on {SWARM_LISTEN} after init: {swarm}")
        time.sleep(0.5)


def ensure_engine(timeout: float = 90.0) -> Engine:
    """Return the running private engine, starting (and repairing) it if needed."""
    paths = engine_paths()
    pid = our_dockerd_pid(paths)
    if pid and ping(paths.socket):
        engine = engine_handle(paths, pid)
        if _swarm_ok(paths, _swarm_info(engine)):
            return engine  # warm path: no lock, a few ms
    ensure_packages()
    with locks.held(os.path.join(paths.state_dir, "engine.lock")):
        pid = our_dockerd_pid(paths)
        if pid and not ping(paths.socket):
            # Perhaps another worker is mid-start; give it a while, then replace it.
            try:
                _wait_ready(paths, pid, min(timeout, 30.0))
            except EngineError:
                procs.terminate(pid, lambda p: _is_our_dockerd(paths, procs.cmdline(p)), grace=15)
                pid = None
        if not pid:
            _clean_dirty_state(paths)
            pid = launch_dockerd(paths)
            _wait_ready(paths, pid, timeout)
        engine = engine_handle(paths, pid)
        _ensure_swarm(engine, timeout)
        return engine


def stop_engine(purge: bool = False, timeout: float = 30.0) -> None:
    """Stop our dockerd (TERM, then KILL) and unmount leftovers; purge drops the cache."""
    paths = engine_paths()
    if not os.path.isdir(paths.state_dir):
        return
    with locks.held(os.path.join(paths.state_dir, "engine.lock")):
        pid = our_dockerd_pid(paths)
        if pid:
            procs.terminate(pid, lambda p: _is_our_dockerd(paths, procs.cmdline(p)), grace=timeout)
        # Clean shutdown stops the managed containerd too; this covers kills.
        _clean_dirty_state(paths)
        mounts.unmount_under(paths.state_dir)
        if purge:
            if mounts.mounts_under(paths.state_dir):
                raise EngineError("refusing to purge: mounts remain under the state dir")
            tmp, disks = (os.path.join(paths.state_dir, d) for d in ("tmp", "disks"))
            for path in (paths.data_root, paths.exec_root, tmp, disks):
                shutil.rmtree(path, ignore_errors=True)


def status() -> dict[str, object]:
    """Cheap, read-only view of the engine for `python3 -m harness status`."""
    paths = engine_paths()
    pid = our_dockerd_pid(paths)
    up = bool(pid) and ping(paths.socket)
    out: dict[str, object] = {
        "state_dir": paths.state_dir,
        "docker_host": paths.docker_host,
        "pid": pid,
        "running": up,
    }
    if up and pid:
        swarm = _swarm_info(engine_handle(paths, pid))
        out["swarm"] = swarm.get("LocalNodeState")
        out["swarm_addr"] = swarm.get("NodeAddr")
    return out
