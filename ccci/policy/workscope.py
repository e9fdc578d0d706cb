"""Which policies a run takes by the objects it may act on: ``reconcile --scope``.

A farm's nightly can be one run that reaches every node (the default, ``all``), or one
oneshot per node. Per node, a worker's run must never reap cluster objects (services,
secrets, configs, swarm networks: an orphan stack), and exactly one manager's run does:
``node`` leaves out the policies that act on the swarm, ``cluster`` takes only those.
The line is drawn by policy kind because a kind's changes are all of one side: only an
OrphanStackPolicy removes cluster objects; the prune, retention, timers and daemon act on
the node's own images, containers, build cache, units and settings. StackSelector names
run-apps for both sides (the prune's live-stack gate, the orphan rule), so both keep it.

A worker that reaches no manager never reaps on its own anyway (its engine cannot list the
cluster kinds, see ``ccci.run.swarmscope``); ``node`` makes it so by construction, and
keeps out of its plan the orphan rule's "cannot tell", which it would repeat every night.
"""

from __future__ import annotations

SCOPE_ALL = "all"
SCOPE_NODE = "node"
SCOPE_CLUSTER = "cluster"
SCOPES = (SCOPE_ALL, SCOPE_NODE, SCOPE_CLUSTER)
# The kinds whose changes remove cluster objects, and the kinds both sides read.
CLUSTER_KINDS = frozenset({"OrphanStackPolicy"})
SHARED_KINDS = frozenset({"StackSelector"})


def kinds_for(scope: str) -> frozenset[str] | None:
    """The policy kinds a run of ``scope`` takes; None for every kind."""
    if scope == SCOPE_ALL:
        return None
    if scope == SCOPE_NODE:
        from ccci.policy.build import BUILDERS

        return frozenset(BUILDERS) - CLUSTER_KINDS
    if scope == SCOPE_CLUSTER:
        return CLUSTER_KINDS | SHARED_KINDS
    raise ValueError(f"{scope!r} is not one of {', '.join(SCOPES)}")
