"""Janitor time with many run-apps deployed: ``ccci janitor --plan`` beside the engine's listing.

A CI run calls ``ccci janitor`` before each deploy, so it must be cheap even when many
run-apps are deployed at once. This seeds N run-app stacks (default 50) on the harness's
private engine, each as abra deploys one: a service, a named volume, a config, a stack
network, two external (unlabelled) secrets named ``<stack>_<name>_v1``, and abra's env
file. It then prints, in one run, the median wall time of ``ccci janitor --plan`` (end to
end: interpreter start, imports, policy load, gather, plan, render) beside the median of
``docker stack ls`` + ``docker volume ls`` + ``docker secret ls`` (what a shell janitor
would read), ``ccci --help`` start-up and the janitor's peak RSS. The target is printed
beside the figure, never asserted: timings on a shared CI box are advice, not a gate.

Nothing is orphaned: the plan runs with ``--now`` one minute after the newest seeded
object, so every stack is young and the janitor walks all of them to a noop (the path it
takes before nearly every deploy). Services run 0 replicas by default (``--replicas 1``
starts a tiny busybox per stack); the volume is created with the stack's label, as the
swarm agent would create it for a first task.

Seeding is idempotent: a stack whose objects are all there is skipped, so only the first
run pays for it. ``--reset`` removes the seeded stacks (and nothing else) and exits.

    .venv/bin/python benchmarks/janitor_scale.py [--stacks 50] [--repeat 5] [--profile]

Issue 13 item 6: 5.80x (0.5.0) -> 5.30x (0.6.0) -> 3.16x (0.7.0) -> 2.54-2.88x (0.8.0:
0.11-0.16 s against a 40-60 ms listing, medians of 9-21, timed by turns, whole runs minutes
apart) -> 2.86x (0.8.1: 0.22 s against 0.08 s, a slower spell of the machine).
A run whose policy and inventory files did not change imports neither jsonschema nor PyYAML
(the state directory's caches, see docs/policies.md) nor http.client, builds only its own
kinds, imports only the orphan rule, makes one plan and ends without the interpreter's
teardown; what is left is Python's own start (~20 ms), click, ccci's frozen dataclasses,
and the reads and rules.

Runs against ``$CCCI_ENGINE_DIR`` (default /var/tmp/ccci-engine).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # harness/ is not installed; it lives beside ccci/

from benchkit import (  # noqa: E402
    PROFILE_TOP,
    STRIP,
    EngineApi,
    ccci_args,
    ccci_bin,
    ccci_env,
    heaviest_imports,
    help_row,
    locked_engine,
    measure,
    measure_by_turns,
    measure_help,
    median,
    not_wrapper,
    plan_line,
    print_rows,
    print_timings,
    profiled,
    progress,
    run_cli_in_process,
    run_sequence,
    run_timed,
    time_calls,
    time_phases,
    top,
    verdict,
    write_inventory,
)

from harness import engine as harness_engine  # noqa: E402
from harness.engine import Engine  # noqa: E402
from harness.images import BASE_TAG, ensure_busybox_image  # noqa: E402
from harness.swarm import deploy_stack  # noqa: E402

LABEL = "ccci.bench"
LABEL_VALUE = "janitor"
STACK_LABEL = "com.docker.stack.namespace"
RUN_APP_MATCH = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
BENCH_STACK = re.compile(r"^j\d{3}-[0-9a-f]{6}_ci_bench_org$")
BENCH_SECRET = re.compile(r"^(j\d{3}-[0-9a-f]{6}_ci_bench_org)_")  # abra's: <stack>_<name>_v1
SECRETS = ("db_password", "admin_token")
HOST = "cc-ci"
SEED_WORKERS = 4
JANITOR_TARGET = 3.0  # janitor ≤ 3× the raw listing (issue 13 item 6)
ORPHANED_AHEAD = timedelta(hours=4)  # past orphan_after: every stack planned for reaping
MAX_SPREAD = timedelta(hours=2)  # all seeded stacks must be young at one --now (3h policy)
_STRIP = (*STRIP, "/lib/python3")  # profile paths: stdlib ones cut too


# ---- what to seed -----------------------------------------------------------------------


def stack_name(index: int) -> str:
    """``j007-be0007_ci_bench_org``: matches the run-app selector, as abra names stacks."""
    return f"j{index:03d}-{0xBE0000 + index:06x}_ci_bench_org"


def compose(stack: str, config_file: Path, replicas: int) -> str:
    secrets = "".join(
        f"  {name}:\n    external: true\n    name: {stack}_{name}_v1\n" for name in SECRETS
    )
    return (
        'version: "3.8"\n'
        "services:\n"
        "  app:\n"
        f"    image: {BASE_TAG}\n"
        '    command: ["sleep", "3600"]\n'
        "    stop_grace_period: 1s\n"
        "    networks: [backend]\n"
        "    volumes: [data:/data]\n"
        f"    secrets: [{', '.join(SECRETS)}]\n"
        "    configs: [{source: app_conf, target: /etc/app.conf}]\n"
        f"    deploy: {{replicas: {replicas}, labels: {{{LABEL}: {LABEL_VALUE}}}}}\n"
        "networks:\n"
        f"  backend: {{labels: {{{LABEL}: {LABEL_VALUE}}}}}\n"
        "volumes:\n"
        f"  data: {{labels: {{{LABEL}: {LABEL_VALUE}}}}}\n"
        "configs:\n"
        "  app_conf:\n"
        f"    file: {config_file}\n"
        f"    labels: {{{LABEL}: {LABEL_VALUE}}}\n"
        "secrets:\n" + secrets
    )


@dataclass(frozen=True)
class Present:
    """Names of what the engine holds that looks like a benchmark stack's."""

    services: set[str]
    volumes: set[str]
    networks: set[str]
    configs: set[str]
    secrets: set[str]

    def complete(self, stack: str) -> bool:
        return (
            f"{stack}_app" in self.services
            and f"{stack}_data" in self.volumes
            and f"{stack}_backend" in self.networks
            and f"{stack}_app_conf" in self.configs
            and all(f"{stack}_{s}_v1" in self.secrets for s in SECRETS)
        )


