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

The plan runs with the disk gate lowered to 0% and ``--now`` two days after seeding, so
every rule walks every object and a change is rendered for each old one: the expensive
shape. A closed gate or young objects would flatter the figure.

    .venv/bin/python benchmarks/plan_scale.py [--n 1500] [--repeat 3] [--profile]

Runs against ``$CCCI_ENGINE_DIR`` (default /var/tmp/ccci-engine). ``--no-swarm`` starts
the engine without a swarm, for a second engine beside the main one: the harness's swarm
port is fixed, so two swarms would clash.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import http.client
import importlib
import io
import json
import os
import pstats
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # harness/ is not installed; it lives beside ccci/

from harness import engine as harness_engine  # noqa: E402
from harness.engine import Engine, ensure_engine  # noqa: E402
from harness.images import CMD, PATH_ENV, base_layer  # noqa: E402

LABEL = "ccci.bench"
ANCHOR_LABEL = "ccci.bench.anchor"  # the plan's --now, fixed at seeding so runs compare
PLAN_AHEAD = timedelta(hours=48)  # seeded containers are then past the policy's 24h
REPOS = 40  # tagged images spread over this many repositories
IMAGE_BATCH = 250  # images per hand-made `docker save` tarball
LOAD_WORKERS = 3  # concurrent `docker load`s: 1.6x faster than one at a time on 2 CPUs
SEED_WORKERS = 8
HELP_REPEAT = 10
PLAN_TARGET = 1.5  # plan ≤ 1.5× the raw listing
HELP_TARGET = 0.15  # seconds
PROFILE_TOP = 15
_MTIME = 946684800  # fixed tar mtimes: the shared base layer keeps one diff_id
_STARTED = time.perf_counter()


# ---- the engine API ---------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class EngineApi:
    """A few engine API calls over the unix socket.

    Seeding 1,500 containers through the docker CLI would start 1,500 CLI processes;
    one request each leaves the engine's own work as the only cost. Also used to time the
    engine's side of each read ccci makes.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def call(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
        conn = _UnixConnection(self.socket_path, timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status} {data[:300]!r}")
        return json.loads(data) if data.strip() else None

    def get(self, path: str, **filters: list[str]) -> Any:
        return self.call("GET", _with_filters(path, filters))


def _with_filters(path: str, filters: dict[str, list[str]]) -> str:
    if not filters:
        return path
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}filters={urllib.parse.quote(json.dumps(filters))}"


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


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
    tar.addfile(info, io.BytesIO(data))


def _top_layer(marker: str) -> bytes:
    """A tiny layer holding a unique marker: each image gets its own diff_id and id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_bytes(tar, "ccci-marker", marker.encode())
    return buf.getvalue()


def write_image_tarball(out: IO[bytes], specs: Sequence[ImageSpec], anchor: str) -> list[str]:
    """Write one `docker save` archive holding every spec; returns their image ids.

    The busybox base layer is stored once and shared; `docker load` takes the manifests
    in one go: one CLI call and one archive per batch instead of per image.
    """
    base = base_layer()
    base_hex = hashlib.sha256(base).hexdigest()
    manifest, ids = [], []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_bytes(tar, f"{base_hex}/layer.tar", base)
        for spec in specs:
            top = _top_layer(f"ccci-bench {spec.index} {anchor}")
            top_hex = hashlib.sha256(top).hexdigest()
            stamp = _rfc3339(spec.created)
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "created": stamp,
                    "config": {
                        "Env": [PATH_ENV],
                        "Cmd": CMD,
                        "Labels": {LABEL: "1", ANCHOR_LABEL: anchor},
                    },
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": [f"sha256:{base_hex}", f"sha256:{top_hex}"],
                    },
                    "history": [
                        {"created": stamp, "created_by": "ccci-bench busybox base"},
                        {"created": stamp, "created_by": f"ccci-bench image {spec.index}"},
                    ],
                },
                sort_keys=True,
            ).encode()
            config_hex = hashlib.sha256(config).hexdigest()
            _tar_bytes(tar, f"{top_hex}/layer.tar", top)
            _tar_bytes(tar, f"{config_hex}.json", config)
            manifest.append(
                {
                    "Config": f"{config_hex}.json",
                    "RepoTags": [spec.repo_tag] if spec.repo_tag else None,
                    "Layers": [f"{base_hex}/layer.tar", f"{top_hex}/layer.tar"],
                }
            )
            ids.append(f"sha256:{config_hex}")
        _tar_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    return ids


