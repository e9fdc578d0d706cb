"""Build a host's plan: run every policy's rule over the facts, in dependency order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ccci.facts.model import Facts
from ccci.plan.address import AddressKind
from ccci.plan.model import Change, GateResult, HostPlan, Manual, Noop, Plan
from ccci.policy.model import (
    DaemonPolicy,
    ImageRetention,
    OrphanStackPolicy,
    Policy,
    PrunePolicy,
    TimerPolicy,
)
from ccci.rules import Context, RuleOutput

Rule = Callable[[Any, Context], RuleOutput]


# Each rule is imported only when a policy of its kind is planned: the janitor, which plans
# only OrphanStackPolicy, starts without the other rules and what they import. Imported by
# name in these functions (not by a module path string) so that the layering test sees them.
def _daemon() -> Rule:
    from ccci.rules.daemon import plan_daemon

    return plan_daemon


def _timers() -> Rule:
    from ccci.rules.timers import plan_timers

    return plan_timers


def _orphans() -> Rule:
    from ccci.rules.orphans import plan_orphans

    return plan_orphans


def _prune() -> Rule:
    from ccci.rules.prune import plan_prune

    return plan_prune


def _retention() -> Rule:
    from ccci.rules.retention import plan_retention

    return plan_retention


# Rules run in this order: reaping orphans first lets the prune gates see the host as it
# will be after the reaps; the prune's leftovers go before any cached image is evicted, and
# eviction counts what they free (reap, prune, then evict). Kinds without a rule
# (StackSelector) only feed other policies. Each kind maps to what imports its rule.
RULES: dict[type[Any], Callable[[], Rule]] = {
    DaemonPolicy: _daemon,
    TimerPolicy: _timers,
    OrphanStackPolicy: _orphans,
    PrunePolicy: _prune,
    ImageRetention: _retention,
}
_ORDER = {kind: i for i, kind in enumerate(RULES)}


def rule_for(kind: type[Any]) -> Rule:
    """The rule that plans policies of ``kind`` (a key of :data:`RULES`), imported now if
    no plan needed it before."""
    return RULES[kind]()


def preload(policies: Iterable[Policy]) -> None:
    """Import now what planning these policies may import: their kinds' rules and the
    fingerprints a saved plan takes. For a caller with time to spare (waiting on the
    engine), so that the plan starts the moment the facts are in."""
    kinds = {type(p) for p in policies}
    for kind, load in RULES.items():
        if kind in kinds:
            load()
    from ccci.plan import fingerprint  # noqa: F401


def _retained(policies: tuple[Policy, ...], facts: Facts) -> dict[str, str]:
    """:func:`ccci.rules.retention.retained_images`, which is empty without an
    ImageRetention, so a plan without one never imports the retention rule."""
    if not any(isinstance(p, ImageRetention) for p in policies):
        return {}
    from ccci.rules.retention import retained_images

    return retained_images(policies, facts)


def plan_host(
    host: str,
    policies: Iterable[Policy],
    facts: Facts,
    now: datetime,
    fingerprinted: bool = True,
) -> HostPlan:
    """The host's plan. Fingerprints are only for a plan that may be saved and applied later
    (``--out``, JSON output, a saved plan's re-derivation): a trial plan (what else to
    gather, which changes there are) or one made only to be shown goes without them, as
    fingerprinting every change is a third of a big plan's cost."""
    changes: dict[str, Change] = {}
    noops: list[Noop] = []
    gates: list[GateResult] = []
    manual: list[Manual] = []
    policies = tuple(policies)
    # On a node of a shared swarm view, the stacks its cluster host reaps in this run are
    # gone before this node's gated changes run (apply does the cluster hosts first).
    swarm_reaps = frozenset(facts.swarm.cluster_reaps) if facts.swarm is not None else frozenset()
    ctx = Context(
        facts=facts,
        now=now,
        reaping=swarm_reaps,
        retained=_retained(policies, facts),
        policies=policies,
    )
    ruled = sorted(
        (p for p in policies if type(p) in RULES), key=lambda p: (_ORDER[type(p)], p.meta.name)
    )
    reaped: frozenset[str] = frozenset()
    for policy in ruled:
        added: list[Change] = []
        for outcome in rule_for(type(policy))(policy, ctx):
            if isinstance(outcome, GateResult):
                gates.append(outcome)
            elif isinstance(outcome, Manual):
                manual.append(outcome)
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
                added.append(outcome)
        # Only this rule's changes can add a reaped stack: the earlier ones are counted.
        reaped |= _reaped_stacks(added)
        ctx = replace(
            ctx,
            reaping=reaped | swarm_reaps,
            planned=tuple(changes.values()),
        )
    planned = tuple(changes.values())
    fingerprints: dict[str, str] = {}
    if fingerprinted:
        from ccci.plan.fingerprint import fingerprints_for

        fingerprints = fingerprints_for(facts, planned)
    return HostPlan(
        host=host,
        changes=planned,
        noops=tuple(noops),
        gates=tuple(gates),
        fingerprints=fingerprints,
        manual=tuple(manual),
    )


def _reaped_stacks(changes: Iterable[Change]) -> frozenset[str]:
    """Stacks whose services an earlier rule removes: no longer live for later gates."""
    return frozenset(
        c.subject.ident
        for c in changes
        if c.kind is AddressKind.STACK and (c.before or {}).get("services")
    )


def plan_hosts(items: Iterable[tuple[str, Iterable[Policy], Facts]], now: datetime) -> Plan:
    """Every host planned at one ``now``, so a run's hosts are judged against the same moment."""
    return Plan(now=now, hosts=tuple(plan_host(h, p, f, now) for h, p, f in items))