def present(api: EngineApi) -> Present:
    label = [f"{LABEL}={LABEL_VALUE}"]
    return Present(
        services={s["Spec"]["Name"] for s in api.get("/services", label=label)},
        volumes={v["Name"] for v in api.get("/volumes", label=label).get("Volumes") or []},
        networks={n["Name"] for n in api.get("/networks", label=label)},
        configs={c["Spec"]["Name"] for c in api.get("/configs", label=label)},
        secrets={s["Spec"]["Name"] for s in api.get("/secrets")},
    )


def seed_one(engine: Engine, stack: str, config_file: Path, replicas: int, have: Present) -> None:
    """abra's order: secrets first (``abra app secret generate``), then the deploy. The
    volume is created up front with the stack's label, as the agent does for a task."""
    for name in SECRETS:
        if f"{stack}_{name}_v1" not in have.secrets:
            engine.docker("secret", "create", f"{stack}_{name}_v1", "-", input="s3cret")
    if f"{stack}_data" not in have.volumes:
        engine.docker(
            "volume", "create",
            "--label", f"{STACK_LABEL}={stack}",
            "--label", f"{LABEL}={LABEL_VALUE}",
            f"{stack}_data",
        )  # fmt: skip
    deploy_stack(engine, stack, compose(stack, config_file, replicas), wait=False)


def ensure_seeded(engine: Engine, api: EngineApi, stacks: int, replicas: int) -> float:
    """Deploy every benchmark stack that is not complete; returns the seconds it took."""
    have = present(api)
    missing = [stack_name(i) for i in range(stacks) if not have.complete(stack_name(i))]
    if not missing:
        return 0.0
    start = time.perf_counter()
    ensure_busybox_image(engine)
    config_dir = Path(engine.state_dir) / "tmp" / "janitor-bench"
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / "app.conf"
    config_file.write_text("port = 6379\n", encoding="utf-8")
    progress(f"seeding {len(missing)} of {stacks} stacks")
    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        list(pool.map(lambda s: seed_one(engine, s, config_file, replicas, have), missing))
    wait_converged(api)
    return time.perf_counter() - start


