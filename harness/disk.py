"""Tiny tmpfs filesystems for disk-pressure tests.

ccci's disk checks read statvfs; a small tmpfs under our state dir lets tests
push usage past a threshold with real bytes without ever filling the host disk.
Every function refuses paths outside the engine state dir.
"""

from __future__ import annotations

import math
import os
import subprocess

from harness import mounts
from harness.engine import engine_paths

FILLER = ".ccci-filler"
_CHUNK = 1 << 20


def disk_path(name: str) -> str:
    """Conventional mount point for a named test filesystem."""
    return os.path.join(engine_paths().state_dir, "disks", name)


def _checked(path: str) -> str:
    root = os.path.realpath(engine_paths().state_dir)
    real = os.path.realpath(path)
    if real == root or not real.startswith(root + "/"):
        raise ValueError(f"{path} is outside the harness state dir {root}")
    return real


def small_filesystem(path: str, size_mb: int) -> str:
    """Mount (or resize) a tmpfs of size_mb at path; idempotent. Returns the real path."""
    real = _checked(path)
    os.makedirs(real, exist_ok=True)
    opts = f"size={int(size_mb)}m,mode=0755"
    if mounts.fstype(real) == "tmpfs":
        cmd = ["mount", "-o", f"remount,{opts}", real]
    else:
        cmd = ["mount", "-t", "tmpfs", "-o", opts, "ccci-test-tmpfs", real]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return real


def usage_percent(path: str) -> float:
    """Used share of the filesystem, as (blocks - free) / blocks * 100."""
    st = os.statvfs(path)
    return 100.0 * (st.f_blocks - st.f_bfree) / st.f_blocks if st.f_blocks else 0.0


def fill_to(path: str, percent: float) -> float:
    """Grow or shrink a zero-filled filler file until usage >= percent; returns usage.

    Uses (blocks - bfree) / blocks, which never exceeds df's used/(used+avail),
    so either way of reading statvfs sees at least `percent`.
    """
    real = _checked(path)
    if mounts.fstype(real) is None:
        raise ValueError(f"{real} is not a mount point; use small_filesystem() first")
    filler = os.path.join(real, FILLER)
    with open(filler, "ab", buffering=0) as fh:
        fh.truncate(0)  # measure usage without the filler, then write exactly what's missing
        os.fsync(fh.fileno())
        st = os.statvfs(real)
        target_used = math.ceil(st.f_blocks * percent / 100.0)
        missing = max(0, target_used - (st.f_blocks - st.f_bfree)) * st.f_frsize
        zeros = bytes(_CHUNK)
        try:
            while missing > 0:
                missing -= fh.write(zeros[: min(_CHUNK, missing)])
            os.fsync(fh.fileno())
        except OSError as exc:
            if exc.errno != 28:  # ENOSPC: the filesystem is simply full
                raise
    return usage_percent(real)


def unmount(path: str) -> None:
    """Unmount the test filesystem at path (and anything below it)."""
    mounts.unmount_under(_checked(path))
