"""Facts snapshots (``ccci facts --output json``) written and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccci.errors import InputError, Location
from ccci.facts.model import Facts

# Bump when the snapshot's shape changes: an older snapshot is refused, never misread.
SNAPSHOT_FORMAT = 1


def read_snapshot(path: Path) -> dict[str, Facts]:
    """Facts saved by ``ccci facts --output json``, by host."""
    from ccci.serde import read_json

    data = read_json(path)  # size, depth and syntax: one-line errors
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise InputError(Location(str(path), 1), "hosts: not a ccci facts snapshot")
    if data.get("format_version") != SNAPSHOT_FORMAT:
        raise InputError(Location(str(path), 1), f"format_version: expected {SNAPSHOT_FORMAT}")
    snapshot = {}
    for name, raw in data["hosts"].items():
        try:
            snapshot[name] = Facts.from_dict(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(Location(str(path), 0), f"hosts.{name}: {exc}") from None
    return snapshot


def snapshot_json(facts: list[Facts], unreachable: dict[str, str] | None = None) -> str:
    """Every reachable host's facts; ``unreachable`` says which hosts are missing and why
    (a snapshot that lacks a host then fails to plan it by name, never silently)."""
    from ccci.serde import to_jsonable

    data: dict[str, Any] = {
        "format_version": SNAPSHOT_FORMAT,
        "hosts": {f.host: to_jsonable(f) for f in facts},
    }
    if unreachable:
        data["unreachable"] = dict(unreachable)
    return json.dumps(data, indent=2, sort_keys=True)
