"""``ccci policy check``: every problem in the policies and the inventory, each at
``file:line:column`` with its field.

Reconcile stops at the first error, which is right before acting on a host. Review wants
the whole list, so each document is checked on its own, and a broken one does not hide the
next: YAML, ``hosts:`` patterns, Jinja2 (for every host the document targets), the kind's
JSON Schema (all its errors), the typed builder, selector references, duplicate names, and
the contradictions between policies in :mod:`ccci.review.lints`. The stages are the loader's
own (:mod:`ccci.policy.pipeline`, run with a list to collect errors in), so what check
passes load accepts; this module only keeps going and places each error at its column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ccci.config import inventory as inventory_mod
from ccci.config.inventory import Host, Inventory
from ccci.config.yamlsrc import Document, PathKey, load_text, read_text
from ccci.errors import InputError, Location
from ccci.policy import load, pipeline, template
from ccci.policy.model import Policy
from ccci.render.redact import scrubber_for
from ccci.review.findings import CheckReport, Finding, Severity, merge
from ccci.review.lints import lint_host
from ccci.review.yamlpos import DocIndex, FileIndex, Position, Problem, index_text


@dataclass(frozen=True)
class _Rendering:
    """One way to render a document: with a host's vars, or with the ``all`` vars when it
    targets no host (then an undefined variable is left to ``hosts:`` review)."""

    variables: dict[str, Any]
    host: str
    hosts: tuple[str, ...]
    tolerant: bool = False


@dataclass(frozen=True)
class _Built:
    """A policy built from one document for some hosts."""

    policy: Policy
    hosts: tuple[str, ...]


class Checker:
    """One check run; collects findings instead of raising them."""

    def __init__(self, inventory_path: Path) -> None:
        self.inventory_path = inventory_path
        self.findings: list[Finding] = []
        self.indexes: dict[str, FileIndex] = {}
        self.built: list[_Built] = []
        self.targets: dict[tuple[str, int], tuple[str, ...]] = {}
        self.documents = 0

    # -- places -----------------------------------------------------------------------

    def _position(self, location: Location, exact: bool) -> Position:
        index = self.indexes.get(location.file)
        if index is None or not location.line:
            return Position(location.line, 1 if location.line else 0)
        if exact:
            return index.exact(location.line, location.field)
        return index.locate(location.line, location.field)

    def add(
        self,
        severity: Severity,
        code: str,
        location: Location,
        message: str,
        hosts: Iterable[str] = (),
        exact: bool = True,
    ) -> None:
        """Record a finding. ``exact``: the location's line is where the problem is (ccci's
        own errors); otherwise it only picks the document and the field is looked up."""
        where = self._position(location, exact)
        self.findings.append(
            Finding(
                severity,
                location.file,
                where.line,
                where.column,
                location.field,
                message,
                code,
                tuple(hosts),
            )
        )

    def error(self, exc: InputError, code: str, hosts: Iterable[str] = ()) -> None:
        """Record one of ccci's own errors, at the line it names."""
        self.add(Severity.ERROR, code, exc.location, exc.message, hosts)

    def _problem(self, file: str, problem: Problem) -> None:
        where = problem.position
        self.findings.append(
            Finding(Severity.ERROR, file, where.line, where.column, "", problem.message, "yaml")
        )

    # -- reading ----------------------------------------------------------------------

    def _read(self, path: Path, name: str) -> str | None:
        try:
            return read_text(path, name)
        except InputError as exc:
            self.add(Severity.ERROR, "read", exc.location, exc.message)
            return None

    def inventory(self) -> Inventory | None:
        """The inventory, or None when it is broken (its problems are findings)."""
        path = self.inventory_path
        if not path.exists():
            return inventory_mod.implicit()
        name = str(path)
        text = self._read(path, name)
        if text is None:
            return None
        index = index_text(text)
        self.indexes[name] = index
        if index.problem is not None:
            self._problem(name, index.problem)
            return None
        try:
            found = inventory_mod.load(path)
        except InputError as exc:
            self.error(exc, "inventory")
            return None
        odd = [h for h in found.hosts if not isinstance(h, str)]
        if odd:
            self.add(
                Severity.ERROR, "inventory", Location(name, 1), f"host name {odd[0]!r} is not text"
            )
            return None
        return found

    def discover(self, paths: Iterable[Path]) -> list[Path]:
        """Policy files under ``paths``; the inventory is not a policy even when named."""
        skip = self.inventory_path.resolve() if self.inventory_path.exists() else None
        found: dict[Path, None] = {}
        for path in paths:
            try:
                files = load.discover([path])
            except InputError as exc:
                self.error(exc, "read")
                continue
            for file in files:
                if skip is None or file.resolve() != skip:
                    found[file] = None
        return list(found)

    def documents_of(self, path: Path) -> list[tuple[Document, DocIndex]]:
        """The documents of one file that can be read, each with its position index."""
        name = str(path)
        text = self._read(path, name)
        if text is None:
            return []
        index = index_text(text)
        self.indexes[name] = index
        problem = index.problem
        readable = text if problem is None or problem.stop is None else text[: problem.stop]
        docs: list[tuple[Document, DocIndex]] = []
        stream = load_text(readable, name)
        while True:
            try:
                doc = next(stream)
            except StopIteration:
                break
            except InputError as exc:
                if problem is None:
                    self.error(exc, "yaml")
                break
            found = index.by_index(doc.index)
            if found is not None:
                docs.append((doc, found))
        if problem is not None:
            self._problem(name, problem)
        return docs

    # -- one document -----------------------------------------------------------------

    def document(self, doc: Document, index: DocIndex, inventory: Inventory | None) -> None:
        """Take one document through the pipeline for every host it targets, recording
        each problem and keeping what builds for the checks across documents."""
        self.documents += 1
        kind = self._header(doc)
        if kind is None:
            return
        targeted = self._targets(doc, inventory)
        if targeted is None:
            return
        self.targets[(doc.file, doc.line)] = tuple(h.name for h in targeted)
        for rendering in self._renderings(doc, targeted, inventory):
            policy = self._build(doc, index, kind, rendering)
            if policy is not None and rendering.hosts:
                self.built.append(_Built(policy, rendering.hosts))

    def _header(self, doc: Document) -> str | None:
        try:
            return pipeline.kind_of(doc)
        except InputError as exc:
            self.error(exc, "schema")
            return None

    def _targets(self, doc: Document, inventory: Inventory | None) -> list[Host] | None:
        """The hosts a document targets; None when its pattern is unusable."""
        if inventory is None:
            return []
        try:
            targeted = pipeline.targets(doc, inventory)
        except InputError as exc:
            self.error(exc, "hosts")
            return None
        pattern = doc.data.get("hosts", "all")
        if not targeted and isinstance(pattern, str):
            where = (
                f" in {self.inventory_path}"
                if self.inventory_path.exists()
                else f" (no {self.inventory_path}: only {inventory_mod.DEFAULT_HOST})"
            )
            self.add(
                Severity.WARNING,
                "hosts-unmatched",
                doc.location(("hosts",)),
                f"{pattern!r} matches no host{where}: the policy applies nowhere",
            )
        return targeted

    def _renderings(
        self, doc: Document, targeted: list[Host], inventory: Inventory | None
    ) -> Iterator[_Rendering]:
        if not targeted:
            variables = inventory.all_vars if inventory is not None else {}
            yield _Rendering(variables, pipeline.NO_HOST, (), tolerant=True)
        elif template.has_templates(doc):
            for host in targeted:
                yield _Rendering(host.vars, host.name, (host.name,))
        else:
            # Nothing to render: one build serves every targeted host.
            yield _Rendering(targeted[0].vars, targeted[0].name, tuple(h.name for h in targeted))

    def _build(
        self, doc: Document, index: DocIndex, kind: str, rendering: _Rendering
    ) -> Policy | None:
        per_host = rendering.hosts if template.has_templates(doc) else ()
        rendered = self._render(doc, index, rendering, per_host)
        if rendered is None:
            return None
        problems: list[InputError] = []
        valid = pipeline.validate(rendered, kind, problems)
        for problem in problems:
            self.error(problem, "schema", per_host)
        if not valid:
            return None
        try:
            return pipeline.construct(rendered, kind)
        except InputError as exc:
            self.error(exc, "schema", per_host)
            return None

    def _render(
        self, doc: Document, index: DocIndex, rendering: _Rendering, hosts: tuple[str, ...]
    ) -> Document | None:
        """Render every value, reporting each one that cannot render (not just the first):
        a failed value is blanked and rendering tried again."""
        from jinja2 import UndefinedError

        current = doc
        failed = False
        prefix = f"cannot render for host {rendering.host}: "
        for _ in range(len(index.positions) + 1):
            try:
                rendered = template.render(current, rendering.variables, rendering.host)
            except InputError as exc:
                path = index.path_of(exc.location.field)
                undefined = isinstance(exc.__context__, UndefinedError)
                if not (rendering.tolerant and undefined):
                    failed = True
                    message = "cannot render: " + exc.message.removeprefix(prefix)
                    self.add(Severity.ERROR, "render", exc.location, message, hosts)
                if path is None:
                    return None
                current = _blank(current, path)
                failed = failed or rendering.tolerant
                continue
            return None if failed else rendered
        return None

    # -- across documents -------------------------------------------------------------

    def hosts(self, inventory: Inventory | None) -> None:
        """Selector references, duplicate names and contradictions, host by host."""
        if inventory is None:
            return
        for host in inventory.hosts.values():
            mine = tuple(b.policy for b in self.built if host.name in b.hosts)
            if not mine:
                continue
            done = self._finalize(mine, host)
            self._unique(done, host.name)
            for lint in lint_host(done):
                self.add(lint.severity, lint.code, lint.location, lint.message, (host.name,), False)

    def _finalize(self, policies: tuple[Policy, ...], host: Host) -> tuple[Policy, ...]:
        """ccci's finalize, collecting: every unknown selector is reported, and a folder the
        nightly's sandbox cannot hold."""
        unknown: list[InputError] = []
        resolved = pipeline.resolve(policies, host, unknown)
        unsandboxable: list[InputError] = []
        done = pipeline.widen_sandbox(resolved, unsandboxable)
        for code, problems in (("selector", unknown), ("sandbox", unsandboxable)):
            for problem in problems:
                self.error(problem, code, (host.name,))
        return done

    def _unique(self, policies: tuple[Policy, ...], host: str) -> None:
        for policy, first in pipeline.duplicates(policies):
            kind, name = policy.meta.kind, policy.meta.name
            self.add(
                Severity.ERROR,
                "duplicate-name",
                policy.meta.source,
                f"duplicate {kind} name {name!r} (first at {first.file}:{first.line})",
                (host,),
            )

    def report(self, files: list[Path], inventory: Inventory | None = None) -> CheckReport:
        """The findings, merged across hosts and scrubbed of the inventory's secrets."""
        findings = merge(self._without_obvious_hosts())
        hosts = inventory.hosts.values() if inventory else ()
        return CheckReport(findings, tuple(map(str, files)), self.documents, scrubber_for(hosts))

    def _without_obvious_hosts(self) -> Iterator[Finding]:
        """A finding seen for every host its document targets says so by saying nothing."""
        merged = merge(self.findings)
        for finding in merged:
            index = self.indexes.get(finding.file)
            doc = index.doc_at(finding.line) if index is not None else None
            targets = self.targets.get((finding.file, doc.start.line)) if doc else None
            if finding.hosts and targets is not None and set(finding.hosts) >= set(targets):
                yield replace(finding, hosts=())
            else:
                yield finding


def _blank(doc: Document, path: PathKey) -> Document:
    """``doc`` with the value at ``path`` replaced by an empty, untemplated string."""

    def walk(value: Any, rest: PathKey) -> Any:
        if not rest:
            return ""
        head, tail = rest[0], rest[1:]
        if isinstance(value, dict) and head in value:
            return {k: walk(v, tail) if k == head else v for k, v in value.items()}
        if isinstance(value, list) and isinstance(head, int) and head < len(value):
            return [walk(v, tail) if i == head else v for i, v in enumerate(value)]
        return value

    return Document(doc.file, doc.index, doc.line, walk(doc.data, path), doc.lines, doc.sensitive)


def run_check(paths: Iterable[Path], inventory_path: Path) -> CheckReport:
    """Check the policies under ``paths`` against the inventory; never raises for bad input."""
    checker = Checker(inventory_path)
    inventory = checker.inventory()
    files = checker.discover(paths)
    for path in files:
        for doc, index in checker.documents_of(path):
            checker.document(doc, index, inventory)
    checker.hosts(inventory)
    return checker.report(files, inventory)
