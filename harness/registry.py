"""A real image registry on loopback, for tests that pull.

Debian's ``docker-registry`` (the reference registry, API v2) serves 127.0.0.1:5000 from a
filesystem store under the engine's state dir, so nothing leaves the machine. dockerd
treats every 127.0.0.0/8 registry as insecure (plain HTTP) by default, so the private
engine pushes and pulls with no extra configuration.

Its access log (the registry's stdout and stderr, appended to ``registry.log``) is how tests
count pulls. A pull is a manifest GET: dockerd HEADs ``/v2/<repo>/manifests/<tag>`` for the
digest, then GETs ``/v2/<repo>/manifests/<digest>`` and the blobs it lacks. A HEAD alone is
not a pull (a swarm task starting from a tag it already has only HEADs it), and registries
that limit pulls count the GETs.

Like the engine: idempotent and fast when warm, a pidfile, and only a process proven ours
(pidfile *and* cmdline naming our config) is ever signalled. Stdlib only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness import apt, locks, procs
from harness.engine import Engine, EngineError, engine_paths

BINARY = "/usr/bin/docker-registry"
PACKAGE = "docker-registry"
HOST = "127.0.0.1"
PORT = 5000
ADDR = f"{HOST}:{PORT}"

# The access log is Apache's combined format:
#   127.0.0.1 - - [date] "GET /v2/recipe/redis/manifests/7 HTTP/1.1" 200 529 "" "docker/…"
_ACCESS = re.compile(
    r"(?P<client>[0-9A-Fa-f.:]+) \S+ \S+ \[[^\]]*\] "
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) '
)


class RegistryError(EngineError):
    """The loopback registry could not be installed, started, reached or stopped."""


@dataclass(frozen=True)
class RegistryPaths:
    """Where the registry keeps its state; all under the engine's state dir."""

    root: str

    @property
    def storage(self) -> str:
        return os.path.join(self.root, "storage")

    @property
    def config(self) -> str:
        return os.path.join(self.root, "config.yml")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.root, "registry.pid")

    @property
    def log(self) -> str:
        return os.path.join(self.root, "registry.log")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, "registry.lock")


def registry_paths() -> RegistryPaths:
    return RegistryPaths(os.path.join(engine_paths().state_dir, "registry"))


@dataclass(frozen=True)
class Site:
    """One registry of ours: where it keeps its state, the address it serves on, and how it
    is started (``wrap`` puts it in a namespace of the fleet's; None runs it as is)."""

    paths: RegistryPaths
    addr: str
    wrap: Callable[[list[str]], list[str]] | None = None

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])


def loopback() -> Site:
    """The private engine's registry on 127.0.0.1:5000."""
    return Site(registry_paths(), ADDR)


@dataclass(frozen=True)
class Request:
    """One line of the access log."""

    method: str
    path: str
    status: int
    # Who asked: on the fleet's registry, which node (its address) pulled.
    client: str = ""


@dataclass(frozen=True)
class Registry:
    """Handle on the running loopback registry."""

    addr: str
    pid: int
    root: str
    log_path: str

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def ref(self, repo_tag: str) -> str:
        """``recipe/redis:7`` → ``127.0.0.1:5000/recipe/redis:7``."""
        return f"{self.addr}/{repo_tag}"

    def log_offset(self) -> int:
        """Where the log ends now: pass it to ``requests`` to see only what comes after."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def requests(self, since: int = 0) -> list[Request]:
        """Every request the registry logged (after byte ``since`` of its log)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(since)
                text = fh.read().decode(errors="replace")
        except OSError:
            return []
        return [
            Request(m["method"], m["path"], int(m["status"]), m["client"])
            for m in (_ACCESS.search(line) for line in text.splitlines())
            if m
        ]

    def manifest_gets(self, repo: str, reference: str | None = None, since: int = 0) -> int:
        """How many pulls of ``repo`` (its path in the registry, e.g. ``recipe/redis``) the
        log shows: GETs of its manifests (by tag or digest), optionally of one reference."""
        prefix = f"/v2/{repo}/manifests/"
        return sum(
            1
            for r in self.requests(since)
            if r.method == "GET"
            and r.path.startswith(prefix)
            and (reference is None or r.path[len(prefix) :] == reference)
        )


# ---- install -----------------------------------------------------------------------------


def ensure_package() -> str:
    """apt-get install docker-registry when its binary is missing; never start its service
    (harness.apt's guard: the package's postinst would start the *system* registry on
    0.0.0.0:5000, which is not ours and would hold our port)."""
    apt.ensure({BINARY: PACKAGE}, RegistryError)
    return BINARY


# ---- ownership and health ----------------------------------------------------------------


def _is_ours(paths: RegistryPaths, argv: list[str]) -> bool:
    return (
        len(argv) >= 3
        and os.path.basename(argv[0]) == "docker-registry"
        and argv[1] == "serve"
        and argv[2] == paths.config
    )


def our_pid(paths: RegistryPaths) -> int | None:
    """Our live registry: by pidfile first, else by exact cmdline (our config path)."""
    pid = procs.read_pidfile(paths.pidfile)
    if pid and procs.alive(pid) and _is_ours(paths, procs.cmdline(pid)):
        return pid
    found = procs.find(lambda argv: _is_ours(paths, argv))
    return found[0] if found else None


