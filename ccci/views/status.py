"""``ccci status``: the runbook's first screen, built as data from a plan, facts and journal.

Pure: it takes what was gathered and planned, and the journal's entries, and says whether
the host is healthy and why not. Rendering is separate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ccci.facts.model import Facts, GapCause
from ccci.plan.address import AddressKind
from ccci.plan.model import Action, GateResult, HostPlan, Manual
from ccci.policy.model import GateKind, ImageRetention, Policy, PrunePolicy, TimerPolicy
from ccci.quantities import format_percent, plural
from ccci.rules.convergence import unsettled
from ccci.rules.gates import describe_gaps, stuck_after_of


@dataclass(frozen=True)
class DiskLine:
    """A measured filesystem beside every policy threshold on it (policy name, share), so status
    says which policy the usage crosses."""

    path: str
    ratio: float
    thresholds: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class StackLine:
    """A live stack and how old it is; ``converging``/``stuck`` name a service still in flight, or
    one stuck past ``stuck_after``, with why."""

    name: str
    services: int
    age_seconds: float | None
    converging: str = ""
    stuck: str = ""


@dataclass(frozen=True)
class TimerLine:
    """A timer a TimerPolicy names: whether it should exist, and what systemd says."""

    name: str
    wanted: str
    state: str
    next_run: datetime | None
    last_run: datetime | None


@dataclass(frozen=True)
class LastRun:
    """The journal's newest recap for the host: what the last apply did, and whether it
    converged."""

    time: str
    run: str
    changed: int
    failed: int
    skipped: int
    converged: bool
    bytes_freed: int


@dataclass(frozen=True)
class HostStatus:
    """Everything one host's status screen shows."""

    host: str
    now: datetime
    engine: str
    disks: tuple[DiskLine, ...]
    gates: tuple[GateResult, ...]
    live_stacks: tuple[StackLine, ...]
    orphans: tuple[str, ...]
    pending: int
    manual: tuple[Manual, ...]
    last_run: LastRun | None
    timers: tuple[TimerLine, ...] = ()
    missing_images: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    # Services converging past stuck_after (``name: stuck (why) for …: task error``) and
    # fact kinds that could not be gathered, each with why.
    stuck: tuple[str, ...] = ()
    not_gathered: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        """Healthy means no problem was found: ``problems`` alone decides it, and says why not."""
        return not self.problems


def _thresholds(policies: tuple[Policy, ...]) -> dict[str, list[tuple[str, float]]]:
    found: dict[str, list[tuple[str, float]]] = {}
    for policy in policies:
        gates = list(policy.gates) if isinstance(policy, PrunePolicy) else []
        if isinstance(policy, ImageRetention) and policy.evict is not None:
            gates.append(policy.evict.gate)
        for gate in gates:
            if gate.kind is GateKind.DISK_USAGE:
                found.setdefault(gate.path, []).append((policy.meta.name, gate.at_least))
    return found


def _timers(policies: tuple[Policy, ...], facts: Facts) -> tuple[TimerLine, ...]:
    wanted: dict[str, str] = {}
    for policy in policies:
        if isinstance(policy, TimerPolicy):
            wanted.update({s.timer_name: "present" for s in policy.present})
            wanted.update({unit: "absent" for unit, _ in policy.absent})
    lines = []
    for name, want in wanted.items():
        unit = facts.unit(name)
        if unit is None:
            state = f"unknown (systemd {facts.systemd or 'not asked'})"
        elif not unit.exists:
            state = "does not exist"
        else:
            state = f"{unit.unit_file_state or unit.load_state}, {unit.active_state}"
        lines.append(
            TimerLine(
                name,
                want,
                state,
                unit.next_elapse if unit else None,
                unit.last_trigger if unit else None,
            )
        )
    return tuple(lines)


