"""Contradictions between policies that each validate alone: pure functions of one host's
built policies, yielding lints that name the field at fault.

A policy can be valid and still fight another one (two thresholds on one disk, a timer that
must both exist and not) or do nothing at all (a ``keep`` no run-app can match). Reconcile
would run such a set without complaint; review is where it should be caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ccci.errors import Location
from ccci.policy.model import (
    DaemonPolicy,
    GateKind,
    OrphanStackPolicy,
    Policy,
    PrunePolicy,
    TimerPolicy,
)
from ccci.quantities import format_percent, format_spec_duration
from ccci.review import regexlang
from ccci.review.findings import Severity
from ccci.systemd.units import Settings, parse_unit


@dataclass(frozen=True)
class Lint:
    """A finding before it has a column: the field's location and what is wrong."""

    severity: Severity
    code: str
    location: Location
    message: str


def _at(anchor: Location, field: str) -> Location:
    """A field of the document ``anchor`` is in (its line finds the document)."""
    return Location(anchor.file, anchor.line, field)


def _where(location: Location) -> str:
    return f"{location.file}:{location.line}"


def prune_thresholds(policies: tuple[Policy, ...]) -> Iterator[Lint]:
    """Two prune policies gating on one filesystem at different fill levels."""
    first: dict[str, tuple[PrunePolicy, float, Location]] = {}
    for policy in policies:
        if not isinstance(policy, PrunePolicy):
            continue
        for gate in policy.gates:
            if gate.kind is not GateKind.DISK_USAGE:
                continue
            here = _at(gate.source, "spec.gates.disk_usage.at_least")
            if gate.path not in first:
                first[gate.path] = (policy, gate.at_least, gate.source)
                continue
            other, level, where = first[gate.path]
            if level != gate.at_least:
                yield Lint(
                    Severity.WARNING,
                    "prune-thresholds",
                    here,
                    f"PrunePolicy {policy.meta.name} prunes at {format_percent(gate.at_least)} "
                    f"of {gate.path} but {other.meta.name} at {format_percent(level)} "
                    f"({_where(where)}): two thresholds on one disk; the lower one decides",
                )


def keep_patterns(policies: tuple[Policy, ...]) -> Iterator[Lint]:
    """A ``keep`` pattern that matches no stack the policy's ``run_apps`` selects."""
    for policy in policies:
        if not isinstance(policy, OrphanStackPolicy):
            continue
        for i, keep in enumerate(policy.keep):
            answer = regexlang.overlap(policy.run_apps, keep)
            if answer.gave_up:
                yield Lint(
                    Severity.WARNING,
                    "regex-budget",
                    _at(policy.meta.source, f"spec.keep[{i}]"),
                    f"gave up comparing keep {keep!r} with run_apps {policy.run_apps!r} "
                    f"after {regexlang.BUDGET:,} steps: whether it protects any run-app "
                    "is not known (simplify the patterns)",
                )
            if answer.never:
                yield Lint(
                    Severity.WARNING,
                    "keep-unmatched",
                    _at(policy.meta.source, f"spec.keep[{i}]"),
                    f"keep {keep!r} matches no stack that run_apps selects "
                    f"({policy.run_apps!r}): it protects nothing",
                )


def orphan_overlaps(policies: tuple[Policy, ...]) -> Iterator[Lint]:
    """Two orphan policies that select the same stacks with different patience."""
    seen: list[OrphanStackPolicy] = []
    for policy in policies:
        if not isinstance(policy, OrphanStackPolicy):
            continue
        for other in seen:
            if other.orphan_after == policy.orphan_after:
                continue
            shared = regexlang.overlap(policy.run_apps, other.run_apps)
            if shared.exists:
                yield Lint(
                    Severity.WARNING,
                    "orphan-overlap",
                    _at(policy.meta.source, "spec.orphan_after"),
                    f"OrphanStackPolicy {policy.meta.name} and {other.meta.name} "
                    f"({_where(other.meta.source)}) both select stacks like "
                    f"{shared.example!r}, with orphan_after "
                    f"{format_spec_duration(policy.orphan_after)} and "
                    f"{format_spec_duration(other.orphan_after)}: the shorter one decides",
                )
        seen.append(policy)


def timers(policies: tuple[Policy, ...]) -> Iterator[Lint]:
    """A timer both present and absent (an error: each run would undo the other), or
    present twice with different settings (the first one wins, silently)."""
    present: dict[str, tuple[str, Location, tuple[Settings, Settings]]] = {}
    absent: list[tuple[str, str, Location]] = []
    for policy in policies:
        if not isinstance(policy, TimerPolicy):
            continue
        for spec in policy.present:
            unit = spec.timer_name
            # By meaning: the comment naming the policy that wrote a unit is no setting.
            units = (parse_unit(spec.timer_unit), parse_unit(spec.service_unit))
            if unit in present and present[unit][2] != units:
                other, where, _ = present[unit]
                yield Lint(
                    Severity.WARNING,
                    "timer-twice",
                    spec.source,
                    f"timer {unit} is also present in policy {other} ({_where(where)}) "
                    "with other settings: the first one wins",
                )
            present.setdefault(unit, (policy.meta.name, spec.source, units))
        absent += [(unit, policy.meta.name, source) for unit, source in policy.absent]
    for unit, _name, source in absent:
        if unit in present:
            other, where, _ = present[unit]
            yield Lint(
                Severity.ERROR,
                "timer-conflict",
                source,
                f"timer {unit} is both absent here and present in policy {other} "
                f"({_where(where)}): each run would undo the other",
            )


def daemon_settings(policies: tuple[Policy, ...]) -> Iterator[Lint]:
    """Two daemon policies that expect different values of one setting: no host can
    satisfy both, so the manual action could never be done."""
    first: dict[str, tuple[str, str, Location]] = {}
    for policy in policies:
        if not isinstance(policy, DaemonPolicy):
            continue
        for name, value in (
            ("data_root", policy.data_root),
            ("storage_driver", policy.storage_driver),
        ):
            if not value:
                continue
            if name in first and first[name][1] != value:
                other, expected, where = first[name]
                yield Lint(
                    Severity.ERROR,
                    "daemon-conflict",
                    _at(policy.meta.source, f"spec.{name}"),
                    f"{name} {value} contradicts {expected} in policy {other} "
                    f"({_where(where)}): no host can satisfy both",
                )
            first.setdefault(name, (policy.meta.name, value, policy.meta.source))


LINTS = (prune_thresholds, keep_patterns, orphan_overlaps, timers, daemon_settings)


def lint_host(policies: tuple[Policy, ...]) -> Iterator[Lint]:
    """Every cross-policy lint over one host's finalized policies."""
    for check in LINTS:
        yield from check(policies)
