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
policies are the shipped ones, with the disk gate at 0% so the prune rule walks every
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
import cProfile
import hashlib
import http.client
import importlib
import io
import json
import os
import pstats
import random
import re
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
from harness.images import BASE_TAG, CMD, PATH_ENV, base_layer, ensure_busybox_image  # noqa: E402

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
HELP_REPEAT = 10
STATUS_TARGET = 0.5  # seconds, end to end
HELP_TARGET = 0.15
PROFILE_TOP = 15
_MTIME = 946684800
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
    """A few engine API calls over the unix socket: one request per object, no CLI."""

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
        return self.call("GET", with_filters(path, filters))


def with_filters(path: str, filters: dict[str, list[str]]) -> str:
    if not filters:
        return path
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}filters={urllib.parse.quote(json.dumps(filters))}"


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


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
    tar.addfile(info, io.BytesIO(data))


def _top_layer(marker: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_bytes(tar, "ccci-marker", marker.encode())
    return buf.getvalue()


def write_image_tarball(
    out: IO[bytes], specs: Sequence[tuple[int, str | None, datetime]], seed: str
) -> list[str]:
    """One `docker save` archive for a batch (the busybox layer stored once); returns ids."""
    base = base_layer()
    base_hex = hashlib.sha256(base).hexdigest()
    manifest, ids = [], []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_bytes(tar, f"{base_hex}/layer.tar", base)
        for index, repo_tag, created in specs:
            top = _top_layer(f"ccci-bench-status {index} {seed}")
            top_hex = hashlib.sha256(top).hexdigest()
            stamp = _rfc3339(created)
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "created": stamp,
                    "config": {"Env": [PATH_ENV], "Cmd": CMD, "Labels": {LABEL: LABEL_VALUE}},
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": [f"sha256:{base_hex}", f"sha256:{top_hex}"],
                    },
                    "history": [
                        {"created": stamp, "created_by": "ccci-bench busybox base"},
                        {"created": stamp, "created_by": f"ccci-bench status image {index}"},
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
                    "RepoTags": [repo_tag] if repo_tag else None,
                    "Layers": [f"{base_hex}/layer.tar", f"{top_hex}/layer.tar"],
                }
            )
            ids.append(f"sha256:{config_hex}")
        _tar_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    return ids


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
    tmp = os.path.join(engine.state_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    refs: list[str] = []
    seed = now.isoformat()
    for start in range(0, len(specs), IMAGE_BATCH):
        batch = specs[start : start + IMAGE_BATCH]
        with tempfile.NamedTemporaryFile(dir=tmp, suffix=".tar") as fh:
            ids = write_image_tarball(fh, batch, seed)
            fh.flush()
            engine.docker("load", "-q", "-i", fh.name, timeout=900)
        refs += [tag or ident for (_, tag, _), ident in zip(batch, ids, strict=True)]
        _progress(f"loaded {len(refs)}/{mix.n} images")
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
        body = {
            "Image": image,
            "Cmd": ["true"],
            "Labels": {LABEL: LABEL_VALUE, "ci.job": f"job-{i}"},
            "HostConfig": {"NetworkMode": "none"},
        }
        created = api.call("POST", f"/containers/create?name=ccci-bench-status-{i:04d}", body)
        if i < mix.exited:
            api.call("POST", f"/containers/{created['Id']}/start")
            api.call("POST", f"/containers/{created['Id']}/wait?condition=not-running")

    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        list(pool.map(make, range(mix.n)))
    _progress(f"created {mix.n} containers ({mix.exited} exited)")


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
    _progress(f"created {mix.live} live stacks and {mix.leftovers} leftover ones")


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
        _progress(f"clearing a partial or different seed ({have})")
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


# ---- measuring --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_kib: int


def run_timed(argv: Sequence[str], env: dict[str, str], cwd: Path, log: Path) -> Run:
    """Wall time and this child's own peak RSS (os.wait4: exactly this process)."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"status_scale: {' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return Run(seconds, usage.ru_maxrss)


def run_sequence(cmds: Sequence[Sequence[str]], env: dict[str, str], cwd: Path) -> Run:
    runs = [run_timed(c, env, cwd, cwd / "listing.out") for c in cmds]
    return Run(sum(r.seconds for r in runs), max(r.max_rss_kib for r in runs))


def measure(once: Callable[[], Run], repeat: int, warmup: int = 1) -> list[Run]:
    """Untimed warm-up first: a cold page cache or .pyc compile is not status time."""
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
        raise SystemExit("status_scale: no ccci executable; run `make venv` first")
    return found


def write_workspace(root: Path, engine: Engine) -> int:
    """Inventory at the private engine, the shipped policies with the disk gate at 0%,
    an empty abra dir and a year of journal; returns the journal's lines."""
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
        f"        {HOST}: {{docker_host: {json.dumps(engine.docker_host)}}}\n",
        encoding="utf-8",
    )
    for path in sorted((REPO / "policies").glob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        if path.name == "prune.yaml":
            opened = text.replace("at_least: 80%", "at_least: 0%")
            if opened == text:
                raise SystemExit("status_scale: policies/prune.yaml has no 'at_least: 80%'")
            text = opened
        (root / "policies" / path.name).write_text(text, encoding="utf-8")
    return write_journal(root / "state" / "journal.jsonl", datetime.now(UTC))


def status_args(root: Path, *extra: str) -> list[str]:
    return [
        "status",
        "-p",
        str(root / "policies"),
        "-i",
        str(root / "inventory.yaml"),
        "--state-dir",
        str(root / "state"),
        *extra,
    ]


# ---- in-process profile -----------------------------------------------------------------


@contextlib.contextmanager
def _thread_profiles() -> Iterator[list[cProfile.Profile]]:
    """A cProfile per new thread: gathering runs in threads the main profile cannot see."""
    profiles: list[cProfile.Profile] = []

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()

    threading.setprofile(hook)
    try:
        yield profiles
    finally:
        threading.setprofile(None)


def _where(path: str, line: int, func: str) -> str:
    if path == "~":
        return func
    for marker in ("site-packages/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path}:{line})"


def _top(profiles: Sequence[cProfile.Profile], keep: Callable[[str], bool]) -> list[str]:
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


def _run_in_process(root: Path) -> tuple[float, int]:
    from ccci.cli import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        start = time.perf_counter()
        cli.main(args=status_args(root), prog_name="ccci", standalone_mode=False)
        seconds = time.perf_counter() - start
    return seconds, len(out.getvalue())


PHASES = (
    ("load policies + inventory", "ccci.workspace", "load_for_hosts"),
    ("gather facts", "ccci.workspace", "_gather"),
    ("rules (plan_hosts)", "ccci.planner", "plan_hosts"),
    ("read the journal", "ccci.journal", "read"),
    ("build the status", "ccci.status", "host_status"),
    ("render text", "ccci.render.status", "render_text"),
)


def time_phases(root: Path) -> tuple[float, list[tuple[str, float]]]:
    """One more in-process status, unprofiled, with its phases wrapped in timers."""
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
            if hasattr(module, attr):  # a renamed phase is skipped, not fatal
                found.append(label)
                patch = mock.patch.object(module, attr, timer(label, getattr(module, attr)))
                stack.enter_context(patch)
        total, _ = _run_in_process(root)
    return total, [(label, spent[label]) for label in found]


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

    main = cProfile.Profile()
    with _thread_profiles() as workers:
        main.enable()
        try:
            seconds, size = _run_in_process(root)
        finally:
            main.disable()
    print(f"\nprofile: one in-process status under cProfile, {seconds:.2f} s, {size} B output")
    print(f"\n-- main thread, top {PROFILE_TOP} by cumulative time --")
    print("\n".join(_top([main], lambda w: not any(x in w for x in ("click/", "benchmarks/")))))
    if workers:
        print(f"\n-- {len(workers)} gathering threads, summed --")
        print("\n".join(_top(workers, lambda w: "ccci/" in w or "docker/api/" in w)))
    total, phases = time_phases(root)
    print(f"\n-- one more in-process status, unprofiled, imports done: {total:.2f} s --")
    for label, secs in phases:
        print(f"  {label:<36}{secs:6.3f} s")


# ---- report -----------------------------------------------------------------------------


def _progress(text: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"  [{elapsed:5.1f} s] {text}", file=sys.stderr, flush=True)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


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

    engine = ensure_engine()
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

    env = engine.env()
    env["NO_COLOR"] = "1"
    for name in ("CCCI_STATE_DIR", "CCCI_INVENTORY", "CCCI_METRICS"):
        env.pop(name, None)
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
        helps = measure(
            lambda: run_timed([ccci, "--help"], env, root, root / "help.out"), HELP_REPEAT
        )

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
        print(f"  journal: {journal_lines} lines; disk gate 0%")
        print(f"  status: {_shape(root / 'status.json')}")
        rows = [
            ("docker info + docker ps -a", median(listing), f"(median of {args.repeat})", ""),
            (
                "ccci status",
                median(text),
                f"(median of {args.repeat})",
                f"target <= {STATUS_TARGET} s  {_verdict(median(text) <= STATUS_TARGET)}"
                f"  ({median(text) / median(listing):.1f}x the listing)",
            ),
            (
                "ccci status --output json",
                median(as_json),
                f"(median of {args.repeat})",
                f"target <= {STATUS_TARGET} s  {_verdict(median(as_json) <= STATUS_TARGET)}",
            ),
            (
                "ccci --help",
                median(helps),
                f"(median of {HELP_REPEAT})",
                f"target <= {HELP_TARGET} s  {_verdict(median(helps) <= HELP_TARGET)}",
            ),
        ]
        for name, seconds, reps, note in rows:
            print(f"  {name:<{width}}{seconds:5.2f} s  {reps:<15} {note}".rstrip())
        rss = max(r.max_rss_kib for r in text) / 1024
        print(f"  {'peak RSS (ccci status)':<{width}}{rss:5.0f} MiB")
        if args.profile:
            profile_status(root, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
