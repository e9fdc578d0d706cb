"""systemd facts: one ``systemctl show`` for every unit the policies name, parsed purely.

``--timestamp=unix`` makes timestamps ``@<seconds>``, so nothing depends on the host's
locale or time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ccci.facts.model import Unit
from ccci.systemd.units import parse_timespan

SHOW_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "UnitFileState",
    "FragmentPath",
    "TimersCalendar",
    "Persistent",
    "RandomizedDelayUSec",
    "NextElapseUSecRealtime",
    "LastTriggerUSec",
)


# ``systemctl is-system-running``'s answers in which units can be read, written, enabled
# and started. "starting" (boot not done) and "maintenance" (rescue or emergency mode) are
# not among them: a timer enabled then would fire into a system that is not up.
USABLE_STATES = frozenset({"running", "degraded"})


def usable(state: str) -> bool:
    """Whether ccci may read and manage units on a host whose systemd says ``state``.

    The one answer for every connector (whether to ask for units at all) and for the timer
    rule (whether to plan them), so a host is never gathered as managed and then planned as
    not, or the other way round.
    """
    return state in USABLE_STATES


def _timestamp(value: str) -> datetime | None:
    """``@<seconds>``, or — systemd 252 ignores ``--timestamp=unix`` for some timer
    properties — ``Sat 2026-11-28 00:12:23 UTC`` (systemctl runs with TZ=UTC)."""
    text = value.strip()
    match = re.fullmatch(r"@(\d+(?:\.\d+)?)", text)
    if match:
        seconds = float(match.group(1))
        return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None
    try:
        return datetime.strptime(text, "%a %Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    except ValueError:
        return None


def _calendars(value: str) -> tuple[str, ...]:
    """``{ OnCalendar=*-*-* 00:00:00 ; next_elapse=… }`` (one block per spec) → the specs."""
    return tuple(m.strip() for m in re.findall(r"OnCalendar=([^;}]+)", value))


def _yes(value: str) -> bool | None:
    if value in ("yes", "no"):
        return value == "yes"
    return None


def parse_show(text: str, asked: list[str]) -> tuple[Unit, ...]:
    """Parse ``systemctl show -p … unit…``: one block per unit, in the order asked."""
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, value = line.partition("=")
        blocks[-1][key] = value
    blocks = [b for b in blocks if b]
    units = []
    for name, props in zip(asked, blocks, strict=False):
        delay = props.get("RandomizedDelayUSec", "")
        units.append(
            Unit(
                name=name,
                load_state=props.get("LoadState", ""),
                active_state=props.get("ActiveState", ""),
                unit_file_state=props.get("UnitFileState", ""),
                fragment_path=props.get("FragmentPath", ""),
                calendars=_calendars(props.get("TimersCalendar", "")),
                persistent=_yes(props.get("Persistent", "")),
                randomized_delay_seconds=parse_timespan(delay) if delay else None,
                next_elapse=_timestamp(props.get("NextElapseUSecRealtime", "")),
                last_trigger=_timestamp(props.get("LastTriggerUSec", "")),
            )
        )
    return tuple(units)
