"""Find policy files and load them for the hosts of a run, stopping at the first error.

The stages a document takes are :mod:`ccci.policy.pipeline`'s; this module finds the
files and runs the stages for every host before anything acts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ccci.config.inventory import Host, Inventory
from ccci.errors import InputError
from ccci.policy.files import discover, read, require_policies
from ccci.policy.model import Policy
from ccci.policy.pipeline import (
    build,
    duplicates,
    finalize,
    hide_sensitive,
    kind_of,
    render_for,
    render_untargeted,
    targets,
)
from ccci.policy.validated import ValidatedCache

if TYPE_CHECKING:
    from ccci.config.yamlcache import ParsedCache

# build, finalize and hide_sensitive are the pipeline's; named here too for the callers
# that load documents one at a time (tests, fixtures).
__all__ = [
    "HostPolicies",
    "build",
    "discover",
    "finalize",
    "hide_sensitive",
    "load_for_hosts",
    "read",
    "require_policies",
]


@dataclass(frozen=True)
class HostPolicies:
    """One host's typed, finalized policies: what the planner plans it by."""

    host: Host
    policies: tuple[Policy, ...]


def load_for_hosts(
    paths: Iterable[Path],
    inventory: Inventory,
    hosts: list[Host],
    passed: ValidatedCache | None = None,
    parsed: ParsedCache | None = None,
) -> list[HostPolicies]:
    """Load, render, validate and build every policy for every host, before anything runs.

    The stages are :mod:`ccci.policy.pipeline`'s, stopping at the first error. A document
    is checked for every host it targets, not only those ``--limit`` picks, and one whose
    ``hosts:`` matches none of the inventory's hosts is still validated (rendered with the
    ``all`` vars), so a typo is caught in review, not on the host. ``passed`` (a run's
    state directory's :class:`~ccci.policy.validated.ValidatedCache`) skips the schema for
    the documents that passed it before, and ``parsed`` (its
    :class:`~ccci.config.yamlcache.ParsedCache`) parsing the files that parsed before; both
    are saved when the load ends, however it ends.
    """
    try:
        return _load(paths, inventory, hosts, passed, parsed)
    finally:
        for kept in (passed, parsed):
            if kept is not None:
                kept.save()


def _load(
    paths: Iterable[Path],
    inventory: Inventory,
    hosts: list[Host],
    passed: ValidatedCache | None,
    parsed: ParsedCache | None,
) -> list[HostPolicies]:
    docs = read(paths, parsed)
    for doc in docs:
        kind_of(doc)
    targeted = [targets(doc, inventory) for doc in docs]

    def for_host(host: Host) -> tuple[Policy, ...]:
        built = tuple(
            build(render_for(doc, host), passed)
            for doc, hosts_of in zip(docs, targeted, strict=True)
            if host in hosts_of
        )
        return finalize(built, host)

    result = [HostPolicies(host, for_host(host)) for host in hosts]
    selected = {h.name for h in hosts}
    # Validate what this run does not use too: for the hosts a document targets outside
    # --limit, or with the ``all`` vars when it targets no host at all.
    for doc, hosts_of in zip(docs, targeted, strict=True):
        if not hosts_of and (untargeted := render_untargeted(doc, inventory)) is not None:
            build(untargeted, passed)
        for host in hosts_of:
            if host.name not in selected:
                build(render_for(doc, host), passed)
    # Selectors resolve per host, so check them for the hosts outside --limit as well.
    for host in {h.name: h for t in targeted for h in t if h.name not in selected}.values():
        for_host(host)
    for hp in result:
        for policy, first in duplicates(hp.policies):
            raise InputError(
                policy.meta.source,
                f"duplicate {policy.meta.kind} name {policy.meta.name!r} (first at {first})",
            )
    return result
