"""Plan time at CI-host scale: ``ccci reconcile --plan`` against the engine's own listing.

Seeds N images and N containers (default 1,500 each) on the harness's private engine and
prints, in one run, the median wall time of ``ccci reconcile --plan`` beside the median of
``docker image ls -a`` + ``docker ps -a`` (the floor any tool that reads the host pays),
their ratio, ``ccci --help`` start-up time and the plan's peak RSS. Targets are printed
beside the figures, never asserted: timings on a shared CI box are advice, not a gate.

The seeded state looks like a CI host's: mostly tagged images (distinct repo:tag), some
dangling ones of assorted ages, and containers that were created but never started
beside exited job containers (a few of them from dangling images). Seeding is idempotent
(label counts show it is done), so only the first run pays for it (about two minutes at
N=1,500 on 2 CPUs, mostly the engine's own per-image and container-start work); re-runs
only measure. ``--reset`` removes the seeded objects, nothing else, and exits.

The plan runs with the prune's disk gate left out and ``--now`` two days after seeding, so
every rule walks every object and a change is rendered for each old one: the expensive
shape. A closed gate or young objects would flatter the figure.

    .venv/bin/python benchmarks/plan_scale.py [--n 1500] [--repeat 3] [--profile]

Issue 13 item 6, on the harness's engine 20.10 (API 1.41), 2 CPUs: 4.33x (0.5.0) -> 2.78x
(0.6.0) -> 1.86-2.29x (0.7.0, timed in blocks) -> 1.87-2.09x (0.8.0) -> 1.86-2.12x (0.8.1,
a slower spell of the machine) -> 1.35-1.53x (0.9.0: 0.49-0.64 s against 0.36-0.44 s, seven
runs, medians of 15). Until 0.9.0 the plan waited for ``/system/df`` (~0.3-0.5 s of the
engine's own time before API 1.42, which sizes everything whatever is asked) for the build
cache; 0.9.0 asks BuildKit itself (``POST /grpc``, ccci.connectors.buildkit: ~0.06 s), so
what is left is the container list and the 300 exited containers' inspects beside the image
list, then the plan and its text. The seeded engine has no build cache, so the prune reads
one that is empty; the eviction's gate is closed, so no image sizes are asked for.
``--profile`` times each read on the engine, ``/system/df`` too, for comparison.

Runs against ``$CCCI_ENGINE_DIR`` (default /var/tmp/ccci-engine). ``--no-swarm`` starts
the engine without a swarm, for a second engine beside the main one: the harness's swarm
port is fixed, so two swarms would clash.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

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
    heaviest_imports,
    help_row,
    load_images,
    locked_engine,
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
    with_filters,
    write_inventory,
)

from harness import engine as harness_engine  # noqa: E402
from harness.engine import Engine, ensure_engine  # noqa: E402

LABEL = "ccci.bench"
ANCHOR_LABEL = "ccci.bench.anchor"  # the plan's --now, fixed at seeding so runs compare
PLAN_AHEAD = timedelta(hours=48)  # seeded containers are then past the policy's 24h
REPOS = 40  # tagged images spread over this many repositories
IMAGE_BATCH = 250  # images per hand-made `docker save` tarball
LOAD_WORKERS = 3  # concurrent `docker load`s: 1.6x faster than one at a time on 2 CPUs
SEED_WORKERS = 8
PLAN_TARGET = 2.0  # plan ≤ 2× the raw listing (issue 13 item 6)


# ---- what to seed -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    index: int
    repo_tag: str | None  # None: dangling
    created: datetime


@dataclass(frozen=True)
class ContainerSpec:
    index: int
    image: int  # index into the image specs
    exited: bool


@dataclass(frozen=True)
class Mix:
    """How N splits into the CI-host shape: a fifth of the images dangling, a fifth of
    the containers (at most 300) run to exit, the rest created and never started."""

    n: int

    @property
    def dangling(self) -> int:
        return self.n // 5

    @property
    def tagged(self) -> int:
        return self.n - self.dangling

    @property
    def exited(self) -> int:
        return min(300, self.n // 5)

    @property
    def created(self) -> int:
        return self.n - self.exited

    def images(self, anchor: datetime) -> list[ImageSpec]:
        """Tagged: up to 60 days old; dangling: mostly days to months old, one in seven
        younger than the 24h age (left alone), all relative to the plan time."""
        rng = random.Random(self.n)
        specs = []
        for i in range(self.tagged):
            created = anchor - PLAN_AHEAD - timedelta(hours=rng.uniform(0, 60 * 24))
            specs.append(ImageSpec(i, f"bench/app{i % REPOS:02d}:build-{i:05d}", created))
        for i in range(self.tagged, self.n):
            hours = rng.uniform(1, 23) if i % 7 == 0 else rng.uniform(25, 90 * 24)
            specs.append(ImageSpec(i, None, anchor - timedelta(hours=hours)))
        return specs

    def containers(self) -> list[ContainerSpec]:
        """Job containers use tagged images; every 25th exited one a dangling image (an
        image re-tagged after its job ran), so the rule's 'used by' path is walked too."""
        specs = []
        for i in range(self.n):
            exited = i < self.exited
            image = i % max(self.tagged, 1)
            if exited and i % 25 == 0 and self.dangling:
                image = self.tagged + (i // 25) % self.dangling
            specs.append(ContainerSpec(i, image, exited))
        return specs


# ---- images: one hand-made `docker save` tarball per batch ------------------------------


def load_tagged_images(engine: Engine, specs: Sequence[ImageSpec], anchor: str) -> list[str]:
    """Load the specs in batches, a few `docker load`s at once (the engine's per-image
    cost is mostly metadata writes, which overlap); returns the ids in spec order."""
    batches = [specs[i : i + IMAGE_BATCH] for i in range(0, len(specs), IMAGE_BATCH)]
    labels = {LABEL: "1", ANCHOR_LABEL: anchor}
    loaded, lock = [0], threading.Lock()

    def load(batch: Sequence[ImageSpec]) -> list[str]:
        images = [
            TarImage(
                marker=f"ccci-bench {spec.index} {anchor}",
                repo_tag=spec.repo_tag,
                created=spec.created,
                history=f"ccci-bench image {spec.index}",
            )
            for spec in batch
        ]
        ids = load_images(engine, images, labels)
        with lock:
            loaded[0] += len(batch)
            progress(f"loaded {loaded[0]}/{len(specs)} images")
        return ids

    with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
        return [ident for ids in pool.map(load, batches) for ident in ids]


# ---- containers -------------------------------------------------------------------------


def make_container(api: EngineApi, spec: ContainerSpec, ref: str) -> None:
    """`docker create`, and for exited ones `docker run ... true` (start, wait)."""
    labels = {LABEL: "1", "ci.job": f"job-{spec.index}"}
    create_container(api, f"ccci-bench-{spec.index:05d}", ref, labels, spec.exited)


def create_containers(api: EngineApi, specs: Sequence[ContainerSpec], refs: list[str]) -> None:
    done = 0
    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        for _ in pool.map(lambda s: make_container(api, s, refs[s.image]), specs):
            done += 1
            if done % 250 == 0 or done == len(specs):
                progress(f"created {done}/{len(specs)} containers")


# ---- seeding, idempotent ----------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    anchor: str  # RFC 3339; the plan runs as of this time
    seconds: float  # 0 when already seeded


def _bench_counts(api: EngineApi) -> tuple[list[dict[str, Any]], int, int]:
    images = api.get("/images/json?all=1", label=[f"{LABEL}=1"])
    containers = len(api.get("/containers/json?all=1", label=[f"{LABEL}=1"]))
    exited = len(api.get("/containers/json?all=1", label=[f"{LABEL}=1"], status=["exited"]))
    return images, containers, exited


def clear(api: EngineApi) -> tuple[int, int]:
    """Remove only what this benchmark seeded (by label); returns (containers, images)."""
    label = {"label": [f"{LABEL}=1"]}
    containers = len(api.get("/containers/json?all=1", **label))
    images = len(api.get("/images/json?all=1", **label))
    api.call("POST", with_filters("/containers/prune", label))
    # dangling=false prunes tagged images too, as `docker image prune --all` does
    api.call("POST", with_filters("/images/prune", {**label, "dangling": ["false"]}), timeout=900)
    return containers, images


def ensure_seeded(engine: Engine, api: EngineApi, mix: Mix) -> Seeded:
    """Seed the mix unless label counts show it is there; a partial or other-N seed
    (a killed run, another --n, a test's reset) is cleared and seeded afresh."""
    images, containers, exited = _bench_counts(api)
    anchors = {(img.get("Labels") or {}).get(ANCHOR_LABEL) for img in images}
    if (len(images), containers, exited) == (mix.n, mix.n, mix.exited) and len(anchors) == 1:
        return Seeded(anchor=str(anchors.pop()), seconds=0.0)
    start = time.perf_counter()
    if images or containers:
        progress("clearing a partial or different seed")
        clear(api)
    now = datetime.now(UTC).replace(microsecond=0)
    anchor = now + PLAN_AHEAD
    stamp = anchor.strftime("%Y-%m-%dT%H:%M:%SZ")
    image_specs = mix.images(anchor)
    ids = load_tagged_images(engine, image_specs, stamp)
    refs = [spec.repo_tag or ident for spec, ident in zip(image_specs, ids, strict=True)]
    create_containers(api, mix.containers(), refs)
    return Seeded(anchor=stamp, seconds=time.perf_counter() - start)


# ---- the ccci workspace -----------------------------------------------------------------


def write_workspace(root: Path, engine: Engine) -> None:
    """Inventory aimed at the private engine, and the shipped policies with the prune's disk
    gate left out."""
    write_inventory(root, engine, "cc-ci")
    copy_policies(root)


def plan_args(root: Path, anchor: str) -> list[str]:
    return ccci_args(root, ["reconcile", "--plan"], "--now", anchor)


# ---- in-process profile -----------------------------------------------------------------


def engine_calls(api: EngineApi) -> list[tuple[str, float]]:
    """The engine's side of each read ccci makes, timed one by one over the socket
    (median of 3): the floor under gathering, without the SDK or thread pools."""
    from ccci.connectors.local import LocalConnector

    exited = [c["Id"] for c in api.get("/containers/json?all=1", status=["exited"])]
    swarm = (api.call("GET", "/info").get("Swarm") or {}).get("ControlAvailable")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("GET /images/json", lambda: api.call("GET", "/images/json")),
        ("GET /containers/json?all=1", lambda: api.call("GET", "/containers/json?all=1")),
        (
            "POST /grpc: BuildKit's DiskUsage (ccci's client)",
            lambda: LocalConnector("cc-ci", f"unix://{api.socket_path}").build_cache_records(),
        ),
        (
            "GET /system/df?type=build-cache (not read by this plan)",
            lambda: api.call("GET", "/system/df?type=build-cache"),
        ),
        (
            f"GET /containers/{{id}}/json x{len(exited)} (exited)",
            lambda: [api.call("GET", f"/containers/{i}/json") for i in exited],
        ),
        (
            "GET /info + /version + /volumes + /networks",
            lambda: [api.call("GET", p) for p in ("/info", "/version", "/volumes", "/networks")],
        ),
    ]
    if swarm:
        calls.append(
            (
                "GET /services + /tasks + /secrets + /configs",
                lambda: [
                    api.call("GET", p)
                    for p in ("/services?status=1", "/tasks", "/secrets", "/configs")
                ],
            )
        )
    return time_calls(calls)


