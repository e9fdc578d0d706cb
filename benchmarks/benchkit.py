"""What the scale benchmarks share: the engine API, timing a command, the ccci workspace,
hand-made `docker save` tarballs, in-process profiling and the report's pieces.

Stdlib and harness only. Each benchmark runs as ``python benchmarks/X.py``, which puts
benchmarks/ on sys.path (so ``import benchkit`` works), and puts the repo root there
itself before importing this module or harness.
"""

from __future__ import annotations

import contextlib
import cProfile
import hashlib
import importlib
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any
from unittest import mock

from harness.engine import Engine, UnixHTTPConnection, ensure_engine
from harness.images import CMD, PATH_ENV, base_layer
from harness.pytest_support import hold_engine_lock

REPO = Path(__file__).resolve().parent.parent
HELP_REPEAT = 10
HELP_TARGET = 0.15  # seconds
PROFILE_TOP = 15
_MTIME = 946684800  # fixed tar mtimes: the shared base layer keeps one diff_id
_STARTED = time.perf_counter()

Row = tuple[str, float, str, str]  # name, seconds, "(median of N)", note


def prog() -> str:
    """The running benchmark's name for messages, found as argparse finds its prog."""
    return Path(sys.argv[0]).stem


# ---- the engine API ---------------------------------------------------------------------


def locked_engine(start: Callable[[], Engine] = ensure_engine) -> Engine:
    """The private engine, held for the life of this process under the engine test lock.

    A test run resets the engine (it removes what it did not make); a benchmark seeding
    thousands of objects beside it would be reset mid-run and would slow the tests. The
    lock is the one tests take, so each side waits for the other.
    """
    progress("waiting for the engine test lock")
    hold_engine_lock()
    return start()


def with_filters(path: str, filters: Mapping[str, list[str]]) -> str:
    """``path`` with the engine's JSON ``filters`` query parameter, if there are any."""
    if not filters:
        return path
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}filters={urllib.parse.quote(json.dumps(filters))}"


class EngineApi:
    """Engine API calls over the unix socket, any method, JSON in and out.

    Seeding many containers through the docker CLI would start a CLI process for each;
    one request each leaves the engine's own work as the only cost. Also used to time the
    engine's side of each read ccci makes. (harness's ``Engine.api`` is GET-only, with a
    10 s timeout and no filters, so it serves none of these.)
    """

    def __init__(self, socket_path: str, timeout: float = 120) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        conn = UnixHTTPConnection(self.socket_path, self.timeout if timeout is None else timeout)
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


def create_container(
    api: EngineApi, name: str, image: str, labels: dict[str, str], exited: bool
) -> None:
    """`docker create` a job container running ``true``; exited ones are also run to exit
    (start, wait), as `docker run` leaves them."""
    body = {
        "Image": image,
        "Cmd": ["true"],
        "Labels": labels,
        "HostConfig": {"NetworkMode": "none"},
    }
    created = api.call("POST", f"/containers/create?name={name}", body)
    if exited:
        api.call("POST", f"/containers/{created['Id']}/start")
        api.call("POST", f"/containers/{created['Id']}/wait?condition=not-running")


# ---- images: one hand-made `docker save` tarball per batch ------------------------------


@dataclass(frozen=True)
class TarImage:
    marker: str  # the top layer's content: unique, so each image gets its own id
    repo_tag: str | None  # None: dangling
    created: datetime
    history: str  # the top layer's created_by


def rfc3339(moment: datetime) -> str:
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


def write_image_tarball(
    out: IO[bytes], images: Sequence[TarImage], labels: dict[str, str]
) -> list[str]:
    """Write one `docker save` archive holding every image; returns their image ids.

    The busybox base layer is stored once and shared; `docker load` takes the manifests
    in one go: one CLI call and one archive per batch instead of per image.
    """
    base = base_layer()
    base_hex = hashlib.sha256(base).hexdigest()
    manifest, ids = [], []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_bytes(tar, f"{base_hex}/layer.tar", base)
        for image in images:
            top = _top_layer(image.marker)
            top_hex = hashlib.sha256(top).hexdigest()
            stamp = rfc3339(image.created)
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "created": stamp,
                    "config": {"Env": [PATH_ENV], "Cmd": CMD, "Labels": labels},
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": [f"sha256:{base_hex}", f"sha256:{top_hex}"],
                    },
                    "history": [
                        {"created": stamp, "created_by": "ccci-bench busybox base"},
                        {"created": stamp, "created_by": image.history},
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
                    "RepoTags": [image.repo_tag] if image.repo_tag else None,
                    "Layers": [f"{base_hex}/layer.tar", f"{top_hex}/layer.tar"],
                }
            )
            ids.append(f"sha256:{config_hex}")
        _tar_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    return ids


