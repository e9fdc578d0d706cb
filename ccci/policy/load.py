"""Find policy files and load them for the hosts of a run, stopping at the first error.

The stages a document takes are :mod:`ccci.policy.pipeline`'s; this module finds the
files and runs the stages for every host before anything acts.

A run that uses only some kinds (the janitor before every deploy) checks every document as
a run of every kind does, so a typo in any file stops it with the same error. What it may
skip is building a document of a kind it does not use, and only while the state
directory's cache (:class:`~ccci.policy.validated.ValidatedCache`) knows that the host's
documents, every one as rendered now, built and finalized before: then nothing about them
can fail, and only the kinds the run uses, with what finalizing them reads, are built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ccci.config.inventory import Host, Inventory
from ccci.config.yamlsrc import Document
from ccci.errors import InputError
from ccci.policy import validated
from ccci.policy.files import discover, read, require_policies
from ccci.policy.model import Policy
from ccci.policy.pipeline import (
    abra_server,
    build,
    check_characters,
    construct,
    duplicates,
    finalize,
    hide_sensitive,
    kind_of,
    kinds_to_build,
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
    kinds: frozenset[str] | None = None,
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

    ``kinds`` (None: every kind) are the kinds the run uses: only their policies are
    returned, and with ``passed`` the other kinds' documents are not built for a host whose
    documents passed before (see the module's docstring).
    """
    try:
        return _load(paths, inventory, hosts, passed, parsed, kinds)
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
    kinds: frozenset[str] | None,
) -> list[HostPolicies]:
    docs = read(paths, parsed)
    for doc in docs:
        kind_of(doc)
    targeted = [targets(doc, inventory) for doc in docs]
    # Only a run of some kinds has builds to skip; every run records what passed.
    builds = _Builds(docs, targeted, passed, skip=kinds is not None)
    needed = kinds_to_build(kinds)
    result = [HostPolicies(host, builds.for_host(host, needed)) for host in hosts]
    selected = {h.name for h in hosts}
    # Validate what this run does not use too: for the hosts a document targets outside
    # --limit, or with the ``all`` vars when it targets no host at all.
    for i, (doc, hosts_of) in enumerate(zip(docs, targeted, strict=True)):
        if not hosts_of and (untargeted := render_untargeted(doc, inventory)) is not None:
            builds.untargeted(untargeted)
        for host in hosts_of:
            if host.name not in selected and not builds.known(host):
                builds.built(i, host)
    # Selectors resolve per host, so check them for the hosts outside --limit as well.
    for host in {h.name: h for t in targeted for h in t if h.name not in selected}.values():
        if not builds.known(host):
            builds.for_host(host, None)
    for hp in result:
        for policy, first in duplicates(hp.policies):
            raise InputError(
                policy.meta.source,
                f"duplicate {policy.meta.kind} name {policy.meta.name!r} (first at {first})",
            )
    if kinds is None:
        return result
    return [
        HostPolicies(hp.host, tuple(p for p in hp.policies if p.meta.kind in kinds))
        for hp in result
    ]


class _Builds:
    """One load's documents as each host renders and builds them, each made once (a host
    outside --limit is checked document by document, then as a whole), and which hosts'
    documents the cache knows passed.

    Errors come in the order a load without any cache raises them: a host's documents are
    rendered ahead only to find its key, and one that fails to render is rendered again,
    and fails, in its turn.
    """

    def __init__(
        self,
        docs: list[Document],
        targeted: list[list[Host]],
        passed: ValidatedCache | None,
        skip: bool,
    ) -> None:
        self.docs = docs
        self.targeted = targeted
        self.passed = passed
        self.skip = skip
        self._rendered: dict[tuple[int, str], Document] = {}
        self._built: dict[tuple[int, str], Policy] = {}
        self._keys: dict[str, str | None] = {}

    def of(self, host: Host) -> list[int]:
        """The documents ``host`` takes, in order."""
        return [i for i, hosts_of in enumerate(self.targeted) if host in hosts_of]

    def rendered(self, i: int, host: Host) -> Document:
        at = (i, host.name)
        if at not in self._rendered:
            self._rendered[at] = render_for(self.docs[i], host)
        return self._rendered[at]

    def built(self, i: int, host: Host) -> Policy:
        at = (i, host.name)
        if at not in self._built:
            self._built[at] = build(self.rendered(i, host), self.passed)
        return self._built[at]

    def known(self, host: Host) -> bool:
        """Whether this run may skip builds of ``host``: the cache knows its documents, as
        rendered now, passed everything before."""
        if not self.skip or self.passed is None:
            return False
        key = self._key(host)
        return key is not None and self.passed.built(key)

    def for_host(self, host: Host, needed: frozenset[str] | None) -> tuple[Policy, ...]:
        """The host's finalized policies; of the ``needed`` kinds only (None: every kind)
        when the cache knows its documents, else of every kind, each built and checked."""
        indices = self.of(host)
        if self.known(host):
            known: list[Policy] = []
            for i in indices:
                doc = self.rendered(i, host)
                check_characters(doc)
                kind = kind_of(doc)
                if needed is None or kind in needed:
                    known.append(construct(doc, kind))
            return finalize(tuple(known), host)
        policies = finalize(tuple(self.built(i, host) for i in indices), host)
        key = self._key(host)
        if key is not None and self.passed is not None and not any(duplicates(policies)):
            self.passed.add_built(key)
        return policies

    def untargeted(self, doc: Document) -> None:
        """Check a document that targets no host (rendered with the ``all`` vars): built
        unless the cache knows it built before."""
        if self.passed is None:
            build(doc)
            return
        key = validated.document_key(kind_of(doc), doc.data)
        if self.skip and key is not None and self.passed.built(key):
            check_characters(doc)
            return
        build(doc, self.passed)
        if key is not None:
            self.passed.add_built(key)

    def _key(self, host: Host) -> str | None:
        """The cache's key for the host's documents; None without a cache, or when one of
        them does not render (its error is raised in its turn) or cannot be encoded."""
        if self.passed is None:
            return None
        if host.name not in self._keys:
            self._keys[host.name] = self._host_key(host)
        return self._keys[host.name]

    def _host_key(self, host: Host) -> str | None:
        keys: list[str] = []
        for i in self.of(host):
            try:
                doc = self.rendered(i, host)
            except InputError:
                return None
            key = validated.document_key(kind_of(doc), doc.data)
            if key is None:
                return None
            keys.append(key)
        return validated.host_key(abra_server(host), keys)
