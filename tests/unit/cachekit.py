"""What the tests of the two start-up caches share: the parse cache (test_parsed_cache.py)
and the validation cache (test_validated_cache.py) keep one contract over one cache file
(ccci.state.cachefile), so their tests set up the same inputs and the same bad cache files.

One spelling of each keeps the two files from drifting apart: a fix to how a forged,
corrupt, foreign-writable or odd-shaped cache file is made, or to how a fresh interpreter
is asked what it imported, reaches both caches' tests at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from click.testing import CliRunner, Result

from ccci.errors import InputError

REPO = Path(__file__).resolve().parents[2]

# The run-app gate's pattern (a no_live_stacks gate), for the cache that validates it.
RUN_APPS = "'^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'"

_PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata:
  name: {name}
hosts: all
spec:
  gates:
    disk_usage:
      path: /var/lib/docker
      at_least: {at_least}
{stacks}  prune:
    dangling_images:
      older_than: 24h
"""

INVENTORY = """\
all:
  hosts:
    cc-ci:
      docker_host: unix://{socket}
"""

# The two ways a cache file's place refuses a file (a parametrize's values).
ODD_SHAPES = ("symlink", "fifo")
BLOCKS = ("folder-is-a-file", "file-is-a-folder")


def prune(name: str, at_least: str, stacks: str | None = None) -> str:
    """One PrunePolicy document; ``at_least`` is the value the tests edit, ``stacks`` a
    no_live_stacks gate's pattern (one more gate, two more lines)."""
    gate = f"    no_live_stacks:\n      match: {stacks}\n" if stacks else ""
    return _PRUNE.format(name=name, at_least=at_least, stacks=gate)


def nightly_at_least(night: int) -> str:
    """A gate value that differs on each of a year's nights (for the bound's tests)."""
    return f"{50 + night % 50}.{night // 50}%"


def write_inventory(folder: Path) -> Path:
    """The one-host inventory, its engine a socket nothing listens on."""
    path = folder / "inventory.yaml"
    path.write_text(INVENTORY.format(socket=folder / "x.sock"), encoding="utf-8")
    return path


class Counted:
    """How many times the real function was called (it still runs)."""

    def __init__(self) -> None:
        self.calls = 0


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> Counted:
    """Wrap ``owner.name`` so each call is counted: a cache's whole point is whether the
    work it stands for is done."""
    count = Counted()
    real = getattr(owner, name)

    def counting(*args: Any) -> Any:
        count.calls += 1
        return real(*args)

    monkeypatch.setattr(owner, name, counting)
    return count


class _Cached(Protocol):
    def cache_clear(self) -> None: ...


def clear(*cached: _Cached) -> None:
    """Forget process-wide cached answers, so that a test that changes what they read does
    not leak its answer into the next test."""
    for function in cached:
        function.cache_clear()


def state_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(InputError) as caught:
        call()
    return str(caught.value)


def plant(path: Path, content: bytes) -> None:
    """A cache file of ``content`` that passes the owner and mode check (this user's, 0600):
    what it holds is all that is wrong with it."""
    path.parent.mkdir()
    path.write_bytes(content)
    path.chmod(0o600)


def odd_shape(path: Path, shape: str, real: Path) -> None:
    """Put a symlink to the ``real`` cache file, or a FIFO, where the cache file goes."""
    path.parent.mkdir()
    if shape == "symlink":
        path.symlink_to(real)
    else:
        os.mkfifo(path, 0o600)


def block(state: Path, path: Path, how: str) -> None:
    """Make the file system refuse the cache at ``path`` for real (root may write anywhere,
    so a read-only folder would not refuse a test run as root)."""
    if how == "folder-is-a-file":
        (state / "cache").write_text("not a folder")
    else:
        path.mkdir(parents=True)


def python(script: str, pythonpath: Path | None = None, env: dict[str, str] | None = None) -> str:
    """What ``script`` prints in a fresh interpreter run from the repository, with
    ``pythonpath`` first on its path (the repository after it)."""
    env = dict(os.environ if env is None else env)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join((str(pythonpath), str(REPO)))
    argv = [sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=True)
    return done.stdout.strip()


def janitor_plan(folder: Path, policies: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """A janitor plan that loads everything and then fails to reach the (missing) engine,
    as on a host whose engine is down; its import log shows what loading cost."""
    inventory = write_inventory(folder)
    args = [sys.executable, "-X", "importtime", "-m", "ccci", "janitor", "--plan"]
    args += ["-p", str(policies), "-i", str(inventory), "--state-dir", str(state)]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    return subprocess.run(args, capture_output=True, text=True, cwd=folder, env=env)


def imports(done: subprocess.CompletedProcess[str]) -> set[str]:
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("import time:")]
    return {ln.rsplit("|", 1)[-1].strip() for ln in lines}


def messages(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in done.stderr.splitlines() if not ln.startswith("import time:")]


def policy_check(folder: Path, policies: Path, state: Path) -> Result:
    """``ccci policy check`` of ``policies`` with ``state`` as the state directory (the
    caller runs it from ``folder``, where the inventory is written)."""
    from ccci.cli.main import cli

    inventory = write_inventory(folder)
    return CliRunner().invoke(
        cli,
        ["policy", "check", str(policies), "-i", str(inventory)],
        env={"CCCI_STATE_DIR": str(state)},
    )
