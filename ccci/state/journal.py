"""The append-only JSONL journal: one line per applied change and one per host recap.

The journal is the audit log of what ccci did, so a line is either there whole or not at
all, and an apply that cannot write its journal stops: it never goes on acting unrecorded.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ccci.errors import CcciError

# Room the state directory must have before an apply starts: a few hundred lines. Less
# than this (a disk that filled up) and the apply is refused before it acts at all, rather
# than stopping after its first change for want of room to record it.
HEADROOM_BYTES = 64 * 1024


class Journal:
    """Append one JSON object per line; each line is written whole with O_APPEND."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                # A run killed mid-write left a torn line; end it so ours stays whole.
                self._append(b"\n")
            free = _free_bytes(path.parent)
        except OSError as exc:
            self._close_fd()
            raise CcciError(f"{path}: cannot open the journal: {exc.strerror}") from None
        if free < HEADROOM_BYTES:
            self._close_fd()
            raise CcciError(
                f"{path}: no room for the journal ({free} bytes free in {path.parent}, "
                f"{HEADROOM_BYTES} needed); nothing was applied"
            )

    def write(self, entry: dict[str, Any]) -> None:
        """Append ``entry`` as one line, or raise with the journal as it was before."""
        try:
            self._append((json.dumps(entry, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise CcciError(
                f"{self.path}: cannot write the journal ({_what(entry)}): {exc.strerror}; "
                "stopped there"
            ) from None

    def close(self) -> None:
        """Flush to disk and close; a failing flush is an error (the lines may be lost)."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise CcciError(f"{self.path}: cannot flush the journal: {exc.strerror}") from None
        finally:
            self._close_fd()

    def _append(self, data: bytes) -> None:
        """Write all of ``data`` at the end; on failure cut off what part of it was written.

        A full disk lets write() take part of a line and refuse the rest; left there, that
        fragment would tear this line and glue itself to the next run's first one.
        """
        assert self._fd is not None
        start = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _what(entry: dict[str, Any]) -> str:
    """The entry that could not be written, as the user needs to hear of it."""
    if entry.get("type") == "recap":
        return f"the recap of {entry.get('host')}"
    return f"{entry.get('address')} {entry.get('status')}"


def read(path: Path) -> list[dict[str, Any]]:
    """Every entry, oldest first; a torn last line (a killed run) is skipped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
