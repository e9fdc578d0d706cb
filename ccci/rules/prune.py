"""PrunePolicy: the gated, surgical prune.

Read as a chain of filters: a closed gate stops everything; then stopped containers, then
leftover images — no tag and no repo digest — (an image whose only user is a container
removed here goes too), then dangling build cache, each older than the policy's age. An
untagged image with a repo digest is the swarm's pull cache and never a candidate: that is
stricter than ``docker image prune``, which removes it. Every exclusion says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ccci.facts.model import Container, Image, ImageKind
from ccci.plan.address import AddressKind, addr
from ccci.plan.model import (
    Action,
    Change,
    GateResult,
    Manual,
    Noop,
    Operation,
    Precondition,
    Work,
)
from ccci.policy.model import PrunePolicy
from ccci.quantities import format_duration, format_spec_duration
from ccci.rules import Context, RuleOutput
from ccci.rules.gates import describe_gaps, evaluate, gate_gaps, unsure
from ccci.rules.usage import image_users, parents


def _age(now: datetime, moment: datetime, what: str, limit: timedelta) -> tuple[bool, str]:
    """Whether ``moment`` is at least ``limit`` ago, and the phrase that says so."""
    age = now - moment
    old = age >= limit
    relation = "≥" if old else "<"
    return old, f"{what} {format_duration(age)} ago {relation} {format_spec_duration(limit)}"


def _needs(policy: PrunePolicy) -> tuple[str, ...]:
    """The fact kinds without which the prune could remove what something still uses: an
    image only a service or a task names loses its protection when they are not listed.
    (Build cache is judged on its own, below.)"""
    kinds: list[str] = []
    if policy.stopped_containers is not None or policy.dangling_images is not None:
        kinds.append("containers")
    if policy.dangling_images is not None:
        kinds += ["images", "services", "tasks"]
    return tuple(kinds)


def plan_prune(policy: PrunePolicy, ctx: Context) -> RuleOutput:
    """The PrunePolicy rule: nothing while a gate is closed or a needed fact is missing; then old
    stopped containers, leftover images and dangling build cache, each removal carrying the
    preconditions apply re-checks."""
    name = policy.meta.name
    results = [evaluate(name, gate, ctx.facts, ctx.reaping, ctx.now) for gate in policy.gates]
    yield from results
    refusal = _refusal(policy, ctx, [r for r in results if not r.open])
    if refusal is not None:
        yield refusal
        return
    containers = list(_containers(policy, ctx)) if policy.stopped_containers is not None else []
    yield from containers
    if policy.dangling_images is not None:
        # An image whose only user is a container removed here goes too.
        removed = frozenset(c.subject.ident for c in containers if isinstance(c, Change))
        yield from _images(policy, ctx, removed)
    if policy.dangling_build_cache is not None:
        yield from _build_cache(policy, ctx)


def _refusal(policy: PrunePolicy, ctx: Context, closed: list[GateResult]) -> Noop | Manual | None:
    """Why the prune does nothing at all: a closed gate, or a fact it needs is missing."""
    name = policy.meta.name
    where = addr(AddressKind.POLICY, name)
    if closed:
        why = "; ".join(f"gate {r.gate.kind.value} closed: {r.observed}" for r in closed)
        return unsure(where, name, why, gate_gaps(closed, ctx.facts), name, policy.meta.source)
    gaps = ctx.facts.missing(*_needs(policy))
    if gaps:
        why = f"needed facts missing: {describe_gaps(gaps)}"
        return unsure(where, name, why, gaps, name, policy.meta.source)
    return None


def _container_age(policy: PrunePolicy, now: datetime, container: Container) -> tuple[bool, str]:
    """Whether a stopped container is old enough: by its finish, or by its creation when
    it never ran; the phrase names its state when that is not plain ``exited``."""
    limit = policy.stopped_containers
    assert limit is not None
    if container.finished:
        old, phrase = _age(now, container.finished, "exited", limit)
        return old, phrase if container.state == "exited" else f"{container.state}, {phrase}"
    old, phrase = _age(now, container.created, "created", limit)
    state = "never started" if container.state == "created" else container.state
    return old, f"{state}, {phrase}"


def _containers(policy: PrunePolicy, ctx: Context) -> RuleOutput:
    """Stopped containers older than the policy's age."""
    name, source = policy.meta.name, policy.source_of("stopped_containers")
    for container in ctx.facts.containers:
        if container.active:
            continue
        old, phrase = _container_age(policy, ctx.now, container)
        address = addr(AddressKind.CONTAINER, container.id)
        label = f"{container.name} ({_short_image(container.image)})"
        if not old:
            yield Noop(address, label, phrase, name, source)
            continue
        yield Change(
            address=address,
            action=Action.DELETE,
            label=label,
            reason=phrase,
            policy=name,
            source=source,
            before=_container_before(container),
            preconditions=(Precondition.CONTAINER_STOPPED,),
            work=Work(Operation.REMOVE_CONTAINER),
        )


