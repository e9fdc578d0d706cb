"""Ansible-style YAML inventory (``all`` / ``children`` / ``hosts`` / ``vars``) and patterns.

Operators already know this format and the ``--limit`` syntax, so ccci reads the same:
``ci``, ``cc-*``, ``web:db``, ``all:!staging``, ``ci:&eu``, ``~regex``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccci.config.yamlsrc import Document, PathKey, load_file
from ccci.errors import InputError, Location
from ccci.render.escape import terminal
from ccci.saferegex import compile_policy

if TYPE_CHECKING:
    from ccci.config.yamlcache import ParsedCache

DEFAULT_HOST = "localhost"


@dataclass(frozen=True)
class Host:
    """A host with its merged variables and the groups it belongs to."""

    name: str
    vars: dict[str, Any]
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    """Hosts by name in file order, groups by name, and the variables of ``all``; ``source`` names
    the file in errors."""

    hosts: dict[str, Host]
    groups: dict[str, tuple[str, ...]]
    source: str = ""
    all_vars: dict[str, Any] = field(default_factory=dict)

    def match(self, pattern: str) -> list[Host]:
        """Hosts matched by an Ansible pattern, in inventory order."""
        union: set[str] = set()
        intersections: list[set[str]] = []
        exclusions: set[str] = set()
        for raw in re.split(r"[,:]", pattern):
            term = raw.strip()
            if not term:
                continue
            if term.startswith("!"):
                exclusions |= self._term(term[1:])
            elif term.startswith("&"):
                intersections.append(self._term(term[1:]))
            else:
                union |= self._term(term)
        for other in intersections:
            union &= other
        union -= exclusions
        return [h for name, h in self.hosts.items() if name in union]

    def _term(self, term: str) -> set[str]:
        if term in self.groups:
            return set(self.groups[term])
        if term.startswith("~"):
            try:
                regex = compile_policy(term[1:])
            except ValueError as exc:
                where = Location(self.source or "pattern", 0, "hosts")
                raise InputError(where, f"{term!r} is {exc}") from None
            return {h for h in self.hosts if regex.search(h)}
        return {h for h in self.hosts if fnmatch.fnmatchcase(h, term)}

    def limit(self, pattern: str | None) -> list[Host]:
        """Apply ``--limit``; a pattern that matches nothing is an error, not a quiet no-op."""
        if not pattern:
            return list(self.hosts.values())
        hosts = self.match(pattern)
        if not hosts:
            raise InputError(
                Location(self.source or "--limit", 0), f"--limit {pattern!r} matches no host"
            )
        return hosts


def implicit() -> Inventory:
    """With no inventory file, ccci manages this machine as ``localhost``."""
    host = Host(DEFAULT_HOST, {}, ("all",))
    return Inventory({DEFAULT_HOST: host}, {"all": (DEFAULT_HOST,)}, "")


def load(path: Path, parsed: ParsedCache | None = None) -> Inventory:
    """Load an inventory file; a missing file means the implicit ``localhost``. ``parsed``
    (a run's cache of parsed files) spares parsing a file that did not change."""
    if not path.exists():
        return implicit()
    docs = load_file(path, str(path), parsed)
    if not docs:
        return implicit()
    if len(docs) > 1:
        # A second document would be silently ignored: its hosts never managed, or a
        # reviewer misled about which vars count.
        raise InputError(
            Location(str(path), docs[1].line), "an inventory is one YAML document, not several"
        )
    doc = docs[0]
    if not isinstance(doc.data, dict) or set(doc.data) != {"all"}:
        raise InputError(doc.location(()), "an inventory has one top-level key: all")
    builder = _Builder(doc)
    builder.walk("all", doc.data["all"], ("all",))
    return builder.result(str(path))


# A host name becomes part of file names (its last-use record under the state directory)
# and of messages: one that is not a plain file name could write outside that directory.
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,252}")


def _check_host_name(doc: Document, host: Any, path: PathKey) -> None:
    name = str(host)
    if not isinstance(host, str) or not _HOST_NAME.fullmatch(name) or ".." in name:
        raise InputError(
            doc.location(path),
            f"host name {terminal(name)!r} is not a safe file name "
            "(letters, digits, '.', '_', '-', '@'; no '..' nor '/')",
        )


class _Builder:
    """Walk the group tree once, recording edges; membership and vars are resolved after,
    because Ansible lets a group be defined in one place and named as a child in another."""

    _GROUP_KEYS = frozenset({"hosts", "children", "vars"})

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.order: list[str] = []
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.direct: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}

    def _mapping(self, value: Any, path: PathKey) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(self.doc.location(path), "expected a mapping")
        return value

    def walk(self, group: str, body: Any, path: PathKey) -> None:
        spec = self._mapping(body, path)
        for key in spec:
            if key not in self._GROUP_KEYS:
                raise InputError(
                    self.doc.location((*path, key)),
                    "unknown field (allowed: children, hosts, vars)",
                )
        self.group_vars.setdefault(group, {}).update(
            self._mapping(spec.get("vars"), (*path, "vars"))
        )
        direct = self.direct.setdefault(group, [])
        for host, hvars in self._mapping(spec.get("hosts"), (*path, "hosts")).items():
            _check_host_name(self.doc, host, (*path, "hosts", host))
            if host not in self.order:
                self.order.append(host)
            if host not in direct:
                direct.append(host)
            extra = self._mapping(hvars, (*path, "hosts", host))
            self.host_vars.setdefault(host, {}).update(extra)
        kids = self.children.setdefault(group, [])
        for child, child_body in self._mapping(spec.get("children"), (*path, "children")).items():
            if str(child) not in kids:
                kids.append(str(child))
            self.walk(str(child), child_body, (*path, "children", child))

    def _depths(self) -> dict[str, int]:
        """Longest path from ``all``: a deeper group's vars win, as in Ansible."""
        depth: dict[str, int] = {"all": 0}
        frontier = ["all"]
        for _ in range(len(self.children) + 1):
            following = []
            for group in frontier:
                for child in self.children.get(group, []):
                    if depth.get(child, -1) < depth[group] + 1:
                        depth[child] = depth[group] + 1
                        following.append(child)
            if not following:
                return depth
            frontier = following
        raise InputError(self.doc.location(("all",)), "groups form a cycle through children")

    def _members(self, group: str, seen: frozenset[str] = frozenset()) -> list[str]:
        found = list(self.direct.get(group, []))
        for child in self.children.get(group, []):
            if child not in seen:
                found += [h for h in self._members(child, seen | {group}) if h not in found]
        return found

    def result(self, source: str) -> Inventory:
        depths = self._depths()
        members = {g: self._members(g) for g in depths}
        members["all"] = list(self.order)
        hosts: dict[str, Host] = {}
        for name in self.order:
            groups = sorted((g for g in depths if name in members[g]), key=lambda g: (depths[g], g))
            merged: dict[str, Any] = {}
            for group in groups:
                merged.update(self.group_vars.get(group, {}))
            merged.update(self.host_vars.get(name, {}))
            merged.setdefault("inventory_hostname", name)
            hosts[name] = Host(name, merged, tuple(groups))
        return Inventory(
            hosts,
            {g: tuple(m) for g, m in members.items()},
            source,
            dict(self.group_vars.get("all", {})),
        )
