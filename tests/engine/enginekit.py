"""What the engine tests share besides the CLI (that is ccci_cli.py): the clock, reading
the private engine with the docker CLI and API (independently of ccci), making stacks and
run-apps on it the way abra does, the policy texts, and reading plans and journals.

A module of its own name rather than conftest.py, so that tests in other folders
(tests/faults) can import it whichever conftest pytest loaded last.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccci_cli import HOST, CliWorkspace

from harness.engine import Engine
from harness.images import BASE_TAG, load_image
from harness.registry import Registry, push_image
from harness.swarm import deploy_stack

STACK_LABEL = "com.docker.stack.namespace"
RUN_APP_MATCH = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
ORPHANS = "reap-killed-runs"
PRUNE = "ci-docker-prune"
RETENTION = "recipe-base-images"
SECRETS = ("db_password", "admin_token")
REAP_ALL = ("services", "secrets", "configs", "networks", "volumes", "env_file")
ENV_FILE = "{{ abra_dir }}/servers/{server}/{domain}.env"
NO_CHANGES = "No changes. Host matches policy."
AHEAD = timedelta(hours=4)  # past the orphan policies' orphan_after of 3h
DAY = timedelta(days=1)

OLD = "redi-3fa9c1_ci_example_org"
YOUNG = "mari-5e6f70_ci_example_org"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ahead(delta: timedelta = AHEAD) -> datetime:
    """``delta`` after this moment, rounded *up* to a whole second (``--now`` takes whole
    seconds): whatever was made before the call is at least ``delta`` old then. ``now() +
    delta`` rounds down, so an object made in the same second is a fraction short of it."""
    return now() + timedelta(seconds=1) + delta


def wait_until(
    what: str, done: Callable[[], bool], timeout: float = 60, interval: float = 0.2
) -> None:
    """Poll ``done`` every ``interval`` seconds until it holds; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---- reading the engine (independently of ccci) ------------------------------------------


def names(engine: Engine, *args: str) -> list[str]:
    """The non-blank lines ``docker ARGS`` prints (one name a line with ``--format``)."""
    return [ln for ln in engine.docker(*args).stdout.splitlines() if ln.strip()]


