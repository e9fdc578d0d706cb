"""Swarm-aware scope: cluster objects read once per swarm, shared with each node of it.

Every host's facts are gathered as its own engine gives them. A worker's engine cannot list
services, tasks, secrets, configs or nodes, so on its own it knows nothing of the stacks
whose volumes it holds, nor of the services that may pull an image onto it. Before the
plan, each swarm's **cluster host** (the first host of the run, in inventory order, whose
engine is a manager of that swarm with a complete view) lends its cluster objects to every
other host of the same swarm; each keeps its node objects (images, containers, volumes,
local networks, build cache, disks, files, systemd).

The cluster host alone removes cluster objects; the others reap only what is theirs
(volumes, local networks, env files) of the stacks the cluster host reaps in the same run:
so one node's view (its own volume, newer than the stack's services) never decides a stack
the swarm still runs. A worker no host of its swarm's managers lends to keeps its gaps, and
with them every refusal a missing kind brings (see ``ccci.rules.gates``).

Pure functions of facts, the same on live facts and on a snapshot; only
:func:`gather_member` reads (a member's fresh facts at apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ccci.facts.model import SWARM_KINDS, Facts, SwarmScope, UnreachedNode
from ccci.plan.address import AddressKind
from ccci.plan.model import HostPlan, Plan
from ccci.policy.model import Policy

if TYPE_CHECKING:
    from ccci.connectors.base import Connector
    from ccci.policy.load import HostPolicies

SWARM_SCOPE = "swarm"


def lends(facts: Facts) -> bool:
    """Whether this host's engine can lend its swarm's cluster objects: an active manager
    that knows its swarm's ID and listed every cluster kind."""
    daemon = facts.daemon
    return (
        daemon.swarm_state == "active"
        and daemon.swarm_manager
        and bool(daemon.cluster_id)
        and not facts.missing(*SWARM_KINDS)
    )


def borrows(facts: Facts) -> bool:
    """Whether this host's cluster objects may come from another host of the run: an active
    worker, whose own engine cannot list them (a manager lists its own)."""
    daemon = facts.daemon
    return daemon.swarm_state == "active" and not daemon.swarm_manager and bool(daemon.node_id)


def cluster_hosts(facts_by_host: Mapping[str, Facts], order: Iterable[str]) -> dict[str, str]:
    """Swarm (cluster) ID → the host that lends its cluster objects: the first in ``order``."""
    chosen: dict[str, str] = {}
    for host in order:
        facts = facts_by_host.get(host)
        if facts is not None and lends(facts):
            chosen.setdefault(facts.daemon.cluster_id, host)
    return chosen


def swarm_of(facts: Facts, lenders: Mapping[str, Facts]) -> str:
    """The swarm ID of the host: its own (a manager), else the swarm whose manager lists
    this node's ID among its nodes and which this node names among its managers (a
    worker). ``""`` when no lender's swarm holds it."""
    daemon = facts.daemon
    if daemon.swarm_state != "active" or not daemon.node_id:
        return ""
    if daemon.cluster_id:
        return daemon.cluster_id if daemon.cluster_id in lenders else ""
    for cluster, lender in lenders.items():
        ids = {n.id for n in lender.nodes}
        managers = {n.id for n in lender.nodes if n.role == "manager"}
        if daemon.node_id in ids and (not daemon.managers or managers & set(daemon.managers)):
            return cluster
    return ""


def adopt(own: Facts, lender: Facts, scope: SwarmScope) -> Facts:
    """``own`` with the lender's cluster objects (and swarm-scope networks) in place of its
    own, and its gaps of those kinds gone: they were gathered, from a manager."""
    if own.host == lender.host:
        return replace(own, swarm=scope)
    networks = [n for n in own.networks if n.scope != SWARM_SCOPE]
    networks += [n for n in lender.networks if n.scope == SWARM_SCOPE]
    return replace(
        own,
        services=lender.services,
        tasks=lender.tasks,
        secrets=lender.secrets,
        configs=lender.configs,
        nodes=lender.nodes,
        networks=tuple(sorted(networks, key=lambda n: (n.name, n.id))),
        gaps=tuple(g for g in own.gaps if g.kind not in SWARM_KINDS),
        swarm=scope,
    )


def _unreached(
    lender: Facts, reached: set[str], unreachable: Mapping[str, str]
) -> tuple[UnreachedNode, ...]:
    """The swarm's nodes no host of the run reached: their volumes were not looked at."""
    if unreachable:
        hosts = "; ".join(f"{h}: {why}" for h, why in sorted(unreachable.items()))
        why = f"no host of this run reached it (unreachable: {hosts})"
    else:
        why = "no host of this run reached it (not in the inventory or --limit)"
    return tuple(
        UnreachedNode(n.id, n.hostname, why)
        for n in sorted(lender.nodes, key=lambda n: n.id)
        if n.id not in reached
    )


