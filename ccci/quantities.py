"""Durations, percentages and byte sizes: parsed once at the edge, formatted for humans."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION_PART = re.compile(r"(\d+)(w|d|h|m|s)")
_DURATION = re.compile(r"^(?:\d+(?:w|d|h|m|s))+$")
MAX_DURATION_SECONDS = 100 * 365 * 86400
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)%$")


def parse_duration(text: str) -> timedelta:
    """Parse ``24h``, ``3d``, ``1h30m`` into a timedelta; raise ValueError otherwise."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration (like 30m, 24h, 14d)")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds > MAX_DURATION_SECONDS:
        # ``now - 9999999999w`` is before year 1: no rule could compute with it.
        raise ValueError(f"{text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def parse_percent(text: str) -> float:
    """Parse ``80%`` into the ratio 0.8; percentages outside 0–100 are rejected."""
    match = _PERCENT.match(text)
    if not match or float(match.group(1)) > 100:
        raise ValueError(f"{text!r} is not a percentage")
    return float(match.group(1)) / 100


def format_duration(delta: timedelta) -> str:
    """Format a timedelta the way people say it: ``3 days``, ``5 hours``, ``40 minutes``."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if abs(seconds) >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def format_spec_duration(delta: timedelta) -> str:
    """Format a timedelta in policy syntax for reasons and diffs, the way people write it:
    ``24h`` and ``48h`` rather than ``1d``/``2d``, days from three on (``3d``, ``14d``)."""
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0 and seconds > 2 * 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_percent(ratio: float) -> str:
    """Format a ratio as a whole percentage, keeping one decimal only when it matters."""
    value = ratio * 100
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def format_bytes(size: int) -> str:
    """Format a byte count with binary units, as ``docker system df`` readers expect."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_api_version(text: str) -> tuple[int, int]:
    """``1.41`` → (1, 41); raise ValueError for anything else.

    API versions compare as numbers, not as text (``1.9`` < ``1.41``): the daemon policy's
    ``min_api_version`` and the engine's reported version are both read here, so the two
    sides of the comparison always agree on what a version is.
    """
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (Docker's nanoseconds allowed) into an aware UTC datetime."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    # Docker reports nanoseconds; datetime keeps microseconds.
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    parsed = datetime.fromisoformat(cleaned)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plural(count: int, word: str) -> str:
    """``plural(1, "service")`` → ``1 service``; ``plural(3, "service")`` → ``3 services``."""
    return f"{count} {word}{'' if count == 1 else 's'}"
