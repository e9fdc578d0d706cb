"""ImageRetention: keep the cache, warm it, and evict only by least recent use.

Read as a chain of filters: retained and in-use images are taken out first (each with why),
then tagged images unused for long enough are ordered by last use (ties: older created
first, then id) and evicted until the projected usage reaches the low watermark.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from datetime import datetime

from ccci.facts.model import Facts, Image
from ccci.plan import Action, Change, Noop, Precondition
from ccci.policy.model import Gate, GateKind, ImageRetention, Policy, PrunePolicy
from ccci.refs import digest_of, parse_ref
from ccci.rules import Context, RuleOutput
from ccci.rules.gates import evaluate
from ccci.rules.usage import image_users, resolve
from ccci.units import (
    format_duration,
    format_percent,
    format_spec_duration,
    format_time,
)


def pattern_matches(pattern: str, image: Image) -> bool:
    """``redis`` = ``redis:latest`` = ``library/redis:latest``; globs on repo and tag;
    ``sha256:…`` matches an image id (or its prefix) or a digest."""
    if pattern.startswith("sha256:"):
        return image.id.startswith(pattern) or any(digest_of(d) == pattern for d in image.digests)
    wanted = parse_ref(pattern)
    if wanted.digest:
        return any(digest_of(d) == wanted.digest for d in image.digests)
    return any(fnmatch.fnmatchcase(parse_ref(tag).name, wanted.name) for tag in image.tags)


def retained_images(policies: Iterable[Policy], facts: Facts) -> dict[str, str]:
    """Image id → which retention rule keeps it, for every rule of every policy to honour."""
    kept: dict[str, str] = {}
    for policy in policies:
        if not isinstance(policy, ImageRetention):
            continue
        # An image kept warm is kept, too: evicting it would only pull it again next run.
        named = [("retained", p, f"retain:{p}") for p in policy.retain]
        named += [("kept warm", p, f"ensure:{p}") for p in policy.ensure_present]
        for verb, pattern, key in named:
            source = policy.sources.get(key, policy.meta.source)
            for image in facts.images:
                if image.id not in kept and pattern_matches(pattern, image):
                    kept[image.id] = (
                        f"{verb} by policy {policy.meta.name} ({pattern!r}, "
                        f"{source.file}:{source.line})"
                    )
    return kept


def _label(image: Image) -> str:
    return ", ".join(image.tags) if image.tags else "<none>:<none>"


def _ensure(policy: ImageRetention, facts: Facts) -> RuleOutput:
    name = policy.meta.name
    for ref in policy.ensure_present:
        source = policy.sources.get(f"ensure:{ref}", policy.meta.source)
        found = resolve(ref, facts.images)
        address = f"image:{parse_ref(ref).name if not parse_ref(ref).digest else ref}"
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
            )


def _evict(policy: ImageRetention, ctx: Context) -> RuleOutput:
    evict = policy.evict
    assert evict is not None
    facts, now, name = ctx.facts, ctx.now, policy.meta.name
    results = [evaluate(name, evict.gate, facts, ctx.reaping)]
    # Eviction waits for the prune policies' stack and convergence gates (a deploy or a
    # pull in flight), and for convergence even when no prune policy asks for it.
    extra: list[Gate] = [
        g
        for p in ctx.policies
        if isinstance(p, PrunePolicy)
        for g in p.gates
        if g.kind in (GateKind.NO_LIVE_STACKS, GateKind.NO_CONVERGING_SERVICES)
    ]
    if not any(g.kind is GateKind.NO_CONVERGING_SERVICES for g in extra):
        extra.append(Gate(GateKind.NO_CONVERGING_SERVICES, evict.source))
    results += [evaluate(name, g, facts, ctx.reaping) for g in extra]
    yield from results
    closed = [r for r in results if not r.open]
    if closed:
        why = "; ".join(f"gate {r.gate.kind.value} closed: {r.observed}" for r in closed)
        yield Noop(f"policy:{name}", name, f"eviction waits: {why}", name, evict.source)
        return
    disk = facts.disk(evict.gate.path)
    assert disk is not None  # the disk gate is open, so it was measured
    users = image_users(facts)
    candidates: list[tuple[Image, datetime]] = []
    for image in facts.images:
        address = f"image:{image.id}"
        if image.dangling:
            continue  # dangling images are the prune's to judge
        if image.id in ctx.retained:
            yield Noop(address, _label(image), ctx.retained[image.id], name, evict.source)
            continue
        if image.id in users:
            yield Noop(
                address,
                _label(image),
                f"in use by {', '.join(users[image.id])}",
                name,
                evict.source,
            )
            continue
        last = facts.image_last_use.get(image.id)
        if last is None:
            yield Noop(
                address,
                _label(image),
                "never seen before: its use is tracked from now on",
                name,
                evict.source,
            )
            continue
        idle = now - last
        if idle < evict.unused_for:
            yield Noop(
                address,
                _label(image),
                f"last used {format_duration(idle)} ago < {format_spec_duration(evict.unused_for)}",
                name,
                evict.source,
            )
            continue
        candidates.append((image, last))
    candidates.sort(key=lambda c: (c[1], c[0].created, c[0].id))
    used = disk.used
    total = disk.used + disk.available
    planned = 0
    for image, last in candidates:
        ratio = used / total if total else 0.0
        address = f"image:{image.id}"
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
        yield Change(
            address,
            Action.DELETE,
            _label(image),
            f"unretained, last used {format_time(last)} ({format_duration(now - last)} ago ≥ "
            f"{format_spec_duration(evict.unused_for)}); "
            f"projected disk {format_percent(ratio)} → {format_percent(after)}",
            name,
            evict.source,
            before={"tags": list(image.tags), "size": image.size, "unique_size": image.unique_size},
            bytes_freed=freed,
            preconditions=(Precondition.IMAGE_UNUSED,),
        )
        used -= freed
        planned += 1


def plan_retention(policy: ImageRetention, ctx: Context) -> RuleOutput:
    yield from _ensure(policy, ctx.facts)
    if policy.evict is not None:
        yield from _evict(policy, ctx)
