"""Fingerprints of what a change acts on: a saved plan whose facts moved is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ccci.facts.model import BuildCacheRecord, Container, Facts, Image
from ccci.plan.address import AddressKind, addr
from ccci.plan.model import Action, Change, HostPlan
from ccci.serde import to_jsonable

# ``json.dumps(record, sort_keys=True)`` made anew per call; one encoder (it keeps no state
# between calls) writes the same text without that, for each of a big plan's changes.
_ENCODER = json.JSONEncoder(sort_keys=True)


def fingerprint(record: Any) -> str:
    """A short stable hash of a fact record: a saved plan is stale when one moves."""
    text = _ENCODER.encode(to_jsonable(record))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SWARM_KEY = "swarm"


def swarm_fingerprint(facts: Facts) -> str:
    """Services and their update state: a deploy since the plan makes the plan stale."""
    return fingerprint(sorted((s.name, s.image, s.update_state) for s in facts.services))


@dataclass(frozen=True)
class _ById:
    """The facts' images, containers and build cache records by id, made once for all the
    changes fingerprinted together: a plan fingerprints each of its changes, and a scan of
    the facts per change made that quadratic (1,500 images and containers: 80 ms)."""

    images: dict[str, Image]
    containers: dict[str, Container]
    build_cache: dict[str, BuildCacheRecord]

    @classmethod
    def of(cls, facts: Facts) -> _ById:
        # setdefault: the first of two records with one id wins, as the scan found it.
        images: dict[str, Image] = {}
        containers: dict[str, Container] = {}
        build_cache: dict[str, BuildCacheRecord] = {}
        for image in facts.images:
            images.setdefault(image.id, image)
        for container in facts.containers:
            containers.setdefault(container.id, container)
        for record in facts.build_cache:
            build_cache.setdefault(record.id, record)
        return cls(images, containers, build_cache)


def _image_record(index: _ById, image_id: str) -> Any:
    """What an image removal depends on: its identity, names and parent. Its unique size
    is left out: the engine reports it only from a slow call that is made when an eviction
    needs it, so two gatherings of an unchanged image may differ in it."""
    image = index.images.get(image_id)
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
    from ccci.facts.refs import names_image

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


def _record_of(facts: Facts, change: Change, index: _ById) -> tuple[bool, Any]:
    """(known kind, what the change depends on in ``facts``; ``index`` is theirs by id)."""
    try:
        kind, ident = change.kind, change.subject.ident
    except ValueError:  # a saved plan's address of no kind ccci knows: not fingerprintable
        return False, None
    if kind is AddressKind.IMAGE and change.action is Action.CREATE:
        return True, _pull_record(facts, change)
    if kind is AddressKind.IMAGE:
        return True, _image_record(index, ident)
    if kind is AddressKind.CONTAINER:
        return True, index.containers.get(ident)
    if kind is AddressKind.BUILD_CACHE:
        return True, index.build_cache.get(ident)
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
    index = _ById.of(facts)
    for change in changes:
        known, record = _record_of(facts, change, index)
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
