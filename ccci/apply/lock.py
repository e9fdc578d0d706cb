"""One apply at a time per state directory: flock, with who holds it written inside."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ccci.errors import CcciError, LockBusy
from ccci.quantities import format_time


@contextmanager
def hold(path: Path) -> Iterator[None]:
    """Hold the lock at ``path`` or raise LockBusy naming its holder.

    flock is released by the kernel when the process dies, so a killed apply never leaves
    a lock that needs cleaning by hand.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CcciError(f"{path}: cannot open the lock file: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(
                f"{path}: another apply holds the lock ({_holder(fd)}); try again later"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": format_time(datetime.now(UTC)),
            "command": " ".join(["ccci", *sys.argv[1:]]),
        }
        try:
            os.ftruncate(fd, 0)
            data = (json.dumps(holder) + "\n").encode()
            written = 0
            while written < len(data):  # a nearly full disk takes part of it, then refuses
                written += os.pwrite(fd, data[written:], written)
        except OSError as exc:
            # A full state directory: refuse here, before anything is read or changed,
            # rather than run with a lock that names nobody (and a journal with no room).
            raise CcciError(f"{path}: cannot write the lock file: {exc.strerror}") from None
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return "holder unknown"
    return f"pid {info.get('pid')} since {info.get('since')}: {info.get('command')}"
