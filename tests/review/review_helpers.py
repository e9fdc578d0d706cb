"""Shared helpers for the review tests: a policy repository in git, the CLI, and facts.

Named uniquely (not ``helpers``) because pytest puts each test folder on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner, Result

from ccci.cli.policy import policy, schema
from ccci.facts.model import (
    Container,
    Daemon,
    DiskUsage,
    Facts,
    FileFact,
    Image,
    Network,
    Service,
    SwarmObject,
    Task,
    Unit,
    UnitFile,
    Volume,
)

DATA = Path(__file__).parent / "data"
BASE = DATA / "base"
SNAPSHOT = DATA / "snapshot.json"
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
GIB = 1024**3
STACK = "redi-3fa9c1_ci_example_org"


@click.group()
def ccci() -> None:
    """The review commands as the lead wires them into ccci's CLI."""


ccci.add_command(policy)
ccci.add_command(schema)


def run_cli(args: list[str], cwd: Path | None = None) -> Result:
    """Run ``ccci ARGS`` in ``cwd``; stdout and stderr are kept apart."""
    runner = CliRunner()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return runner.invoke(ccci, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def copy_base(target: Path) -> Path:
    """The base policy repository (policies/ and inventory.yaml) copied into ``target``."""
    shutil.copytree(BASE, target, dirs_exist_ok=True)
    return target


def policy_repo(root: Path, inventory: str) -> Path:
    """An empty policy repository at ``root`` (policies/ and the inventory), ready to be
    the current directory of a check."""
    (root / "policies").mkdir()
    (root / "inventory.yaml").write_text(inventory, encoding="utf-8")
    return root


def edit(root: Path, name: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in one file; fail loudly when ``old`` is not there."""
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Review Test",
        "GIT_AUTHOR_EMAIL": "review@localhost",
        "GIT_COMMITTER_NAME": "Review Test",
        "GIT_COMMITTER_EMAIL": "review@localhost",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def init_repo(root: Path) -> Path:
    """A git repository holding the base policies as its first commit on ``main``."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    copy_base(root)
    commit(root, "base policies")
    return root


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


# -- facts ------------------------------------------------------------------------------


def _ago(now: datetime, **delta: float) -> datetime:
    return now - timedelta(**delta)


def host_facts(
    host: str,
    now: datetime = NOW,
    units: dict[str, str] | None = None,
    dangling_images: int = 1,
    stack_age: timedelta = timedelta(hours=1),
) -> Facts:
    """A CI host at 75% disk with one run-app an hour old (an orphan only by a policy
    stricter than 1h), an exited container, old dangling images, a young one, and the
    timers ``units`` (unit file path → content) as written."""
    stack_time = now - stack_age
    images = [
        Image(
            "sha256:" + "aa" * 32,
            ("redis:7-alpine",),
            ("redis@sha256:" + "a1" * 32,),
            _ago(now, days=10),
            41_000_000,
        ),
        Image("sha256:" + "cc" * 32, (), (), _ago(now, hours=2), 10_000_000),
    ]
    images += [
        # Leftovers (no tag, no digest): what the prune removes.
        Image(f"sha256:{i:064x}", (), (), _ago(now, days=3), 120_000_000 + i)
        for i in range(dangling_images)
    ]
    service = Service(
        "svc1",
        f"{STACK}_app",
        "redis:7-alpine",
        {"com.docker.stack.namespace": STACK},
        stack_time,
        stack_time,
        replicas=1,
    )
    unit_files = (
        *(UnitFile(path, True, content) for path, content in (units or {}).items()),
        UnitFile("/etc/systemd/system/docker-prune.timer", True, "[Timer]\nOnCalendar=daily\n"),
    )
    return Facts(
        host=host,
        gathered_at=now,
        daemon=Daemon(host, "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True),
        disks=(DiskUsage("/var/lib/docker", 100 * GIB, 75 * GIB, 25 * GIB),),
        images=tuple(images),
        containers=(
            Container(
                "1d" * 32,
                "job",
                "redis:7-alpine",
                "sha256:" + "aa" * 32,
                "exited",
                _ago(now, days=3),
                _ago(now, days=2),
            ),
        ),
        services=(service,),
        tasks=(Task("task1", "svc1", "running", "running", "c0" * 32, "redis:7-alpine"),),
        volumes=(
            Volume(f"{STACK}_data", "local", {"com.docker.stack.namespace": STACK}, stack_time),
        ),
        networks=(
            Network(
                "net1",
                f"{STACK}_default",
                "overlay",
                "swarm",
                {"com.docker.stack.namespace": STACK},
                stack_time,
            ),
        ),
        secrets=(SwarmObject("sec1", f"{STACK}_db_password_v1", {}, stack_time),),
        files=(FileFact(f"/root/.abra/servers/{host}/redi-3fa9c1.ci.example.org.env", True, 120),),
        units=(
            Unit("ccci-reconcile.timer", "loaded", "active", "enabled"),
            Unit("ccci-reconcile.service", "loaded", "inactive", "static"),
            Unit(
                "docker-prune.timer",
                "loaded",
                "active",
                "enabled",
                "/etc/systemd/system/docker-prune.timer",
            ),
        ),
        unit_files=unit_files,
        systemd="running",
    )


def base_timer_units(host: str = "cc-ci") -> dict[str, str]:
    """The unit files the base TimerPolicy renders, as they would be on the host."""
    import contextlib

    from ccci.config.inventory import load as load_inventory
    from ccci.policy.load import load_for_hosts
    from ccci.policy.model import TimerPolicy

    with contextlib.chdir(BASE):
        inventory = load_inventory(Path("inventory.yaml"))
        (loaded,) = load_for_hosts([Path("policies")], inventory, [inventory.hosts[host]])
    files: dict[str, Any] = {}
    for p in loaded.policies:
        if isinstance(p, TimerPolicy):
            for spec in p.present:
                for name, content in spec.files.items():
                    files[f"{p.unit_dir}/{name}"] = content
    return files