def load_images(engine: Engine, specs: Sequence[ImageSpec], anchor: str) -> list[str]:
    """Load the specs in batches, a few `docker load`s at once (the engine's per-image
    cost is mostly metadata writes, which overlap); returns the ids in spec order."""
    tmp = os.path.join(engine.state_dir, "tmp")  # beside the engine, as harness.images does
    os.makedirs(tmp, exist_ok=True)
    batches = [specs[i : i + IMAGE_BATCH] for i in range(0, len(specs), IMAGE_BATCH)]
    loaded, lock = [0], threading.Lock()

    def load(batch: Sequence[ImageSpec]) -> list[str]:
        with tempfile.NamedTemporaryFile(dir=tmp, suffix=".tar") as fh:
            ids = write_image_tarball(fh, batch, anchor)
            fh.flush()
            engine.docker("load", "-q", "-i", fh.name, timeout=900)
        with lock:
            loaded[0] += len(batch)
            _progress(f"loaded {loaded[0]}/{len(specs)} images")
        return ids

    with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
        return [ident for ids in pool.map(load, batches) for ident in ids]


# ---- containers -------------------------------------------------------------------------


def make_container(api: EngineApi, spec: ContainerSpec, ref: str) -> None:
    """`docker create`, and for exited ones `docker run ... true` (start, wait)."""
    name = f"ccci-bench-{spec.index:05d}"
    body = {
        "Image": ref,
        "Cmd": ["true"],
        "Labels": {LABEL: "1", "ci.job": f"job-{spec.index}"},
        "HostConfig": {"NetworkMode": "none"},
    }
    created = api.call("POST", f"/containers/create?name={name}", body)
    if spec.exited:
        api.call("POST", f"/containers/{created['Id']}/start")
        api.call("POST", f"/containers/{created['Id']}/wait?condition=not-running")


def create_containers(api: EngineApi, specs: Sequence[ContainerSpec], refs: list[str]) -> None:
    done = 0
    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        for _ in pool.map(lambda s: make_container(api, s, refs[s.image]), specs):
            done += 1
            if done % 250 == 0 or done == len(specs):
                _progress(f"created {done}/{len(specs)} containers")


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
    api.call("POST", _with_filters("/containers/prune", label))
    # dangling=false prunes tagged images too, as `docker image prune --all` does
    api.call("POST", _with_filters("/images/prune", {**label, "dangling": ["false"]}), timeout=900)
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
        _progress("clearing a partial or different seed")
        clear(api)
    now = datetime.now(UTC).replace(microsecond=0)
    anchor = now + PLAN_AHEAD
    stamp = anchor.strftime("%Y-%m-%dT%H:%M:%SZ")
    image_specs = mix.images(anchor)
    ids = load_images(engine, image_specs, stamp)
    refs = [spec.repo_tag or ident for spec, ident in zip(image_specs, ids, strict=True)]
    create_containers(api, mix.containers(), refs)
    return Seeded(anchor=stamp, seconds=time.perf_counter() - start)


# ---- measuring --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_kib: int


def run_timed(argv: Sequence[str], env: dict[str, str], cwd: Path, log: Path) -> Run:
    """Run one command to completion; wall time plus the peak RSS of it alone.

    os.wait4 reports the rusage of exactly this child. RUSAGE_CHILDREN's ru_maxrss is a
    maximum over every child ever waited for, so an earlier, larger docker CLI would
    mask ccci's figure; wait4 has no such blind spot and is stdlib too.
    """
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits again
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"plan_scale: {' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return Run(seconds, usage.ru_maxrss)


def run_sequence(cmds: Sequence[Sequence[str]], env: dict[str, str], cwd: Path) -> Run:
    """Commands back to back, timed as one (the raw listing is two CLI calls)."""
    runs = [run_timed(c, env, cwd, cwd / "listing.out") for c in cmds]
    return Run(sum(r.seconds for r in runs), max(r.max_rss_kib for r in runs))


def measure(once: Callable[[], Run], repeat: int, warmup: int = 1) -> list[Run]:
    """Untimed warm-up first: a cold page cache or .pyc compile is not plan time."""
    for _ in range(warmup):
        once()
    return [once() for _ in range(repeat)]


