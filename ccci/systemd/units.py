"""systemd unit files as ccci renders, reads and compares them.

Pure: rendering a timer's two units (and the NixOS module, from its Jinja2 template),
parsing a unit file into its settings, and comparing two by meaning — ``OnCalendar=daily``
is ``*-*-* 00:00:00``, ``15m`` is ``15min`` — so a hand-written unit that means the same
is not rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from ccci.systemd.values import exit_statuses, nix_string, unit_value

# The first line of every unit ccci writes: how ccci knows its own units.
MANAGED_HEADER = "# Managed by ccci"
# systemd.time(7): the shorthand calendar names and what they stand for.
_CALENDAR_NAMES = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}
_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def normalize_calendar(spec: str) -> str:
    """A calendar spec in systemd's normalized form, as far as ccci needs to compare."""
    text = " ".join(spec.split())
    if text.lower() in _CALENDAR_NAMES:
        return _CALENDAR_NAMES[text.lower()]
    parts = text.split(" ")
    last = parts[-1]
    if re.fullmatch(r"[0-9*,/.]+:[0-9*,/.]+", last):
        parts[-1] = last + ":00"
    if len(parts) == 1 and ":" in parts[0]:
        parts.insert(0, "*-*-*")
    return " ".join(parts)


def parse_timespan(text: str) -> float | None:
    """``15min``, ``1h 30min``, ``900`` (seconds) → seconds; None if not a time span."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    total = 0.0
    found = False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", cleaned):
        if unit not in _SPAN_UNITS:
            return None
        total += float(number) * _SPAN_UNITS[unit]
        found = True
    return total if found else None


def _normal_value(key: str, value: str) -> str:
    if key == "OnCalendar":
        return normalize_calendar(value)
    if key.endswith("Sec"):
        seconds = parse_timespan(value)
        return f"{seconds:g}s" if seconds is not None else value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return "true"
    if lowered in _FALSE:
        return "false"
    return " ".join(value.split())


Settings = dict[tuple[str, str], tuple[str, ...]]


def _lines(text: str) -> list[str]:
    """Lines as systemd reads them: split at newlines only (not at the other breaks Python
    knows), a trailing backslash joining the next line with a space."""
    joined: list[str] = []
    pending = ""
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        stripped = line.rstrip()
        if stripped.endswith("\\") and not stripped.lstrip().startswith(("#", ";")):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def parse_unit(text: str) -> Settings:
    """A unit file's settings by (section, key), comments and blank lines dropped."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in _lines(text):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep:
            key = key.strip()
            settings.setdefault((section, key), []).append(_normal_value(key, value.strip()))
    return {k: tuple(v) for k, v in settings.items()}


def same_meaning(a: str, b: str) -> bool:
    """Whether two unit files configure systemd alike (comments, layout and spellings such as
    ``daily`` aside): a unit that means the same is left alone rather than rewritten."""
    return parse_unit(a) == parse_unit(b)


@dataclass(frozen=True)
class TimerUnits:
    """The two files a present timer is made of."""

    timer: str
    service: str


def _nix(value: Any) -> str:
    """A Python value as a Nix literal: numbers and booleans bare, text a quoted string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return nix_string(str(value))


def _nix_inner(value: Any) -> str:
    """Text escaped for the inside of a Nix string that the template opens and closes."""
    return nix_string(str(value))[1:-1]


@cache
def _template(name: str) -> Any:
    from importlib import resources

    from jinja2 import Environment, StrictUndefined

    text = (resources.files("ccci") / "templates" / name).read_text(encoding="utf-8")
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    # Values were checked at load (ccci.systemd.values); these escape what stays meaningful.
    env.filters.update(unit_value=unit_value, nix=_nix, nix_inner=_nix_inner)
    return env.from_string(text)


def render_nixos_module(values: dict[str, Any], args: str, ssh: bool = False) -> str:
    """The same timer as a NixOS module, for hosts whose units live in the Nix store. The
    command is the ccci of the module's ``services.ccci.package`` with ``args``: a path
    found on this machine means nothing in a Nix configuration. ``ssh``: the run reaches
    hosts over SSH, and a NixOS unit's PATH holds no ``ssh`` unless it is given one."""
    return str(
        _template("nixos.nix.j2").render(
            **values,
            args=args,
            ssh=ssh,
            after_units=values["after"].split(),
            exit_statuses=exit_statuses(values["success_exit_status"]),
        )
    )


def render_timer_units(values: dict[str, Any]) -> TimerUnits:
    """Render ``<name>.timer`` and ``<name>.service`` (``values``: policy.build.timer_values).

    Plain Python, not Jinja2: every plan and janitor run builds the TimerPolicy's units
    at load, and importing Jinja2 for two fixed layouts cost more than the rest of the
    load (the NixOS module, rendered only on request, stays a template).
    """
    return TimerUnits(timer=_timer_unit(values), service=_service_unit(values))


def _timer_unit(v: dict[str, Any]) -> str:
    lines = [
        f"{MANAGED_HEADER} (policy {v['policy']}). Edit the policy, not this file.",
        "[Unit]",
        f"Description={unit_value(v['description'])}",
        "",
        "[Timer]",
        f"OnCalendar={v['on_calendar']}",
        f"Persistent={'true' if v['persistent'] else 'false'}",
    ]
    if v["randomized_delay"]:
        lines.append(f"RandomizedDelaySec={v['randomized_delay']}")
    lines += [f"Unit={v['name']}.service", "", "[Install]", "WantedBy=timers.target"]
    return "\n".join(lines) + "\n"


_HARDENING = (
    "# Hardening that still reaches the Docker socket and the folders ccci writes in.",
    "PrivateTmp=true",
    "ProtectSystem=full",
    "ProtectHome=read-only",
    "ProtectKernelTunables=true",
    "ProtectKernelModules=true",
    "ProtectControlGroups=true",
    "NoNewPrivileges=true",
    "RestrictSUIDSGID=true",
    "LockPersonality=true",
)


def _service_unit(v: dict[str, Any]) -> str:
    lines = [
        f"{MANAGED_HEADER} (policy {v['policy']}). Edit the policy, not this file.",
        "[Unit]",
        f"Description={unit_value(v['description'])}",
    ]
    if v["after"]:
        lines += [f"After={v['after']}", f"Wants={v['after']}"]
    lines += ["", "[Service]", "Type=oneshot", f"ExecStart={unit_value(v['exec'])}"]
    if v["working_directory"]:
        lines.append(f"WorkingDirectory={unit_value(v['working_directory'])}")
    if v["success_exit_status"]:
        lines.append(f"SuccessExitStatus={v['success_exit_status']}")
    if v["hardening"]:
        lines += _HARDENING
        lines += [f"ReadWritePaths=-{unit_value(path)}" for path in v["read_write_paths"]]
    return "\n".join(lines) + "\n"
