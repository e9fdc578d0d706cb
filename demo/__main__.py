"""``make demo``: seed a CI-host scenario on the private engine and let ccci reconcile it.

The story: one CI run is live, so the gated prune waits; another was killed and left its
stack behind (services, volume, abra's external secrets, a config, its env file), and its
deadline label has passed, so it is planned for reaping. The live run ends and is torn
down; now the plan reaps the orphan first and then prunes exactly the old dangling images.
Apply does both, ``ccci residual`` proves the orphan is gone, and a last plan finds nothing
to do. Only the private engine started by ``harness`` is touched. Disk pressure is real:
the disk gate measures a small tmpfs filled to 85%.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.disk import disk_path, fill_to, small_filesystem
from harness.engine import Engine, ensure_engine
from harness.images import BASE_TAG, ensure_busybox_image, load_image, make_dangling_image
from harness.swarm import deploy_stack, reset

REPO = Path(__file__).resolve().parent.parent
RUN_APP = "redi-3fa9c1_ci_example_org"
KILLED_RUN = "post-8d2e4f_ci_example_org"


def run_app_compose(expires: int) -> str:
    """A run-app as abra deploys it, stamped with its own deadline (unix time)."""
    return f"""
version: "3.8"
services:
  app:
    image: {BASE_TAG}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    volumes: [data:/data]
    configs: [{{source: app_conf, target: /etc/app.conf}}]
    deploy:
      labels: {{ci.expires: "{expires}"}}
volumes:
  data:
configs:
  app_conf:
    file: ./app.conf
"""
PROXY_COMPOSE = """
version: "3.8"
services:
  app:
    image: recipe/traefik:2.11
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


def say(text: str) -> None:
    print(f"\n### {text}", flush=True)


def ccci(workdir: Path, *args: str) -> int:
    """Run the real CLI, echoing the command the way a reader would type it."""
    print(f"$ ccci {shlex.join(args)}", flush=True)
    env = {**os.environ, "CCCI_STATE_DIR": str(workdir / "state")}
    ccci_bin = Path(sys.executable).parent / "ccci"
    env["CCCI_INVENTORY"] = str(workdir / "inventory.yaml")
    done = subprocess.run([str(ccci_bin), *args], cwd=REPO, env=env, check=False)
    if done.returncode not in (0, 2):
        raise SystemExit(f"demo: ccci exited {done.returncode}")
    return done.returncode


def seed(engine: Engine) -> None:
    now = datetime.now(UTC)
    ensure_busybox_image(engine)
    # The cache: tagged images a CI run deploys. ccci never prunes tagged images.
    for tag in ("recipe/redis:7-alpine", "recipe/postgres:16", "recipe/traefik:2.11"):
        load_image(engine, tag, now - timedelta(days=30), layer_bytes=512 * 1024)
    # Leftovers of old re-pulls: dangling images days old (these should go) …
    for days, size in ((3, 3), (5, 2), (9, 4)):
        make_dangling_image(engine, now - timedelta(days=days), size_bytes=size << 20)
    # … one from two hours ago (too young), and one an exited job container still uses.
    make_dangling_image(engine, now - timedelta(hours=2), size_bytes=1 << 20)
    used = make_dangling_image(engine, now - timedelta(days=4), size_bytes=1 << 20)
    engine.docker("run", "--name", "ci-job-1234", used, "true")
    deploy_stack(engine, "traefik", PROXY_COMPOSE)
    (Path(engine.state_dir) / "tmp").mkdir(exist_ok=True)
    (Path(engine.state_dir) / "tmp" / "app.conf").write_text("port = 6379\n", encoding="utf-8")
    hour = int(now.timestamp()) + 3600
    deploy_stack(engine, RUN_APP, run_app_compose(expires=hour))
    # The killed run: its deadline passed five minutes ago and nobody tore it down.
    deploy_stack(engine, KILLED_RUN, run_app_compose(expires=int(now.timestamp()) - 300))
    for name in ("db_password_v1", "admin_token_v1"):  # abra's external secrets: no label
        engine.docker("secret", "create", f"{KILLED_RUN}_{name}", "-", input="s3cret")


def teardown(engine: Engine, stack: str, timeout: float = 60) -> None:
    """``docker stack rm`` and wait until its tasks' containers are gone, as abra does.
    Its named volume stays behind: ``docker stack rm`` never removes volumes."""
    engine.docker("stack", "rm", stack)
    label = f"label=com.docker.stack.namespace={stack}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = engine.docker("ps", "-aq", "--filter", label).stdout.split()
        left += engine.docker("service", "ls", "-q", "--filter", label).stdout.split()
        if not left:
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: stack {stack} was not gone after {timeout:.0f}s")


def main() -> None:
    engine = ensure_engine()
    workdir = Path(engine.state_dir) / "demo"
    (workdir / "state").mkdir(parents=True, exist_ok=True)
    gate_disk = small_filesystem(disk_path("demo"), 64)
    fill_to(gate_disk, 85)
    (workdir / "inventory.yaml").write_text(
        "all:\n"
        "  vars:\n"
        f"    docker_data_root: {engine.data_root}\n"
        f"    disk_gate_path: {gate_disk}   # a 64 MiB tmpfs filled to 85%: real disk pressure\n"
        f"    abra_dir: {workdir / 'abra'}\n"
        "  children:\n"
        "    ci:\n"
        "      hosts:\n"
        f"        cc-ci: {{docker_host: '{engine.docker_host}'}}\n",
        encoding="utf-8",
    )
    policies = "policies"
    say("Seeding a CI host on the private engine (images, a job container, three stacks)")
    reset(engine)
    seed(engine)
    env_file = workdir / "abra" / "servers" / "cc-ci" / f"{KILLED_RUN.replace('_', '.')}.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("TYPE=postgres\n", encoding="utf-8")
    say("One run is live, one was killed: reap the orphan; the prune waits for the live run")
    ccci(workdir, "reconcile", "--plan", "-p", policies)
    say("The live CI run ends and tears its app down")
    teardown(engine, RUN_APP)
    ccci(workdir, "reconcile", "--plan", "-p", policies, "--verbose")
    say("Apply: under the lock, re-check each change just before it, act, journal")
    ccci(workdir, "reconcile", "--apply", "--yes", "-p", policies)
    say("Prove the killed run's stack is gone")
    ccci(workdir, "residual", KILLED_RUN, "-p", policies)
    say("Plan again: nothing left to do")
    code = ccci(workdir, "reconcile", "--plan", "--detailed-exitcode", "-p", policies)
    print(f"(exit code {code}: 0 means the host matches policy)")
    say(f"The journal ({workdir / 'state' / 'journal.jsonl'}), last line")
    lines = (workdir / "state" / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    print(lines[-1])


if __name__ == "__main__":
    main()
