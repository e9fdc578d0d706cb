"""``ccci status`` end to end on a busy CI host, beside the engine's own ``docker info``.

``ccci status`` is the runbook's first screen: an operator runs it when something is
wrong, often on a host under load, so it must answer fast. It gathers the facts, plans
every policy, reads the journal and renders; this seeds a moderate host on the harness's
private engine and prints, in one run, the median wall time of ``ccci status`` (text and
``--output json``, end to end: interpreter start, imports, policy load, gather, plan,
journal, render) beside the median of ``docker info`` + ``docker ps -a`` (the floor of
any tool that says how the host is), ``ccci --help`` start-up and the peak RSS. The target
is printed beside the figure, never asserted: timings on a shared CI box are advice.

The seeded host (all labelled ``ccci.bench=status``, so the other benchmarks' seeds are
left alone): N images (default 300; a fifth dangling, days to weeks old), N containers
(a fifth run to exit, the rest created), S stacks (default 20): three in four are
long-lived services (a service, a volume, a network), the rest are what killed CI runs
leave (a run-app's volume, network and abra's unlabelled secrets, no service). The
policies are the shipped ones, with the prune's disk gate left out so the prune rule walks every
image, and a journal of a year of nightly runs (about 5,000 lines) for the last-run line.

Seeding is idempotent (label counts show it is done), so only the first run pays for it;
``--reset`` removes the seeded objects, nothing else, and exits. ``--profile`` adds an
in-process cProfile and a per-phase timing of one status.

    .venv/bin/python benchmarks/status_scale.py [--n 300] [--stacks 20] [--repeat 5] [--profile]

Runs against ``$CCCI_ENGINE_DIR`` (default /var/tmp/ccci-engine).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # harness/ is not installed; it lives beside ccci/

from benchkit import (  # noqa: E402
    PROFILE_TOP,
    EngineApi,
    TarImage,
    ccci_args,
    ccci_bin,
    ccci_env,
    copy_policies,
    create_container,
    help_row,
    load_images,
    locked_engine,
    measure,
    measure_help,
    median,
    print_rows,
    print_timings,
    profiled,
    progress,
    run_cli_in_process,
    run_sequence,
    run_timed,
    time_phases,
    top,
    verdict,
    with_filters,
    write_inventory,
)

from harness import engine as harness_engine  # noqa: E402
from harness.engine import Engine  # noqa: E402
from harness.images import BASE_TAG, ensure_busybox_image  # noqa: E402

LABEL = "ccci.bench"
LABEL_VALUE = "status"
STACK_LABEL = "com.docker.stack.namespace"
LIVE_STACK = "bench{:02d}_status_org"  # long-lived services: not run-apps, gates stay open
LEFTOVER_STACK = "st{:02d}-{}_ci_bench_org"  # a killed run-app's leftovers (run-app name)
LEFTOVER = re.compile(r"^st\d{2}-[0-9a-f]{6}_ci_bench_org")
SECRETS = ("db_password", "admin_token")
HOST = "cc-ci"
IMAGE_BATCH = 150
SEED_WORKERS = 8
JOURNAL_NIGHTS = 365
JOURNAL_CHANGES = 12  # changes per nightly run: 365 x 13 lines, about 4,700
STATUS_TARGET = 0.5  # seconds, end to end


BENCH = {"label": [f"{LABEL}={LABEL_VALUE}"]}


# ---- what to seed -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """How N and S split: a fifth of the images dangling, a fifth of the containers (at
    most 60) run to exit; three stacks in four live, the rest leftovers."""

    n: int
    stacks: int

    @property
    def dangling(self) -> int:
        return self.n // 5

    @property
    def exited(self) -> int:
        return min(60, self.n // 5)

    @property
    def leftovers(self) -> int:
        return self.stacks // 4

    @property
    def live(self) -> int:
        return self.stacks - self.leftovers

    def live_names(self) -> list[str]:
        return [LIVE_STACK.format(i) for i in range(self.live)]

    def leftover_names(self) -> list[str]:
        return [
            LEFTOVER_STACK.format(i, hashlib.sha256(f"{i}".encode()).hexdigest()[:6])
            for i in range(self.leftovers)
        ]


def seed_images(engine: Engine, mix: Mix, now: datetime) -> list[str]:
    """Tagged images up to 60 days old, dangling ones 1 hour to 90 days old; returns the
    refs containers use (tag, or id for dangling)."""
    rng = random.Random(mix.n)
    tagged = mix.n - mix.dangling
    specs: list[tuple[int, str | None, datetime]] = []
    for i in range(mix.n):
        if i < tagged:
            age = timedelta(hours=rng.uniform(1, 60 * 24))
            specs.append((i, f"bench/status{i % 20:02d}:build-{i:04d}", now - age))
        else:
            specs.append((i, None, now - timedelta(hours=rng.uniform(1, 90 * 24))))
    refs: list[str] = []
    seed = now.isoformat()
    for start in range(0, len(specs), IMAGE_BATCH):
        batch = specs[start : start + IMAGE_BATCH]
        images = [
            TarImage(
                f"ccci-bench-status {index} {seed}",
                tag,
                created,
                f"ccci-bench status image {index}",
            )
            for index, tag, created in batch
        ]
        ids = load_images(engine, images, {LABEL: LABEL_VALUE})
        refs += [tag or ident for (_, tag, _), ident in zip(batch, ids, strict=True)]
        progress(f"loaded {len(refs)}/{mix.n} images")
    return refs


def seed_containers(api: EngineApi, mix: Mix, refs: list[str]) -> None:
    """Job containers: created, and the first ``exited`` of them run to exit; the
    dangling images are left mostly unused, so the prune plans to remove the old ones."""

    tagged = mix.n - mix.dangling

    def make(i: int) -> None:
        # Jobs run tagged images; every 25th exited one a dangling image (re-tagged since),
        # so the prune rule's "used by a container" path is walked too.
        image = refs[i % max(tagged, 1)]
        if i < mix.exited and i % 25 == 0 and mix.dangling:
            image = refs[tagged + (i // 25) % mix.dangling]
        labels = {LABEL: LABEL_VALUE, "ci.job": f"job-{i}"}
        create_container(api, f"ccci-bench-status-{i:04d}", image, labels, i < mix.exited)

    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        list(pool.map(make, range(mix.n)))
    progress(f"created {mix.n} containers ({mix.exited} exited)")


def seed_stacks(api: EngineApi, mix: Mix, replicas: int) -> None:
    """Live stacks as `docker stack deploy` labels them; leftovers as a killed run leaves
    them (its volume, network and abra's external, unlabelled secrets)."""

    def stack_objects(stack: str) -> str:
        labels = {STACK_LABEL: stack, LABEL: LABEL_VALUE}
        net = api.call(
            "POST",
            "/networks/create",
            {"Name": f"{stack}_default", "Driver": "overlay", "Labels": labels},
        )
        api.call("POST", "/volumes/create", {"Name": f"{stack}_data", "Labels": labels})
        return str(net["Id"])

    def live(stack: str) -> None:
        net = stack_objects(stack)
        labels = {STACK_LABEL: stack, LABEL: LABEL_VALUE}
        api.call(
            "POST",
            "/services/create",
            {
                "Name": f"{stack}_app",
                "Labels": labels,
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": BASE_TAG,
                        "Command": ["sleep", "86400"],
                        "Labels": labels,
                        "StopGracePeriod": 1_000_000_000,
                    },
                    "Networks": [{"Target": net}],
                },
                "Mode": {"Replicated": {"Replicas": replicas}},
            },
        )

    def leftover(stack: str) -> None:
        stack_objects(stack)
        for name in SECRETS:
            data = base64.b64encode(b"s3cret").decode()
            api.call("POST", "/secrets/create", {"Name": f"{stack}_{name}_v1", "Data": data})

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(live, mix.live_names()))
        list(pool.map(leftover, mix.leftover_names()))
    progress(f"created {mix.live} live stacks and {mix.leftovers} leftover ones")


