"""One cache file under a run's state directory, for the caches that make a start fast.

The caches (:mod:`ccci.policy.validated`, :mod:`ccci.config.yamlcache`) let a run skip work
that an earlier run did on the same input, so what they hold is believed: the file is only
read when this user owns it and no one else may write it, never through a symlink and never
by waiting on a FIFO put in its place. Each is one small JSON file read once per run and
written once (atomically, one fsync) when the run added something, keeping the most
recently used entries up to a bound. Concurrent runs can only lose each other's entries,
which costs the work again, never a wrong answer.

A cache and never more: a state directory that is missing (a plan does not create one),
unreadable or unwritable, a full disk, a file that is corrupt, foreign or writable by others
all mean no cache, never an error and never a different result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from ccci.state.atomic import write_atomic

V = TypeVar("V")


def folder(state_dir: Path) -> Path:
    """Where a state directory keeps its caches; delete it to clear them all."""
    return state_dir / "cache"


def read_json(path: Path, max_bytes: int) -> Any:
    """The JSON value in ``path``, or None when it is missing, untrusted, larger than
    ``max_bytes`` (not a file ccci wrote) or not JSON."""
    # Never through a symlink, and never blocking on a FIFO put in the file's place.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(path, flags), "rb") as stream:
            if not trusted(os.fstat(stream.fileno())):
                return None
            raw = stream.read(max_bytes + 1)
        if len(raw) > max_bytes:
            return None
        return json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None


def read_list(path: Path, max_bytes: int, version: int, field: str) -> list[Any]:
    """The list under ``field`` of the cache file in ``path`` when its format is
    ``version``; empty when it is missing, untrusted, corrupt, of another format or holds
    no such list. The items are the caller's to check: a file of the right format may still
    hold anything."""
    loaded = read_json(path, max_bytes)
    if not isinstance(loaded, dict) or loaded.get("format") != version:
        return []
    found = loaded.get(field)
    return found if isinstance(found, list) else []


def write_json(state_dir: Path, path: Path, value: Any) -> bool:
    """Write ``value`` to ``path`` (0600, in a 0700 folder), whole or not at all; False when
    it could not be written, which leaves the run as it was."""
    text = json.dumps(value, separators=(",", ":"))
    try:
        # A plan never creates the state directory; only the cache's folder inside it.
        if not state_dir.is_dir():
            return False
        path.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(path, text + "\n", mode=0o600)
    except OSError:
        return False
    return True


def trusted(found: os.stat_result) -> bool:
    """A cache entry skips work, so only a regular file this user owns and no one else may
    write counts: the state directory's owner is the only one trusted with it."""
    return (
        stat.S_ISREG(found.st_mode)
        and found.st_uid == os.geteuid()
        and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def file_identity(path: str | None) -> str:
    """A file as a cache key sees it: its path, size and mtime (an edit or reinstall
    changes one of them)."""
    if not path:
        return "-"
    try:
        found = os.stat(path)
    except OSError:
        return f"{path} unreadable"
    return f"{path} {found.st_size} {found.st_mtime_ns}"


def library_identity(name: str) -> str:
    """Where ``name`` would be imported from, without importing it: its file's path, size
    and mtime; ``absent`` when it cannot be imported."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"{name} absent"
    return f"{name} {file_identity(spec.origin)}"


class Recent(Generic[V]):
    """A cache's entries by key, read from its file when first asked, in the order of their
    last use: what a save keeps is the ``limit`` most recently used."""

    def __init__(self, limit: int, load: Callable[[], Iterable[tuple[str, V]]]) -> None:
        self.limit = limit
        self._load = load
        self._known: dict[str, V] | None = None
        # This run's keys in the order they were used; new ones make a save worth it.
        self._used: dict[str, V] = {}
        self._new = False

    def use(self, key: str) -> bool:
        """Whether ``key`` is known (from the file, or added by this run); a known key
        counts as used by this run."""
        if key in self._used:
            return True
        known = self._entries()
        if key not in known:
            return False
        self._used[key] = known[key]
        return True

    def value(self, key: str) -> V:
        """The value of a known ``key``."""
        if key in self._used:
            return self._used[key]
        return self._entries()[key]

    def add(self, key: str, value: V) -> None:
        """Remember an entry, the newest. One known already with this value only counts as
        used: a run that finds what it knew writes nothing back."""
        if self.use(key) and self.value(key) == value:
            return
        self._used.pop(key, None)
        self._used[key] = value
        self._new = True

    def save(
        self, state_dir: Path, path: Path, shape: Callable[[list[tuple[str, V]]], Any]
    ) -> None:
        """Write the entries back, this run's last (the newest), keeping at most ``limit``;
        ``shape`` makes the file's JSON value of them. Nothing is written when every entry
        was known already."""
        if not self._new:
            return
        used = self._used
        older = [(k, v) for k, v in self._entries().items() if k not in used]
        keep = [*older, *used.items()][-self.limit :] if self.limit > 0 else []
        if write_json(state_dir, path, shape(keep)):
            self._new = False

    def _entries(self) -> dict[str, V]:
        if self._known is None:
            self._known = dict(self._load())
        return self._known
