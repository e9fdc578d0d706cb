"""The append-only JSONL journal: one line per applied change and one per host recap."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ccci.errors import CcciError


class Journal:
    """Append one JSON object per line; each line is written whole with O_APPEND."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                # A run killed mid-write left a torn line; end it so ours stays whole.
                os.write(self._fd, b"\n")
        except OSError as exc:
            raise CcciError(f"{path}: cannot open the journal: {exc.strerror}") from None

    def write(self, entry: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(entry, sort_keys=True) + "\n").encode())

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


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