# ---- seeding, idempotent ----------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    images: int
    containers: int
    exited: int
    services: int
    volumes: int
    secrets: int


def counts(api: EngineApi) -> Counts:
    volumes = api.get("/volumes", **BENCH).get("Volumes") or []
    secrets = [s for s in api.get("/secrets") if LEFTOVER.match(s["Spec"]["Name"])]
    return Counts(
        images=len(api.get("/images/json?all=1", **BENCH)),
        containers=len(api.get("/containers/json?all=1", **BENCH)),
        exited=len(api.get("/containers/json?all=1", **BENCH, status=["exited"])),
        services=len(api.get("/services", **BENCH)),
        volumes=len(volumes),
        secrets=len(secrets),
    )


def wanted(mix: Mix) -> Counts:
    return Counts(mix.n, mix.n, mix.exited, mix.live, mix.stacks, mix.leftovers * len(SECRETS))


def clear(api: EngineApi) -> Counts:
    """Remove only what this benchmark seeded; returns what there was."""
    had = counts(api)
    for service in api.get("/services", **BENCH):
        api.call("DELETE", f"/services/{service['ID']}")
    deadline = time.monotonic() + 120

    def tasks_left() -> bool:
        listed = api.get("/containers/json?all=1", **BENCH)
        return any(STACK_LABEL in (c.get("Labels") or {}) for c in listed)

    while tasks_left():  # the services' task containers go asynchronously
        if time.monotonic() > deadline:
            raise SystemExit("status_scale: the seeded services' tasks did not go")
        time.sleep(0.5)
    api.call("POST", with_filters("/containers/prune", BENCH))
    for secret in api.get("/secrets"):
        if LEFTOVER.match(secret["Spec"]["Name"]):
            api.call("DELETE", f"/secrets/{secret['ID']}")
    for _ in range(60):  # a network lingers while its service's tasks shut down
        nets = api.get("/networks", **BENCH)
        for net in nets:
            with contextlib.suppress(RuntimeError):
                api.call("DELETE", f"/networks/{net['Id']}")
        if not api.get("/networks", **BENCH):
            break
        time.sleep(0.5)
    for volume in api.get("/volumes", **BENCH).get("Volumes") or []:
        api.call("DELETE", f"/volumes/{volume['Name']}")
    api.call("POST", with_filters("/images/prune", {**BENCH, "dangling": ["false"]}), timeout=900)
    return had


