"""ImageRetention: keep the cache, warm it, and evict only by least recent use.

Read as a chain of filters: retained and in-use images are taken out first (each with why),
then cached images — tagged, or pulled by digest and untagged, as a swarm leaves them —
unused for long enough are ordered by last use (ties: older created first, then id) and
evicted until the projected usage reaches the low watermark. The projection starts from
what the same plan's reaps and prune already free (kubelet's order: the cheap work first,
the cache last), so nothing is evicted that the prune made unnecessary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from ccci.facts.model import Facts, Image, ImageKind
from ccci.facts.refs import (
    DEFAULT_TAG,
    compile_pattern,
    familiar_repo,
    matches_any,
    parse_ref,
)
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
from ccci.policy.model import Gate, GateKind, ImageRetention, Policy, PrunePolicy
from ccci.quantities import (
    format_bytes,
    format_duration,
    format_percent,
    format_spec_duration,
    format_time,
)
from ccci.rules import Context, RuleOutput
from ccci.rules.gates import describe_gaps, evaluate, gate_gaps, unsure
from ccci.rules.prune import untagged_label
from ccci.rules.usage import image_users, resolve


def pattern_matches(pattern: str, image: Image) -> bool:
    """``redis`` = ``redis:latest`` = ``docker.io/library/redis:latest``; globs on repo and
    tag; by any tag or the repository of any digest; ``sha256:…`` matches an image id (or
    its prefix) or a digest. Patterns were checked at load (see ccci.facts.refs)."""
    return compile_pattern(pattern).matches(image)


def retained_images(policies: Iterable[Policy], facts: Facts) -> dict[str, str]:
    """Image id → which retention rule keeps it, for every rule of every policy to honour."""
    kept: dict[str, str] = {}
    retention = [p for p in policies if isinstance(p, ImageRetention)]
    if not retention or not facts.images:
        return kept
    # Only the images some pattern matches are tried pattern by pattern, in the facts'
    # order as before (the first pattern to match an image says why it is kept).
    wanted = matches_any(
        compile_pattern(p) for policy in retention for p in (*policy.retain, *policy.ensure_present)
    )
    images = [image for image in facts.images if wanted(image)]
    for policy in retention:
        # An image kept warm is kept, too: evicting it would only pull it again next run.
        named = [("retained", p, f"retain:{p}") for p in policy.retain]
        named += [("kept warm", p, f"ensure:{p}") for p in policy.ensure_present]
        for verb, pattern, key in named:
            source = policy.sources.get(key, policy.meta.source)
            # pattern_matches, with the pattern compiled once for all the images.
            matches = compile_pattern(pattern).matches
            for image in images:
                if image.id not in kept and matches(image):
                    kept[image.id] = (
                        f"{verb} by policy {policy.meta.name} ({pattern!r}, "
                        f"{source.file}:{source.line})"
                    )
    return kept


def _label(image: Image) -> str:
    return ", ".join(image.tags) if image.tags else untagged_label(image)


def _pull_address(ref: str) -> str:
    """``image:redis:latest``: the familiar name, with Docker's default tag spelled out."""
    parsed = parse_ref(ref)
    if parsed.digest:
        return addr(AddressKind.IMAGE, parsed.familiar)
    return addr(AddressKind.IMAGE, f"{familiar_repo(parsed.repo)}:{parsed.tag or DEFAULT_TAG}")


def _ensure(policy: ImageRetention, facts: Facts) -> RuleOutput:
    name = policy.meta.name
    for ref in policy.ensure_present:
        source = policy.sources.get(f"ensure:{ref}", policy.meta.source)
        found = resolve(ref, facts.images)
        address = _pull_address(ref)
        if found:
            yield Noop(address, ref, f"present ({found[0].short_id})", name, source)
        else:
            yield Change(
                address,
                Action.CREATE,
                ref,
                "missing from the cache: pull it before a run needs it",
                name,
                source,
                after={"ref": ref},
                gated=False,
                work=Work(Operation.PULL_IMAGE, refs=(ref,)),
            )


