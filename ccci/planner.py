"""Build a host's plan: run every policy's rule over the facts, in dependency order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ccci.facts.model import Facts
from ccci.plan import Change, GateResult, HostPlan, Noop, Plan, fingerprints_for
from ccci.policy.model import OrphanStackPolicy, Policy, PrunePolicy
from ccci.rules import Context, RuleOutput
from ccci.rules.orphans import plan_orphans
from ccci.rules.prune import plan_prune

# Rules run in this order: reaping orphans first lets the prune gates see the host as it
# will be after the reaps (reap first, prune last). Kinds without a rule (StackSelector)
# only feed other policies.
RULES: dict[type[Any], Callable[[Any, Context], RuleOutput]] = {
    OrphanStackPolicy: plan_orphans,
    PrunePolicy: plan_prune,
}
_ORDER = {kind: i for i, kind in enumerate(RULES)}


def plan_host(host: str, policies: Iterable[Policy], facts: Facts, now: datetime) -> HostPlan:
    changes: dict[str, Change] = {}
    noops: list[Noop] = []
    gates: list[GateResult] = []
    ctx = Context(facts=facts, now=now)
    ruled = sorted(
        (p for p in policies if type(p) in RULES), key=lambda p: (_ORDER[type(p)], p.meta.name)
    )
    for policy in ruled:
        for outcome in RULES[type(policy)](policy, ctx):
            if isinstance(outcome, GateResult):
                gates.append(outcome)
            elif isinstance(outcome, Noop):
                noops.append(outcome)
            elif outcome.address in changes:
                first = changes[outcome.address]
                noops.append(
                    Noop(
                        outcome.address,
                        outcome.label,
                        f"already planned by policy {first.policy}",
                        outcome.policy,
                        outcome.source,
                    )
                )
            else:
                changes[outcome.address] = outcome
        ctx = replace(ctx, reaping=_reaped_stacks(changes.values()))
    planned = tuple(changes.values())
    return HostPlan(
        host=host,
        changes=planned,
        noops=tuple(noops),
        gates=tuple(gates),
        fingerprints=fingerprints_for(facts, planned),
    )


def _reaped_stacks(changes: Iterable[Change]) -> frozenset[str]:
    """Stacks whose services an earlier rule removes: no longer live for later gates."""
    return frozenset(
        c.address.split(":", 1)[1]
        for c in changes
        if c.kind == "stack" and (c.before or {}).get("services")
    )


def plan_hosts(items: Iterable[tuple[str, Iterable[Policy], Facts]], now: datetime) -> Plan:
    return Plan(now=now, hosts=tuple(plan_host(h, p, f, now) for h, p, f in items))


def disk_paths(policies: Iterable[Policy]) -> list[str]:
    """Paths whose filesystems the gates of these policies measure."""
    return sorted({g.path for p in policies for g in getattr(p, "gates", ()) if g.path})


def file_paths(policies: Iterable[Policy], facts: Facts) -> list[str]:
    """Files the rules will ask about: each run-app stack's abra env file."""
    paths = {
        p.env_file_for(s.name)
        for p in policies
        if isinstance(p, OrphanStackPolicy) and "env_file" in p.reap
        for s in facts.stacks()
        if p.run_apps_pattern.search(s.name)
    }
    return sorted(paths)
