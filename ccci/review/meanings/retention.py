"""ImageRetention: the cache. Retaining more is safer; evicting more, sooner, is riskier:
every evicted image is a cold pull (seconds per deploy, and the registry's pull limit)."""

from __future__ import annotations

from ccci.policy.model import Eviction, ImageRetention
from ccci.review.meanings.base import Meaning, Risk, added_removed, dur, pct

_COLD = "an evicted image means a cold pull on the next deploy"


def _evict(old: Eviction | None, new: Eviction | None) -> list[Meaning]:
    field = "spec.evict"
    if old is None and new is not None:
        return [
            Meaning(
                field,
                f"eviction added: from {pct(new.gate.at_least)} of {new.gate.path} down to "
                f"{pct(new.down_to)}, images unused for {dur(new.unused_for)}",
                Risk.RISKIER,
                f"it removes tagged images: {_COLD}",
            )
        ]
    if old is not None and new is None:
        return [
            Meaning(
                field,
                "eviction removed: tagged images are never evicted",
                Risk.SAFER,
                "the cache stays whole; watch the disk",
            )
        ]
    if old is None or new is None:
        return []
    found = []
    if old.gate.at_least != new.gate.at_least:
        sooner = new.gate.at_least < old.gate.at_least
        found.append(
            Meaning(
                f"{field}.when.disk_usage.at_least",
                f"eviction starts at {pct(old.gate.at_least)} → {pct(new.gate.at_least)} "
                + ("(evicts more often)" if sooner else "(evicts less often)"),
                Risk.RISKIER if sooner else Risk.SAFER,
                _COLD if sooner else "it waits for more disk pressure",
            )
        )
    if old.down_to != new.down_to:
        more = new.down_to < old.down_to
        found.append(
            Meaning(
                f"{field}.down_to",
                f"eviction frees down to {pct(old.down_to)} → {pct(new.down_to)} "
                + ("(evicts more each time)" if more else "(evicts less each time)"),
                Risk.RISKIER if more else Risk.SAFER,
                _COLD if more else "fewer images go per eviction",
            )
        )
    if old.unused_for != new.unused_for:
        younger = new.unused_for < old.unused_for
        found.append(
            Meaning(
                f"{field}.unused_for",
                f"evicts images unused for {dur(old.unused_for)} → {dur(new.unused_for)}",
                Risk.RISKIER if younger else Risk.SAFER,
                "recently used images become candidates"
                if younger
                else "only images unused for longer are candidates",
            )
        )
    if old.max_per_run != new.max_per_run:
        more = new.max_per_run > old.max_per_run
        found.append(
            Meaning(
                f"{field}.max_per_run",
                f"evicts at most {old.max_per_run} → {new.max_per_run} images per run",
                Risk.RISKIER if more else Risk.SAFER,
                "a single run can empty more of the cache"
                if more
                else "a single run removes fewer images",
            )
        )
    if old.gate.path != new.gate.path:
        found.append(
            Meaning(
                f"{field}.when.disk_usage.path",
                f"eviction measures {old.gate.path} → {new.gate.path}",
                Risk.NEUTRAL,
                "another filesystem: check it is the one holding Docker's data-root",
            )
        )
    return found


def changed(old: ImageRetention, new: ImageRetention) -> list[Meaning]:
    """Retained patterns and images kept warm, item by item, then the eviction: retaining less is
    riskier, warming the cache neutral."""
    found = added_removed(
        "spec.retain",
        old.retain,
        new.retain,
        ("retains {item}", Risk.SAFER, "matching images are never removed by any policy"),
        (
            "no longer retains {item}",
            Risk.RISKIER,
            "matching images may now be pruned or evicted",
        ),
    )
    found += added_removed(
        "spec.ensure_present",
        old.ensure_present,
        new.ensure_present,
        ("pulls {item} when missing", Risk.NEUTRAL, "warms the cache; each pull counts"),
        ("no longer pulls {item} when missing", Risk.NEUTRAL, "the first run pulls it cold"),
    )
    return found + _evict(old.evict, new.evict)


def _summary(policy: ImageRetention) -> str:
    parts = []
    if policy.retain:
        parts.append(f"retains {', '.join(policy.retain)}")
    if policy.ensure_present:
        parts.append(f"pulls {', '.join(policy.ensure_present)} when missing")
    if policy.evict:
        parts.append(
            f"evicts from {pct(policy.evict.gate.at_least)} down to {pct(policy.evict.down_to)}"
        )
    return "; ".join(parts) or "nothing"


def added(policy: ImageRetention) -> Meaning:
    """Riskier when it evicts (tagged images go cold); a policy that only retains or warms is
    safer."""
    evicts = policy.evict is not None
    return Meaning(
        "",
        f"policy {policy.meta.name} added: {_summary(policy)}",
        Risk.RISKIER if evicts else Risk.SAFER,
        f"it evicts tagged images: {_COLD}" if evicts else "it keeps images from removal",
    )


def removed(policy: ImageRetention) -> Meaning:
    """Riskier when it retained images (they may then be pruned or evicted), else safer."""
    retained = bool(policy.retain)
    return Meaning(
        "",
        f"policy {policy.meta.name} removed: it {_summary(policy)}",
        Risk.RISKIER if retained else Risk.SAFER,
        "images it retained may be pruned or evicted" if retained else "it evicted images",
    )
