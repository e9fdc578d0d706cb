"""Fixtures for ccci's real-systemd tests: ccci installed for real inside a booted systemd.

ccci manages the host's own systemd through ``systemctl``, so it must run INSIDE the systemd
test host. Wheels of ccci and its dependencies are built once on this side into a cache
outside the repo (keyed by a hash of the package sources), bind-mounted read-only into the
container and pip-installed there into /opt/ccci without any index. Inside the container
/var/run/docker.sock is the harness's PRIVATE engine, never the host's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Allow plain `pytest` (not only `python -m pytest`) from the repo root: harness is not installed.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.systemd import Bind, SystemdHost, systemd_host_or_fail  # noqa: E402

WHEEL_CACHE = Path(os.environ.get("CCCI_WHEEL_CACHE", "/var/cache/ccci/wheels"))
WHEELS_IN_HOST = "/wheels"
VENV = "/opt/ccci"
CCCI = f"{VENV}/bin/ccci"
CONFIG_DIR = "/etc/ccci"
POLICY_DIR = f"{CONFIG_DIR}/policies"
INVENTORY = f"{CONFIG_DIR}/inventory.yaml"
STATE_DIR = "/var/lib/ccci"
HOST_NAME = "ccci-systemd-timers"  # our own container: never the harness test's ccci-systemd
RO_HOST_NAME = "ccci-systemd-timers-ro"
RO_UNIT_DIR = "/etc/systemd/ro-units"
INVENTORY_HOST = "cc-ci"
# Inside the container this is the private engine's socket (the harness mounts it there).
# ccci_bin / ccci_config_dir: what the repo's seed policies/timers.yaml renders with.
INVENTORY_YAML = f"""\
all:
  vars:
    ccci_bin: {CCCI}
    ccci_config_dir: {CONFIG_DIR}
  children:
    ci:
      hosts:
        {INVENTORY_HOST}:
          docker_host: unix:///var/run/docker.sock
"""
_SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md")
_KEEP_BUILDS = 3
_BUILD_REQUIRES = ("setuptools>=61", "wheel")  # pyproject.toml [build-system] requires


# ---- wheels (host side) ----------------------------------------------------------------


def _source_paths() -> list[Path]:
    found = [REPO / name for name in _SOURCE_FILES if (REPO / name).exists()]
    for path in sorted((REPO / "ccci").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            found.append(path)
    return found


def source_hash() -> str:
    """What the wheel is made of: setup.cfg, pyproject.toml, README and every ccci/ file."""
    digest = hashlib.sha256()
    for path in _source_paths():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _builds() -> list[Path]:
    """Complete wheel builds in the cache, newest first."""
    found = [p for p in WHEEL_CACHE.iterdir() if (p / ".complete").exists()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _keep_build_backend(out: Path) -> None:
    """Carry the build backend's wheels over from an earlier build into ``out``."""
    for build in _builds():
        for wheel in [*build.glob("setuptools-*.whl"), *build.glob("wheel-*.whl")]:
            if not (out / wheel.name).exists():
                shutil.copy2(wheel, out / wheel.name)


