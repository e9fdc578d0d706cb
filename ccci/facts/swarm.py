"""Where a swarm may put a service's tasks: placement judged as swarmkit judges it.

A service's image is in use on a node when the service may schedule a task there, not only
when one runs there now: a replicated task moves on a node failure or a scale-up, and the
node then pulls the image it would have found in its cache. So the question is "can this
node never get one?", answered only where the service's own placement proves it, with
swarmkit's rules (manager/constraint): constraints ANDed, ``==`` tried before ``!=``, values
compared case-insensitively, a missing label or attribute read as ``""``. Anything ccci
cannot judge (a key it does not know, a constraint it cannot parse, a node it has no fact
for) means "may schedule": when in doubt, the image is in use.

Availability (``drain``, ``pause``) and a node being ``down`` never exclude: an operator
undrains a node at any moment. Neither do the mode (global, replicated, jobs), ``replicas:
0`` or ``max_replicas``: a replicated service may be rescheduled to any eligible node.

Pure functions of facts; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ccci.facts.model import Facts, Node, Service

_OPERATORS = ("==", "!=")
# swarmkit's own key and value syntax: a constraint outside it is refused by the engine, so
# ccci never sees it on a service; one it sees anyway is a doubt, not a "no".
_KEY = re.compile(r"\A[a-z_][a-z0-9\-_.]+\Z", re.IGNORECASE)
_NODE_LABEL = "node.labels."
_ENGINE_LABEL = "engine.labels."
# The architecture names the engine and the image index use for the same machines.
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


@dataclass(frozen=True)
class Constraint:
    """One placement constraint: ``key == value`` (``equal``) or ``key != value``."""

    key: str
    equal: bool
    value: str


def parse_constraint(text: str) -> Constraint | None:
    """The constraint, or None when it is not one swarmkit would take (then: doubt)."""
    for op in _OPERATORS:
        if op not in text:
            continue
        key, _, value = text.partition(op)
        key, value = key.strip(), value.strip()
        if not _KEY.match(key) or not value:
            return None
        return Constraint(key, op == "==", value)
    return None


def _attribute(key: str, node: Node) -> str | None:
    """The node's value for a constraint key ("" when absent), or None for a key ccci does
    not judge."""
    lower = key.lower()
    simple = {
        "node.id": node.id,
        "node.hostname": node.hostname,
        "node.role": node.role,
        "node.platform.os": node.os,
        "node.platform.arch": node.arch,
    }
    if lower in simple:
        return simple[lower]
    # Label names are case-sensitive, their prefix is not (as in swarmkit).
    if lower.startswith(_NODE_LABEL) and len(key) > len(_NODE_LABEL):
        return node.labels.get(key[len(_NODE_LABEL) :], "")
    if lower.startswith(_ENGINE_LABEL) and len(key) > len(_ENGINE_LABEL):
        return node.engine_labels.get(key[len(_ENGINE_LABEL) :], "")
    return None


def _excludes(text: str, node: Node) -> bool:
    """Whether this one constraint proves the node can never get a task."""
    constraint = parse_constraint(text)
    if constraint is None:
        return False
    value = _attribute(constraint.key, node)
    if value is None:
        return False
    same = value.casefold() == constraint.value.casefold()
    return same != constraint.equal


def _arch(name: str) -> str:
    lower = name.lower()
    return _ARCH_ALIASES.get(lower, lower)


def _platform_fits(platform: str, node: Node) -> bool:
    """``os/arch`` (either may be empty: anything) against the node's."""
    os_name, _, arch = platform.partition("/")
    if os_name and node.os and os_name.lower() != node.os.lower():
        return False
    return not (arch and node.arch and _arch(arch) != _arch(node.arch))


def may_schedule(service: Service, node: Node | None) -> bool:
    """Whether ``service`` may ever put a task on ``node`` (None: a node without facts)."""
    if node is None:
        return True
    if any(_excludes(c, node) for c in service.constraints):
        return False
    return not service.platforms or any(_platform_fits(p, node) for p in service.platforms)


def node_of(facts: Facts) -> Node | None:
    """This host's own swarm node among the facts' nodes, by its node ID (never by
    hostname: several nodes may share one)."""
    ident = facts.daemon.node_id
    if not ident:
        return None
    return next((n for n in facts.nodes if n.id == ident), None)


def parse_node(raw: dict[str, Any]) -> Node:
    """A node of ``GET /nodes``."""
    spec = raw.get("Spec") or {}
    description = raw.get("Description") or {}
    platform = description.get("Platform") or {}
    engine = description.get("Engine") or {}
    status = raw.get("Status") or {}
    return Node(
        id=raw["ID"],
        hostname=description.get("Hostname") or "",
        role=spec.get("Role") or "",
        availability=spec.get("Availability") or "",
        state=status.get("State") or "",
        labels=dict(spec.get("Labels") or {}),
        engine_labels=dict(engine.get("Labels") or {}),
        os=platform.get("OS") or "",
        arch=platform.get("Architecture") or "",
    )


def _mode(spec: dict[str, Any]) -> str:
    mode = spec.get("Mode") or {}
    for key, name in (
        ("Global", "global"),
        ("ReplicatedJob", "replicated-job"),
        ("GlobalJob", "global-job"),
    ):
        if key in mode:
            return name
    return "replicated"


def placement_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """A service spec's mode and placement, as :class:`Service` fields."""
    placement = (spec.get("TaskTemplate") or {}).get("Placement") or {}
    platforms = tuple(
        f"{p.get('OS') or ''}/{p.get('Architecture') or ''}"
        for p in placement.get("Platforms") or []
        if isinstance(p, dict)
    )
    return {
        "mode": _mode(spec),
        "constraints": tuple(str(c) for c in placement.get("Constraints") or []),
        "platforms": platforms,
        "max_replicas": int(placement.get("MaxReplicas") or 0),
    }
