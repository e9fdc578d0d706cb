"""Nothing of this machine is read or changed for a remote host (issue 15, part 1's promise).

The three test hosts are planned and applied over SSH while this machine holds everything
the policies name, at the very same paths: the harness's private engine with an exited
container, a tagged image and a volume of the orphan stack; an abra env file of that stack
(two days old, as orphaned as the remote ones); a unit folder with a unit file; a Docker
client config. ``DOCKER_HOST`` points at a recording proxy in front of the private engine,
so a remote host's engine mistaken for the local one would be answered, and counted. The
remote paths live in each host's own tmpfs, mounted only where its sshd runs; here they are
plain folders of the root disk.

Afterwards the remote hosts have converged (their exited containers and env files gone), and
here: the proxy saw no connection, the engine's objects are the same by id and state, every
file and folder has its contents, mode and times, the temporary folder ccci's SSH masters
used is empty again, and nothing was written but ccci's own state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from fleetkit import CCCI, names, on

from harness import fleet as fleet_mod
from harness.engine import Engine
from harness.fleet import Fleet
from harness.images import BASE_TAG, ensure_busybox_image
from harness.pytest_support import engine_or_fail

DOMAIN = "post-8d2e4f.ci.example.org"
STACK = "post-8d2e4f_ci_example_org"
NAME = "ccci-local-untouched"
POLICIES = """\
apiVersion: ccci/v1
kind: StackSelector
metadata: {{name: run-apps}}
spec:
  match: '^[a-z0-9]{{1,4}}-[0-9a-f]{{6}}_ci_'
---
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {{name: reap-killed-runs}}
hosts: fleet
spec:
  run_apps: {{selector: run-apps}}
  orphan_after: 3h
  reap: [volumes, env_file]
  env_file: '{remote}/abra/servers/{{server}}/{{domain}}.env'
---
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {{name: fleet-prune}}
hosts: fleet
spec:
  gates:
    disk_usage: {{path: "{remote}", at_least: 10%}}
  prune:
    stopped_containers: {{older_than: 1s}}
---
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {{name: schedules}}
hosts: fleet
spec:
  unit_dir: {remote}/units
  present:
    - {{name: {name}, on_calendar: daily, exec: /bin/true}}
"""


class RecordingProxy:
    """A unix socket that passes every connection on to the private engine and counts it:
    the ``DOCKER_HOST`` of the ccci under test, so any use of the local engine is seen."""

    def __init__(self, path: Path, upstream: str) -> None:
        self.path = str(path)
        self.upstream = upstream
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.upstream)
            for src, dst in ((client, engine), (engine, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()

    def close(self) -> None:
        self._server.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def tree(*roots: Path, skip: Path | None = None) -> dict[str, tuple[Any, ...]]:
    """Every file and folder under ``roots`` (``skip`` aside): kind, mode, size, the times
    a write or a rename moves (mtime, ctime), and the contents' digest."""
    found: dict[str, tuple[Any, ...]] = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            if skip is not None and (path == skip or skip in path.parents):
                continue
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            found[str(path)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)
    return found


def engine_objects(engine: Engine) -> dict[str, Any]:
    """The local engine's objects of this test, by id, with what apply would change."""
    containers = {
        c["Id"]: (c["State"], c["Image"], tuple(c["Names"]))
        for c in engine.api("/containers/json?all=1")
        if f"/{NAME}" in c["Names"]
    }
    images = {
        i["Id"]: tuple(sorted(i.get("RepoTags") or ()))
        for i in engine.api("/images/json")
        if any(t.startswith(f"{NAME}/") for t in i.get("RepoTags") or ())
    }
    volumes = {
        v["Name"]: tuple(sorted((v.get("Labels") or {}).items()))
        for v in engine.api("/volumes")["Volumes"] or ()
        if v["Name"].startswith(STACK)
    }
    return {"containers": containers, "images": images, "volumes": volumes}


def env_file(remote: str, server: str) -> str:
    return f"{remote}/abra/servers/{server}/{DOMAIN}.env"


def _take(path: str, wait: bool) -> IO[str] | None:
    """An exclusive flock on ``path``: waited for, or only if it is free now (else None)."""
    handle = open(path, "a")  # noqa: SIM115 - kept open while held
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    return handle


@pytest.fixture
def both_locks() -> None:
    """The fleet's and the private engine's test locks, both for the rest of this process
    as each kit keeps its own. Each round queues for one lock holding nothing and then
    takes the other only if it is free: holding one while queueing for the other would
    keep every other fleet (or engine) test waiting as long as that queue is. After some
    rounds it does queue while holding one (no other test takes both: no deadlock)."""
    import fleetkit

    from harness import pytest_support

    paths = [pytest_support.LOCK_PATH, fleetkit.LOCK_PATH]
    before = {fleetkit.LOCK_PATH: fleetkit._lock, pytest_support.LOCK_PATH: pytest_support._lock}
    kept = {path: handle for path, handle in before.items() if handle is not None}
    held = dict(kept)
    for attempt in range(11):
        first, second = paths if attempt % 2 == 0 else paths[::-1]
        if first not in held:
            handle = _take(first, wait=True)
            assert handle is not None
            held[first] = handle
        if second in held:
            break
        other = _take(second, wait=attempt == 10)
        if other is not None:
            held[second] = other
            break
        if first not in kept:
            held.pop(first).close()
    fleetkit._lock = held[fleetkit.LOCK_PATH]
    pytest_support._lock = held[pytest_support.LOCK_PATH]