def wait_converged(api: EngineApi, timeout: float = 180) -> None:
    """Until every benchmark service runs its replicas: a janitor timed while 50 tasks
    start would measure the engine's start-up work, not the janitor."""
    deadline = time.monotonic() + timeout
    while True:
        services = api.get("/services?status=1", label=[f"{LABEL}={LABEL_VALUE}"])
        behind = [
            s["Spec"]["Name"]
            for s in services
            if (s.get("ServiceStatus") or {}).get("RunningTasks")
            != (s.get("ServiceStatus") or {}).get("DesiredTasks")
        ]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"janitor_scale: {len(behind)} services not converged: {behind[:3]}")
        time.sleep(0.5)


def seeded_times(api: EngineApi, stacks: int) -> list[datetime]:
    """Creation and update times of every object of the first ``stacks`` benchmark stacks."""
    names = {stack_name(i) for i in range(stacks)}
    label = [f"{LABEL}={LABEL_VALUE}"]
    stamps: list[str] = []
    for s in api.get("/services", label=label):
        if s["Spec"]["Labels"].get(STACK_LABEL) in names:
            stamps += [s["CreatedAt"], s["UpdatedAt"]]
    for kind in ("/configs", "/networks"):
        for o in api.get(kind, label=label):
            labels = (o.get("Spec") or o).get("Labels") or {}
            if labels.get(STACK_LABEL) in names:
                stamps.append(o.get("CreatedAt") or o.get("Created"))
    for v in api.get("/volumes", label=label).get("Volumes") or []:
        if (v.get("Labels") or {}).get(STACK_LABEL) in names:
            stamps.append(v["CreatedAt"])
    for s in api.get("/secrets"):
        owner = BENCH_SECRET.match(s["Spec"]["Name"])
        if owner and owner.group(1) in names:
            stamps.append(s["CreatedAt"])
    return [_parse_time(t) for t in stamps if t]


