"""PrunePolicy: gates, thresholds and what is pruned, read for their effect on the host."""

from __future__ import annotations

from datetime import timedelta

from ccci.policy.model import Gate, GateKind, PrunePolicy
from ccci.review.meanings.base import Meaning, Risk, dur, pattern_change, pct

# Above this, the disk is nearly full before the prune starts: Docker may fail first.
NEARLY_FULL = 0.95

SELECTORS = {
    "dangling_images": "dangling images",
    "stopped_containers": "stopped containers",
    "dangling_build_cache": "dangling build cache",
}


def _gate(policy: PrunePolicy, kind: GateKind) -> Gate | None:
    return next((g for g in policy.gates if g.kind is kind), None)


def _disk(old: Gate | None, new: Gate | None) -> list[Meaning]:
    field = "spec.gates.disk_usage"
    if old is None and new is not None:
        return [
            Meaning(
                field,
                f"disk gate added: prunes only when {new.path} is at least "
                f"{pct(new.at_least)} full",
                Risk.SAFER,
                "it prunes only under disk pressure",
            )
        ]
    if old is not None and new is None:
        return [
            Meaning(
                field,
                "disk gate removed: prunes whatever the disk usage",
                Risk.RISKIER,
                "it prunes even with room to spare, evicting what the next run may reuse",
            )
        ]
    if old is None or new is None:
        return []
    found = []
    if new.at_least < old.at_least:
        found.append(
            Meaning(
                f"{field}.at_least",
                f"prune threshold {pct(old.at_least)} → {pct(new.at_least)} (prunes more often)",
                Risk.RISKIER,
                "it starts pruning with more of the disk still free",
            )
        )
    elif new.at_least > old.at_least:
        nearly_full = new.at_least >= NEARLY_FULL
        found.append(
            Meaning(
                f"{field}.at_least",
                f"prune threshold {pct(old.at_least)} → {pct(new.at_least)} (prunes less often)",
                Risk.RISKIER if nearly_full else Risk.SAFER,
                "the disk may fill before the prune ever starts"
                if nearly_full
                else "it waits for more disk pressure before removing anything",
            )
        )
    if new.path != old.path:
        found.append(
            Meaning(
                f"{field}.path",
                f"disk gate path {old.path} → {new.path}",
                Risk.NEUTRAL,
                "it measures another filesystem: check it is the one holding Docker's data-root",
            )
        )
    return found


def _stacks(old: Gate | None, new: Gate | None) -> list[Meaning]:
    field = "spec.gates.no_live_stacks"
    if old is None and new is not None:
        return [
            Meaning(
                field,
                f"live-stack gate added: waits while a stack matching {new.match!r} is deployed",
                Risk.SAFER,
                "it no longer prunes under a running CI run",
            )
        ]
    if old is not None and new is None:
        return [
            Meaning(
                field,
                "live-stack gate removed: prunes while CI runs are deployed",
                Risk.RISKIER,
                "a run's containers and images may be pruned around it",
            )
        ]
    if old is None or new is None:
        return []
    if old.match == new.match:
        if old.selector != new.selector:
            return [
                Meaning(
                    f"{field}.selector",
                    f"live-stack gate selector {old.selector or '(inline)'} → "
                    f"{new.selector or '(inline)'} (the same pattern)",
                    Risk.NEUTRAL,
                    "the same stacks hold the prune back",
                )
            ]
        return []
    text, comparison = pattern_change(old.match, new.match)
    if comparison.same:
        risk, why = Risk.NEUTRAL, "the same stacks hold the prune back"
    elif comparison.wider:
        risk, why = Risk.SAFER, "more stacks hold the prune back"
    elif comparison.known:
        risk, why = Risk.RISKIER, "some live stacks no longer hold the prune back"
    else:
        risk, why = Risk.NEUTRAL, "review which stacks hold the prune back"
    return [Meaning(field, f"live-stack gate {text}", risk, why)]