def _get(addr: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def serves_v2(addr: str = ADDR) -> bool:
    """True when something on ``addr`` answers the v2 API base (``GET /v2/`` → 200)."""
    try:
        status, _ = _get(addr, "/v2/")
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def _port_taken(site: Site) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((site.host, site.port)) == 0


def _config(paths: RegistryPaths, addr: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "  formatter: text\n"
        "  accesslog:\n"
        "    disabled: false\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {paths.storage}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {addr}\n"
        "  headers:\n"
        "    X-Content-Type-Options: [nosniff]\n"
    )


def _launch(site: Site, binary: str) -> int:
    paths = site.paths
    os.makedirs(paths.storage, exist_ok=True)
    with open(paths.config, "w") as fh:
        fh.write(_config(paths, site.addr))
    argv = [binary, "serve", paths.config]
    pid = procs.spawn(paths.log, site.wrap(argv) if site.wrap else argv, "harness registry start")
    with open(paths.pidfile, "w") as fh:
        fh.write(f"{pid}\n")
    return pid


def _log_tail(paths: RegistryPaths, lines: int = 20) -> str:
    try:
        with open(paths.log, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no registry.log)"


def _wait_ready(site: Site, pid: int, timeout: float) -> None:
    paths = site.paths
    deadline = time.monotonic() + timeout
    while not serves_v2(site.addr):
        if not procs.alive(pid):
            raise RegistryError(
                f"docker-registry (pid {pid}) exited during startup; log tail:\n{_log_tail(paths)}"
            )
        if time.monotonic() >= deadline:
            raise RegistryError(
                f"docker-registry not serving /v2/ after {timeout:.0f}s; log tail:\n"
                f"{_log_tail(paths)}"
            )
        time.sleep(0.1)


def _handle(site: Site, pid: int) -> Registry:
    return Registry(addr=site.addr, pid=pid, root=site.paths.root, log_path=site.paths.log)


# ---- start / stop ------------------------------------------------------------------------


def ensure_registry(timeout: float = 30.0) -> Registry:
    """Return the running loopback registry, installing and starting it when needed."""
    return start(loopback(), timeout)


def stop_registry(purge: bool = False) -> bool:
    """Stop the loopback registry; see stop()."""
    return stop(loopback(), purge)


def running(site: Site) -> Registry | None:
    """The registry of ``site`` when ours runs and serves (a few ms), else None."""
    pid = our_pid(site.paths)
    return _handle(site, pid) if pid and serves_v2(site.addr) else None


def start(site: Site, timeout: float = 30.0) -> Registry:
    """Return the running registry of ``site``, installing and starting it when needed."""
    if warm := running(site):
        return warm
    paths = site.paths
    binary = ensure_package()
    with locks.held(paths.lock):
        pid = our_pid(paths)
        if pid and not serves_v2(site.addr):
            try:  # perhaps another worker is starting it
                _wait_ready(site, pid, min(timeout, 10.0))
            except RegistryError:
                procs.terminate(pid, lambda p: _is_ours(paths, procs.cmdline(p)), grace=5)
                pid = None
        if not pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(paths.pidfile)  # stale: its process is gone or not ours
            if _port_taken(site):
                raise RegistryError(
                    f"{site.addr} is already taken by a process that is not the harness's "
                    "registry; stop it (a system docker-registry service?) and retry"
                )
            pid = _launch(site, binary)
            _wait_ready(site, pid, timeout)
        return _handle(site, pid)


def stop(site: Site, purge: bool = False) -> bool:
    """Stop the registry of ``site`` (only a process proven ours); ``purge`` also drops its
    store. Returns whether a registry of ours was running."""
    paths = site.paths
    if not os.path.isdir(paths.root):
        return False
    with locks.held(paths.lock):
        pid = our_pid(paths)
        if pid:
            procs.terminate(pid, lambda p: _is_ours(paths, procs.cmdline(p)), grace=10)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.pidfile)
        if purge:
            shutil.rmtree(paths.storage, ignore_errors=True)
        return pid is not None


# ---- images ------------------------------------------------------------------------------

_PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def push_image(engine: Engine, local_ref: str, remote_ref: str, registry: str = ADDR) -> str:
    """``docker tag`` a local image as ``remote_ref`` (``127.0.0.1:5000/recipe/redis:7``)
    and ``docker push`` it; returns the manifest digest the registry stored. The remote tag
    stays on the local image: untag it to make the next pull fetch it. ``registry`` is the
    address of the one registry of ours it may go to (the loopback one, or the fleet's)."""
    if not remote_ref.startswith(f"{registry}/"):
        where = "the loopback registry" if registry == ADDR else "the harness's registry"
        raise RegistryError(f"{remote_ref}: push only to {where} at {registry}")
    engine.docker("tag", local_ref, remote_ref)
    out = engine.docker("push", remote_ref, timeout=120).stdout
    found = _PUSHED.search(out)
    if not found:
        raise RegistryError(f"docker push {remote_ref}: no digest in its output:\n{out}")
    return found.group(1)
