"""Evaluate policy gates against facts: open or closed, with the observed value."""

from __future__ import annotations

import math

from ccci.facts.model import Facts, Service
from ccci.plan import GateResult
from ccci.policy.model import Gate, GateKind
from ccci.units import format_percent

# Task states on the way to ``running``: a task in one of them means a deploy or a pull is
# still in flight.
PENDING_TASK_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
CONVERGING_UPDATE_STATES = frozenset({"updating", "rollback_started"})


def converging_services(facts: Facts) -> list[tuple[Service, str]]:
    """Services still converging, each with what shows it."""
    found: list[tuple[Service, str]] = []
    pending: dict[str, list[str]] = {}
    for task in facts.tasks:
        if task.desired_state == "running" and task.state in PENDING_TASK_STATES:
            pending.setdefault(task.service_id, []).append(task.state)
    for service in facts.services:
        if service.update_state in CONVERGING_UPDATE_STATES:
            found.append((service, f"update {service.update_state}"))
        elif service.id in pending:
            states = ", ".join(sorted(set(pending[service.id])))
            count = len(pending[service.id])
            found.append(
                (service, f"{count} task{'s' if count > 1 else ''} {states}, desired running")
            )
    return found


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


def _converging(facts: Facts) -> tuple[bool, str]:
    found = converging_services(facts)
    if found:
        service, why = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        return False, f"service {service.name} converging ({why}){more}"
    count = len(facts.services)
    return True, f"no service converging ({count} service{'' if count == 1 else 's'})"


def evaluate(
    policy: str, gate: Gate, facts: Facts, reaping: frozenset[str] = frozenset()
) -> GateResult:
    if gate.kind is GateKind.DISK_USAGE:
        is_open, observed = _disk(gate, facts)
    elif gate.kind is GateKind.NO_LIVE_STACKS:
        is_open, observed = _stacks(gate, facts, reaping)
    else:
        is_open, observed = _converging(facts)
    return GateResult(policy=policy, gate=gate, open=is_open, observed=observed)