def share(
    facts_by_host: Mapping[str, Facts],
    order: Iterable[str],
    unreachable: Mapping[str, str] | None = None,
) -> dict[str, Facts]:
    """Every host's facts, each host of a swarm with its cluster host's cluster objects."""
    ordered = [h for h in order if h in facts_by_host]
    chosen = cluster_hosts(facts_by_host, ordered)
    lenders = {cluster: facts_by_host[host] for cluster, host in chosen.items()}
    reached = {f.daemon.node_id for f in facts_by_host.values() if f.daemon.node_id}
    shared: dict[str, Facts] = {}
    for host in ordered:
        facts = facts_by_host[host]
        cluster = swarm_of(facts, lenders)
        if not cluster:
            shared[host] = facts
            continue
        lender = lenders[cluster]
        mine = host == chosen[cluster]
        scope = SwarmScope(
            cluster_id=cluster,
            node_id=facts.daemon.node_id,
            source=lender.host,
            cluster_work=mine,
            unreached=_unreached(lender, reached, unreachable or {}) if mine else (),
        )
        shared[host] = adopt(facts, lender, scope)
    return shared


def cluster_first(hosts: Iterable[str], facts_by_host: Mapping[str, Facts]) -> list[list[str]]:
    """The hosts in two waves: those that do their swarm's cluster work (or are in no
    shared swarm), then the others, whose reaps wait for the cluster host's removal of the
    services that hold their volumes."""
    first: list[str] = []
    then: list[str] = []
    for host in hosts:
        facts = facts_by_host.get(host)
        member = facts is not None and facts.swarm is not None and not facts.swarm.cluster_work
        (then if member else first).append(host)
    return [wave for wave in (first, then) if wave]


def with_cluster_reaps(facts: Facts, reaps: frozenset[str]) -> Facts:
    """A member's facts with the stacks its cluster host reaps in this run."""
    if facts.swarm is None or facts.swarm.cluster_work:
        return facts
    return replace(facts, swarm=replace(facts.swarm, cluster_reaps=tuple(sorted(reaps))))


def reaped_by(plan: HostPlan) -> frozenset[str]:
    """The stacks a host's plan reaps."""
    return frozenset(c.subject.ident for c in plan.changes if c.kind is AddressKind.STACK)


def plan_in_scope(
    entries: Sequence[tuple[str, tuple[Policy, ...], Facts]],
    now: datetime,
    fingerprinted: bool = True,
) -> tuple[Plan, dict[str, Facts]]:
    """Plan the cluster hosts first, then every member of their swarms with the stacks its
    cluster host reaps: a member reaps its own volumes of those alone. The plan keeps the
    entries' order; the facts returned are those each host was planned on (``fingerprinted``:
    see :func:`ccci.plan.build.plan_host`)."""
    from ccci.plan.build import plan_host

    plans: dict[str, HostPlan] = {}
    planned_on: dict[str, Facts] = {}
    reaps: dict[str, frozenset[str]] = {}
    for host, policies, facts in entries:
        if facts.swarm is None or facts.swarm.cluster_work:
            plans[host] = plan_host(host, policies, facts, now, fingerprinted)
            planned_on[host] = facts
            if facts.swarm is not None:
                reaps[facts.swarm.cluster_id] = reaped_by(plans[host])
    for host, policies, facts in entries:
        if host in plans or facts.swarm is None:
            continue
        facts = with_cluster_reaps(facts, reaps.get(facts.swarm.cluster_id, frozenset()))
        plans[host] = plan_host(host, policies, facts, now, fingerprinted)
        planned_on[host] = facts
    return Plan(now=now, hosts=tuple(plans[h] for h, _, _ in entries)), planned_on


def gather_member(
    conn: Connector,
    cluster: Connector,
    target: HostPolicies,
    scope: str,
    plan_at: datetime | None,
    last_use: Path | None = None,
    *,
    swarm: SwarmScope,
) -> Facts:
    """A member's fresh facts at apply: its own, and the cluster objects read again
    through its cluster host's connector (the one I/O here; apply re-checks on what is
    true now, not on what the plan read). A cluster host that no longer lends (not a
    manager any more, another swarm) leaves the member's gaps, and every refusal with them.
    A lean gather's slow facts are decided on the view the member is judged on, as the
    plan decided them."""
    from ccci.facts.docker import gather
    from ccci.facts.model import SCOPE_STACKS
    from ccci.run.gather import add_slow, gather_with, slow_wanted

    own = gather_with(conn, target, scope, plan_at, last_use, shared_later=True)
    lender = gather(cluster, scope=SCOPE_STACKS)
    if lends(lender) and lender.daemon.cluster_id == swarm.cluster_id:
        view = adopt(own, lender, swarm)
    else:
        view = own
    if plan_at is None or not borrows(own):
        return view
    return add_slow(conn, view, slow_wanted(target, view, plan_at))
