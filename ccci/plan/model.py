"""The plan: pure data with the decisions about it (empty? counts? applicable?) as methods.

Renderers only render; apply only acts on what is here. A plan round-trips through JSON
(``--out plan.json`` then ``ccci apply plan.json``).
"""

from __future__ import annotations

import enum
import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ccci import __version__
from ccci.errors import Location
from ccci.plan.address import Address, AddressKind
from ccci.policy.model import Gate
from ccci.serde import from_jsonable, to_jsonable

# 2: changes name the exact objects they act on (``targets``), every change kind has a
# fingerprint, and ``ccci apply`` re-derives a saved plan instead of executing it.
# 3: each change says what apply does (``work``: an operation and its data), not ``params``.
PLAN_FORMAT = 3

# Parts of ``before``/``after`` that only estimate (what a removal frees): they explain a
# change and may be measured differently from one gathering to the next, so a saved change
# is not compared on them.
_ESTIMATES = frozenset({"size", "unique_size"})


class Action(enum.Enum):
    """Terraform's closed set of actions."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"

    @property
    def symbol(self) -> str:
        """Terraform's one-glyph mark (``+ ~ - -/+``) that the text plan and the policy diff
        print."""
        return {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}[self.value]


class Precondition(enum.Enum):
    """What must still be true of a change's subject at the moment it is applied."""

    IMAGE_DANGLING = "image_dangling"
    IMAGE_UNUSED = "image_unused"
    CONTAINER_STOPPED = "container_stopped"
    BUILD_CACHE_UNUSED = "build_cache_unused"
    STACK_ORPHANED = "stack_orphaned"


class Operation(enum.Enum):
    """The closed set of what apply does; the rule that plans a change chooses it, so apply
    dispatches on it alone and never infers the act from ``before``."""

    PULL_IMAGE = "pull_image"
    # By id: an image no reference names, or one repository's digest alone.
    REMOVE_IMAGE = "remove_image"
    # Each reference in ``refs`` (tags, or the repo digests of an image pulled by digest from
    # several repositories); the last untag deletes the image. The engine refuses to remove
    # by id an image that several repositories name.
    UNTAG_IMAGE = "untag_image"
    REMOVE_CONTAINER = "remove_container"
    REMOVE_BUILD_CACHE = "remove_build_cache"
    # The change's ``targets``, kinds in ``reap``, waiting ``wait_seconds`` for services.
    REAP_STACK = "reap_stack"
    WRITE_UNIT = "write_unit"
    # Reload systemd, enable and restart the timer.
    START_TIMER = "start_timer"
    # Stop, disable and mask the timer; first remove ``path`` (a unit file of the same name
    # in the unit directory would block the mask link) when set.
    MASK_TIMER = "mask_timer"


@dataclass(frozen=True)
class Work:
    """What apply does for one change, with exactly the data that operation needs."""

    operation: Operation
    refs: tuple[str, ...] = ()
    path: str = ""
    content: str = ""
    reap: tuple[str, ...] = ()
    wait_seconds: float = 0.0


@dataclass(frozen=True)
class Target:
    """One object a change acts on, exactly: apply removes this one and nothing else.

    ``kind`` is the stack's kind (``services``, ``secrets``, ``configs``, ``networks``,
    ``volumes``, ``env_file``); ``id`` is the engine's id where there is one, so an object
    re-created under the same name since the plan is not taken for the planned one.
    """

    kind: str
    name: str
    id: str = ""


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
    # Whether the policy's gates hold this change back: a pull that warms the cache does
    # not wait for the eviction's disk watermark.
    gated: bool = True
    targets: tuple[Target, ...] = ()
    # Set by the rule, read by apply: keyword-only so every maker of a change names it.
    work: Work = field(kw_only=True)

    @functools.cached_property
    def subject(self) -> Address:
        """The address, parsed: what kind of object this acts on, and which one. Parsed
        once per change: rules, the plan's counts and fingerprints each ask (12,000 parses
        in a plan of 1,760 changes)."""
        return Address.parse(self.address)

    @property
    def kind(self) -> AddressKind:
        """The object kind, from the address: ``image``, ``container``, ``build_cache``…"""
        return self.subject.kind

    def claim(self) -> dict[str, Any]:
        """What this change asserts the policies would do: everything apply acts on or
        decides by. A saved change is applied only when a fresh plan makes the same claim.
        Label, reason, source and size estimates only explain, so they are left out."""
        claim: dict[str, Any] = to_jsonable(
            {
                "address": self.address,
                "action": self.action,
                "policy": self.policy,
                "gated": self.gated,
                "preconditions": self.preconditions,
                "work": self.work,
                "targets": self.targets,
                "before": _without_estimates(self.before),
                "after": _without_estimates(self.after),
            }
        )
        return claim

    def differs_from(self, other: Change) -> list[str]:
        """The claim fields in which ``other`` (a fresh plan's change) differs."""
        mine, theirs = self.claim(), other.claim()
        return [key for key in mine if mine[key] != theirs.get(key)]