def load_images(engine: Engine, images: Sequence[TarImage], labels: dict[str, str]) -> list[str]:
    """`docker load` one batch as a single tarball; returns the ids in order."""
    tmp = os.path.join(engine.state_dir, "tmp")  # beside the engine, as harness.images does
    os.makedirs(tmp, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp, suffix=".tar") as fh:
        ids = write_image_tarball(fh, images, labels)
        fh.flush()
        engine.docker("load", "-q", "-i", fh.name, timeout=900)
    return ids


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
        raise SystemExit(f"{prog()}: {' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return Run(seconds, usage.ru_maxrss)


def run_sequence(cmds: Sequence[Sequence[str]], env: dict[str, str], cwd: Path) -> Run:
    """Commands back to back, timed as one (a raw listing is several CLI calls)."""
    runs = [run_timed(c, env, cwd, cwd / "listing.out") for c in cmds]
    return Run(sum(r.seconds for r in runs), max(r.max_rss_kib for r in runs))


def measure(once: Callable[[], Run], repeat: int, warmup: int = 1) -> list[Run]:
    """Untimed warm-up first: a cold page cache or .pyc compile is not ccci's time."""
    for _ in range(warmup):
        once()
    return [once() for _ in range(repeat)]


def measure_by_turns(
    first: Callable[[], Run], second: Callable[[], Run], repeat: int, warmup: int = 1
) -> tuple[list[Run], list[Run]]:
    """Two commands timed by turns (first, second, first, ...) after a warm-up of each: a
    slow spell of a shared machine then falls on both alike, not on one block of runs, so
    their ratio is the two commands' and not the minute's."""
    for _ in range(warmup):
        first()
        second()
    pairs = [(first(), second()) for _ in range(repeat)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def median(runs: Sequence[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def measure_help(ccci: str, env: dict[str, str], root: Path) -> list[Run]:
    """``ccci --help``, HELP_REPEAT times: the start-up floor of every command."""
    return measure(lambda: run_timed([ccci, "--help"], env, root, root / "help.out"), HELP_REPEAT)


def time_calls(calls: Sequence[tuple[str, Callable[[], object]]]) -> list[tuple[str, float]]:
    """Each call's median wall time over 3 runs, one by one."""
    timed = []
    for name, call in calls:
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        timed.append((name, statistics.median(seconds)))
    return timed


# ---- the ccci workspace -----------------------------------------------------------------


def ccci_bin() -> str:
    beside = Path(sys.executable).parent / "ccci"
    found = str(beside) if beside.exists() else shutil.which("ccci")
    if not found:
        raise SystemExit(f"{prog()}: no ccci executable; run `make venv` first")
    return found


def ccci_env(engine: Engine, drop: Sequence[str] = ()) -> dict[str, str]:
    """The environment ccci and the docker CLI run in: aimed at the engine, no colour,
    without the ``drop`` variables (a caller's own CCCI_* settings would leak in).

    PYTHONDONTWRITEBYTECODE is dropped too: with it the warm-up run writes no .pyc, so
    every timed run would compile each module not yet cached (55 ms of a plan right
    after a package move), which an installed ccci never pays."""
    env = engine.env()
    env["NO_COLOR"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in drop:
        env.pop(name, None)
    return env


def write_inventory(root: Path, engine: Engine, host: str, data_root: bool = True) -> None:
    """The workspace's dirs (state, policies, abra) and an inventory with one CI host
    aimed at the private engine."""
    for sub in ("state", "policies", "abra"):
        (root / sub).mkdir()
    (root / "inventory.yaml").write_text(
        "all:\n"
        "  vars:\n"
        + (f"    docker_data_root: {json.dumps(engine.data_root)}\n" if data_root else "")
        + f"    abra_dir: {json.dumps(str(root / 'abra'))}\n"
        "  children:\n"
        "    ci:\n"
        "      hosts:\n"
        f"        {host}: {{docker_host: {json.dumps(engine.docker_host)}}}\n",
        encoding="utf-8",
    )


def copy_policies(root: Path) -> None:
    """The shipped policies (prune.yaml names a StackSelector defined beside it) with the
    prune's disk gate left out (ccci refuses a gate at 0%): the real data-root is rarely
    80% full, and a closed gate skips the rules."""
    gate = re.compile(r"^ *disk_usage: \{.*at_least: 80%\}\n", re.MULTILINE)
    for path in sorted((REPO / "policies").glob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        if path.name == "prune.yaml":
            opened = gate.sub("", text, count=1)
            if opened == text:
                raise SystemExit(f"{prog()}: policies/prune.yaml has no 80% disk gate to open")
            text = opened
        (root / "policies" / path.name).write_text(text, encoding="utf-8")


def ccci_args(root: Path, command: Sequence[str], *extra: str) -> list[str]:
    """``command`` aimed at the workspace in ``root``, then ``extra``."""
    return [
        *command,
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
def thread_profiles() -> Iterator[list[cProfile.Profile]]:
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


def heaviest_imports(args: Sequence[str], env: dict[str, str], cwd: Path, n: int = 8) -> list[str]:
    """The ``n`` heaviest top-level imports (cumulative) of one real ``ccci *args`` run:
    what that command pays at start-up, not what importing a list of modules would."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ccci", *args],
        capture_output=True, text=True, env=env, cwd=cwd, check=False,
    )  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):  # top-level packages only (cumulative)
                rows.append((int(parts[1]), name.strip()))
    rows.sort(reverse=True)
    total = sum(micros for micros, _ in rows) / 1e6
    lines = [f"  {micros / 1e6:6.3f} s  {name}" for micros, name in rows[:n]]
    return [*lines, f"  {total:6.3f} s  all imports"]


def run_cli_in_process(args: Sequence[str]) -> tuple[float, int]:
    """One ccci command through click, output swallowed; returns (seconds, output bytes)."""
    from ccci.cli.main import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        start = time.perf_counter()
        cli.main(args=list(args), prog_name="ccci", standalone_mode=False)
        seconds = time.perf_counter() - start
    return seconds, len(out.getvalue())


def profiled(
    run: Callable[[], tuple[float, int]],
) -> tuple[cProfile.Profile, list[cProfile.Profile], float, int]:
    """``run`` under cProfile: (main thread's profile, one per new thread, its result)."""
    main = cProfile.Profile()
    with thread_profiles() as workers:
        main.enable()
        try:
            seconds, size = run()
        finally:
            main.disable()
    return main, workers, seconds, size


STRIP = ("site-packages/", f"{REPO}/")  # path prefixes cut off up to these


def where(path: str, line: int, func: str, strip: Sequence[str] = STRIP) -> str:
    """``func (docker/api/container.py:777)``: paths cut to the package or the repo."""
    if path == "~":  # a builtin
        return func
    for marker in strip:
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path}:{line})"


def not_wrapper(where: str) -> bool:
    """click's, the CLI modules' and the benchmarks' frames hold all the time and say nothing."""
    return not any(w in where for w in ("click/", "ccci/cli/", "benchmarks/"))


def top(
    profiles: Sequence[cProfile.Profile],
    keep: Callable[[str], bool],
    strip: Sequence[str] = STRIP,
) -> list[str]:
    """The top PROFILE_TOP entries by cumulative time, one aligned line each."""
    stats = pstats.Stats(*profiles)
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in entries.items():
        at = where(path, line, func, strip)
        if keep(at):
            rows.append((cumtime, tottime, ncalls, at))
    rows.sort(reverse=True)
    head = f"  {'cumtime':>7} {'tottime':>7} {'ncalls':>6}  function"
    return [head] + [f"  {c:7.3f} {t:7.3f} {n:6d}  {w}" for c, t, n, w in rows[:PROFILE_TOP]]


def time_phases(
    phases: Sequence[tuple[str, str, str]], run: Callable[[], tuple[float, int]]
) -> tuple[float, list[tuple[str, float]]]:
    """``run`` once more, unprofiled (cProfile inflates Python-heavy code), with each
    phase's function wrapped in a timer; returns the total and each phase's wall time.

    A phase is (label, module, attribute), the attribute maybe dotted
    (``Workspace.targets``). ccci moves on: a phase no longer found is skipped, not fatal.
    """
    spent = {label: 0.0 for label, _, _ in phases}

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
        for label, module_name, attr in phases:
            owner: Any = importlib.import_module(module_name)
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            if owner is not None and hasattr(owner, name):
                found.append(label)
                target = timer(label, getattr(owner, name))
                stack.enter_context(mock.patch.object(owner, name, target))
        total, _ = run()
    return total, [(label, spent[label]) for label in found]


# ---- report -----------------------------------------------------------------------------


def progress(text: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"  [{elapsed:5.1f} s] {text}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def plan_line(log: Path) -> str:
    """The last ``Plan:`` line of a ccci plan's output."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("Plan:")]
    return lines[-1] if lines else "no changes"


def help_row(helps: Sequence[Run], name: str = "ccci --help") -> Row:
    return (
        name,
        median(helps),
        f"(median of {HELP_REPEAT})",
        f"target <= {HELP_TARGET} s  {verdict(median(helps) <= HELP_TARGET)}",
    )


def print_timings(timings: Sequence[tuple[str, float]], width: int = 48) -> None:
    """One ``label   0.123 s`` line each: phases of a run, or engine calls."""
    for label, seconds in timings:
        print(f"  {label:<{width}}{seconds:6.3f} s")


def print_rows(rows: Sequence[Row], width: int) -> None:
    for name, seconds, reps, note in rows:
        print(f"  {name:<{width}}{seconds:5.2f} s  {reps:<15} {note}".rstrip())