@pytest.fixture
def local_engine(both_locks: None) -> Iterator[Engine]:
    """The private engine with a known exited container, tagged image and stack volume,
    removed again at the end (the engine is shared: only these three are ours)."""
    engine = engine_or_fail()
    ensure_busybox_image(engine)
    cleanup(engine)
    engine.docker("tag", BASE_TAG, f"{NAME}/image:1")
    engine.docker("run", "--name", NAME, BASE_TAG, "true")
    engine.docker(
        "volume", "create", "--label", f"com.docker.stack.namespace={STACK}", f"{STACK}_data"
    )
    yield engine
    cleanup(engine)


def cleanup(engine: Engine) -> None:
    engine.docker("rm", "-f", NAME, check=False)
    engine.docker("rmi", f"{NAME}/image:1", check=False)
    engine.docker("volume", "rm", f"{STACK}_data", check=False)


@pytest.fixture
def mirrored(clean_fleet: Fleet) -> Iterator[list[Path]]:
    """Here, at the remote paths: an env file of the orphan stack and a unit folder; on each
    host, in its own tmpfs: the same env file, an exited container and 8 MB (the disk gate
    is over 10% by the host's own use alone). Both sides' files are removed at the end."""
    fleet = clean_fleet
    remote = fleet.remote_dir
    made = [Path(remote, "abra"), Path(remote, "units")]
    local_env = Path(env_file(remote, "local"))
    local_env.parent.mkdir(parents=True)
    local_env.write_text(f"DOMAIN={DOMAIN}\n", encoding="utf-8")
    two_days_ago = time.time() - 2 * 86400
    os.utime(local_env, (two_days_ago, two_days_ago))
    made[1].mkdir()
    (made[1] / f"{NAME}.timer").write_text("[Timer]\nOnCalendar=weekly\n", encoding="utf-8")
    for node in fleet.nodes:
        path = env_file(remote, node.name)
        on(
            fleet, node,
            f"mkdir -p {os.path.dirname(path)} && echo DOMAIN={DOMAIN} > {path} && "
            f"touch -d '2 days ago' {path} && "
            f"dd if=/dev/zero of={remote}/fill bs=1M count=8 2>/dev/null",
        )  # fmt: skip
        node.engine.docker("run", "--name", "done-job", BASE_TAG, "true")
    time.sleep(1.5)  # past the policy's 1s, so no container is too young (setup)
    try:
        yield made
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        for node in fleet.nodes:
            on(fleet, node, f"rm -rf {remote}/abra {remote}/fill")


def test_a_fleet_planned_and_applied_over_ssh_never_reads_or_changes_this_machine(
    local_engine: Engine, clean_fleet: Fleet, mirrored: list[Path], tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = tmp_path / "work"
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "fleet.yaml").write_text(
        POLICIES.format(remote=fleet.remote_dir, name=NAME), encoding="utf-8"
    )
    (root / "inventory.yaml").write_text(fleet_mod.inventory_yaml(fleet), encoding="utf-8")
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"auths": {"localhost:5000": {}}}\n')
    # Short: the SSH control socket's path must fit a unix socket's 108 bytes.
    temp = Path(tempfile.mkdtemp(prefix="ccci-lu-", dir="/tmp"))
    state = root / "state"
    state.mkdir()  # made here: its making is no write of ccci's to the folder above
    proxy = RecordingProxy(tmp_path / "local-engine.sock", local_engine.socket_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CCCI_"))}
    env.update(NO_COLOR="1", HOME=str(home), TMPDIR=str(temp), DOCKER_HOST=f"unix://{proxy.path}")

    def ccci(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CCCI, *args, "--state-dir", str(state)],
            cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    default_state = Path("/var/lib/ccci")
    before_state = sorted(os.listdir(default_state)) if default_state.exists() else None
    files_before = tree(root, home, *mirrored, skip=state)
    objects_before = engine_objects(local_engine)
    assert len(objects_before["containers"]) == len(objects_before["volumes"]) == 1
    saved = tmp_path / "plan.json"  # outside the tree compared: the one file asked for
    try:
        planned = ccci("reconcile", "--plan", "--out", str(saved))
        # The saved plan's hosts gathered and applied three at once; then the nightly's
        # own path, with nothing left to do, and status.
        applied = ccci("apply", str(saved), "--yes", "--forks", "3")
        again = ccci("reconcile", "--apply", "--yes")
        status = ccci("status")
    finally:
        proxy.close()

    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for node in fleet.nodes:
        recap = rf"{node.name} : ok=\d+ changed=2 failed=0 skipped=0 unreachable=0"
        assert re.search(recap, applied.stdout), applied.stdout  # its container and env file
        assert f"{node.name}: converged" in again.stdout, again.stdout
    assert again.returncode == 0, again.stdout + again.stderr
    assert status.returncode == 0, status.stdout + status.stderr
    # The work was done, on each host.
    for node in fleet.nodes:
        assert "done-job" not in names(node), node.name
        left = on(
            fleet, node, f"test -e {env_file(fleet.remote_dir, node.name)} && echo left || true"
        )
        assert left == "", f"{node.name}: its env file was not reaped"
    # And nothing of it here.
    assert proxy.connections == 0, "ccci reached the local engine through DOCKER_HOST"
    assert engine_objects(local_engine) == objects_before
    assert tree(root, home, *mirrored, skip=state) == files_before
    assert list(temp.iterdir()) == [], "ccci's SSH folders were left behind"
    temp.rmdir()
    assert (sorted(os.listdir(default_state)) if default_state.exists() else None) == before_state
    assert (state / "journal.jsonl").is_file()  # its own state dir is where it wrote