def _without_estimates(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: v for k, v in values.items() if k not in _ESTIMATES}


@dataclass(frozen=True)
class Noop:
    """Something a policy looked at and left alone, with why."""

    address: str
    label: str
    reason: str
    policy: str
    source: Location

    def is_policy_level(self) -> bool:
        """Whether this noop holds for a whole policy (a gap in the facts, a closed gate)
        rather than for one object."""
        try:
            return Address.parse(self.address).kind is AddressKind.POLICY
        except ValueError:  # a saved plan's noop of no kind ccci knows names one object
            return False


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
        """Changes per action, every action present (zero when none)."""
        counter = Counter(c.action for c in self.changes)
        return {a: counter.get(a, 0) for a in Action}

    def to_remove(self) -> int:
        """Terraform's "to remove": deletes, and replaces (a replace removes first)."""
        return _to_remove(self.counts())

    def bytes_freed(self) -> int:
        """What the changes would free, as estimated at plan time."""
        return sum(c.bytes_freed or 0 for c in self.changes)

    def manual_count(self) -> int:
        """What an operator must fix by hand here: pending, but never counted as a change to
        apply."""
        return len(self.manual)

    def policy_noops(self) -> tuple[Noop, ...]:
        """Noops that hold for a whole policy (it does nothing at all, and why)."""
        return tuple(n for n in self.noops if n.is_policy_level())

    def object_noops(self) -> tuple[Noop, ...]:
        """Noops about one object each: what a policy looked at and left alone."""
        return tuple(n for n in self.noops if not n.is_policy_level())

    def gates_for(self, policy: str) -> tuple[GateResult, ...]:
        """The gates that hold back ``policy``'s gated changes (apply re-checks them, a saved plan
        must claim the same ones)."""
        return tuple(g for g in self.gates if g.policy == policy)

    def closed_gates(self) -> tuple[GateResult, ...]:
        """Closed gates: their policies' changes wait, so gathering skips the slow facts only they
        need."""
        return tuple(g for g in self.gates if not g.open)


@dataclass(frozen=True)
class Plan:
    """Every host's plan, as of ``now``."""

    now: datetime
    hosts: tuple[HostPlan, ...]
    ccci_version: str = __version__
    format_version: int = PLAN_FORMAT

    def is_empty(self) -> bool:
        """Every host matches policy: nothing for ccci or an operator to do, so ``reconcile --plan
        --detailed-exitcode`` exits 0."""
        return all(h.is_empty() for h in self.hosts)

    def can_apply(self) -> bool:
        """Only changes are applied; a plan of manual actions alone has nothing for apply."""
        return any(h.changes for h in self.hosts)

    def manual_count(self) -> int:
        """Manual actions over every host: they keep a run from converging though apply does
        none."""
        return sum(len(h.manual) for h in self.hosts)

    def counts(self) -> dict[Action, int]:
        """Changes per action over every host."""
        total: Counter[Action] = Counter()
        for host in self.hosts:
            total.update(host.counts())
        return {a: total.get(a, 0) for a in Action}

    def to_remove(self) -> int:
        """Terraform's "to remove" over every host: deletes and replaces."""
        return _to_remove(self.counts())

    def bytes_freed(self) -> int:
        """What every host's changes would free, as estimated at plan time."""
        return sum(h.bytes_freed() for h in self.hosts)

    def to_json(self) -> str:
        """The form ``--out`` saves and ``ccci apply`` reads back (keys sorted, so saved plans diff
        cleanly)."""
        return json.dumps(to_jsonable(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Read a saved plan; the ``summary`` that ``--output json`` adds is derived data."""
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "summary"}
        return from_jsonable(cls, data)


def _to_remove(counts: dict[Action, int]) -> int:
    return counts[Action.DELETE] + counts[Action.REPLACE]