def ensure_seeded(engine: Engine, api: EngineApi, mix: Mix, replicas: int) -> float:
    """Seed unless the counts show it is there; returns the seconds seeding took (0 if not)."""
    have = counts(api)
    if have == wanted(mix):
        return 0.0
    start = time.perf_counter()
    if have != Counts(0, 0, 0, 0, 0, 0):
        progress(f"clearing a partial or different seed ({have})")
        clear(api)
    ensure_busybox_image(engine)
    now = datetime.now(UTC)
    refs = seed_images(engine, mix, now)
    seed_containers(api, mix, refs)
    seed_stacks(api, mix, replicas)
    return time.perf_counter() - start


def write_journal(path: Path, now: datetime) -> int:
    """A year of nightly runs: each a dozen change lines and a recap; returns the lines."""
    lines = []
    for night in range(JOURNAL_NIGHTS, 0, -1):
        when = (now - timedelta(days=night)).replace(hour=3, minute=7)
        run = hashlib.sha256(f"run {night}".encode()).hexdigest()[:12]
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for i in range(JOURNAL_CHANGES):
            image = hashlib.sha256(f"{night} {i}".encode()).hexdigest()
            lines.append(
                {
                    "type": "change",
                    "time": stamp,
                    "run": run,
                    "host": HOST,
                    "address": f"image:sha256:{image}",
                    "action": "delete",
                    "label": "<none>:<none>",
                    "policy": "ci-docker-prune",
                    "source": "policies/prune.yaml:14",
                    "reason": "dangling, created 3 days ago ≥ 24h",
                    "status": "ok",
                    "message": "done",
                    "bytes_freed": 5 << 20,
                }
            )
        lines.append(
            {
                "type": "recap",
                "time": stamp,
                "run": run,
                "host": HOST,
                "ok": JOURNAL_CHANGES + 20,
                "changed": JOURNAL_CHANGES,
                "failed": 0,
                "skipped": 0,
                "converged": True,
                "remaining": [],
                "bytes_freed": JOURNAL_CHANGES * (5 << 20),
            }
        )
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines), "utf-8")
    return len(lines)