# Phases of a plan, timed by wrapping these functions: (label, module, function).
PHASES = (
    ("gather facts", "ccci.run.workspace", "_gather"),
    ("  containers: list + inspect exited ones", "ccci.facts.docker", "_containers"),
    ("  build cache: BuildKit's own call", "ccci.facts.docker", "_build_cache_answer"),
    ("rules (every host planned in its swarm scope)", "ccci.run.swarmscope", "plan_in_scope"),
    ("render text", "ccci.render.text", "render_plan"),
)


def _run_plan_in_process(root: Path, anchor: str) -> tuple[float, int]:
    """One plan through click, output swallowed; returns (seconds, output bytes)."""
    return run_cli_in_process(plan_args(root, anchor))


def profile_plan(root: Path, anchor: str, api: EngineApi, env: dict[str, str]) -> None:
    """Show where a plan's time goes: its start-up imports, one cold run under cProfile
    (main thread, and the gathering threads summed, so above wall time), one warm run
    timed by phase, and the engine's own time for each read ccci makes."""
    print("\n-- start-up: heaviest top-level imports of one plan (python -X importtime) --")
    print("\n".join(heaviest_imports(plan_args(root, anchor), env, root)))
    main, workers, seconds, size = profiled(lambda: _run_plan_in_process(root, anchor))
    print(f"\nprofile: one in-process plan under cProfile, {seconds:.2f} s wall, {size} B output")
    print(f"\n-- main thread, top {PROFILE_TOP} by cumulative time (CLI wrappers left out) --")
    print("\n".join(top([main], not_wrapper)))
    if workers:
        print(
            f"\n-- {len(workers)} gathering threads, summed, top {PROFILE_TOP} "
            "(ccci and docker/api frames) --"
        )
        print("\n".join(top(workers, lambda w: "ccci/" in w or "docker/api/" in w)))

    total, phases = time_phases(PHASES, lambda: _run_plan_in_process(root, anchor))
    print(f"\n-- one more in-process plan, unprofiled, modules already imported: {total:.2f} s --")
    print_timings(phases)
    print("\n-- the engine's time per read, one by one over the socket (median of 3) --")
    print_timings(engine_calls(api))


