"""What the staged-fault tests share: the real CLI on the private engine, reached through a
fault-injecting proxy (harness/faultproxy.py), with a run-app janitor and a gated prune as
the policies; reading the journal line by line; killing and restarting the engine.

A module of its own name rather than conftest.py, so that tests can import it whichever
of the suite's several conftest modules pytest loaded last (the engine tests' ccci_cli.py
is shared the same way). The fixtures are in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

_ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
_ROOT = str(_ENGINE_TESTS.parents[1])
for folder in (_ROOT, str(_ENGINE_TESTS)):  # harness, ccci_cli and test_orphans_engine
    if folder not in sys.path:
        sys.path.insert(0, folder)


from ccci_cli import CliWorkspace  # noqa: E402
from test_orphans_engine import domain  # noqa: E402

from harness import engine as engine_mod  # noqa: E402
from harness import procs  # noqa: E402
from harness.engine import Engine, ensure_engine  # noqa: E402

CCCI = Path(sys.executable).parent / "ccci"
HOST = "cc-ci"
RUN_APP_MATCH = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
ORPHANS = "reap-killed-runs"
PRUNE = "ci-docker-prune"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(moment: datetime) -> str:
    """RFC 3339, whole seconds, as ``--now`` takes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the CLI, as a user runs it, through the proxy -----------------------------------------


@dataclass
class Ccci(CliWorkspace):
    """The real CLI with policies and state under ``root``, reaching the engine at
    ``docker_host`` (the fault proxy in these tests)."""

    disk: str
    docker_host: str
    state: Path | None = None  # another state directory (a tiny filesystem) than root/state

    @property
    def state_dir(self) -> Path:
        return self.state or self.root / "state"

    @property
    def abra_dir(self) -> Path:
        return self.root / "abra"

    def env_file(self, stack: str, server: str = HOST) -> Path:
        return self.abra_dir / "servers" / server / f"{domain(stack)}.env"

    def write_inventory(self) -> None:
        self.inventory.write_text(
            "all:\n"
            "  vars:\n"
            f"    abra_dir: '{self.abra_dir}'\n"
            "  children:\n"
            "    ci:\n"
            "      hosts:\n"
            f"        {HOST}:\n"
            f"          docker_host: '{self.docker_host}'\n",
            encoding="utf-8",
        )

    def write_policies(self) -> None:
        """abra's run-apps reaped 3h after their last change (or past ``ci.expires``), and
        the gated prune of leftover images older than a day."""
        self.policies.mkdir(exist_ok=True)
        (self.policies / "selectors.yaml").write_text(
            "apiVersion: ccci/v1\n"
            "kind: StackSelector\n"
            "metadata: {name: run-apps}\n"
            "hosts: ci\n"
            "spec:\n"
            f"  match: '{RUN_APP_MATCH}'\n",
            encoding="utf-8",
        )
        (self.policies / "orphans.yaml").write_text(
            "apiVersion: ccci/v1\n"
            "kind: OrphanStackPolicy\n"
            f"metadata: {{name: {ORPHANS}}}\n"
            "hosts: ci\n"
            "spec:\n"
            "  run_apps: {selector: run-apps}\n"
            "  orphan_after: 3h\n"
            "  expires_label: ci.expires\n"
            "  reap: [services, secrets, configs, networks, volumes, env_file]\n"
            "  env_file: '{{ abra_dir }}/servers/{server}/{domain}.env'\n"
            "  wait: 60s\n",
            encoding="utf-8",
        )
        (self.policies / "prune.yaml").write_text(
            "apiVersion: ccci/v1\n"
            "kind: PrunePolicy\n"
            f"metadata: {{name: {PRUNE}}}\n"
            "hosts: ci\n"
            "spec:\n"
            "  gates:\n"
            f"    disk_usage: {{path: '{self.disk}', at_least: 80%}}\n"
            "    no_live_stacks: {selector: run-apps}\n"
            "    no_converging_services: true\n"
            "  prune:\n"
            "    dangling_images: {older_than: 24h}\n",
            encoding="utf-8",
        )

    def argv(self, *args: str) -> list[str]:
        return [
            str(CCCI),
            *args,
            "-i",
            str(self.inventory),
            "-p",
            str(self.policies),
            "--state-dir",
            str(self.state_dir),
        ]

    def run(self, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        """Run ``ccci ARGS -i … -p … --state-dir …``; fail with its output on another exit."""
        done = subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in expect, (
            f"ccci {' '.join(args)} exited {done.returncode}, expected {expect}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        return done

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            self.argv(*args), cwd=self.root, env=self.env(), text=True, **kwargs
        )

    def plan(self, at: datetime | None = None) -> dict[str, Any]:
        args = ["reconcile", "--plan", "--output", "json"]
        if at is not None:
            args += ["--now", stamp(at)]
        data: dict[str, Any] = json.loads(self.run(*args).stdout)
        return data

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


# ---- reading results -------------------------------------------------------------------


def changes_in(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in journal if e["type"] == "change"]


def recaps_in(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in journal if e["type"] == "recap"]


def addresses(plan: dict[str, Any]) -> set[str]:
    return {c["address"] for host in plan["hosts"] for c in host["changes"]}


def image_ids(engine: Engine) -> set[str]:
    return set(engine.docker("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split())


def container_names(engine: Engine) -> set[str]:
    return {c["Names"][0].lstrip("/") for c in engine.api("/containers/json?all=1")}


def wait_until(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


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