def median(runs: Sequence[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


# ---- the ccci workspace -----------------------------------------------------------------


def ccci_bin() -> str:
    beside = Path(sys.executable).parent / "ccci"
    found = str(beside) if beside.exists() else shutil.which("ccci")
    if not found:
        raise SystemExit("plan_scale: no ccci executable; run `make venv` first")
    return found


def write_workspace(root: Path, engine: Engine) -> None:
    """Inventory aimed at the private engine, and the shipped policies (prune.yaml names
    a StackSelector defined beside it) with the disk gate at 0%: the real data-root is
    rarely 80% full, and a closed gate skips the rules."""
    for sub in ("state", "policies", "abra"):
        (root / sub).mkdir()
    (root / "inventory.yaml").write_text(
        "all:\n"
        "  vars:\n"
        f"    docker_data_root: {json.dumps(engine.data_root)}\n"
        f"    abra_dir: {json.dumps(str(root / 'abra'))}\n"
        "  children:\n"
        "    ci:\n"
        "      hosts:\n"
        f"        cc-ci: {{docker_host: {json.dumps(engine.docker_host)}}}\n",
        encoding="utf-8",
    )
    for path in sorted((REPO / "policies").glob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        if path.name == "prune.yaml":
            opened = text.replace("at_least: 80%", "at_least: 0%")
            if opened == text:
                raise SystemExit("plan_scale: policies/prune.yaml has no 'at_least: 80%' to open")
            text = opened
        (root / "policies" / path.name).write_text(text, encoding="utf-8")


def plan_args(root: Path, anchor: str) -> list[str]:
    return [
        "reconcile",
        "--plan",
        "-p",
        str(root / "policies"),
        "-i",
        str(root / "inventory.yaml"),
        "--state-dir",
        str(root / "state"),
        "--now",
        anchor,
    ]


# ---- in-process profile -----------------------------------------------------------------


@contextlib.contextmanager
def _thread_profiles() -> Iterator[list[cProfile.Profile]]:
    """A cProfile per new thread: ccci gathers facts in a thread pool, which a main-thread
    profile only sees as time spent waiting on futures."""
    profiles: list[cProfile.Profile] = []

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()  # replaces this hook for the rest of the thread

    threading.setprofile(hook)
    try:
        yield profiles
    finally:
        threading.setprofile(None)


def _where(path: str, line: int, func: str) -> str:
    """``func (docker/api/container.py:777)``: paths cut to the package or the repo."""
    if path == "~":  # a builtin
        return func
    for marker in ("site-packages/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path}:{line})"


def _not_wrapper(where: str) -> bool:
    """click's, ccci.cli's and this file's frames hold all the time and say nothing."""
    return not any(w in where for w in ("click/", "ccci/cli.py", "benchmarks/"))


def _top(profiles: Sequence[cProfile.Profile], keep: Callable[[str], bool]) -> list[str]:
    """The top entries by cumulative time, one aligned line each."""
    stats = pstats.Stats(*profiles)
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in entries.items():
        where = _where(path, line, func)
        if keep(where):
            rows.append((cumtime, tottime, ncalls, where))
    rows.sort(reverse=True)
    head = f"  {'cumtime':>7} {'tottime':>7} {'ncalls':>6}  function"
    return [head] + [f"  {c:7.3f} {t:7.3f} {n:6d}  {w}" for c, t, n, w in rows[:PROFILE_TOP]]


def engine_calls(api: EngineApi) -> list[tuple[str, float]]:
    """The engine's side of each read ccci makes, timed one by one over the socket
    (median of 3): the floor under gathering, without the SDK or thread pools."""
    exited = [c["Id"] for c in api.get("/containers/json?all=1", status=["exited"])]
    swarm = (api.call("GET", "/info").get("Swarm") or {}).get("ControlAvailable")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("GET /images/json", lambda: api.call("GET", "/images/json")),
        ("GET /containers/json?all=1", lambda: api.call("GET", "/containers/json?all=1")),
        (
            "GET /system/df?type=build-cache",
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
    timed = []
    for name, call in calls:
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        timed.append((name, statistics.median(seconds)))
    return timed


# Phases of a plan, timed by wrapping these functions: (label, module, function).
PHASES = (
    ("gather facts", "ccci.workspace", "_gather"),
    ("  containers: list + inspect exited ones", "ccci.facts.docker", "_containers"),
    ("  build cache: /system/df", "ccci.facts.docker", "_build_cache"),
    ("rules (plan_hosts)", "ccci.planner", "plan_hosts"),
    ("render text", "ccci.render.text", "render_plan"),
)


def _run_plan_in_process(root: Path, anchor: str) -> tuple[float, int]:
    """One plan through click, output swallowed; returns (seconds, output bytes)."""
    from ccci.cli import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        start = time.perf_counter()
        cli.main(args=plan_args(root, anchor), prog_name="ccci", standalone_mode=False)
        seconds = time.perf_counter() - start
    return seconds, len(out.getvalue())


def time_phases(root: Path, anchor: str) -> tuple[float, list[tuple[str, float]]]:
    """One more in-process plan, unprofiled (cProfile inflates Python-heavy code), with
    its phases wrapped in timers; returns the total and each phase's wall time."""
    spent = {label: 0.0 for label, _, _ in PHASES}

    def timer(label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        return timed

    found = []
    with contextlib.ExitStack() as stack:
        for label, module_name, attr in PHASES:
            module = importlib.import_module(module_name)
            if hasattr(module, attr):  # ccci moves on; a renamed phase is skipped, not fatal
                found.append(label)
                patch = mock.patch.object(module, attr, timer(label, getattr(module, attr)))
                stack.enter_context(patch)
        total, _ = _run_plan_in_process(root, anchor)
    return total, [(label, spent[label]) for label in found]


def profile_plan(root: Path, anchor: str, api: EngineApi) -> None:
    """Show where a plan's time goes: one cold run under cProfile (main thread, and the
    gathering threads summed, so above wall time), one warm run timed by phase, and the
    engine's own time for each read ccci makes."""
    main = cProfile.Profile()
    with _thread_profiles() as workers:
        main.enable()
        try:
            seconds, size = _run_plan_in_process(root, anchor)
        finally:
            main.disable()
    print(f"\nprofile: one in-process plan under cProfile, {seconds:.2f} s wall, {size} B output")
    print(f"\n-- main thread, top {PROFILE_TOP} by cumulative time (CLI wrappers left out) --")
    print("\n".join(_top([main], _not_wrapper)))
    if workers:
        print(
            f"\n-- {len(workers)} gathering threads, summed, top {PROFILE_TOP} "
            "(ccci and docker/api frames) --"
        )
        print("\n".join(_top(workers, lambda w: "ccci/" in w or "docker/api/" in w)))

    total, phases = time_phases(root, anchor)
    print(f"\n-- one more in-process plan, unprofiled, modules already imported: {total:.2f} s --")
    for label, secs in phases:
        print(f"  {label:<48}{secs:6.3f} s")
    print("\n-- the engine's time per read, one by one over the socket (median of 3) --")
    for name, secs in engine_calls(api):
        print(f"  {name:<48}{secs:6.3f} s")


# ---- report -----------------------------------------------------------------------------


def _progress(text: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"  [{elapsed:5.1f} s] {text}", file=sys.stderr, flush=True)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def _summary(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("Plan:")]
    return lines[-1] if lines else "no changes"


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

    engine = _engine(args.no_swarm)
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

    env = engine.env()
    env["NO_COLOR"] = "1"
    with tempfile.TemporaryDirectory(prefix="ccci-plan-scale-") as tmp:
        root = Path(tmp)
        write_workspace(root, engine)
        ccci = ccci_bin()
        docker = harness_engine.docker_cli()
        plan_log = root / "plan.out"
        listing = measure(
            lambda: run_sequence([[docker, "image", "ls", "-a"], [docker, "ps", "-a"]], env, root),
            args.repeat,
        )
        plan = measure(
            lambda: run_timed([ccci, *plan_args(root, seeded.anchor)], env, root, plan_log),
            args.repeat,
        )
        helps = measure(
            lambda: run_timed([ccci, "--help"], env, root, root / "help.out"), HELP_REPEAT
        )

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
        print(f"  plan as of {seeded.anchor}, disk gate 0%: {_summary(plan_log)}")
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
                f"ratio {ratio:.2f}x  target <= {PLAN_TARGET}x  {_verdict(ratio <= PLAN_TARGET)}",
            ),
            (
                "ccci --help",
                median(helps),
                f"(median of {HELP_REPEAT})",
                f"target <= {HELP_TARGET} s  {_verdict(median(helps) <= HELP_TARGET)}",
            ),
        ]
        for name, seconds, reps, note in rows:
            print(f"  {name:<{label_width}}{seconds:5.2f} s  {reps:<15} {note}".rstrip())
        print(f"  {'peak RSS (ccci reconcile --plan)':<{label_width}}{rss_mib:5.0f} MiB")

        if args.profile:
            profile_plan(root, seeded.anchor, api)
    return 0


if __name__ == "__main__":
    sys.exit(main())
