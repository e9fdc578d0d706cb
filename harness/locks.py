"""One lock file per thing the harness starts or builds, so parallel test processes, the
CLI and CI never start the same engine, fleet, registry or rootfs twice at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


@contextlib.contextmanager
def held(path: str, dir_mode: int = 0o700) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (made, with its folder, when missing) for the
    block; the kernel drops it if the holder dies, so a killed start never wedges the next."""
    os.makedirs(os.path.dirname(path), mode=dir_mode, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
