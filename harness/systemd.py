"""A real systemd, booted in a container on the PRIVATE engine, for timer tests.

The image is `docker import`ed from the cached debootstrap rootfs (nothing can be
pulled). The container gets the private engine's socket at /var/run/docker.sock,
so ccci running inside it drives the private engine, never the host's. Boot
flags are the set proven to work on this cgroup-v1 host; `--privileged` is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import locks, rootfs
from harness.engine import DockerError, Engine, EngineError, docker_cli

IMAGE = "ccci-test/systemd:bookworm"
DEFAULT_NAME = "ccci-systemd"
LABEL = "ccci.harness"  # value "systemd-host": proves a container is ours to remove
LABEL_VALUE = "systemd-host"
LABEL_ROOTFS = "ccci.rootfs"  # recipe id the image was built from
LABEL_MOUNTS = "ccci.mounts"  # bind spec the container was started with
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENGINE_SOCKET_IN_HOST = "/var/run/docker.sock"
BOOT_FLAGS = (
    "--cap-add", "SYS_ADMIN",
    "--security-opt", "seccomp=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
)  # fmt: skip
_READY_STATES = ("running", "degraded")
_FAILED_STATES = ("maintenance", "stopping")


class HostRemoved(EngineError):
    """Our container vanished mid-boot: someone else's cleanup, not a boot failure."""


@dataclass(frozen=True)
class Bind:
    """An extra bind mount into the host container (read-only unless said otherwise)."""

    source: str
    target: str
    read_only: bool = True

    def flag(self) -> str:
        return f"{os.path.abspath(self.source)}:{self.target}:{'ro' if self.read_only else 'rw'}"

    @classmethod
    def parse(cls, spec: str) -> Bind:
        """SRC:DST[:ro|rw], as on the docker command line (ro by default)."""
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValueError(f"bad mount spec {spec!r}; want SRC:DST[:ro|rw]")
        return cls(parts[0], parts[1], read_only=len(parts) == 2 or parts[2] == "ro")


@dataclass(frozen=True)
class SystemdHost:
    """Handle on the booted container; every call goes through the private engine."""

    name: str
    container_id: str
    engine: Engine = field(repr=False, compare=False)

    def exec(
        self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`docker exec` argv in the host; raises DockerError on failure when check."""
        flags = ["-i"] if input is not None else []
        return self.engine.docker(
            "exec", *flags, self.container_id, *argv, input=input, check=check, timeout=timeout
        )

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.exec("systemctl", *args, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show` as a dict (all properties when none are named)."""
        flags = [f"-p{p}" for p in props]
        out = self.systemctl("show", *flags, unit).stdout
        return _parse_show(out)

    def write_file(self, path: str, text: str, mode: str = "0644") -> None:
        """Write text to path inside the host (parents created), via stdin: no quoting."""
        script = 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"'
        self.exec("sh", "-c", script, "sh", path, mode, input=text)

    def journal(self, lines: int = 40) -> str:
        """Tail of this boot's journal, for error messages."""
        proc = self.exec("sh", "-c", f"journalctl -b --no-pager | tail -n {lines}", check=False)
        return proc.stdout + proc.stderr

    def stop(self) -> None:
        """Remove this container (only ours: it is addressed by id)."""
        self.engine.docker("rm", "-f", self.container_id, check=False)


def _parse_show(out: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props


# ---- image -------------------------------------------------------------------


def _image_label(engine: Engine, ref: str) -> str | None:
    """The image's rootfs recipe label, or None if the image is absent."""
    proc = engine.docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL_ROOTFS}"}}}}', ref,
        check=False,
    )  # fmt: skip
    return proc.stdout.strip() if proc.returncode == 0 else None


def _import(engine: Engine, path: str, tag: str) -> None:
    """Stream `tar` of the rootfs into `docker import` (no tarball on disk)."""
    changes = [
        f"ENV {PATH_ENV}",
        "ENV container=docker",  # tells systemd it runs in a container
        f"LABEL {LABEL_ROOTFS}={rootfs.recipe_id()}",
        'CMD ["/sbin/init"]',
    ]
    cmd = [docker_cli(), "import", *(a for c in changes for a in ("--change", c)), "-", tag]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "--xattrs", "-C", path, "-cf", "-", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc = subprocess.run(
            cmd, stdin=tar.stdout, capture_output=True, text=True, env=engine.env(), timeout=900
        )
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar_err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        tar.wait()
    if proc.returncode != 0 or tar.returncode != 0:
        raise EngineError(f"docker import of {path} failed: {proc.stderr.strip()} {tar_err}")


def ensure_systemd_image(engine: Engine, tag: str = IMAGE) -> str:
    """Import the systemd image once (rebuilt if the rootfs recipe changed); returns its id."""
    with locks.held(os.path.join(engine.state_dir, "systemd-image.lock")):
        if _image_label(engine, tag) != rootfs.recipe_id():
            _import(engine, rootfs.ensure_rootfs(), tag)
    return engine.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


# ---- container ---------------------------------------------------------------


