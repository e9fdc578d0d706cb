"""Mount-table helpers, confined to a root directory we own."""

from __future__ import annotations

import ctypes
import errno
import os
import re

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mountinfo() -> list[tuple[str, str]]:
    """(mount point, fs type) for every mount, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            out.append((_unescape(fields[4]), right.split()[0]))
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def mounts_under(root: str) -> list[str]:
    root = os.path.realpath(root)
    return [mp for mp, _ in mountinfo() if _under(mp, root)]


def fstype(path: str) -> str | None:
    """fs type if path itself is a mount point (topmost mount wins)."""
    path = os.path.realpath(path)
    found = None
    for mp, fs in mountinfo():
        if mp == path:
            found = fs
    return found


def umount(path: str) -> None:
    # lazy detach: a leftover netns or overlay may still be pinned by a dying shim
    if _libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


def unmount_under(root: str) -> None:
    """Unmount everything at or below root, deepest first, including stacked mounts."""
    for _ in range(20):
        points = mounts_under(root)
        if not points:
            return
        for mp in sorted(set(points), key=lambda p: (p.count("/"), len(p)), reverse=True):
            umount(mp)
    raise RuntimeError(f"mounts remain under {root}: {mounts_under(root)}")
