"""Process helpers that only ever signal pids we can prove are ours."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def cmdline(pid: int) -> list[str]:
    """argv of pid, or [] if it is gone (zombies also read as [])."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int) -> bool:
    """True if pid runs; a zombie counts as dead (pid 1 here may not reap)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    # state is the field after the parenthesised comm, which may contain spaces
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def flag_value(argv: list[str], flag: str) -> str | None:
    """Value of `--flag v` or `--flag=v` in argv."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, is_ours: Callable[[int], bool], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` s; re-checks ownership before each signal."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if not alive(pid) or not is_ours(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_dead(pid, wait):
            return
    raise RuntimeError(f"pid {pid} survived SIGKILL")


def find(predicate: Callable[[list[str]], bool]) -> list[int]:
    """Live pids whose argv satisfies predicate."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            pid = int(name)
            argv = cmdline(pid)
            if argv and predicate(argv) and alive(pid):
                pids.append(pid)
    return pids


def children(pid: int) -> list[int]:
    """Live direct children of pid."""
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                kids.append(int(name))
    return kids


def spawn(log: str, argv: list[str], banner: str) -> int:
    """Start argv detached, its output appended to ``log`` after a dated ``banner`` line;
    returns its pid.

    sh backgrounds it and exits, so it is nobody's child here: a test that kills it leaves
    no zombie in the calling process, and it outlives that process. Wrappers that exec
    (nsenter, unshare, ``sh -c 'exec …'``) keep the pid, so it is the daemon's own.
    """
    with open(log, "a") as fh:
        fh.write(f"\n==== {banner} {time.strftime('%Y-%m-%dT%H:%M:%S')} ====\n")
    script = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'
    out = subprocess.run(
        ["/bin/sh", "-c", script, "sh", log, *argv],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        check=True,
        text=True,
    )
    return int(out.stdout.strip())
