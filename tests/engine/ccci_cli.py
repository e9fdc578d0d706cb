"""What every engine test's CLI wrapper shares: a workspace under ``root`` (inventory,
policies, state), the real ``ccci`` run in it the way a user runs it, and the journal it
leaves. Each test module subclasses :class:`CliWorkspace` only for what is its own.

A module of its own name rather than conftest.py, so that tests in other folders
(tests/faults) can import it whichever conftest pytest loaded last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.engine import Engine

CCCI = Path(sys.executable).parent / "ccci"
HOST = "cc-ci"


def stamp(moment: datetime) -> str:
    """RFC 3339, whole seconds, as ``--now`` and ``docker … --filter until=`` take it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cli_env(engine: Engine) -> dict[str, str]:
    """The environment ccci runs in under test: the private engine, no colour."""
    env = engine.env()  # DOCKER_HOST = the private engine, foreign docker env dropped
    # The test's own paths, never ones from the calling shell.
    for name in ("CCCI_STATE_DIR", "CCCI_INVENTORY", "CCCI_METRICS"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    return env


def _at(moment: datetime | None) -> list[str]:
    return ["--now", stamp(moment)] if moment is not None else []


@dataclass
class CliWorkspace:
    """The CLI pointed at the private engine, with policies and state under ``root``."""

    engine: Engine
    root: Path
    # Whether the inventory carries abra's folder as the ``abra_dir`` var (the janitor's
    # env-file template and ``abra_dir`` option read it).
    abra_vars: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # Every test would fail on a missing CLI anyway; this says why at once.
        assert os.access(CCCI, os.X_OK), f"{CCCI} is missing: install the package (make venv)"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "ccci.lock"

    @property
    def abra_dir(self) -> Path:
        return self.root / "abra"

    def engine_host(self) -> str:
        """Where the inventory's hosts reach the engine (a subclass may put a proxy between)."""
        return self.engine.docker_host

    # ---- writing the workspace ------------------------------------------------------------

    def write_inventory(self, hosts: tuple[str, ...] = (HOST,), abra_server: str = "") -> None:
        """Every host in group ``ci``, each reached at :meth:`engine_host`."""
        lines = ["all:"]
        if self.abra_vars:
            lines += ["  vars:", f"    abra_dir: '{self.abra_dir}'"]
        lines += ["  children:", "    ci:", "      hosts:"]
        for host in hosts:
            lines += [f"        {host}:", f"          docker_host: '{self.engine_host()}'"]
            if abra_server:
                lines.append(f"          abra_server: '{abra_server}'")
        self.inventory.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def write_policy(self, name: str, text: str) -> Path:
        """``policies/<name>.yaml`` holding ``text``."""
        self.policies.mkdir(exist_ok=True)
        path = self.policies / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    @property
    def last_use_path(self) -> Path:
        return self.state_dir / f"last-use-{HOST}.json"

    def record_last_use(self, record: dict[str, datetime]) -> None:
        """Set when images were last used, in ccci's own state file (setup, not a back door:
        it is written the way ccci writes it)."""
        from ccci.state import lastuse

        lastuse.write(self.last_use_path, record)

    def env_file(self, stack: str, server: str = HOST) -> Path:
        """abra's env file of ``stack`` (its domain is the stack name with dots)."""
        return self.abra_dir / "servers" / server / f"{stack.replace('_', '.')}.env"

    # ---- running the CLI ------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return cli_env(self.engine)

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

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ccci ARGS -i … -p … --state-dir …``, whatever its exit."""
        return subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def run(self, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        """Run ``ccci ARGS``; fail with its output on another exit."""
        done = self.call(*args)
        if done.returncode not in expect:
            # pytest.fail, not assert: a strict xfail expecting an AssertionError must not
            # pass because a command failed for another reason.
            pytest.fail(
                f"ccci {' '.join(args)} exited {done.returncode}, expected {expect}\n"
                f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
        return done

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """``ccci ARGS`` started in the background (stdout and stderr piped unless given)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            self.argv(*args), cwd=self.root, env=self.env(), text=True, **kwargs
        )

    def plan(self, at: datetime | None = None) -> dict[str, Any]:
        """``ccci reconcile --plan --output json`` (as of ``at`` when given), parsed."""
        done = self.run("reconcile", "--plan", "--output", "json", *_at(at))
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def janitor_plan(self, at: datetime | None = None) -> dict[str, Any]:
        """``ccci janitor --plan --output json`` (as of ``at`` when given), parsed."""
        done = self.run("janitor", "--plan", "--output", "json", *_at(at))
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def janitor(self, at: datetime | None = None) -> None:
        self.run("janitor", *_at(at))

    def apply(self, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        return self.run("reconcile", "--apply", "--yes", expect=expect)

    def status(self, at: datetime) -> dict[str, Any]:
        """The one host of ``ccci status --output json`` as of ``at``, whatever its health."""
        done = self.run("status", "--output", "json", *_at(at), expect=(0, 1, 2))
        host: dict[str, Any] = json.loads(done.stdout)["hosts"][0]
        return host

    def residual(
        self, stack: str, *args: str, expect: tuple[int, ...] = (0, 1)
    ) -> subprocess.CompletedProcess[str]:
        return self.run("residual", stack, *args, expect=expect)

    def journal(self) -> list[dict[str, Any]]:
        if not self.journal_path.exists():
            return []
        lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]
