"""Turn validated policy documents into typed policy objects, one builder per kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccci.errors import InputError
from ccci.policy.model import Gate, GateKind, Policy, PolicyMeta, PrunePolicy
from ccci.units import parse_duration, parse_percent
from ccci.yamlsrc import Document, PathKey


def _meta(doc: Document) -> PolicyMeta:
    return PolicyMeta(
        name=doc.data["metadata"]["name"],
        kind=doc.data["kind"],
        hosts=doc.data.get("hosts", "all"),
        source=doc.location(("metadata", "name")),
    )


def _parse(doc: Document, path: PathKey, parser: Callable[[str], Any]) -> Any:
    """Run a unit parser; its ValueError becomes an error at the value's line."""
    value: Any = doc.data
    for part in path:
        value = value[part]
    try:
        return parser(value)
    except ValueError as exc:
        raise InputError(doc.location(path), str(exc)) from None


def build_prune(doc: Document) -> PrunePolicy:
    spec = doc.data["spec"]
    gates_spec = spec.get("gates") or {}
    gates: list[Gate] = []
    if "disk_usage" in gates_spec:
        where: PathKey = ("spec", "gates", "disk_usage")
        gates.append(
            Gate(
                GateKind.DISK_USAGE,
                doc.location(where),
                path=gates_spec["disk_usage"]["path"],
                at_least=_parse(doc, (*where, "at_least"), parse_percent),
            )
        )
    if "no_live_stacks" in gates_spec:
        where = ("spec", "gates", "no_live_stacks")
        gates.append(
            Gate(
                GateKind.NO_LIVE_STACKS,
                doc.location(where),
                match=gates_spec["no_live_stacks"]["match"],
            )
        )
    if gates_spec.get("no_converging_services"):
        where = ("spec", "gates", "no_converging_services")
        gates.append(Gate(GateKind.NO_CONVERGING_SERVICES, doc.location(where)))
    prune = spec["prune"]

    def older_than(selector: str) -> Any:
        if selector not in prune:
            return None
        return _parse(doc, ("spec", "prune", selector, "older_than"), parse_duration)

    return PrunePolicy(
        meta=_meta(doc),
        gates=tuple(gates),
        dangling_images=older_than("dangling_images"),
        stopped_containers=older_than("stopped_containers"),
        dangling_build_cache=older_than("dangling_build_cache"),
        sources={s: doc.location(("spec", "prune", s)) for s in prune},
    )


BUILDERS: dict[str, Callable[[Document], Policy]] = {
    "PrunePolicy": build_prune,
}