def _evict(policy: ImageRetention, ctx: Context) -> RuleOutput:
    """Eviction by least recent use: nothing while a gate is closed or a fact it needs is
    missing, nor when what the plan frees first is enough; then the idlest unretained,
    unused images until the disk is projected at ``down_to``."""
    evict = policy.evict
    assert evict is not None
    results = _eviction_gates(policy, ctx)
    yield from results
    refusal = _eviction_refusal(policy, ctx, [r for r in results if not r.open])
    if refusal is not None:
        yield refusal
        return
    disk = ctx.facts.disk(evict.gate.path)
    assert disk is not None  # the disk gate is open, so it was measured
    total = disk.used + disk.available
    # What the reaps and the prune of this same plan free comes off first. Their bytes are
    # taken to be on the gate's filesystem; if they are not, ccci evicts less, never more.
    earlier = [c for c in ctx.planned if c.action is Action.DELETE]
    freed_first = sum(c.bytes_freed or 0 for c in earlier)
    used = max(disk.used - freed_first, 0)
    projected = used / total if total else 0.0
    if freed_first and projected < evict.gate.at_least:
        name = policy.meta.name
        yield Noop(
            addr(AddressKind.POLICY, name),
            name,
            f"after the plan's prune frees ~{format_bytes(freed_first)}, usage is "
            # Rounded down, as the gates are, so 84.96% never reads as "85% < 85%".
            f"{format_percent(math.floor(projected * 1000) / 1000)} < "
            f"{format_percent(evict.gate.at_least)}: "
            "no eviction",
            name,
            evict.source,
        )
        return
    removed = frozenset(c.subject.ident for c in earlier if c.kind is AddressKind.CONTAINER)
    candidates: list[tuple[Image, datetime]] = []
    yield from _idle_images(policy, ctx, removed, candidates)
    candidates.sort(key=lambda c: (c[1], c[0].created, c[0].id))
    yield from _choose(policy, ctx.now, candidates, used, total)


def _eviction_gates(policy: ImageRetention, ctx: Context) -> list[GateResult]:
    """The eviction's disk gate, then the prune policies' stack and convergence gates (a
    deploy or a pull in flight), and convergence even when no prune policy asks for it."""
    evict = policy.evict
    assert evict is not None
    name = policy.meta.name
    extra: list[Gate] = [
        g
        for p in ctx.policies
        if isinstance(p, PrunePolicy)
        for g in p.gates
        if g.kind in (GateKind.NO_LIVE_STACKS, GateKind.NO_CONVERGING_SERVICES)
    ]
    if not any(g.kind is GateKind.NO_CONVERGING_SERVICES for g in extra):
        extra.append(Gate(GateKind.NO_CONVERGING_SERVICES, evict.source))
    return [evaluate(name, g, ctx.facts, ctx.reaping, ctx.now) for g in (evict.gate, *extra)]


def _eviction_refusal(
    policy: ImageRetention, ctx: Context, closed: list[GateResult]
) -> Noop | Manual | None:
    """Why the eviction waits, or None: a closed gate, a missing fact, or a prune of build
    cache in this plan whose bytes are unknown."""
    evict = policy.evict
    assert evict is not None
    facts, name = ctx.facts, policy.meta.name
    where = addr(AddressKind.POLICY, name)
    if closed:
        why = "; ".join(f"gate {r.gate.kind.value} closed: {r.observed}" for r in closed)
        gaps = gate_gaps(closed, facts)
        return unsure(where, name, f"eviction waits: {why}", gaps, name, evict.source)
    # An image only a container, a service or a task uses would look unused without them.
    gaps = facts.missing("images", "containers", "services", "tasks")
    if gaps:
        why = f"eviction waits: needed facts missing: {describe_gaps(gaps)}"
        return unsure(where, name, why, gaps, name, evict.source)
    # A prune of build cache in this same plan frees its bytes first; with the build cache
    # not listed, how much is unknown, and eviction would take cache the prune makes
    # unnecessary. (Found by tests/properties: seeing less never removes more.)
    pruning = _pruning_build_cache(ctx)
    gaps = facts.missing("build_cache") if pruning else ()
    if gaps:
        why = (
            f"eviction waits: needed facts missing: {describe_gaps(gaps)}; the prune of "
            f"policy {pruning} frees build cache first"
        )
        return unsure(where, name, why, gaps, name, evict.source)
    return None