def image_ids(engine: Engine) -> set[str]:
    return set(engine.docker("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split())


def containers(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every container by name, as the engine lists it."""
    listed = engine.api("/containers/json?all=1")
    return {c["Names"][0].lstrip("/"): c for c in listed}


def container_names(engine: Engine) -> set[str]:
    return set(containers(engine))


def tasks_of(engine: Engine, service: str) -> list[dict[str, Any]]:
    service_id = engine.docker("service", "inspect", "--format", "{{.ID}}", service).stdout.strip()
    return [t for t in engine.api("/tasks") if t.get("ServiceID") == service_id]


def task_states(engine: Engine, service: str) -> set[str]:
    """States of the service's tasks that are meant to run."""
    return {
        t["Status"]["State"]
        for t in tasks_of(engine, service)
        if t.get("DesiredState") == "running"
    }


def mountpoint(engine: Engine, volume: str) -> str:
    return engine.docker("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()


def stack_containers(engine: Engine, stack: str) -> list[str]:
    return names(
        engine, "ps", "-a", "--filter", f"label={STACK_LABEL}={stack}", "--format", "{{.Names}}"
    )


def on_engine(engine: Engine, stack: str, env_file: Path | None = None) -> set[tuple[str, str]]:
    """Everything of ``stack`` the engine (and abra's dir) still holds, as (kind, name):
    labelled services, configs, networks, volumes, task containers; abra's secrets by
    their name prefix; the env file."""
    label = f"label={STACK_LABEL}={stack}"
    found = set()
    for kind in ("service", "config", "network", "volume"):
        listed = names(engine, kind, "ls", "--filter", label, "--format", "{{.Name}}")
        found |= {(kind, n) for n in listed}
    found |= {("container", n) for n in stack_containers(engine, stack)}
    secrets = names(engine, "secret", "ls", "--format", "{{.Name}}")
    found |= {("secret", n) for n in secrets if n.startswith(f"{stack}_")}
    if env_file is not None and env_file.exists():
        found.add(("env file", str(env_file)))
    return found


# ---- images in the loopback registry -------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """An image in the loopback registry (and not on the engine)."""

    ref: str  # 127.0.0.1:5000/recipe/<name>:<tag>
    repo: str  # recipe/<name>, the path the registry logs
    digest: str


def publish(
    engine: Engine,
    registry: Registry,
    name: str,
    tag: str = "7",
    created: datetime | None = None,
    layer_bytes: int = 64 * 1024,
) -> Published:
    """Make an image, push it to the registry as ``recipe/<name>:<tag>``, drop it locally."""
    repo = f"recipe/{name}"
    local = f"ccci-src/{name}:{tag}"
    load_image(engine, local, created or now() - 3 * DAY, layer_bytes=layer_bytes)
    ref = registry.ref(f"{repo}:{tag}")
    digest = push_image(engine, local, ref)
    engine.docker("rmi", local, ref)
    assert not has_image(engine, ref)
    return Published(ref, repo, digest)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def has_image(engine: Engine, ref: str) -> bool:
    return engine.docker("image", "inspect", ref, check=False).returncode == 0


def image_id(engine: Engine, ref: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


# ---- stacks ------------------------------------------------------------------------------


def sleeper(image: str = BASE_TAG, deploy: str = "", volume: str = "") -> str:
    """A one-service stack (with ``deploy:`` and a named volume at ``/<volume>`` when
    given); busybox ``sleep`` ignores SIGTERM, hence the 1 s grace period."""
    text = (
        'version: "3.8"\n'
        "services:\n"
        "  app:\n"
        f"    image: {image}\n"
        '    command: ["sleep", "3600"]\n'
        "    stop_grace_period: 1s\n"
    )
    if deploy:
        text += f"    deploy: {deploy}\n"
    if volume:
        text += f"    volumes: [{volume}:/{volume}]\nvolumes:\n  {volume}: {{}}\n"
    return text


def tear_down(engine: Engine, stack: str) -> None:
    """``docker stack rm``, then wait until its services, task containers and networks are gone.

    Engine 20.10 answers ``stack rm`` with an error when a task still holds the stack's network
    as it shuts down ("in use by task"); the services go all the same, so the removal is asked
    again while anything is left, as an operator would."""
    engine.docker("stack", "rm", stack, check=False)

    def gone() -> bool:
        stacks = engine.docker("stack", "ls", "--format", "{{.Name}}").stdout.split()
        tasks = engine.docker("ps", "-aq", "--filter", f"label={STACK_LABEL}={stack}")
        networks = engine.docker("network", "ls", "-q", "--filter", f"label={STACK_LABEL}={stack}")
        if stack in stacks or tasks.stdout.split() or networks.stdout.split():
            engine.docker("stack", "rm", stack, check=False)
            return False
        return True

    wait_until(f"stack {stack} to go", gone)


def run_app_compose(
    stack: str,
    config_file: Path,
    *,
    expires: int | None = None,
    volume: bool = True,
    secrets: tuple[str, ...] = SECRETS,
    pending: bool = False,
    one_per_node: bool = False,
) -> str:
    """A run-app as abra deploys it: one service writing into a named volume, a labelled
    config, a stack network, abra's external secrets; ``pending`` adds a service whose
    task can never be placed (it stays pending: the stack is converging)."""
    command = '["sh", "-c", "echo data > /data/f; sleep 3600"]' if volume else '["sleep", "3600"]'
    lines = [
        'version: "3.8"',
        "services:",
        "  app:",
        f"    image: {BASE_TAG}",
        f"    command: {command}",
        "    stop_grace_period: 1s",
        "    networks: [backend]",
        "    configs: [{source: app_conf, target: /etc/app.conf}]",
    ]
    if volume:
        lines.append("    volumes: [data:/data]")
    if secrets:
        lines.append(f"    secrets: [{', '.join(secrets)}]")
    deploy = []
    if expires is not None:
        deploy.append(f'labels: {{ci.expires: "{expires}"}}')
    if one_per_node:  # a second replica then has nowhere to go: it stays pending
        deploy.append("placement: {max_replicas_per_node: 1}")
    if deploy:
        lines.append(f"    deploy: {{{', '.join(deploy)}}}")
    if pending:
        lines += [
            "  worker:",
            f"    image: {BASE_TAG}",
            '    command: ["sleep", "3600"]',
            "    stop_grace_period: 1s",
            "    networks: [backend]",
            '    deploy: {placement: {constraints: ["node.labels.nope==1"]}}',
        ]
    lines += ["networks:", "  backend: {}"]
    lines += [
        "configs:",
        "  app_conf:",
        f"    file: {config_file}",
        "    labels: {ci.role: app-config}",
    ]
    if volume:
        lines += ["volumes:", "  data: {}"]
    if secrets:
        lines.append("secrets:")
        for name in secrets:
            lines += [f"  {name}:", "    external: true", f"    name: {stack}_{name}_v1"]
    return "\n".join(lines) + "\n"


def seed_run_app(
    cli: CliWorkspace,
    stack: str,
    *,
    expires: int | None = None,
    volume: bool = True,
    secrets: tuple[str, ...] = SECRETS,
    pending: bool = False,
    one_per_node: bool = False,
    env_server: str = HOST,
) -> None:
    """What ``abra app new`` + ``abra app secret generate`` + ``abra app deploy`` leave:
    the env file, the external secrets (unlabelled), then the deployed stack."""
    engine = cli.engine
    env_file = cli.env_file(stack, env_server)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(f"TYPE=redis\nDOMAIN={stack.replace('_', '.')}\n", encoding="utf-8")
    for name in secrets:
        engine.docker("secret", "create", f"{stack}_{name}_v1", "-", input="s3cret")
    config_file = cli.root / f"{stack}.conf"
    config_file.write_text("port = 6379\n", encoding="utf-8")
    compose = run_app_compose(
        stack,
        config_file,
        expires=expires,
        volume=volume,
        secrets=secrets,
        pending=pending,
        one_per_node=one_per_node,
    )
    deploy_stack(engine, stack, compose, wait=not pending)
    if pending:
        wait_until(
            f"{stack}_app to run", lambda: task_states(engine, f"{stack}_app") == {"running"}
        )
        wait_until(
            f"{stack}_worker to be pending",
            lambda: task_states(engine, f"{stack}_worker") == {"pending"},
        )
    if volume:
        data = Path(mountpoint(engine, f"{stack}_data")) / "f"
        wait_until(f"{stack}'s service to write into its volume", data.exists)
        wait_until(f"data in {data}", lambda: data.read_text() == "data\n")


def full_stack(
    stack: str, env_file: Path, secrets: tuple[str, ...] = SECRETS
) -> set[tuple[str, str]]:
    """What a deployed run-app is made of, apart from its task containers."""
    return {
        ("service", f"{stack}_app"),
        ("config", f"{stack}_app_conf"),
        ("network", f"{stack}_backend"),
        ("volume", f"{stack}_data"),
        ("env file", str(env_file)),
        *(("secret", f"{stack}_{s}_v1") for s in secrets),
    }


# ---- policies ------------------------------------------------------------------------------


def _document(kind: str, name: str, hosts: str | None, spec: list[str]) -> str:
    head = ["apiVersion: ccci/v1", f"kind: {kind}", f"metadata: {{name: {name}}}"]
    if hosts is not None:
        head.append(f"hosts: {hosts}")
    return "\n".join([*head, "spec:", *spec]) + "\n"


def selector_policy(match: str = RUN_APP_MATCH, hosts: str | None = "ci") -> str:
    """The ``run-apps`` StackSelector."""
    return _document("StackSelector", "run-apps", hosts, [f"  match: '{match}'"])


def orphan_policy(
    *,
    keep: tuple[str, ...] = (),
    expires_label: str | None = "ci.expires",
    reap: tuple[str, ...] = REAP_ALL,
    env_file: str | None = ENV_FILE,
    abra_dir: str | None = None,
    hosts: str | None = "ci",
) -> str:
    """The janitor of killed CI runs: run-apps of ``run-apps`` 3h after their last change
    (or past ``expires_label``), with abra's env file found by ``env_file`` or ``abra_dir``."""
    spec = ["  run_apps: {selector: run-apps}", "  orphan_after: 3h"]
    if expires_label is not None:
        spec.append(f"  expires_label: {expires_label}")
    if keep:
        spec.append("  keep: [" + ", ".join(f"'{k}'" for k in keep) + "]")
    spec.append(f"  reap: [{', '.join(reap)}]")
    if env_file is not None:
        spec.append(f"  env_file: '{env_file}'")
    if abra_dir is not None:
        spec.append(f"  abra_dir: '{abra_dir}'")
    spec.append("  wait: 60s")
    return _document("OrphanStackPolicy", ORPHANS, hosts, spec)


def prune_policy(
    disk: str,
    *,
    at_least: str = "80%",
    live_stacks: str | None = "{selector: run-apps}",
    converging: str | None = "true",
    older_than: tuple[tuple[str, str], ...] = (("dangling_images", "24h"),),
    hosts: str | None = "ci",
) -> str:
    """The gated prune: the disk gate on ``disk``, the stack gates when given, and each
    (kind, age) of ``older_than``."""
    spec = ["  gates:", f"    disk_usage: {{path: '{disk}', at_least: {at_least}}}"]
    if live_stacks is not None:
        spec.append(f"    no_live_stacks: {live_stacks}")
    if converging is not None:
        spec.append(f"    no_converging_services: {converging}")
    spec.append("  prune:")
    spec += [f"    {kind}: {{older_than: {age}}}" for kind, age in older_than]
    return _document("PrunePolicy", PRUNE, hosts, spec)


def retention_policy(
    retain: tuple[str, ...] = (), ensure_present: tuple[str, ...] = (), evict: str = ""
) -> str:
    """An ImageRetention keeping ``retain``, pulling ``ensure_present``, then ``evict``."""
    text = (
        "apiVersion: ccci/v1\n"
        "kind: ImageRetention\n"
        f"metadata: {{name: {RETENTION}}}\n"
        "hosts: ci\n"
        "spec:\n"
    )
    if retain:
        text += "  retain:\n" + "".join(f"    - '{p}'\n" for p in retain)
    if ensure_present:
        text += "  ensure_present:\n" + "".join(f"    - '{r}'\n" for r in ensure_present)
    return text + evict


def eviction(path: str, at_least: str = "85%", down_to: str = "75%") -> str:
    """An ImageRetention's ``evict:`` by last use, gated on the disk usage of ``path``."""
    return (
        "  evict:\n"
        f"    when: {{disk_usage: {{path: '{path}', at_least: {at_least}}}}}\n"
        f"    down_to: {down_to}\n"
        "    unused_for: 14d\n"
        "    max_per_run: 50\n"
    )


@dataclass
class RetentionCli(CliWorkspace):
    """The CLI with the gate disk for retention's eviction and a gated prune: what the
    retention and swarm-cache tests run."""

    disk: str

    def write_prune_policy(self) -> Path:
        return self.write_policy(
            "prune", prune_policy(self.disk, live_stacks=f"{{match: '{RUN_APP_MATCH}'}}")
        )

    def images(self) -> dict[str, dict[str, Any]]:
        """``ccci images --output json``: this host's rows by image id."""
        data = json.loads(self.run("images", "--output", "json").stdout)
        assert data["format_version"] == 1
        return {row["id"]: row for row in data["hosts"][HOST]}


class JanitorCli(CliWorkspace):
    """The CLI with abra's folder as the inventory's ``abra_dir`` and the orphan janitor's
    policies: what the orphan, saved-plan and fault tests run."""

    abra_vars = True

    def write_policies(
        self, prune_disk: str | None = None, keep: tuple[str, ...] = ("^demo-",)
    ) -> None:
        """The run-app selector and the orphan policy keeping ``keep``; with ``prune_disk``,
        also a gated prune whose ``no_live_stacks`` gate names the same selector."""
        self.write_policy("selectors", selector_policy())
        self.write_policy("orphans", orphan_policy(keep=keep))
        if prune_disk is not None:
            self.write_policy("prune", prune_policy(prune_disk))


def line_of(path: Path, text: str) -> int:
    """The 1-based line of ``path`` that holds ``text``: where a reason's file:line points."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


# ---- reading plans and journals ----------------------------------------------------------


def changes(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every planned change, by address."""
    return {c["address"]: c for host in plan["hosts"] for c in host["changes"]}


def change_list(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every planned change, in plan order."""
    return [c for host in plan["hosts"] for c in host["changes"]]


def addresses(plan: dict[str, Any]) -> set[str]:
    return set(changes(plan))


def change(plan: dict[str, Any], address: str) -> dict[str, Any]:
    """The one change planned for ``address``."""
    found = [c for c in change_list(plan) if c["address"] == address]
    assert len(found) == 1, f"{address} planned {len(found)} times"
    return found[0]


def noops(plan: dict[str, Any]) -> dict[str, str]:
    return {n["address"]: n["reason"] for host in plan["hosts"] for n in host["noops"]}


def manual(plan: dict[str, Any]) -> dict[str, str]:
    return {m["address"]: m["reason"] for host in plan["hosts"] for m in host["manual"]}


def gates(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["gate"]["kind"]: g for host in plan["hosts"] for g in host["gates"]}


def gate(plan: dict[str, Any], kind: str) -> dict[str, Any]:
    """The one gate of ``kind`` in the plan."""
    found: list[dict[str, Any]] = [
        g for h in plan["hosts"] for g in h["gates"] if g["gate"]["kind"] == kind
    ]
    assert len(found) == 1, found
    return found[0]


def journal_changes(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in journal if e["type"] == "change"]


def journalled(journal: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The journal's change lines by address (the last line of an address wins)."""
    return {e["address"]: e for e in journal_changes(journal)}


def journalled_once(journal: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The journal's change lines by address, each address journalled once."""
    lines = journal_changes(journal)
    by_address = journalled(journal)
    assert len(by_address) == len(lines), "an address was journalled twice"
    return by_address


def recaps(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in journal if e["type"] == "recap"]
