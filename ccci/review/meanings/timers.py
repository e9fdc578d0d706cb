"""TimerPolicy: timers compared by the unit files ccci would write, read by meaning
(``daily`` = ``*-*-* 00:00:00``), so a change of form is no change; a change of schedule
says how much more or less often the job runs."""

from __future__ import annotations

import math
import re

from ccci.policy.model import TimerPolicy, TimerSpec
from ccci.review.meanings.base import Meaning, Risk
from ccci.systemd.units import Settings, normalize_calendar, parse_unit

# Unit settings and the policy field each comes from; Wants= follows After=, and the
# hardening block is one switch.
_SETTINGS = {
    ("Timer", "Persistent"): "persistent",
    ("Timer", "RandomizedDelaySec"): "randomized_delay",
    ("Unit", "Description"): "description",
    ("Service", "ExecStart"): "exec",
    ("Service", "WorkingDirectory"): "working_directory",
    ("Service", "SuccessExitStatus"): "success_exit_status",
    ("Unit", "After"): "after",
}
_HARDENING_KEY = ("Service", "ProtectSystem")
_SKIP = {("Timer", "OnCalendar"), ("Timer", "Unit"), ("Unit", "Wants"), ("Service", "Type")}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _count(field: str, size: int, first: int = 0) -> float | None:
    """How many values a calendar field (``*``, ``1,3``, ``1..5``, ``*/15``) stands for."""
    total = 0.0
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            low, high = first, first + size - 1
        elif ".." in base:
            a, _, b = base.partition("..")
            if not (a.isdigit() and b.isdigit()):
                return None
            low, high = int(a), int(b)
        elif base.isdigit():
            low = int(base)
            high = low if not step else first + size - 1
        else:
            return None
        if step:
            if not step.isdigit() or int(step) == 0:
                return None
            total += math.floor((high - low) / int(step)) + 1
        else:
            total += high - low + 1
    return total


def _weekdays(field: str) -> float | None:
    days = 0
    for part in field.lower().split(","):
        first, _, last = part.partition("..")
        if first[:3] not in _WEEKDAYS or (last and last[:3] not in _WEEKDAYS):
            return None
        start = _WEEKDAYS.index(first[:3])
        end = _WEEKDAYS.index(last[:3]) if last else start
        days += (end - start) % 7 + 1
    return days


def runs_per_day(calendar: str) -> float | None:
    """About how many times a day an OnCalendar spec fires; None when not understood."""
    parts = normalize_calendar(calendar).split()
    share = 1.0
    if parts and re.fullmatch(r"[A-Za-z.,]+", parts[0]):
        days = _weekdays(parts.pop(0))
        if days is None:
            return None
        share = days / 7
    if len(parts) == 1 and ":" in parts[0]:
        parts.insert(0, "*-*-*")
    if len(parts) != 2:
        return None
    date, time = parts[0].split("-"), parts[1].split(":")
    if len(date) != 3 or len(time) != 3:
        return None
    months, mdays = _count(date[1], 12, 1), _count(date[2], 31, 1)
    hours, minutes = _count(time[0], 24), _count(time[1], 60)
    seconds = _count(time[2].split(".")[0], 60)
    counts = (months, mdays, hours, minutes, seconds)
    if any(c is None for c in counts):
        return None
    m, d, h, mi, s = (float(c or 0) for c in counts)
    return share * (m / 12) * (d / 31 if d < 31 else 1.0) * h * mi * s


def _how_often(old: str, new: str) -> str:
    a, b = runs_per_day(old), runs_per_day(new)
    if not a or not b or a == b:
        return ""
    ratio = b / a
    return f" (runs {ratio:.3g}× as often)" if ratio > 1 else f" (runs {1 / ratio:.3g}× less often)"


def _settings(spec: TimerSpec) -> Settings:
    """Settings by meaning, to compare (``15m`` = ``15min``, ``0`` = ``false``)."""
    return {**parse_unit(spec.service_unit), **parse_unit(spec.timer_unit)}


def _written(spec: TimerSpec) -> Settings:
    """Settings as written, to show."""
    found: dict[tuple[str, str], list[str]] = {}
    for text in (spec.service_unit, spec.timer_unit):
        section = ""
        for raw in text.split("\n"):  # as systemd splits: at newlines only
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line and not line.startswith(("#", ";")):
                key, _, value = line.partition("=")
                found.setdefault((section, key.strip()), []).append(value.strip())
    return {k: tuple(v) for k, v in found.items()}


def _shown(values: tuple[str, ...] | None) -> str:
    return " ".join(values) if values else "(unset)"


def _present_changed(old: TimerSpec, new: TimerSpec) -> list[Meaning]:
    name, field = new.name, "spec.present"
    found = []
    if normalize_calendar(old.on_calendar) != normalize_calendar(new.on_calendar):
        found.append(
            Meaning(
                f"{field}.on_calendar",
                f"timer {name}: {old.on_calendar} → {new.on_calendar}"
                f"{_how_often(old.on_calendar, new.on_calendar)}",
                Risk.NEUTRAL,
                "the same job on another schedule",
            )
        )
    a, b = _settings(old), _settings(new)
    shown_a, shown_b = _written(old), _written(new)
    hardened_a, hardened_b = _HARDENING_KEY in a, _HARDENING_KEY in b
    if hardened_a != hardened_b:
        found.append(
            Meaning(
                f"{field}.hardening",
                f"timer {name}: hardening {'on → off' if hardened_a else 'off → on'}",
                Risk.RISKIER if hardened_a else Risk.SAFER,
                "the service runs without sandboxing"
                if hardened_a
                else "the service runs sandboxed",
            )
        )
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key) or key in _SKIP:
            continue
        if key == ("Service", "ReadWritePaths") and hardened_a and hardened_b:
            found += _paths(name, shown_a.get(key, ()), shown_b.get(key, ()))
            continue
        if key in _SETTINGS:
            found.append(_setting(name, _SETTINGS[key], shown_a.get(key), shown_b.get(key)))
        elif not (hardened_a != hardened_b and key[0] == "Service"):
            found.append(
                Meaning(
                    field,
                    f"timer {name}: {key[1]}= {_shown(shown_a.get(key))} → "
                    f"{_shown(shown_b.get(key))}",
                    Risk.NEUTRAL,
                    "a unit setting changes",
                )
            )
    return found