def _idle_images(
    policy: ImageRetention,
    ctx: Context,
    removed: frozenset[str],
    candidates: list[tuple[Image, datetime]],
) -> RuleOutput:
    """Every image but leftovers: kept (retained, in use once the ``removed`` containers
    are gone, never seen, or used too recently) with why, or added to ``candidates`` with
    its last use."""
    evict = policy.evict
    assert evict is not None
    facts, now, name = ctx.facts, ctx.now, policy.meta.name
    users = image_users(facts, ignoring=removed)
    for image in facts.images:
        if image.kind is ImageKind.LEFTOVER:
            continue  # leftovers are the prune's to judge
        last = facts.image_last_use.get(image.id)
        if image.id in ctx.retained:
            why = ctx.retained[image.id]
        elif image.id in users:
            why = f"in use by {', '.join(users[image.id])}"
        elif last is None:
            why = "never seen before: its use is tracked from now on"
        elif now - last < evict.unused_for:
            limit = format_spec_duration(evict.unused_for)
            why = f"last used {format_duration(now - last)} ago < {limit}"
        else:
            candidates.append((image, last))
            continue
        yield Noop(addr(AddressKind.IMAGE, image.id), _label(image), why, name, evict.source)


def _choose(
    policy: ImageRetention,
    now: datetime,
    candidates: list[tuple[Image, datetime]],
    used: int,
    total: int,
) -> RuleOutput:
    """The idlest candidates first, each removal projected on the disk, until usage is at
    ``down_to`` or ``max_per_run`` removals are planned; the rest say which stopped them."""
    evict = policy.evict
    assert evict is not None
    name = policy.meta.name
    planned = 0
    for image, last in candidates:
        ratio = used / total if total else 0.0
        address = addr(AddressKind.IMAGE, image.id)
        if ratio <= evict.down_to:
            yield Noop(
                address,
                _label(image),
                f"projected usage {format_percent(ratio)} already at or below "
                f"{format_percent(evict.down_to)}",
                name,
                evict.source,
            )
            continue
        if planned >= evict.max_per_run:
            yield Noop(
                address,
                _label(image),
                f"max_per_run {evict.max_per_run} reached",
                name,
                evict.source,
            )
            continue
        freed = image.unique_size if image.unique_size is not None else image.size
        after = (used - freed) / total if total else 0.0
        what = "unretained" if image.tags else "pulled by digest, unretained"
        yield Change(
            address,
            Action.DELETE,
            _label(image),
            f"{what}, last used {format_time(last)} ({format_duration(now - last)} ago ≥ "
            f"{format_spec_duration(evict.unused_for)}); "
            f"projected disk {format_percent(ratio)} → {format_percent(after)}",
            name,
            evict.source,
            before={
                "tags": list(image.tags),
                "digests": list(image.digests),
                "size": image.size,
                "unique_size": image.unique_size,
            },
            bytes_freed=freed,
            preconditions=(Precondition.IMAGE_UNUSED,),
            work=_eviction(image),
        )
        used -= freed
        planned += 1


def _eviction(image: Image) -> Work:
    """How an evicted image goes. By id only when at most one reference names it: the
    engine refuses to remove by id an image several repositories name, so each tag (or,
    pulled by digest from several repositories, each repo digest) is untagged instead."""
    if image.tags:
        return Work(Operation.UNTAG_IMAGE, refs=tuple(image.tags))
    if len(image.digests) > 1:
        return Work(Operation.UNTAG_IMAGE, refs=tuple(image.digests))
    return Work(Operation.REMOVE_IMAGE)


def _pruning_build_cache(ctx: Context) -> str:
    """The first prune policy that prunes build cache with all its gates open, or ''."""
    for p in ctx.policies:
        if not isinstance(p, PrunePolicy) or p.dangling_build_cache is None:
            continue
        name = p.meta.name
        if all(evaluate(name, g, ctx.facts, ctx.reaping, ctx.now).open for g in p.gates):
            return name
    return ""


def plan_retention(policy: ImageRetention, ctx: Context) -> RuleOutput:
    """The ImageRetention rule: pull what ``ensure_present`` lists and is missing (never gated),
    then evict by least recent use; without the image list it plans nothing, as every image would
    look missing."""
    gaps = ctx.facts.missing("images")
    if gaps:
        # Without the image list every image would look missing, and evictable by none.
        name, why = policy.meta.name, f"needed facts missing: {describe_gaps(gaps)}"
        yield unsure(addr(AddressKind.POLICY, name), name, why, gaps, name, policy.meta.source)
        return
    yield from _ensure(policy, ctx.facts)
    if policy.evict is not None:
        yield from _evict(policy, ctx)
