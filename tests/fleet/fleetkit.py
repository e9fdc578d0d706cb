"""What the fleet tests share (a module of its own name, as tests/faults/faultkit.py is:
several ``conftest`` modules cannot be imported by name): the fleet, or a failure under CI
and a skip elsewhere when it cannot start; the real ``ccci`` CLI run against it from a
workspace of policies and the fleet's inventory; and the reads and waits the CLI tests
make of its nodes."""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

# Allow plain `pytest` (not only `python -m pytest`) from the repo root: harness is not installed.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from harness import fleet as fleet_mod  # noqa: E402
from harness import procs, swarm  # noqa: E402
from harness.fleet import Fleet, FleetNode  # noqa: E402
from harness.pytest_support import in_ci  # noqa: E402

# One fleet per machine, as one private engine: test processes take turns, by this lock
# (not the engine's: fleet tests and engine tests may run side by side).
LOCK_PATH = os.environ.get("CCCI_FLEET_TEST_LOCK", "/tmp/ccci-fleet-tests.lock")
_lock: IO[str] | None = None
_start_error: BaseException | None = None


def hold_fleet_lock() -> None:
    """Wait until no other test process uses the fleet, then keep it for this process."""
    global _lock
    if _lock is None:
        handle = open(LOCK_PATH, "a")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(handle, fcntl.LOCK_EX)
        _lock = handle


def fleet_or_fail() -> Fleet:
    """ensure_fleet() (cheap when warm, so a test that kills a node strands no later test),
    or a failure under CI / a skip elsewhere; a start failure is paid for once. No SSH
    master an earlier test's ccci kept is left running: each test logs in afresh, and one
    that stops a node (its sshd, the whole fleet) finds nothing of ours still connected."""
    import pytest

    global _start_error
    hold_fleet_lock()
    _end_kept_masters(remove=False)
    if _start_error is None:
        try:
            return fleet_mod.ensure_fleet()
        except Exception as exc:  # any failure to start means "no fleet"
            _start_error = exc
    reason = f"fleet test hosts unavailable: {_start_error}"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# The ccci of this virtualenv, run as a user runs it (its own process, its own exit code).
CCCI = str(Path(sys.executable).with_name("ccci"))
STACK_LABEL = "com.docker.stack.namespace"

# The janitor of a killed CI run's app, on every host of the fleet: its deadline label has
# passed, so its services, secrets, configs, networks and volumes are reaped.
JANITOR = """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
hosts: fleet
spec:
  run_apps: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
  orphan_after: 3h
  expires_label: ci.expires
  reap: [services, secrets, configs, networks, volumes]
  wait: 60s
"""


# A no_live_stacks gate on the janitor's run apps: its line under a PrunePolicy's gates.
NO_LIVE_RUN_APPS = "no_live_stacks: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}"

_PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {{name: {name}}}
hosts: fleet
spec:
  gates:
{gates}
  prune:
{kinds}
"""


def prune_policy(*gates: str, kinds: Sequence[str], name: str = "fleet-prune") -> str:
    """A PrunePolicy on every host of the fleet: each of ``gates`` one line under its gates
    (as ``disk_usage: {path: /, at_least: 1%}``), and each of ``kinds`` pruned once older
    than 1s (a test's objects are made just before, or its ``--now`` is an hour on)."""
    return _PRUNE.format(
        name=name,
        gates="\n".join(f"    {gate}" for gate in gates),
        kinds="\n".join(f"    {kind}: {{older_than: 1s}}" for kind in kinds),
    )


def workspace(fleet: Fleet, root: Path, *policies: str, inventory: str | None = None) -> Path:
    """``root`` as a ccci workspace: each policy text a file of ``policies/``, and the
    fleet's inventory (or the one given, for a test that changes it)."""
    (root / "policies").mkdir()
    for i, text in enumerate(policies):
        (root / "policies" / f"p{i}.yaml").write_text(text)
    (root / "inventory.yaml").write_text(inventory or fleet_mod.inventory_yaml(fleet))
    return root


# The SSH masters ccci keeps between the runs of this test process: in a folder of the
# process's own (short: a socket's path must fit 104 bytes), so they are the tests' alone,
# and stop_sshd() and the process's exit can end them.
_SSH_DIR = f"/tmp/ccci-fleet-ssh-{os.getpid()}"
_ssh_dir_ended_at_exit = False


def ssh_dir() -> str:
    """The folder of the masters this process's ccci runs keep (made 0700 when missing),
    its masters ended and itself removed when the process exits."""
    global _ssh_dir_ended_at_exit
    if not os.path.isdir(_SSH_DIR):
        os.mkdir(_SSH_DIR, 0o700)
    if not _ssh_dir_ended_at_exit:
        atexit.register(_end_kept_masters)
        _ssh_dir_ended_at_exit = True
    return _SSH_DIR


def _end_kept_masters(remove: bool = True) -> None:
    # Imported here: the fleet benchmark imports this module too, beside another ccci.
    from ccci.connectors.ssh import end_kept_masters

    if os.path.isdir(_SSH_DIR):
        end_kept_masters(_SSH_DIR)
    if remove:
        shutil.rmtree(_SSH_DIR, ignore_errors=True)


def cli_env(root: Path) -> dict[str, str]:
    """The environment ccci runs in for the workspace ``root``: no DOCKER_ or CCCI_ setting
    of the caller's, and a DOCKER_HOST under ``root`` that no engine listens on, so anything
    ccci sent to this machine's engine for a remote host would fail (or, where a test
    listens there, be counted); its kept SSH masters in this process's ssh_dir()."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CCCI_"))}
    env.update(NO_COLOR="1", DOCKER_HOST=f"unix://{root}/no-local-engine.sock")
    env["CCCI_SSH_CONTROL_DIR"] = ssh_dir()
    return env


def ccci(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in the workspace ``root``, its state there too, in ``cli_env(root)``."""
    return subprocess.run(
        [CCCI, *args, "--state-dir", str(root / "state")],
        cwd=root, env=cli_env(root), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def journal(root: Path) -> list[dict[str, Any]]:
    """The entries ccci journalled in the workspace's state dir, oldest first."""
    text = (root / "state" / "journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def on(fleet: Fleet, node: FleetNode, command: str) -> str:
    """A shell command run on the node over ssh (as a user would, not through ccci)."""
    done = subprocess.run(
        fleet.ssh_argv(node, command), capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def names(node: FleetNode) -> list[str]:
    """The names of every container of the node's engine, running or not."""
    return node.engine.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


def volumes(node: FleetNode, stack: str) -> list[str]:
    """The stack's volumes on this node (each node's volumes are its own)."""
    out = node.engine.docker("volume", "ls", "-q", "--filter", f"label={STACK_LABEL}={stack}")
    return out.stdout.split()


def services(fleet: Fleet, stack: str) -> list[str]:
    """The stack's services, as the manager lists them."""
    out = fleet.manager.engine.docker(
        "service", "ls", "-q", "--filter", f"label={STACK_LABEL}={stack}"
    )
    return out.stdout.split()


def running_on(fleet: Fleet, service: str) -> set[str]:
    """Node IDs with a running task of the service, as the manager lists them."""
    tasks = fleet.manager.engine.api(f'/tasks?filters={{"service":["{service}"]}}')
    return {t["NodeID"] for t in tasks if t["Status"]["State"] == "running"}


def wait_for(what: str, done: Callable[[], Any], timeout: float = 90) -> None:
    """Until ``done()`` is true: the swarm schedules and the nodes pull in their own time."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def stop_sshd(node: FleetNode) -> None:
    """Stop only the harness's sshd of this node, by its pid: the node is unreachable until
    ensure_fleet() starts it again (the test's ``finally``, or the next fleet fixture).
    First the masters earlier runs kept (ssh_dir()): an established connection outlives
    its listener, on a real host too, and would still reach the node."""
    _end_kept_masters(remove=False)
    paths = next(p for p in fleet_mod.node_paths() if p.name == node.name)
    pid = fleet_mod._sshd_pid(paths)
    assert pid, f"no sshd of ours for {node.name}"
    os.kill(pid, signal.SIGTERM)
    procs.wait_dead(pid, 10)


def workers_app(deadline: int, volume_expires: bool = False) -> str:
    """A run-app's compose: one service, global on the workers, each task with the stack's
    named volume (so the volume lives on both workers, not on the manager), its deadline
    label ``deadline``; ``volume_expires`` labels the volume with it too."""
    from harness.images import BASE_TAG

    volume = f'{{labels: {{ci.expires: "{deadline}"}}}}' if volume_expires else "{}"
    return f"""\
version: "3.8"
services:
  app:
    image: {BASE_TAG}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    volumes: ["data:/data"]
    deploy:
      mode: global
      placement: {{constraints: ["node.role==worker"]}}
      labels: {{ci.expires: "{deadline}"}}
volumes:
  data: {volume}
"""


def deploy_on_workers(fleet: Fleet, stack: str, compose: str, service: str = "app") -> None:
    """Deploy the stack from the manager and wait until its one service, global on the
    workers, runs a task on each worker and the stack's volume exists on both."""
    swarm.deploy_stack(fleet.manager.engine, stack, compose, wait=False)
    workers = {n.node_id for n in fleet.workers}
    wait_for("a task on each worker", lambda: running_on(fleet, f"{stack}_{service}") == workers)
    wait_for("the volume on both workers", lambda: all(volumes(w, stack) for w in fleet.workers))
