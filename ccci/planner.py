"""Build a host's plan: run every policy's rule over the facts, in dependency order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ccci.facts.model import Facts
from ccci.plan import Change, GateResult, HostPlan, Noop, Plan, fingerprints_for
from ccci.policy.model import Policy, PrunePolicy
from ccci.rules import Context, RuleOutput
from ccci.rules.prune import plan_prune

# Rules run in this order: reaping orphans first lets later gates see the host as it
# will be, and pruning runs last.
RULES: dict[type[Any], Callable[[Any, Context], RuleOutput]] = {
    PrunePolicy: plan_prune,
}
_ORDER = {kind: i for i, kind in enumerate(RULES)}


def plan_host(host: str, policies: Iterable[Policy], facts: Facts, now: datetime) -> HostPlan:
    changes: dict[str, Change] = {}
    noops: list[Noop] = []
    gates: list[GateResult] = []
    ctx = Context(facts=facts, now=now)
    for policy in sorted(policies, key=lambda p: (_ORDER[type(p)], p.meta.name)):
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
    planned = tuple(changes.values())
    return HostPlan(
        host=host,
        changes=planned,
        noops=tuple(noops),
        gates=tuple(gates),
        fingerprints=fingerprints_for(facts, planned),
    )


def plan_hosts(items: Iterable[tuple[str, Iterable[Policy], Facts]], now: datetime) -> Plan:
    return Plan(now=now, hosts=tuple(plan_host(h, p, f, now) for h, p, f in items))


def disk_paths(policies: Iterable[Policy]) -> list[str]:
    """Paths whose filesystems the gates of these policies measure."""
    return sorted({g.path for p in policies for g in getattr(p, "gates", ()) if g.path})
