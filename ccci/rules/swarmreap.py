"""The janitor on a swarm of several hosts: cluster objects once, volumes on every node.

A stack's services, secrets, configs and overlay networks are the swarm's: its cluster
host (see ``ccci.run.swarmscope``) removes them, once. Its named volumes are node-local:
each node removes its own, and only of the stacks the cluster host reaps in the same run,
so a node's own view (a volume newer than the stack's services) never decides a stack the
swarm still runs. A node of the swarm that no host of the run reached may hold some of a
reaped stack's volumes: the cluster host says so as a manual item, and the stack does not
count as converged until that node is reached.

Pure functions of facts; no I/O.
"""

from __future__ import annotations

from ccci.facts.model import Facts, Stack
from ccci.plan.address import AddressKind, addr
from ccci.plan.model import Action, Change, Manual, Noop, Operation, Precondition, Work
from ccci.policy.model import OrphanStackPolicy
from ccci.rules import RuleOutput

# What of a stack lives on a node, not in the swarm: what a node that is not its swarm's
# cluster host reaps.
NODE_KINDS = ("networks", "volumes", "env_file")
SWARM_NETWORK_SCOPE = "swarm"


def on_member(facts: Facts) -> bool:
    """Whether these facts are a node's share of a swarm whose cluster work another host does."""
    return facts.swarm is not None and not facts.swarm.cluster_work


def in_swarm(stack: Stack) -> bool:
    """Whether anything of the stack is the swarm's (services, secrets, configs, overlay
    networks): then its cluster host judges it. A stack with none left (its cluster objects
    reaped in an earlier run, while this node was out of reach) is judged by the node that
    holds what is left, on the swarm's view, as a lone host judges its leftovers: no
    cluster host will ever see it again."""
    swarm_networks = any(n.scope == SWARM_NETWORK_SCOPE for n in stack.networks)
    return bool(stack.services or stack.secrets or stack.configs or swarm_networks)


def node_objects(policy: OrphanStackPolicy, stack: Stack, facts: Facts) -> dict[str, list[str]]:
    """What of the stack this node holds and the policy reaps: its volumes, its local
    networks (an overlay is the swarm's), its env files."""
    from ccci.rules.orphans import reapable

    local = Stack(
        name=stack.name,
        services=(),
        volumes=stack.volumes,
        networks=tuple(n for n in stack.networks if n.scope != SWARM_NETWORK_SCOPE),
        secrets=(),
        configs=(),
        env_files=stack.env_files,
    )
    return {k: v for k, v in reapable(policy, local, facts).items() if v}


def member_outcome(policy: OrphanStackPolicy, stack: Stack, facts: Facts, label: str) -> RuleOutput:
    """A member's part of a stack: its node objects of a stack its cluster host reaps."""
    from ccci.rules.orphans import _label, _targets

    assert facts.swarm is not None
    name, source, lender = policy.meta.name, policy.meta.source, facts.swarm.source
    address = addr(AddressKind.STACK, stack.name)
    if stack.name not in facts.swarm.cluster_reaps:
        yield Noop(address, label, f"not reaped by its swarm's cluster host {lender}", name, source)
        return
    objects = node_objects(policy, stack, facts)
    if not objects:
        why = f"reaped from its swarm's cluster host {lender}; nothing of it on this node"
        yield Noop(address, label, why, name, source)
        return
    yield Change(
        address=address,
        action=Action.DELETE,
        label=_label(stack, objects),
        reason=(
            f"its swarm's cluster host {lender} reaps the stack in this run; this node's "
            "volumes are reaped here (volumes are node-local)"
        ),
        policy=name,
        source=source,
        before={kind: names for kind, names in objects.items()},
        preconditions=(Precondition.STACK_ORPHANED,),
        work=Work(
            Operation.REAP_STACK,
            reap=tuple(k for k in policy.reap if k in NODE_KINDS),
            wait_seconds=policy.wait.total_seconds(),
        ),
        targets=_targets(stack, objects),
    )


def unreached_nodes(policy: OrphanStackPolicy, stack: Stack, facts: Facts) -> RuleOutput:
    """On the cluster host, for a stack it reaps: a manual item per node of the swarm that
    no host of the run reached and that may hold some of the stack's volumes (one that ran
    a task of it, as far as the swarm's task history tells; any, when no service is left
    to tell)."""
    if facts.swarm is None or not facts.swarm.unreached or "volumes" not in policy.reap:
        return
    services = {s.id for s in stack.services}
    ran = {t.node_id for t in facts.tasks if t.service_id in services}
    for node in facts.swarm.unreached:
        if services and node.id not in ran:
            continue
        shown = f"{node.id} ({node.hostname})" if node.hostname else node.id
        yield Manual(
            addr(AddressKind.STACK, stack.name),
            f"volumes on node {shown}",
            f"node {shown} may hold volumes of {stack.name}; {node.why}",
            "reach that node in a run (its host in the inventory, reachable over SSH), or "
            f"remove its volumes of {stack.name} there by hand",
            policy.meta.name,
            policy.meta.source,
        )