# ---- report -----------------------------------------------------------------------------


def _engine(no_swarm: bool) -> Engine:
    if not no_swarm:
        return ensure_engine()
    # The harness has no switch for it; skipping its swarm step is all that differs.
    with mock.patch.object(harness_engine, "_ensure_swarm", lambda engine, timeout: None):
        return ensure_engine()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1500, help="images and containers each")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command")
    parser.add_argument("--reset", action="store_true", help="remove the seeded objects, exit")
    parser.add_argument("--profile", action="store_true", help="also cProfile one plan")
    parser.add_argument("--no-swarm", action="store_true", help="start the engine sans swarm")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be at least 1")

    engine = locked_engine(lambda: _engine(args.no_swarm))
    api = EngineApi(engine.socket_path)
    if args.reset:
        containers, images = clear(api)
        print(f"plan_scale: removed {containers} containers and {images} images")
        return 0

    mix = Mix(args.n)
    seeded = ensure_seeded(engine, api, mix)
    version = api.call("GET", "/version")
    swarm = (api.call("GET", "/info").get("Swarm") or {}).get("LocalNodeState") or "inactive"
    total_images = len(api.call("GET", "/images/json?all=1"))
    total_containers = len(api.call("GET", "/containers/json?all=1"))

    env = ccci_env(engine)
    with tempfile.TemporaryDirectory(prefix="ccci-plan-scale-") as tmp:
        root = Path(tmp)
        write_workspace(root, engine)
        ccci = ccci_bin()
        docker = harness_engine.docker_cli()
        plan_log = root / "plan.out"
        listing, plan = measure_by_turns(
            lambda: run_sequence([[docker, "image", "ls", "-a"], [docker, "ps", "-a"]], env, root),
            lambda: run_timed([ccci, *plan_args(root, seeded.anchor)], env, root, plan_log),
            args.repeat,
        )
        helps = measure_help(ccci, env, root)

        ratio = median(plan) / median(listing)
        rss_mib = max(r.max_rss_kib for r in plan) / 1024
        label_width = 36
        print(
            f"ccci plan_scale: {total_images} images, {total_containers} containers "
            f"(engine {version.get('Version')}, API {version.get('ApiVersion')}, swarm {swarm})"
        )
        print(
            f"  seeded: {mix.tagged} tagged + {mix.dangling} dangling images, "
            f"{mix.created} created + {mix.exited} exited containers"
            + (f" (took {seeded.seconds:.0f} s)" if seeded.seconds else " (already there)")
        )
        print(f"  plan as of {seeded.anchor}, disk gate open: {plan_line(plan_log)}")
        rows = [
            (
                "docker image ls -a + docker ps -a",
                median(listing),
                f"(median of {args.repeat})",
                "",
            ),
            (
                "ccci reconcile --plan",
                median(plan),
                f"(median of {args.repeat})",
                f"ratio {ratio:.2f}x  target <= {PLAN_TARGET}x  {verdict(ratio <= PLAN_TARGET)}",
            ),
            help_row(helps),
        ]
        print_rows(rows, label_width)
        print(f"  {'peak RSS (ccci reconcile --plan)':<{label_width}}{rss_mib:5.0f} MiB")

        if args.profile:
            profile_plan(root, seeded.anchor, api, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
