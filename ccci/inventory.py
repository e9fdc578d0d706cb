"""Ansible-style YAML inventory (``all`` / ``children`` / ``hosts`` / ``vars``) and patterns.

Operators already know this format and the ``--limit`` syntax, so ccci reads the same:
``ci``, ``cc-*``, ``web:db``, ``all:!staging``, ``ci:&eu``, ``~regex``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccci.errors import InputError, Location
from ccci.yamlsrc import Document, PathKey, load_file

DEFAULT_HOST = "localhost"


@dataclass(frozen=True)
class Host:
    """A host with its merged variables and the groups it belongs to."""

    name: str
    vars: dict[str, Any]
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, Host]
    groups: dict[str, tuple[str, ...]]
    source: str = ""

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
            regex = re.compile(term[1:])
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


def load(path: Path) -> Inventory:
    """Load an inventory file; a missing file means the implicit ``localhost``."""
    if not path.exists():
        return implicit()
    docs = load_file(path, str(path))
    if not docs:
        return implicit()
    doc = docs[0]
    if not isinstance(doc.data, dict) or set(doc.data) != {"all"}:
        raise InputError(doc.location(()), "an inventory has one top-level key: all")
    builder = _Builder(doc)
    builder.walk("all", doc.data["all"], ("all",), [])
    return builder.result(str(path))


class _Builder:
    """Walk the group tree once, collecting membership and vars in precedence order."""

    _GROUP_KEYS = frozenset({"hosts", "children", "vars"})

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.order: list[str] = []
        self.members: dict[str, list[str]] = {}
        # Per host: (depth, group name, vars) layers, merged later by depth then name.
        self.layers: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}

    def _mapping(self, value: Any, path: PathKey) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(self.doc.location(path), "expected a mapping")
        return value

    def walk(
        self, group: str, body: Any, path: PathKey, ancestors: list[tuple[str, dict[str, Any]]]
    ) -> None:
        spec = self._mapping(body, path)
        for key in spec:
            if key not in self._GROUP_KEYS:
                raise InputError(
                    self.doc.location((*path, key)),
                    "unknown field (allowed: children, hosts, vars)",
                )
        group_vars = self._mapping(spec.get("vars"), (*path, "vars"))
        chain = [*ancestors, (group, group_vars)]
        members = self.members.setdefault(group, [])
        for host, hvars in self._mapping(spec.get("hosts"), (*path, "hosts")).items():
            if host not in self.order:
                self.order.append(host)
            if host not in members:
                members.append(host)
            extra = self._mapping(hvars, (*path, "hosts", host))
            self.host_vars.setdefault(host, {}).update(extra)
            layers = self.layers.setdefault(host, [])
            for depth, (name, gvars) in enumerate(chain):
                layers.append((depth, name, gvars))
                ancestor_members = self.members.setdefault(name, [])
                if host not in ancestor_members:
                    ancestor_members.append(host)
        children = self._mapping(spec.get("children"), (*path, "children"))
        for child, child_body in children.items():
            self.walk(str(child), child_body, (*path, "children", child), chain)

    def result(self, source: str) -> Inventory:
        hosts: dict[str, Host] = {}
        for name in self.order:
            merged: dict[str, Any] = {}
            for _, _, gvars in sorted(self.layers[name], key=lambda layer: (layer[0], layer[1])):
                merged.update(gvars)
            merged.update(self.host_vars.get(name, {}))
            merged.setdefault("inventory_hostname", name)
            groups = tuple(g for g, m in self.members.items() if name in m)
            hosts[name] = Host(name, merged, groups)
        self.members.setdefault("all", list(self.order))
        return Inventory(hosts, {g: tuple(m) for g, m in self.members.items()}, source)
