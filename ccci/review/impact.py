"""``ccci policy diff --facts``: plan a recorded snapshot under both versions of the
policies and say what differs, host by host.

Each host in the snapshot that either inventory knows is planned twice with ccci's own
planner, at the same moment (``--now``, else when its facts were gathered, so a snapshot
keeps its meaning however old it is). Changes are matched by address; a change both plans
make alike is no difference, even when its reason reads differently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ccci.errors import InputError, Location
from ccci.facts.model import Facts
from ccci.plan.build import plan_host
from ccci.plan.model import Change, GateResult, HostPlan, Manual
from ccci.review.sides import PolicySet


@dataclass(frozen=True)
class ChangeDelta:
    """A planned change only the base makes (``head`` None), only the head makes, or both
    make differently."""

    address: str
    base: Change | None
    head: Change | None

    @property
    def status(self) -> str:
        """``added`` (only the head plans it), ``removed`` (only the base) or ``changed``."""
        if self.base is None:
            return "added"
        if self.head is None:
            return "removed"
        return "changed"

    @property
    def change(self) -> Change:
        """The change as the head plans it, else as the base did: what the diff shows."""
        found = self.head or self.base
        assert found is not None
        return found


@dataclass(frozen=True)
class GateDelta:
    """A gate that opened or closed, or that only one side has."""

    policy: str
    gate: str
    base: GateResult | None
    head: GateResult | None


@dataclass(frozen=True)
class ManualDelta:
    """A manual action only one side asks for, or that both ask for with different reasons."""

    address: str
    base: Manual | None
    head: Manual | None


@dataclass(frozen=True)
class HostImpact:
    """What one host's plan does differently under the head policies, planned from the same facts at
    the same moment as the base."""

    host: str
    now: datetime
    base: HostPlan
    head: HostPlan
    changes: tuple[ChangeDelta, ...]
    gates: tuple[GateDelta, ...]
    manual: tuple[ManualDelta, ...]

    def is_unchanged(self) -> bool:
        """No change, gate or manual action differs: the host is counted, not shown."""
        return not (self.changes or self.gates or self.manual)

    def count(self, status: str) -> int:
        """Plan changes by ``status`` (``added``, ``changed``, ``removed``), for the headline."""
        return sum(d.status == status for d in self.changes)

    def bytes_delta(self) -> int:
        """How many more bytes the head plan frees than the base plan (negative: fewer)."""
        return self.head.bytes_freed() - self.base.bytes_freed()

    def kinds(self, status: str) -> dict[str, int]:
        """Differences by object kind (``image``, ``stack``, ``unit``…)."""
        return dict(Counter(d.change.kind for d in self.changes if d.status == status))


def _same(a: Change, b: Change) -> bool:
    """Alike for a reviewer: the same action on the same object, to the same end."""
    return (a.action, a.label, a.before, a.after, a.bytes_freed, a.policy) == (
        b.action,
        b.label,
        b.before,
        b.after,
        b.bytes_freed,
        b.policy,
    )


def compare(host: str, now: datetime, base: HostPlan, head: HostPlan) -> HostImpact:
    """The differences between two plans of one host: changes by address (alike is no difference,
    whatever their reasons say), gates that opened or closed, manual actions."""
    old = {c.address: c for c in base.changes}
    new = {c.address: c for c in head.changes}
    changes = [ChangeDelta(a, old.get(a), c) for a, c in new.items() if a not in old]
    changes += [
        ChangeDelta(a, old[a], c) for a, c in new.items() if a in old and not _same(old[a], c)
    ]
    changes += [ChangeDelta(a, c, None) for a, c in old.items() if a not in new]
    gates_before = {(g.policy, g.gate.kind.value): g for g in base.gates}
    gates_after = {(g.policy, g.gate.kind.value): g for g in head.gates}
    gates = [
        GateDelta(key[0], key[1], gates_before.get(key), gates_after.get(key))
        for key in {**gates_before, **gates_after}
        if key not in gates_before
        or key not in gates_after
        or gates_before[key].open != gates_after[key].open
    ]
    manual_before = {m.address: m for m in base.manual}
    manual_after = {m.address: m for m in head.manual}
    manual = [
        ManualDelta(a, manual_before.get(a), manual_after.get(a))
        for a in {**manual_before, **manual_after}
        if a not in manual_before
        or a not in manual_after
        or manual_before[a].reason != manual_after[a].reason
    ]
    return HostImpact(host, now, base, head, tuple(changes), tuple(gates), tuple(manual))


def impact(
    base: PolicySet,
    head: PolicySet,
    snapshot: dict[str, Facts],
    snapshot_path: Path,
    now: datetime | None = None,
) -> tuple[HostImpact, ...]:
    """Plan every snapshot host either inventory knows, under both sides."""
    known = set(base.inventory.hosts) | set(head.inventory.hosts)
    hosts = [h for h in snapshot if h in known]
    if not hosts:
        have = ", ".join(sorted(snapshot)) or "none"
        raise InputError(
            Location(str(snapshot_path), 1),
            f"hosts: no host of the snapshot ({have}) is in either inventory",
        )
    found = []
    for host in hosts:
        facts = snapshot[host]
        moment = now or facts.gathered_at
        found.append(
            compare(
                host,
                moment,
                plan_host(host, base.policies(host), facts, moment),
                plan_host(host, head.policies(host), facts, moment),
            )
        )
    return tuple(found)