def _paths(name: str, written_old: tuple[str, ...], written_new: tuple[str, ...]) -> list[Meaning]:
    # ccci writes ReadWritePaths=-PATH: the dash only lets a missing path be skipped.
    old = tuple(p.removeprefix("-") for p in written_old)
    new = tuple(p.removeprefix("-") for p in written_new)
    found = [
        Meaning(
            "spec.present.read_write_paths",
            f"timer {name}: may now write {path}",
            Risk.RISKIER,
            "the sandbox opens another path",
        )
        for path in new
        if path not in old
    ]
    found += [
        Meaning(
            "spec.present.read_write_paths",
            f"timer {name}: may no longer write {path}",
            Risk.SAFER,
            "the sandbox closes a path (the job fails if it needs it)",
        )
        for path in old
        if path not in new
    ]
    return found


def _setting(
    name: str, field: str, old: tuple[str, ...] | None, new: tuple[str, ...] | None
) -> Meaning:
    text = f"timer {name}: {field} {_shown(old)} → {_shown(new)}"
    why = {
        "exec": "it runs another command: read it",
        "persistent": "whether a run missed while the host was down is caught up at boot",
        "randomized_delay": "when in its window the job starts",
        "working_directory": "where the job finds its files",
        "after": "what the job waits for",
        "description": "its description only",
    }.get(field, "a unit setting changes")
    dropped_75 = "75" in " ".join(old or ()) and "75" not in " ".join(new or ())
    if field == "success_exit_status" and dropped_75:
        why = "a busy ccci lock (exit 75) would now count as a failure"
    return Meaning(f"spec.present.{field}", text, Risk.NEUTRAL, why)


def changed(old: TimerPolicy, new: TimerPolicy) -> list[Meaning]:
    """The unit folder, each present timer added, changed or no longer managed, and the absent list:
    a timer no longer kept masked is riskier, as an update may enable it again."""
    found = []
    if old.unit_dir != new.unit_dir:
        found.append(
            Meaning(
                "spec.unit_dir",
                f"unit_dir {old.unit_dir} → {new.unit_dir}",
                Risk.NEUTRAL,
                f"units are written there; those in {old.unit_dir} stay as they are",
            )
        )
    before = {s.name: s for s in old.present}
    after = {s.name: s for s in new.present}
    for name, spec in after.items():
        if name not in before:
            found.append(_present_added(spec))
        else:
            found += _present_changed(before[name], spec)
    for name in before:
        if name not in after:
            found.append(
                Meaning(
                    "spec.present",
                    f"timer {name} no longer managed",
                    Risk.NEUTRAL,
                    "ccci leaves its units as they are; it keeps running",
                )
            )
    old_absent = [u for u, _ in old.absent]
    new_absent = [u for u, _ in new.absent]
    for unit in new_absent:
        if unit not in old_absent:
            found.append(
                Meaning(
                    "spec.absent",
                    f"absent timer {unit} added (it will be stopped, disabled and masked)",
                    Risk.NEUTRAL,
                    "whatever it ran stops running",
                )
            )
    for unit in old_absent:
        if unit not in new_absent:
            found.append(
                Meaning(
                    "spec.absent",
                    f"absent timer {unit} removed (it may come back)",
                    Risk.RISKIER,
                    "ccci stops keeping it masked; an update may enable it again",
                )
            )
    return found


def _exec(spec: TimerSpec) -> str:
    return _shown(parse_unit(spec.service_unit).get(("Service", "ExecStart")))


def _present_added(spec: TimerSpec) -> Meaning:
    return Meaning(
        "spec.present",
        f"timer {spec.name} added: {spec.on_calendar}, runs `{_exec(spec)}`",
        Risk.NEUTRAL,
        "a new scheduled job: read what it runs",
    )


def _summary(policy: TimerPolicy) -> str:
    parts = [f"timer {s.name} ({s.on_calendar})" for s in policy.present]
    parts += [f"absent {u}" for u, _ in policy.absent]
    return ", ".join(parts) or "nothing"


def added(policy: TimerPolicy) -> Meaning:
    """Neutral: new scheduled jobs, whose commands a reviewer should read."""
    return Meaning(
        "",
        f"policy {policy.meta.name} added: {_summary(policy)}",
        Risk.NEUTRAL,
        "scheduled jobs: read what they run",
    )


def removed(policy: TimerPolicy) -> Meaning:
    """Riskier when it kept timers masked (they may come back), else neutral: ccci leaves the units
    as they are."""
    masks = bool(policy.absent)
    return Meaning(
        "",
        f"policy {policy.meta.name} removed: it managed {_summary(policy)}",
        Risk.RISKIER if masks else Risk.NEUTRAL,
        "timers it kept masked may come back"
        if masks
        else "ccci leaves the timers' units as they are",
    )