# ---- the ccci workspace -----------------------------------------------------------------


def write_workspace(root: Path, engine: Engine) -> int:
    """Inventory at the private engine, the shipped policies with the prune's disk gate left out,
    an empty abra dir and a year of journal; returns the journal's lines."""
    write_inventory(root, engine, HOST)
    copy_policies(root)
    return write_journal(root / "state" / "journal.jsonl", datetime.now(UTC))


def status_args(root: Path, *extra: str) -> list[str]:
    return ccci_args(root, ["status"], *extra)


# ---- in-process profile -----------------------------------------------------------------


def _run_in_process(root: Path) -> tuple[float, int]:
    return run_cli_in_process(status_args(root))


PHASES = (
    ("load policies + inventory", "ccci.run.workspace", "load_for_hosts"),
    ("gather facts", "ccci.run.workspace", "_gather"),
    ("rules (every host planned in its swarm scope)", "ccci.run.swarmscope", "plan_in_scope"),
    ("read the journal", "ccci.state.journal", "read"),
    ("build the status", "ccci.views.status", "host_status"),
    ("render text", "ccci.render.status", "render_text"),
)


def profile_status(root: Path, env: dict[str, str]) -> None:
    """Where the time goes: start-up (imports), one cProfiled status, phase timings."""
    # The real command under -X importtime: every import status makes, lazy ones included.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", ccci_bin(), *status_args(root)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=root,
    )
    top_level = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if len(name) - len(name.lstrip()) == 1:  # not nested in another import
                top_level.append((int(parts[1]), name.strip()))
    top_level.sort(reverse=True)
    total = sum(micros for micros, _ in top_level) / 1e6
    print(f"\n-- imports of one `ccci status` (python -X importtime): {total:.3f} s in all --")
    for micros, name in top_level[:10]:
        print(f"  {micros / 1e6:6.3f} s  {name}")

    main, workers, seconds, size = profiled(lambda: _run_in_process(root))
    print(f"\nprofile: one in-process status under cProfile, {seconds:.2f} s, {size} B output")
    print(f"\n-- main thread, top {PROFILE_TOP} by cumulative time --")
    print("\n".join(top([main], lambda w: not any(x in w for x in ("click/", "benchmarks/")))))
    if workers:
        print(f"\n-- {len(workers)} gathering threads, summed --")
        print("\n".join(top(workers, lambda w: "ccci/" in w or "docker/api/" in w)))
    total, phases = time_phases(PHASES, lambda: _run_in_process(root))
    print(f"\n-- one more in-process status, unprofiled, imports done: {total:.2f} s --")
    print_timings(phases, 36)


# ---- report -----------------------------------------------------------------------------


