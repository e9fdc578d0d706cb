"""The plan: pure data with the decisions about it (empty? counts? applicable?) as methods.

Renderers only render; apply only acts on what is here. A plan round-trips through JSON
(``--out plan.json`` then ``ccci apply plan.json``).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ccci import __version__
from ccci.errors import Location
from ccci.facts.model import Facts
from ccci.policy.model import Gate
from ccci.serde import from_jsonable, to_jsonable

PLAN_FORMAT = 1


class Action(enum.Enum):
    """Terraform's closed set of actions."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}[self.value]


class Precondition(enum.Enum):
    """What must still be true of a change's subject at the moment it is applied."""

    IMAGE_DANGLING = "image_dangling"
    IMAGE_UNUSED = "image_unused"
    CONTAINER_STOPPED = "container_stopped"
    BUILD_CACHE_UNUSED = "build_cache_unused"
    STACK_ORPHANED = "stack_orphaned"


@dataclass(frozen=True)
class Change:
    """One action on one object; ``reason`` explains and is never used to decide."""

    address: str
    action: Action
    label: str
    reason: str
    policy: str
    source: Location
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    bytes_freed: int | None = None
    preconditions: tuple[Precondition, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    # Whether the policy's gates hold this change back: a pull that warms the cache does
    # not wait for the eviction's disk watermark.
    gated: bool = True

    @property
    def kind(self) -> str:
        """The object kind, from the address: ``image``, ``container``, ``build_cache``…"""
        return self.address.split(":", 1)[0]


@dataclass(frozen=True)
class Noop:
    """Something a policy looked at and left alone, with why."""

    address: str
    label: str
    reason: str
    policy: str
    source: Location


@dataclass(frozen=True)
class Manual:
    """Drift ccci must not fix itself (credentials, daemon settings, read-only units):
    what is wrong and what an operator should do. It counts as pending, never as applied."""

    address: str
    label: str
    reason: str
    how: str
    policy: str
    source: Location


@dataclass(frozen=True)
class GateResult:
    """A gate as evaluated: open or closed, and what was observed."""

    policy: str
    gate: Gate
    open: bool
    observed: str


@dataclass(frozen=True)
class HostPlan:
    """What one host needs, plus the fingerprints a saved plan is checked against."""

    host: str
    changes: tuple[Change, ...] = ()
    noops: tuple[Noop, ...] = ()
    gates: tuple[GateResult, ...] = ()
    fingerprints: dict[str, str] = field(default_factory=dict)
    manual: tuple[Manual, ...] = ()

    def is_empty(self) -> bool:
        """Nothing to do, by ccci or by hand: the host matches policy."""
        return not self.changes and not self.manual

    def counts(self) -> dict[Action, int]:
        counter = Counter(c.action for c in self.changes)
        return {a: counter.get(a, 0) for a in Action}

    def bytes_freed(self) -> int:
        return sum(c.bytes_freed or 0 for c in self.changes)

    def gates_for(self, policy: str) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if g.policy == policy)

    def closed_gates(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.open)


@dataclass(frozen=True)
class Plan:
    """Every host's plan, as of ``now``."""

    now: datetime
    hosts: tuple[HostPlan, ...]
    ccci_version: str = __version__
    format_version: int = PLAN_FORMAT

    def is_empty(self) -> bool:
        return all(h.is_empty() for h in self.hosts)

    def can_apply(self) -> bool:
        """Only changes are applied; a plan of manual actions alone has nothing for apply."""
        return any(h.changes for h in self.hosts)

    def manual_count(self) -> int:
        return sum(len(h.manual) for h in self.hosts)

    def counts(self) -> dict[Action, int]:
        total: Counter[Action] = Counter()
        for host in self.hosts:
            total.update(host.counts())
        return {a: total.get(a, 0) for a in Action}

    def to_json(self) -> str:
        return json.dumps(to_jsonable(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Read a saved plan; the ``summary`` that ``--output json`` adds is derived data."""
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "summary"}
        return from_jsonable(cls, data)


def fingerprint(record: Any) -> str:
    """A short stable hash of a fact record: a saved plan is stale when one moves."""
    text = json.dumps(to_jsonable(record), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def subjects(facts: Facts) -> dict[str, Any]:
    """Every addressable object in the facts, by the address changes use."""
    found: dict[str, Any] = {}
    found.update({f"image:{i.id}": i for i in facts.images})
    found.update({f"container:{c.id}": c for c in facts.containers})
    found.update({f"build_cache:{b.id}": b for b in facts.build_cache})
    for stack in facts.stacks():
        found[f"stack:{stack.name}"] = stack.objects()
    return found


def swarm_fingerprint(facts: Facts) -> str:
    """Services and their update state: a deploy since the plan makes the plan stale."""
    return fingerprint(sorted((s.name, s.image, s.update_state) for s in facts.services))


SWARM_KEY = "swarm"


def fingerprints_for(facts: Facts, changes: tuple[Change, ...]) -> dict[str, str]:
    known = subjects(facts)
    prints = {c.address: fingerprint(known.get(c.address)) for c in changes}
    prints[SWARM_KEY] = swarm_fingerprint(facts)
    return prints


def moved(plan: HostPlan, facts: Facts) -> list[str]:
    """Addresses whose facts differ from when the plan was made (``swarm`` for services)."""
    now_prints = fingerprints_for(facts, plan.changes)
    return sorted(a for a, fp in plan.fingerprints.items() if now_prints.get(a) != fp)