def _converging(old: Gate | None, new: Gate | None) -> list[Meaning]:
    field = "spec.gates.no_converging_services"
    if old is None and new is not None:
        return [
            Meaning(
                field,
                "converging gate added: waits while a deploy or a pull is in flight",
                Risk.SAFER,
                "it no longer prunes mid-deploy",
            )
        ]
    if old is not None and new is None:
        return [
            Meaning(
                field,
                "converging gate removed: prunes while a deploy or a pull is in flight",
                Risk.RISKIER,
                "an image a deploy is about to use may be pruned",
            )
        ]
    if old is not None and new is not None and old.stuck_after != new.stuck_after:
        before, after = dur(old.stuck_after), dur(new.stuck_after)
        longer = new.stuck_after > old.stuck_after
        return [
            Meaning(
                f"{field}.stuck_after",
                f"stuck_after {before} → {after}: a converging service holds the prune back "
                f"{'longer' if longer else 'for less time'} before it counts as stuck",
                Risk.SAFER if longer else Risk.RISKIER,
                "a stuck deploy holds hygiene back longer"
                if longer
                else "a slow pull may be taken for stuck and pruned under",
            )
        ]
    return []


def _selector(name: str, old: timedelta | None, new: timedelta | None) -> list[Meaning]:
    field, label = f"spec.prune.{name}", SELECTORS[name]
    if old is None and new is not None:
        return [
            Meaning(
                field,
                f"now prunes {label} older than {dur(new)}",
                Risk.RISKIER,
                "it removes objects it left alone before",
            )
        ]
    if old is not None and new is None:
        return [Meaning(field, f"no longer prunes {label}", Risk.SAFER, "they stay on the disk")]
    if old is None or new is None or old == new:
        return []
    younger = new < old
    return [
        Meaning(
            f"{field}.older_than",
            f"{label} older than {dur(old)} → {dur(new)} "
            + ("(prunes younger ones)" if younger else "(keeps them longer)"),
            Risk.RISKIER if younger else Risk.SAFER,
            "objects a run may still come back to are removed sooner"
            if younger
            else "objects stay longer before they are removed",
        )
    ]


def changed(old: PrunePolicy, new: PrunePolicy) -> list[Meaning]:
    """The disk, live-stack and convergence gates, then each selector's age: each says whether the
    prune now takes more (riskier) or less."""
    found = _disk(_gate(old, GateKind.DISK_USAGE), _gate(new, GateKind.DISK_USAGE))
    found += _stacks(_gate(old, GateKind.NO_LIVE_STACKS), _gate(new, GateKind.NO_LIVE_STACKS))
    found += _converging(
        _gate(old, GateKind.NO_CONVERGING_SERVICES), _gate(new, GateKind.NO_CONVERGING_SERVICES)
    )
    for name in SELECTORS:
        found += _selector(name, getattr(old, name), getattr(new, name))
    return found


def _summary(policy: PrunePolicy) -> str:
    what = [
        f"{label} older than {dur(getattr(policy, name))}"
        for name, label in SELECTORS.items()
        if getattr(policy, name) is not None
    ]
    disk = _gate(policy, GateKind.DISK_USAGE)
    when = f" when {disk.path} is at least {pct(disk.at_least)} full" if disk else ""
    return f"prunes {', '.join(what)}{when}"


def added(policy: PrunePolicy) -> Meaning:
    """Riskier: the policy removes objects from the host."""
    return Meaning(
        "",
        f"policy {policy.meta.name} added: {_summary(policy)}",
        Risk.RISKIER,
        "it removes objects from the host",
    )


def removed(policy: PrunePolicy) -> Meaning:
    """Safer: ccci removes less, and the disk is then the operator's to watch."""
    return Meaning(
        "",
        f"policy {policy.meta.name} removed: it {_summary(policy)}",
        Risk.SAFER,
        "ccci removes less; watch the disk",
    )