def _images(policy: PrunePolicy, ctx: Context, removed: frozenset[str]) -> RuleOutput:
    """Leftover images (no tag, no repo digest) older than the policy's age that nothing
    uses once the ``removed`` containers are gone; every other untagged image says why."""
    facts, name, source = ctx.facts, policy.meta.name, policy.source_of("dangling_images")
    users = image_users(facts, ignoring=removed)
    before_removal = image_users(facts)
    has_children = parents(facts)
    for image in facts.images:
        if image.kind is ImageKind.TAGGED:
            continue
        address = addr(AddressKind.IMAGE, image.id)
        label = untagged_label(image)
        kept = _image_kept(image, ctx, users, has_children)
        if kept is not None:
            yield Noop(address, label, kept, name, source)
            continue
        assert policy.dangling_images is not None
        old, phrase = _age(ctx.now, image.created, "created", policy.dangling_images)
        if not old:
            yield Noop(address, label, f"dangling, {phrase}", name, source)
            continue
        freed_by = before_removal.get(image.id)
        note = f" (once {', '.join(freed_by)} is removed)" if freed_by else ""
        yield Change(
            address=address,
            action=Action.DELETE,
            label=label,
            reason=f"dangling, {phrase}{note}",
            policy=name,
            source=source,
            before={"tags": [], "digests": list(image.digests), "size": image.size},
            bytes_freed=image.size,
            preconditions=(Precondition.IMAGE_DANGLING, Precondition.IMAGE_UNUSED),
            work=Work(Operation.REMOVE_IMAGE),
        )


def _image_kept(
    image: Image, ctx: Context, users: dict[str, list[str]], has_children: set[str]
) -> str | None:
    """Why an untagged image stays whatever its age, or None when its age decides."""
    if image.id in ctx.retained:
        return ctx.retained[image.id]
    if image.kind is ImageKind.DIGEST:
        # The swarm's cache: a prune never takes it (docker image prune would).
        return DIGEST_PULLED_NOOP
    if image.id in users:
        return f"dangling, but used by {', '.join(users[image.id])}"
    if image.id in has_children:
        return "dangling, but other images are built on it"
    return None


def _build_cache(policy: PrunePolicy, ctx: Context) -> RuleOutput:
    """Dangling build cache records last used longer ago than the policy's age; none
    when the build cache was not gathered."""
    name, source = policy.meta.name, policy.source_of("dangling_build_cache")
    if "build_cache" in ctx.facts.not_gathered:
        yield Noop("build_cache:*", "build cache", "not gathered in these facts", name, source)
        return
    limit = policy.dangling_build_cache
    assert limit is not None
    for record in ctx.facts.build_cache:
        address = addr(AddressKind.BUILD_CACHE, record.id)
        label = f"{record.type} {record.description or record.id[:12]}".strip()
        if not record.dangling:
            why = "in use" if record.in_use else "shared with an image"
            yield Noop(address, label, f"build cache {why}", name, source)
            continue
        old, phrase = _age(ctx.now, record.last_used or record.created, "last used", limit)
        if not old:
            yield Noop(address, label, f"dangling build cache, {phrase}", name, source)
            continue
        yield Change(
            address=address,
            action=Action.DELETE,
            label=label,
            reason=f"dangling build cache, {phrase}",
            policy=name,
            source=source,
            before={"size": record.size},
            bytes_freed=record.size,
            preconditions=(Precondition.BUILD_CACHE_UNUSED,),
            work=Work(Operation.REMOVE_BUILD_CACHE),
        )


DIGEST_PULLED_NOOP = (
    "pulled by digest, untagged: the swarm's image cache, never a prune candidate "
    "(ImageRetention keeps or evicts it by last use)"
)


def untagged_label(image: Image) -> str:
    """``repo:<none>`` as ``docker image ls`` shows an untagged image: the repository of
    its first digest, or ``<none>`` for a leftover."""
    from ccci.facts.refs import familiar_repo, repo_of

    repo = familiar_repo(repo_of(image.digests[0])) if image.digests else "<none>"
    return f"{repo}:<none>"


def _short_image(ref: str) -> str:
    """A container made from an image id shows it as ``sha256:<64 hex>``; cut that to 12."""
    return ref[:19] if ref.startswith("sha256:") else ref


def _container_before(container: Container) -> dict[str, object]:
    return {"name": container.name, "image": container.image, "state": container.state}
