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
from ccci.plan.model import Action, Change, Noop, Operation, Precondition, Work
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
    facts, now, name = ctx.facts, ctx.now, policy.meta.name
    results = [evaluate(name, gate, facts, ctx.reaping, now) for gate in policy.gates]
    yield from results
    closed = [r for r in results if not r.open]
    if closed:
        why = "; ".join(f"gate {r.gate.kind.value} closed: {r.observed}" for r in closed)
        gaps = gate_gaps(closed, facts)
        yield unsure(addr(AddressKind.POLICY, name), name, why, gaps, name, policy.meta.source)
        return
    gaps = facts.missing(*_needs(policy))
    if gaps:
        why = f"needed facts missing: {describe_gaps(gaps)}"
        yield unsure(addr(AddressKind.POLICY, name), name, why, gaps, name, policy.meta.source)
        return

    removed_containers: set[str] = set()
    if policy.stopped_containers is not None:
        source = policy.source_of("stopped_containers")
        for container in facts.containers:
            if container.active:
                continue
            if container.finished:
                old, phrase = _age(now, container.finished, "exited", policy.stopped_containers)
                phrase = phrase if container.state == "exited" else f"{container.state}, {phrase}"
            else:
                old, phrase = _age(now, container.created, "created", policy.stopped_containers)
                state = "never started" if container.state == "created" else container.state
                phrase = f"{state}, {phrase}"
            address = addr(AddressKind.CONTAINER, container.id)
            label = f"{container.name} ({_short_image(container.image)})"
            if not old:
                yield Noop(address, label, phrase, name, source)
                continue
            removed_containers.add(container.id)
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

    if policy.dangling_images is not None:
        source = policy.source_of("dangling_images")
        users = image_users(facts, ignoring=frozenset(removed_containers))
        before_removal = image_users(facts)
        has_children = parents(facts)
        for image in facts.images:
            if image.kind is ImageKind.TAGGED:
                continue
            address = addr(AddressKind.IMAGE, image.id)
            label = untagged_label(image)
            old, phrase = _age(now, image.created, "created", policy.dangling_images)
            if image.id in ctx.retained:
                yield Noop(address, label, ctx.retained[image.id], name, source)
            elif image.kind is ImageKind.DIGEST:
                # The swarm's cache: a prune never takes it (docker image prune would).
                yield Noop(address, label, DIGEST_PULLED_NOOP, name, source)
            elif image.id in users:
                yield Noop(
                    address,
                    label,
                    f"dangling, but used by {', '.join(users[image.id])}",
                    name,
                    source,
                )
            elif image.id in has_children:
                yield Noop(
                    address, label, "dangling, but other images are built on it", name, source
                )
            elif not old:
                yield Noop(address, label, f"dangling, {phrase}", name, source)
            else:
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

    if policy.dangling_build_cache is not None and "build_cache" in facts.not_gathered:
        source = policy.source_of("dangling_build_cache")
        yield Noop("build_cache:*", "build cache", "not gathered in these facts", name, source)
    elif policy.dangling_build_cache is not None:
        source = policy.source_of("dangling_build_cache")
        for record in facts.build_cache:
            address = addr(AddressKind.BUILD_CACHE, record.id)
            label = f"{record.type} {record.description or record.id[:12]}".strip()
            if not record.dangling:
                why = "in use" if record.in_use else "shared with an image"
                yield Noop(address, label, f"build cache {why}", name, source)
                continue
            last = record.last_used or record.created
            old, phrase = _age(now, last, "last used", policy.dangling_build_cache)
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
