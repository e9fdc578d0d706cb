"""Write a file so that a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
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
    import tempfile  # here: most runs that import this module write nothing

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
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