def _inspect(engine: Engine, name: str) -> dict[str, Any] | None:
    proc = engine.docker("container", "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    found = json.loads(proc.stdout)
    return found[0] if found else None


def _mount_spec(mounts: Sequence[Bind]) -> str:
    return json.dumps([b.flag() for b in mounts])


def _labels(info: dict[str, Any] | None) -> dict[str, str]:
    return dict(((info or {}).get("Config") or {}).get("Labels") or {})


def _running(info: dict[str, Any] | None) -> bool:
    return bool(((info or {}).get("State") or {}).get("Running"))


def _reusable(info: dict[str, Any], image_id: str, spec: str) -> bool:
    return (
        _running(info) and info.get("Image") == image_id and _labels(info).get(LABEL_MOUNTS) == spec
    )


def _run(engine: Engine, name: str, image_id: str, mounts: Sequence[Bind]) -> str:
    for bind in mounts:  # docker would silently create a missing source as an empty dir
        if not os.path.exists(bind.source):
            raise EngineError(f"bind mount source does not exist: {bind.source}")
    binds = [f"{engine.socket_path}:{ENGINE_SOCKET_IN_HOST}"] + [b.flag() for b in mounts]
    args = [
        "run", "--detach", "--name", name, "--hostname", name,
        "--label", f"{LABEL}={LABEL_VALUE}",
        "--stop-signal", "SIGRTMIN+3",  # systemd's "halt"; import cannot set STOPSIGNAL
        "--label", f"{LABEL_MOUNTS}={_mount_spec(mounts)}",
        *BOOT_FLAGS,
        *(a for b in binds for a in ("-v", b)),
        image_id,
    ]  # fmt: skip
    return engine.docker(*args).stdout.strip()


def _boot_error(host: SystemdHost, why: str) -> EngineError:
    logs = host.engine.docker("logs", "--tail", "30", host.container_id, check=False)
    return EngineError(
        f"systemd host {host.name}: {why}\n--- journalctl -b | tail ---\n{host.journal()}"
        f"\n--- docker logs (tail) ---\n{logs.stdout}{logs.stderr}"
    )


def wait_booted(host: SystemdHost, timeout: float = 120.0) -> str:
    """Poll `systemctl is-system-running` until running/degraded; returns the state."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        info = _inspect(host.engine, host.container_id)
        if info is None:  # e.g. harness.swarm.reset() removes every container
            raise HostRemoved(f"systemd host {host.name}: container was removed during boot")
        if not _running(info):
            raise _boot_error(host, "container exited during boot")
        try:
            proc = host.systemctl("is-system-running", check=False)
            state = proc.stdout.strip()
        except subprocess.TimeoutExpired:
            state = "(exec timed out)"
        if state in _READY_STATES:
            return state
        if state in _FAILED_STATES:
            raise _boot_error(host, f"boot failed: is-system-running says {state!r}")
        if time.monotonic() >= deadline:
            raise _boot_error(host, f"not booted after {timeout:.0f}s (state {state!r})")
        time.sleep(0.25)


def start_systemd_host(
    engine: Engine,
    name: str = DEFAULT_NAME,
    mounts: Sequence[Bind] = (),
    timeout: float = 120.0,
) -> SystemdHost:
    """Return a booted systemd host, reusing a running one with the same image and
    mounts; a dead or stale container of ours is replaced, a foreign one is refused.

    The engine is shared, and harness.swarm.reset() (other sessions' tests) removes
    every container and image: a host removed mid-start is started again, twice.
    """
    for _ in range(2):
        try:
            return _start(engine, name, mounts, timeout)
        except HostRemoved:
            pass
        except DockerError as exc:  # image or container removed between two calls
            if "No such" not in str(exc):
                raise
    return _start(engine, name, mounts, timeout)


def _start(engine: Engine, name: str, mounts: Sequence[Bind], timeout: float) -> SystemdHost:
    image_id = ensure_systemd_image(engine)
    spec = _mount_spec(mounts)
    with locks.held(os.path.join(engine.state_dir, f"systemd-host-{name}.lock")):
        info = _inspect(engine, name)
        if info is not None:
            if _labels(info).get(LABEL) != LABEL_VALUE:
                raise EngineError(f"container {name!r} exists and is not a harness systemd host")
            if _reusable(info, image_id, spec):
                host = SystemdHost(name, str(info["Id"]), engine)
                wait_booted(host, timeout)
                return host
            engine.docker("rm", "-f", str(info["Id"]))
        host = SystemdHost(name, _run(engine, name, image_id, mounts), engine)
        try:
            wait_booted(host, timeout)
        except (EngineError, DockerError):
            host.stop()  # don't leave a half-booted container to be "reused"
            raise
        return host


def stop_systemd_host(engine: Engine, name: str = DEFAULT_NAME) -> bool:
    """Remove the named host if it is ours; True if something was removed."""
    info = _inspect(engine, name)
    if info is None or _labels(info).get(LABEL) != LABEL_VALUE:
        return False
    engine.docker("rm", "-f", str(info["Id"]))
    return True


# ---- pytest policy -----------------------------------------------------------

_start_errors: dict[str, BaseException] = {}


def systemd_host_or_fail(name: str = DEFAULT_NAME, mounts: Sequence[Bind] = ()) -> SystemdHost:
    """start_systemd_host() on the private engine, or pytest.fail under CI / skip locally.

    Same policy as harness.pytest_support.engine_or_fail: CI must not go green
    by skipping; a failure is remembered so the boot timeout is paid once.
    """
    import pytest

    from harness.pytest_support import engine_or_fail, in_ci

    engine = engine_or_fail()
    if name not in _start_errors:
        try:
            return start_systemd_host(engine, name=name, mounts=mounts)
        except Exception as exc:  # any failure to boot means "no systemd host"
            _start_errors[name] = exc
    reason = f"systemd test host unavailable: {_start_errors[name]}"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