def _parse_time(text: str) -> datetime:
    """Engine times: RFC 3339 with up to nanoseconds, ``Z`` or an offset."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise ValueError(f"not an engine time: {text!r}")
    base, _, zone = match.groups()
    return datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone)).astimezone(UTC)


def clear(engine: Engine, api: EngineApi) -> int:
    """Remove the benchmark's stacks (by label and by name), nothing else; returns how many."""
    have = present(api)
    stacks = {n.rsplit("_", 1)[0] for n in have.services}
    stacks |= {n.rsplit("_", 1)[0] for n in have.volumes | have.networks}
    stacks = {s for s in stacks if BENCH_STACK.match(s)}
    if stacks:
        engine.docker("stack", "rm", *sorted(stacks), check=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # task containers of removed services take seconds
        left = [
            c
            for c in api.get("/containers/json?all=1", label=[STACK_LABEL])
            if c["Labels"].get(STACK_LABEL) in stacks
        ]
        if not present(api).services and not left:
            break
        time.sleep(0.5)
    have = present(api)
    ours = [s for s in have.secrets if BENCH_SECRET.match(s)]
    for kind, names in (("secret", ours), ("config", have.configs), ("volume", have.volumes)):
        if names:
            engine.docker(kind, "rm", *sorted(names), check=False)
    for _ in range(40):  # networks linger for a moment after their containers
        networks = present(api).networks
        if not networks:
            break
        engine.docker("network", "rm", *sorted(networks), check=False)
        time.sleep(0.5)
    return len(stacks)


# ---- the ccci workspace -----------------------------------------------------------------


def write_workspace(root: Path, engine: Engine, stacks: int) -> None:
    """Inventory aimed at the private engine, the run-app selector, the orphan policy as
    shipped (env files under abra_dir), and one abra env file per seeded stack."""
    write_inventory(root, engine, HOST, data_root=False)
    (root / "policies" / "janitor.yaml").write_text(
        "apiVersion: ccci/v1\n"
        "kind: StackSelector\n"
        "metadata: {name: run-apps}\n"
        "hosts: ci\n"
        "spec:\n"
        f"  match: '{RUN_APP_MATCH}'\n"
        "---\n"
        "apiVersion: ccci/v1\n"
        "kind: OrphanStackPolicy\n"
        "metadata: {name: reap-killed-runs}\n"
        "hosts: ci\n"
        "spec:\n"
        "  run_apps: {selector: run-apps}\n"
        "  orphan_after: 3h\n"
        "  expires_label: ci.expires\n"
        "  keep: ['^demo-']\n"
        "  reap: [services, secrets, configs, networks, volumes, env_file]\n"
        "  env_file: '{{ abra_dir }}/servers/{server}/{domain}.env'\n",
        encoding="utf-8",
    )
    servers = root / "abra" / "servers" / HOST
    servers.mkdir(parents=True)
    for i in range(stacks):
        domain = stack_name(i).replace("_", ".")
        (servers / f"{domain}.env").write_text(f"TYPE=redis\nDOMAIN={domain}\n", encoding="utf-8")


def janitor_args(root: Path, anchor: str) -> list[str]:
    return ccci_args(root, ["janitor", "--plan"], "--now", anchor)


# ---- in-process profile -----------------------------------------------------------------


def _run_in_process(root: Path, anchor: str) -> tuple[float, int]:
    """One janitor plan through click, output swallowed; returns (seconds, output bytes)."""
    return run_cli_in_process(janitor_args(root, anchor))


# Phases of a janitor plan, timed by wrapping these functions: (label, module, function).
PHASES = (
    ("load inventory + policies (Workspace.targets)", "ccci.run.workspace", "Workspace.targets"),
    ("gather facts (stacks scope) + env files", "ccci.run.workspace", "_gather"),
    ("  engine reads (facts.docker.gather)", "ccci.facts.docker", "gather"),
    ("rules (every host planned in its swarm scope)", "ccci.run.swarmscope", "plan_in_scope"),
    ("render text", "ccci.render.text", "render_plan"),
)


def engine_calls(api: EngineApi) -> list[tuple[str, float]]:
    """The engine's side of each read the janitor makes, one by one (median of 3)."""
    calls: list[tuple[str, Callable[[], object]]] = [
        ("GET /info + /version", lambda: [api.get("/info"), api.get("/version")]),
        ("GET /volumes", lambda: api.get("/volumes")),
        ("GET /networks", lambda: api.get("/networks")),
        (
            "GET /containers/json (stack label)",
            lambda: api.get("/containers/json?all=1", label=[STACK_LABEL]),
        ),
        ("GET /services?status=1", lambda: api.get("/services?status=1")),
        ("GET /tasks", lambda: api.get("/tasks")),
        ("GET /secrets + /configs", lambda: [api.get("/secrets"), api.get("/configs")]),
    ]
    return time_calls(calls)


def profile_janitor(root: Path, anchor: str, api: EngineApi, env: dict[str, str]) -> None:
    """Where a janitor's time goes: start-up (imports), one cold in-process run under
    cProfile, one warm run timed by phase, and the engine's own time per read."""
    print("\n-- start-up: heaviest top-level imports of one janitor --plan (-X importtime) --")
    print("\n".join(heaviest_imports(janitor_args(root, anchor), env, root)))

    main, workers, seconds, size = profiled(lambda: _run_in_process(root, anchor))
    print(
        f"\nprofile: one in-process janitor --plan under cProfile, {seconds:.2f} s wall, {size} B"
    )
    print(f"\n-- main thread, top {PROFILE_TOP} by cumulative time (CLI wrappers left out) --")
    print("\n".join(top([main], not_wrapper, _STRIP)))
    if workers:
        print(f"\n-- {len(workers)} gathering threads, summed, top {PROFILE_TOP} --")
        print("\n".join(top(workers, lambda w: "ccci/" in w or "docker/" in w, _STRIP)))

    total, phases = time_phases(PHASES, lambda: _run_in_process(root, anchor))
    print(
        f"\n-- one more in-process janitor --plan, unprofiled, modules imported: {total:.3f} s --"
    )
    print_timings(phases)
    print("\n-- the engine's time per read, one by one over the socket (median of 3) --")
    print_timings(engine_calls(api))


# ---- report -----------------------------------------------------------------------------


def _summary(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    head = lines[0] if lines else "(no output)"
    alone = next((ln for ln in lines if "left alone" in ln), "")
    return f"{head} {alone}".strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--stacks", type=int, default=50, help="run-app stacks to seed")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command")
    parser.add_argument("--replicas", type=int, default=0, choices=(0, 1), help="per service")
    parser.add_argument("--reset", action="store_true", help="remove the seeded stacks, exit")
    parser.add_argument("--profile", action="store_true", help="also profile one janitor run")
    args = parser.parse_args(argv)
    if not 1 <= args.stacks <= 999 or args.repeat < 1:
        parser.error("--stacks must be 1..999 and --repeat at least 1")

    engine = locked_engine()
    api = EngineApi(engine.socket_path, timeout=60)
    if args.reset:
        print(f"janitor_scale: removed {clear(engine, api)} stacks")
        return 0

    seeded = ensure_seeded(engine, api, args.stacks, args.replicas)
    times = seeded_times(api, args.stacks)
    if max(times) - min(times) > MAX_SPREAD:  # seeded over hours: some would be orphans
        progress("seeded stacks span more than 2h: clearing and seeding afresh")
        clear(engine, api)
        seeded = ensure_seeded(engine, api, args.stacks, args.replicas)
        times = seeded_times(api, args.stacks)
    anchor_time = max(times) + timedelta(minutes=1)
    anchor = anchor_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    version = api.get("/version")
    counts = {
        "stacks": len(
            {s["Spec"]["Labels"].get(STACK_LABEL) for s in api.get("/services")} - {None}
        ),
        "services": len(api.get("/services")),
        "volumes": len(api.get("/volumes").get("Volumes") or []),
        "networks": len(api.get("/networks")),
        "secrets": len(api.get("/secrets")),
        "configs": len(api.get("/configs")),
        "containers": len(api.get("/containers/json?all=1")),
    }

    env = ccci_env(engine, drop=("CCCI_STATE_DIR", "CCCI_INVENTORY"))
    with tempfile.TemporaryDirectory(prefix="ccci-janitor-scale-") as tmp:
        root = Path(tmp)
        write_workspace(root, engine, args.stacks)
        ccci = ccci_bin()
        docker = harness_engine.docker_cli()
        log = root / "janitor.out"
        listing, janitor = measure_by_turns(
            lambda: run_sequence(
                [[docker, "stack", "ls"], [docker, "volume", "ls"], [docker, "secret", "ls"]],
                env,
                root,
            ),
            lambda: run_timed([ccci, *janitor_args(root, anchor)], env, root, log),
            args.repeat,
        )
        ahead = (anchor_time + ORPHANED_AHEAD).strftime("%Y-%m-%dT%H:%M:%SZ")
        orphaned_log = root / "orphaned.out"
        orphaned = measure(
            lambda: run_timed([ccci, *janitor_args(root, ahead)], env, root, orphaned_log),
            args.repeat,
        )
        helps = measure_help(ccci, env, root)
        said = log.read_text(errors="replace")
        # A leftover of someone else's on the shared engine may be "to do by hand": the
        # janitor still walks every seeded stack to a noop, which is what is measured.
        if "No changes." not in said and ", 0 to remove" not in said:
            print(said[-3000:])
            raise SystemExit("janitor_scale: something was planned; every stack should be young")

        width = 40
        rss_mib = max(r.max_rss_kib for r in janitor) / 1024
        print(
            f"ccci janitor_scale: {args.stacks} run-app stacks "
            f"(engine {version.get('Version')}, API {version.get('ApiVersion')})"
        )
        print(
            "  engine holds: " + ", ".join(f"{n} {k}" for k, n in counts.items())
            + (f"  (seeded in {seeded:.0f} s)" if seeded else "  (already seeded)")
        )  # fmt: skip
        print(f"  janitor --plan as of {anchor} (all young): {_summary(log)}")
        rows = [
            (
                "docker stack ls + volume ls + secret ls",
                median(listing),
                f"(median of {args.repeat})",
                "",
            ),
            (
                "ccci janitor --plan",
                median(janitor),
                f"(median of {args.repeat})",
                f"ratio {median(janitor) / median(listing):.2f}x  target <= {JANITOR_TARGET:.0f}x  "
                + verdict(median(janitor) <= JANITOR_TARGET * median(listing)),
            ),
            (
                f"ccci janitor --plan, all {args.stacks} orphaned",
                median(orphaned),
                f"(median of {args.repeat})",
                f"as of {ahead}: {plan_line(orphaned_log)}",
            ),
            help_row(helps, "ccci --help (start-up)"),
        ]
        print_rows(rows, width)
        spread = ", ".join(f"{r.seconds:.2f}" for r in janitor)
        print(f"  {'  janitor runs':<{width}}{spread}")
        print(f"  {'peak RSS (ccci janitor --plan)':<{width}}{rss_mib:5.0f} MiB")

        if args.profile:
            profile_janitor(root, anchor, api, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