def last_run(entries: list[dict[str, Any]], host: str) -> LastRun | None:
    """The newest recap line the journal has for ``host``."""
    recaps = [e for e in entries if e.get("type") == "recap" and e.get("host") == host]
    if not recaps:
        return None
    e = recaps[-1]
    return LastRun(
        time=str(e.get("time", "")),
        run=str(e.get("run", "")),
        changed=int(e.get("changed", 0)),
        failed=int(e.get("failed", 0)),
        skipped=int(e.get("skipped", 0)),
        converged=bool(e.get("converged", False)),
        bytes_freed=int(e.get("bytes_freed", 0)),
    )


def host_status(
    policies: tuple[Policy, ...],
    facts: Facts,
    plan: HostPlan,
    journal: list[dict[str, Any]],
    now: datetime,
) -> HostStatus:
    """The status screen as data, pure: problems are disk over a threshold, facts that could not be
    gathered, stuck services, orphans to reap, missing images, manual actions and a last run with
    failures."""
    thresholds = _thresholds(policies)
    disks = tuple(DiskLine(d.path, d.ratio, tuple(thresholds.get(d.path, ()))) for d in facts.disks)
    found = unsettled(facts, now, stuck_after_of(g.gate for g in plan.gates))
    converging: dict[str, str] = {}
    stuck_in: dict[str, str] = {}
    for u in reversed(found):  # the first service of a stack names it
        if u.service.stack:
            (stuck_in if u.stuck else converging)[u.service.stack] = (
                f"{u.service.name} {u.describe(now)}" if u.stuck else u.why
            )
    stuck = tuple(f"service {u.service.name} {u.describe(now)}" for u in found if u.stuck)
    # A lean gather's skips are not a problem; a kind the engine would not or could not
    # list is: whatever needs it does nothing.
    gaps = [g for g in facts.gaps if g.cause is not GapCause.NOT_ASKED]
    live = tuple(
        StackLine(
            s.name,
            len(s.services),
            (now - newest).total_seconds() if (newest := s.newest()) else None,
            converging.get(s.name, ""),
            stuck_in.get(s.name, ""),
        )
        for s in facts.stacks()
        if s.live
    )
    orphans = tuple(c.subject.ident for c in plan.changes if c.kind is AddressKind.STACK)
    missing = tuple(
        str((c.after or {}).get("ref", c.label))
        for c in plan.changes
        if c.kind is AddressKind.IMAGE and c.action is Action.CREATE
    )
    run = last_run(journal, facts.host)
    problems: list[str] = []
    for disk in disks:
        for policy, at_least in disk.thresholds:
            if disk.ratio >= at_least:
                problems.append(
                    f"disk {format_percent(disk.ratio)} on {disk.path} is over "
                    f"{policy}'s {format_percent(at_least)}"
                )
    if gaps:
        problems.append(f"{describe_gaps(gaps)}: what needs them does nothing")
    problems += stuck
    if orphans:
        problems.append(f"{plural(len(orphans), 'orphaned stack')} to reap")
    if missing:
        problems.append(f"{plural(len(missing), 'image')} to keep warm missing from the cache")
    if plan.manual:
        problems.append(f"{plural(len(plan.manual), 'thing')} to do by hand")
    if run is not None and run.failed:
        problems.append(f"the last run had {plural(run.failed, 'failed change')}")
    daemon = facts.daemon
    return HostStatus(
        host=facts.host,
        now=now,
        engine=f"Docker {daemon.server_version} (API {daemon.api_version}), "
        f"{daemon.storage_driver}, data-root {daemon.data_root}, swarm {daemon.swarm_state}",
        disks=disks,
        gates=plan.gates,
        live_stacks=live,
        orphans=orphans,
        pending=len(plan.changes),
        manual=plan.manual,
        last_run=run,
        timers=_timers(policies, facts),
        missing_images=missing,
        problems=tuple(problems),
        stuck=stuck,
        not_gathered=tuple(str(g) for g in facts.gaps),
    )