def _shape(log: Path) -> str:
    """What the status said, from its JSON: the figure is only as good as the work."""
    document = json.loads(log.read_text("utf-8"))
    (host,) = document["hosts"]
    run = host["last_run"] or {}
    return (
        f"{'healthy' if host['healthy'] else 'needs attention'} "
        f"({len(host['problems'])} problem(s)), {len(host['live_stacks'])} live stacks, "
        f"{len(host['orphans'])} orphans, {host['pending']} pending, "
        f"{len(host['gates'])} gates, {len(host['manual'])} manual; "
        f"last run {run.get('time', 'none')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="images and containers each")
    parser.add_argument("--stacks", type=int, default=20, help="stacks (3/4 live, 1/4 leftovers)")
    parser.add_argument("--replicas", type=int, default=0, help="tasks per live service")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command")
    parser.add_argument("--reset", action="store_true", help="remove the seeded objects, exit")
    parser.add_argument("--profile", action="store_true", help="also profile one status")
    args = parser.parse_args(argv)
    if args.n < 1 or args.stacks < 0 or args.repeat < 1 or args.replicas < 0:
        parser.error("--n and --repeat must be at least 1, --stacks and --replicas at least 0")

    engine = locked_engine()
    api = EngineApi(engine.socket_path)
    if args.reset:
        had = clear(api)
        print(
            f"status_scale: removed {had.images} images, {had.containers} containers, "
            f"{had.services} services, {had.volumes} volumes, {had.secrets} secrets"
        )
        return 0

    mix = Mix(args.n, args.stacks)
    seeded = ensure_seeded(engine, api, mix, args.replicas)
    version = api.call("GET", "/version")
    total_images = len(api.call("GET", "/images/json?all=1"))
    total_containers = len(api.call("GET", "/containers/json?all=1"))
    total_services = len(api.call("GET", "/services"))

    env = ccci_env(engine, drop=("CCCI_STATE_DIR", "CCCI_INVENTORY", "CCCI_METRICS"))
    with tempfile.TemporaryDirectory(prefix="ccci-status-scale-") as tmp:
        root = Path(tmp)
        journal_lines = write_workspace(root, engine)
        ccci = ccci_bin()
        docker = harness_engine.docker_cli()
        listing = measure(
            lambda: run_sequence([[docker, "info"], [docker, "ps", "-a"]], env, root),
            args.repeat,
        )
        text = measure(
            lambda: run_timed([ccci, *status_args(root)], env, root, root / "status.out"),
            args.repeat,
        )
        as_json = measure(
            lambda: run_timed(
                [ccci, *status_args(root, "--output", "json")], env, root, root / "status.json"
            ),
            args.repeat,
        )
        helps = measure_help(ccci, env, root)

        width = 34
        print(
            f"ccci status_scale: {total_images} images, {total_containers} containers, "
            f"{total_services} services (engine {version.get('Version')}, "
            f"API {version.get('ApiVersion')})"
        )
        print(
            f"  seeded: {mix.n - mix.dangling} tagged + {mix.dangling} dangling images, "
            f"{mix.n - mix.exited} created + {mix.exited} exited containers, "
            f"{mix.live} live stacks ({args.replicas} replicas) + {mix.leftovers} leftovers"
            + (f" (took {seeded:.0f} s)" if seeded else " (already there)")
        )
        print(f"  journal: {journal_lines} lines; disk gate open")
        print(f"  status: {_shape(root / 'status.json')}")
        rows = [
            ("docker info + docker ps -a", median(listing), f"(median of {args.repeat})", ""),
            (
                "ccci status",
                median(text),
                f"(median of {args.repeat})",
                f"target <= {STATUS_TARGET} s  {verdict(median(text) <= STATUS_TARGET)}"
                f"  ({median(text) / median(listing):.1f}x the listing)",
            ),
            (
                "ccci status --output json",
                median(as_json),
                f"(median of {args.repeat})",
                f"target <= {STATUS_TARGET} s  {verdict(median(as_json) <= STATUS_TARGET)}",
            ),
            help_row(helps),
        ]
        print_rows(rows, width)
        rss = max(r.max_rss_kib for r in text) / 1024
        print(f"  {'peak RSS (ccci status)':<{width}}{rss:5.0f} MiB")
        if args.profile:
            profile_status(root, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
