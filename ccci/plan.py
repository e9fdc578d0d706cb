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
from ccci.address import Address, AddressKind, addr
from ccci.errors import Location
from ccci.facts.model import Facts
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

    @property
    def subject(self) -> Address:
        """The address, parsed: what kind of object this acts on, and which one."""
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
        return len(self.manual)

    def policy_noops(self) -> tuple[Noop, ...]:
        """Noops that hold for a whole policy (it does nothing at all, and why)."""
        return tuple(n for n in self.noops if n.is_policy_level())

    def object_noops(self) -> tuple[Noop, ...]:
        """Noops about one object each: what a policy looked at and left alone."""
        return tuple(n for n in self.noops if not n.is_policy_level())

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
        return json.dumps(to_jsonable(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Read a saved plan; the ``summary`` that ``--output json`` adds is derived data."""
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "summary"}
        return from_jsonable(cls, data)


def _to_remove(counts: dict[Action, int]) -> int:
    return counts[Action.DELETE] + counts[Action.REPLACE]


def fingerprint(record: Any) -> str:
    """A short stable hash of a fact record: a saved plan is stale when one moves."""
    text = json.dumps(to_jsonable(record), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SWARM_KEY = "swarm"


def swarm_fingerprint(facts: Facts) -> str:
    """Services and their update state: a deploy since the plan makes the plan stale."""
    return fingerprint(sorted((s.name, s.image, s.update_state) for s in facts.services))


def _image_record(facts: Facts, image_id: str) -> Any:
    """What an image removal depends on: its identity, names and parent. Its unique size
    is left out: the engine reports it only from a slow call that is made when an eviction
    needs it, so two gatherings of an unchanged image may differ in it."""
    image = next((i for i in facts.images if i.id == image_id), None)
    if image is None:
        return None
    return {
        "id": image.id,
        "tags": sorted(image.tags),
        "digests": sorted(image.digests),
        "created": image.created,
        "parent": image.parent,
    }


def _pull_record(facts: Facts, change: Change) -> Any:
    """A pull depends on the reference naming no local image: which images it names now."""
    from ccci.refs import names_image

    ref = change.work.refs[0] if change.work.refs else ""
    return {"ref": ref, "named": sorted(i.id for i in facts.images if names_image(ref, i))}


def _unit_state(facts: Facts, name: str) -> Any:
    """A unit as systemd reports it, without the times that move each time a timer fires."""
    unit = facts.unit(name)
    if unit is None:
        return None
    return {
        "name": unit.name,
        "load_state": unit.load_state,
        "active_state": unit.active_state,
        "unit_file_state": unit.unit_file_state,
        "fragment_path": unit.fragment_path,
        "calendars": unit.calendars,
        "persistent": unit.persistent,
        "randomized_delay_seconds": unit.randomized_delay_seconds,
    }


def _unit_record(facts: Facts, change: Change) -> Any:
    """A unit file write depends on the file's content and on the unit's state."""
    name = change.subject.ident
    path = change.work.path
    return {"file": facts.unit_file(path), "unit": _unit_state(facts, name)}


def _timer_record(facts: Facts, change: Change) -> Any:
    """Starting or masking a timer depends on its state and on its unit file's content."""
    name = change.subject.ident
    files = sorted(
        (f for f in facts.unit_files if f.path.rsplit("/", 1)[-1] == name), key=lambda f: f.path
    )
    return {"unit": _unit_state(facts, name), "files": files}


def stack_record(facts: Facts, name: str, env_files: tuple[str, ...] = ()) -> Any:
    """Every object of the stack with its id, and its env files: an object appearing,
    going, or re-created under the same name makes a saved reap stale."""
    stack = facts.stack(name)
    objects: list[tuple[str, str, str]] = []
    if stack is not None:
        groups: dict[str, tuple[Any, ...]] = {
            "services": stack.services,
            "secrets": stack.secrets,
            "configs": stack.configs,
            "networks": stack.networks,
        }
        for kind, members in groups.items():
            objects += [(kind, m.name, m.id) for m in members]
        objects += [("volumes", v.name, v.name) for v in stack.volumes]
        # A service told to become something else since the plan (a deploy, a scale) is
        # someone using the stack: a saved reap of it is stale, whatever its deadline.
        changed = sorted((s.id, s.spec_changed.isoformat()) for s in stack.services)
        return {
            "objects": sorted(objects),
            "services_changed": changed,
            "files": [facts.file(p) for p in sorted(env_files)],
        }
    return {"objects": sorted(objects), "files": [facts.file(p) for p in sorted(env_files)]}


def _record_of(facts: Facts, change: Change) -> tuple[bool, Any]:
    """(known kind, what the change depends on in ``facts``)."""
    try:
        kind, ident = change.kind, change.subject.ident
    except ValueError:  # a saved plan's address of no kind ccci knows: not fingerprintable
        return False, None
    if kind is AddressKind.IMAGE and change.action is Action.CREATE:
        return True, _pull_record(facts, change)
    if kind is AddressKind.IMAGE:
        return True, _image_record(facts, ident)
    if kind is AddressKind.CONTAINER:
        return True, next((c for c in facts.containers if c.id == ident), None)
    if kind is AddressKind.BUILD_CACHE:
        return True, next((b for b in facts.build_cache if b.id == ident), None)
    if kind is AddressKind.STACK:
        files = tuple(t.name for t in change.targets if t.kind == "env_file")
        return True, stack_record(facts, ident, files)
    if kind is AddressKind.UNIT:
        return True, _unit_record(facts, change)
    if kind is AddressKind.TIMER:
        return True, _timer_record(facts, change)
    return False, None


def fingerprints_for(facts: Facts, changes: tuple[Change, ...]) -> dict[str, str]:
    """Per change, a hash of the facts it depends on; a kind ccci cannot fingerprint gets
    none, and a saved plan holding such a change is refused."""
    prints = {}
    for change in changes:
        known, record = _record_of(facts, change)
        if known:
            prints[change.address] = fingerprint(record)
    prints[SWARM_KEY] = swarm_fingerprint(facts)
    return prints


def moved(plan: HostPlan, facts: Facts) -> list[str]:
    """Addresses whose facts differ from when the plan was made (``swarm`` for services)."""
    now_prints = fingerprints_for(facts, plan.changes)
    wanted = [c.address for c in plan.changes] + [SWARM_KEY]
    return sorted(a for a in wanted if now_prints.get(a) != plan.fingerprints.get(a))


def subjects(facts: Facts) -> dict[str, Any]:
    """Every addressable object in the facts, by the address changes use."""
    found: dict[str, Any] = {}
    found.update({addr(AddressKind.IMAGE, i.id): i for i in facts.images})
    found.update({addr(AddressKind.CONTAINER, c.id): c for c in facts.containers})
    found.update({addr(AddressKind.BUILD_CACHE, b.id): b for b in facts.build_cache})
    for stack in facts.stacks():
        found[addr(AddressKind.STACK, stack.name)] = stack.objects()
    return found


@dataclass(frozen=True)
class Verdict:
    """A saved host plan judged against a fresh one: what may be applied, and why not."""

    host: HostPlan
    refused: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()


def judge_saved(saved: HostPlan, fresh: HostPlan, facts: Facts) -> Verdict:
    """Keep the saved changes the fresh plan (same policies, fresh ``facts``) makes too.

    A saved plan is data to compare, never orders: what is applied is the fresh plan's own
    change (its paths, unit contents, stack objects and gates). ``refused`` names each
    claim the policies do not make now, or that cannot be checked (no fingerprint);
    ``stale`` each fingerprint that moved. Either refuses the whole plan.
    """
    refused: list[str] = []
    stale: list[str] = []
    fresh_changes = {c.address: c for c in fresh.changes}
    accepted: set[str] = set()
    for change in saved.changes:
        address = change.address
        if address in accepted:
            refused.append(f"{address}: listed twice")
            continue
        if address not in saved.fingerprints:
            refused.append(f"{address}: has no fingerprint, so its facts cannot be checked")
            continue
        now = fresh_changes.get(address)
        prints = fresh.fingerprints if now is not None else fingerprints_for(facts, (change,))
        if prints.get(address) != saved.fingerprints[address]:
            stale.append(address)
            continue
        if now is None:
            refused.append(f"{address}: {_why_not(fresh, change)}")
            continue
        differ = change.differs_from(now)
        if differ:
            refused.append(f"{address}: {', '.join(differ)} not as the policies plan it now")
            continue
        accepted.add(address)
    if SWARM_KEY not in saved.fingerprints:
        refused.append(f"{SWARM_KEY}: has no fingerprint, so its facts cannot be checked")
    elif saved.fingerprints[SWARM_KEY] != fresh.fingerprints.get(SWARM_KEY):
        stale.append(SWARM_KEY)
    for policy in dict.fromkeys(c.policy for c in saved.changes):
        mine = [_gate_claim(g) for g in saved.gates_for(policy)]
        theirs = [_gate_claim(g) for g in fresh.gates_for(policy)]
        if sorted(mine, key=json.dumps) != sorted(theirs, key=json.dumps):
            have, want = _gate_kinds(saved, policy), _gate_kinds(fresh, policy)
            refused.append(
                f"policy {policy}: gates {have} differ from the policies' in their values"
                if have == want
                else f"policy {policy}: gates {have} are not the policies' ({want})"
            )
    kept = HostPlan(
        host=fresh.host,
        changes=tuple(c for c in fresh.changes if c.address in accepted),
        noops=fresh.noops,
        gates=fresh.gates,
        fingerprints=fresh.fingerprints,
        manual=fresh.manual,
    )
    return Verdict(kept, tuple(refused), tuple(stale))


def _gate_claim(result: GateResult) -> Any:
    """A gate as a saved plan claims it: what it checks, not where the policy file was read
    from (``-p policies`` and ``-p /srv/ci/policies`` are the same policies)."""
    claim = to_jsonable(result.gate)
    claim.pop("source", None)
    return claim


def _gate_kinds(plan: HostPlan, policy: str) -> str:
    kinds = [g.gate.kind.value for g in plan.gates_for(policy)]
    return ", ".join(kinds) if kinds else "none"


def _why_not(fresh: HostPlan, change: Change) -> str:
    """Why the fresh plan has no such change: a closed gate, a noop's reason, or nothing."""
    closed = [g for g in fresh.gates_for(change.policy) if not g.open]
    if change.gated and closed:
        gate = closed[0]
        kind = gate.gate.kind.value
        return f"policy {change.policy} holds it now: gate {kind} closed ({gate.observed})"
    noop = next((n for n in fresh.noops if n.address == change.address), None)
    if noop is not None:
        return f"the policies would not do this now: {noop.reason} (policy {noop.policy})"
    return "no policy plans this now"
