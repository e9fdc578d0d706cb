"""Evaluate policy gates against facts: open or closed, with the observed value.

A gate whose facts were not gathered is closed and says why: an empty service list from a
worker node is not "no services".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from ccci.errors import Location
from ccci.facts.model import FactGap, Facts, GapCause, Service
from ccci.plan.model import GateResult, Manual, Noop
from ccci.policy.model import DEFAULT_STUCK_AFTER, Gate, GateKind
from ccci.quantities import format_percent, plural
from ccci.rules.convergence import unsettled

# What each gate reads: without it the gate cannot be judged.
GATE_NEEDS: dict[GateKind, tuple[str, ...]] = {
    GateKind.DISK_USAGE: (),
    GateKind.NO_LIVE_STACKS: ("services",),
    GateKind.NO_CONVERGING_SERVICES: ("services", "tasks"),
}


def describe_gaps(gaps: Iterable[FactGap]) -> str:
    """``services, tasks not gathered (not a swarm manager: a worker node cannot list them)``:
    kinds missing for the same reason are named together."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for gap in gaps:
        grouped.setdefault((gap.cause.value, gap.detail), []).append(gap.kind)
    parts = []
    for (cause, detail), kinds in grouped.items():
        why = f"{cause}: {detail}" if detail else cause
        parts.append(f"{', '.join(kinds)} not gathered ({why})")
    return "; ".join(parts)


def missing_reason(facts: Facts, *kinds: str) -> str:
    """Why a rule that reads ``kinds`` cannot be judged on these facts, or ``""``."""
    return describe_gaps(facts.missing(*kinds))


def stuck_after_of(gates: Iterable[Gate]) -> timedelta:
    """The stuck threshold reports use: the shortest any of the host's convergence gates
    names, so status and metrics call stuck what no gate waits for any more."""
    found = [g.stuck_after for g in gates if g.kind is GateKind.NO_CONVERGING_SERVICES]
    return min(found) if found else DEFAULT_STUCK_AFTER


_FILL = {
    GapCause.NOT_MANAGER: "run ccci against a swarm manager (the inventory's docker_host)",
    GapCause.SWARM_LOCKED: "unlock the swarm (docker swarm unlock)",
    GapCause.SWARM_INACTIVE: "init or join the swarm, or drop what needs it from this host",
    GapCause.SWARM_UNAVAILABLE: "wait for the swarm to settle; the next run gathers again",
    GapCause.API_ERROR: "see the engine's log; the next run gathers again",
    GapCause.TIMEOUT: "see why the engine is slow; the next run gathers again",
}


def unsure(
    address: str,
    label: str,
    why: str,
    gaps: Iterable[FactGap],
    policy: str,
    source: Location,
) -> Noop | Manual:
    """What a rule yields when it cannot judge for missing facts. A kind the engine would
    not or could not list is drift nobody may ignore: a manual action, so the host does not
    count as converged (and ``--detailed-exitcode`` says so). A kind a lean gather did not
    ask for is only a noop: nothing needed it."""
    doubts = [g for g in gaps if g.cause is not GapCause.NOT_ASKED]
    if not doubts:
        return Noop(address, label, why, policy, source)
    how = "; ".join(dict.fromkeys(_FILL[g.cause] for g in doubts))
    return Manual(address, label, why, how, policy, source)


def gate_gaps(results: Iterable[GateResult], facts: Facts) -> tuple[FactGap, ...]:
    """The missing facts behind closed gates: what turns "wait" into "cannot tell"."""
    kinds = {k for r in results if not r.open for k in GATE_NEEDS[r.gate.kind]}
    return facts.missing(*kinds)


def converging_services(facts: Facts, now: datetime | None = None) -> list[tuple[Service, str]]:
    """Services still in flight (converging, not stuck), each with what shows it."""
    moment = now or facts.gathered_at
    return [(u.service, u.why) for u in unsettled(facts, moment) if not u.stuck]


def _disk(gate: Gate, facts: Facts) -> tuple[bool, str]:
    usage = facts.disk(gate.path)
    if usage is None:
        return False, f"disk usage of {gate.path} unknown (not gathered)"
    shown = f"{format_percent(usage.ratio)} on {gate.path}"
    if usage.ratio >= gate.at_least:
        return True, f"disk {shown} ≥ {format_percent(gate.at_least)}"
    # Round down when closed, so 79.96% never reads as "80% < 80%".
    below = format_percent(math.floor(usage.ratio * 1000) / 1000)
    return False, f"disk {below} < {format_percent(gate.at_least)} on {gate.path}"


def _stacks(gate: Gate, facts: Facts, reaping: frozenset[str]) -> tuple[bool, str]:
    matching = [s for s in facts.stacks() if s.live and gate.pattern.search(s.name)]
    live = [s for s in matching if s.name not in reaping]
    if live:
        names = ", ".join(s.name for s in live[:3])
        more = f" and {len(live) - 3} more" if len(live) > 3 else ""
        return False, f"{len(live)} live run-app stack{'s' if len(live) > 1 else ''}: {names}{more}"
    reaped = len(matching) - len(live)
    note = f" once {reaped} orphan{'s are' if reaped > 1 else ' is'} reaped" if reaped else ""
    return True, f"no live stack matches {gate.match!r}{note}"


def _converging(
    gate: Gate, facts: Facts, now: datetime, reaping: frozenset[str]
) -> tuple[bool, str]:
    # A service of a stack this plan reaps is gone before the gated changes run.
    found = [u for u in unsettled(facts, now, gate.stuck_after) if u.service.stack not in reaping]
    flying = [u for u in found if not u.stuck]
    stuck = [u for u in found if u.stuck]
    # A stuck service is named whether or not the gate is open: it is the one to look at.
    ignored = ""
    if stuck:
        first = stuck[0]
        more = f" and {len(stuck) - 1} more" if len(stuck) > 1 else ""
        ignored = f"not waiting for {first.service.name}, {first.describe(now)}{more}"
    if flying:
        first = flying[0]
        more = f" and {len(flying) - 1} more" if len(flying) > 1 else ""
        observed = f"service {first.service.name} converging ({first.why}){more}"
        return False, f"{observed}; {ignored}" if ignored else observed
    count = len(facts.services)
    observed = f"no service converging ({plural(count, 'service')}"
    return True, f"{observed}; {ignored})" if ignored else f"{observed})"


def evaluate(
    policy: str,
    gate: Gate,
    facts: Facts,
    reaping: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> GateResult:
    """The gate on ``facts`` as of ``now`` (default: when they were gathered)."""
    lacking = missing_reason(facts, *GATE_NEEDS[gate.kind])
    if lacking:
        is_open, observed = False, lacking
    elif gate.kind is GateKind.DISK_USAGE:
        is_open, observed = _disk(gate, facts)
    elif gate.kind is GateKind.NO_LIVE_STACKS:
        is_open, observed = _stacks(gate, facts, reaping)
    else:
        is_open, observed = _converging(gate, facts, now or facts.gathered_at, reaping)
    return GateResult(policy=policy, gate=gate, open=is_open, observed=observed)
