"""Write a file so that a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ccci.errors import CcciError


class WriteFailed(CcciError, OSError):
    """A file could not be written; still an OSError for callers that catch one, and a
    CcciError so that the CLI reports it as one line naming the file."""


def write_atomic(path: Path | str, text: str, mode: int = 0o644) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``. On any
    failure (a full disk, which is when eviction runs) no temporary file is left behind,
    and an OS error is a one-line CcciError naming the file."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary(target)
    except OSError as exc:
        raise WriteFailed(f"{target}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            # The rename must not be seen before the data is on disk, or a crash right
            # after it leaves an empty file where the old one was.
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise WriteFailed(f"{target}: cannot write: {exc.strerror}") from None
        raise


# A file the process made itself, beside the target, as tempfile.mkstemp makes one (a new,
# unguessable name, 0600, never through a symlink): importing tempfile costs a run that
# writes its last-use record ~2 ms (shutil, random and the compressors it pulls in).
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_ATTEMPTS = 100


def _temporary(target: Path) -> tuple[int, str]:
    """A new file beside ``target``, opened for writing: its descriptor and its path."""
    for _ in range(_ATTEMPTS):
        name = str(target.parent / f".{target.name}.{os.urandom(6).hex()}")
        try:
            return os.open(name, _CREATE, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(target.parent))
