"""What the staged-fault tests share: the real CLI on the private engine, reached through a
fault-injecting proxy (harness/faultproxy.py), with a run-app janitor and a gated prune as
the policies; reading the journal line by line; killing and restarting the engine.

Only what is the faults' own is here: reading the engine, making run-apps, the policy
texts and reading plans are the engine tests' kits (tests/engine/enginekit.py and
ccci_cli.py), imported rather than copied. A module of its own name rather than
conftest.py, so that tests can import it whichever of the suite's several conftest modules
pytest loaded last. The fixtures are in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
_ROOT = str(_ENGINE_TESTS.parents[1])
for folder in (_ROOT, str(_ENGINE_TESTS)):  # harness, and the engine tests' kits
    if folder not in sys.path:
        sys.path.insert(0, folder)


from enginekit import JanitorCli  # noqa: E402

from harness import engine as engine_mod  # noqa: E402
from harness import procs  # noqa: E402
from harness.engine import Engine, ensure_engine  # noqa: E402

# A prune of the build cache with no disk gate: the build cache is read beside the other facts.
BUILD_CACHE_PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: gated-prune}
hosts: ci
spec:
  gates:
    no_converging_services: true
  prune:
    dangling_build_cache: {older_than: 24h}
"""

# ---- the CLI, as a user runs it, through the proxy -----------------------------------------


@dataclass
class Ccci(JanitorCli):
    """The real CLI with policies and state under ``root``, reaching the engine at
    ``docker_host`` (the fault proxy in these tests)."""

    disk: str
    docker_host: str
    state: Path | None = None  # another state directory (a tiny filesystem) than root/state

    @property
    def state_dir(self) -> Path:
        return self.state or self.root / "state"

    def engine_host(self) -> str:
        return self.docker_host

    def write_policies(self, prune_disk: str | None = None, keep: tuple[str, ...] = ()) -> None:
        """abra's run-apps reaped 3h after their last change (or past ``ci.expires``), none
        kept, and the gated prune of leftover images older than a day on ``disk``."""
        super().write_policies(prune_disk or self.disk, keep)

    def whole_journal(self) -> list[dict[str, Any]]:
        """Every journal line, each of which must parse whole (no torn line, ever)."""
        if not self.journal_path.exists():
            return []
        lines = self.journal_path.read_bytes().split(b"\n")
        assert lines[-1] == b"", "the journal does not end with a whole line"
        entries = []
        for number, line in enumerate(lines[:-1], 1):
            try:
                entries.append(json.loads(line))
            except ValueError:
                pytest.fail(f"journal line {number} is torn: {line[:120]!r}")
        return entries


def one_line_error(stderr: str) -> str:
    """ccci's error: one line starting ``ccci: ``, and no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ccci: "), f"not one error line:\n{stderr}"
    return lines[0]


# ---- the engine as a fault ----------------------------------------------------------------


def kill_engine() -> None:
    """SIGKILL the private engine's dockerd and containerd (only ours, found by the paths on
    their command lines), as a crash or the OOM killer would."""
    paths = engine_mod.engine_paths()
    dockerd = engine_mod.our_dockerd_pid(paths)
    assert dockerd is not None, "the private engine is not running"
    victims = [dockerd, *engine_mod.our_containerd_pids(paths)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        assert procs.wait_dead(pid, 30), f"pid {pid} survived SIGKILL"


def restart_engine() -> Engine:
    """Start the private engine again on the dirty state a kill leaves (the harness's job)."""
    return ensure_engine()