def _prune_old_builds(keep: str) -> None:
    for old in [b for b in _builds() if b.name != keep][_KEEP_BUILDS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def ensure_wheels() -> tuple[str, Path]:
    """(hash, dir) of ccci's wheels and its dependencies, built once per source hash.

    Built from a copy of the sources in a temp dir, so the repo gets no build/ litter.
    """
    key = source_hash()
    target = WHEEL_CACHE / key
    with _locked(WHEEL_CACHE / ".lock"):
        if not (target / ".complete").exists():
            pip = REPO / ".venv" / "bin" / "pip"
            with tempfile.TemporaryDirectory(prefix="ccci-wheel-") as tmp:
                src = Path(tmp) / "src"
                src.mkdir()
                for name in _SOURCE_FILES:
                    if (REPO / name).exists():
                        shutil.copy2(REPO / name, src / name)
                shutil.copytree(
                    REPO / "ccci", src / "ccci", ignore=shutil.ignore_patterns("__pycache__")
                )
                out = Path(tmp) / "wheels"
                argv = [
                    str(pip if pip.exists() else "pip"),
                    "wheel",
                    "-q",
                    str(src),
                    "-w",
                    str(out),
                ]
                # Dependencies (and the build backend) from earlier builds first: fast and
                # offline. Else from the index, keeping the backend for the next offline build.
                earlier = [f"--find-links={p}" for p in _builds() if p.name != key]
                done = subprocess.run(
                    [*argv, "--no-index", *earlier], capture_output=True, text=True, timeout=600
                )
                if done.returncode == 0:
                    _keep_build_backend(out)
                if done.returncode != 0 or not earlier:
                    shutil.rmtree(out, ignore_errors=True)
                    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                    if done.returncode == 0:
                        download = [argv[0], "download", "-q", "-d", str(out), *_BUILD_REQUIRES]
                        done = subprocess.run(download, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError(f"pip wheel failed:\n{done.stdout}\n{done.stderr}")
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(out, target)
                (target / ".complete").write_text(key + "\n")
            _prune_old_builds(key)
    os.utime(target)
    return key, target


# ---- ccci inside the host --------------------------------------------------------------


@dataclass(frozen=True)
class Ccci:
    """ccci installed in a systemd host, with its config in /etc/ccci."""

    host: SystemdHost

    def run(
        self, *args: str, check: bool = True, cwd: str = CONFIG_DIR, env: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """``ccci ARGS`` in the host (workspace options first-class: -p/-i/--state-dir are
        added for the commands that take them). Not a terminal: no colour."""
        workspace = ("reconcile", "facts", "status", "apply", "janitor")
        argv = [CCCI, *args]
        if args and args[0] in workspace:
            argv += ["-p", POLICY_DIR, "-i", INVENTORY, "--state-dir", STATE_DIR]
        script = f"cd {shlex.quote(cwd)} && exec env {shlex.join([*env, *argv])}"
        proc = self.host.exec("sh", "-c", script, check=False, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ccci {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def plan_json(self) -> dict[str, Any]:
        proc = self.run("reconcile", "--plan", "--output", "json")
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def set_policies(self, **files: str) -> None:
        """Replace every policy file in /etc/ccci/policies with these (name → YAML)."""
        self.host.exec("sh", "-c", f"rm -rf {POLICY_DIR} && mkdir -p {POLICY_DIR}")
        for name, text in files.items():
            self.host.write_file(f"{POLICY_DIR}/{name}.yaml", text)


def install_ccci(host: SystemdHost, key: str) -> Ccci:
    """pip-install the wheels of ``key`` into /opt/ccci (again only when the hash moved)."""
    stamp = f"{VENV}/.ccci-source-hash"
    have = host.exec("cat", stamp, check=False).stdout.strip()
    if have != key or host.exec("test", "-x", CCCI, check=False).returncode != 0:
        script = (
            f"rm -rf {VENV} && python3 -m venv {VENV} && "
            f"{VENV}/bin/pip install -q --no-index --find-links {WHEELS_IN_HOST}/{key} ccci && "
            f"echo {key} > {stamp}"
        )
        host.exec("sh", "-c", script, timeout=300)
    host.exec("mkdir", "-p", POLICY_DIR, STATE_DIR)
    host.write_file(INVENTORY, INVENTORY_YAML)
    return Ccci(host)


def _mounts(extra: Sequence[Bind] = ()) -> tuple[Bind, ...]:
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    return (Bind(str(WHEEL_CACHE), WHEELS_IN_HOST), *extra)


@pytest.fixture(scope="session")
def wheels() -> tuple[str, Path]:
    """ccci's wheels, or (like the engine and host fixtures) fail under CI / skip locally."""
    from harness.pytest_support import in_ci

    try:
        return ensure_wheels()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reason = f"cannot build ccci's wheels for the systemd host: {exc}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def host(wheels: tuple[str, Path]) -> SystemdHost:
    """Our own systemd host, re-ensured per test (milliseconds when warm): other sessions
    share the engine, and a host removed under us is booted again."""
    return systemd_host_or_fail(HOST_NAME, _mounts())


# Left behind by a test, the nightly timer would fire at midnight in a host that is kept
# for days; its units and the policies stay for reading, the schedule does not.
_QUIET = f"systemctl disable --now ccci-reconcile.timer; rm -rf {POLICY_DIR}; mkdir -p {POLICY_DIR}"


@pytest.fixture
def ccci(host: SystemdHost, wheels: tuple[str, Path]) -> Iterator[Ccci]:
    yield install_ccci(host, wheels[0])
    host.exec("sh", "-c", _QUIET, check=False)


@pytest.fixture(scope="session")
def ro_units_dir() -> Iterator[Path]:
    """A host-side directory the second host sees read-only at /etc/systemd/ro-units."""
    path = WHEEL_CACHE.parent / "ro-units"
    path.mkdir(parents=True, exist_ok=True)
    yield path


@pytest.fixture
def ro_host(wheels: tuple[str, Path], ro_units_dir: Path) -> SystemdHost:
    """A second host whose unit directory is a read-only bind mount (as the Nix store is)."""
    return systemd_host_or_fail(
        RO_HOST_NAME, _mounts((Bind(str(ro_units_dir), RO_UNIT_DIR, read_only=True),))
    )


@pytest.fixture
def ro_ccci(ro_host: SystemdHost, wheels: tuple[str, Path]) -> Iterator[Ccci]:
    yield install_ccci(ro_host, wheels[0])
    ro_host.exec("sh", "-c", _QUIET, check=False)
