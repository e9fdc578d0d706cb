"""Find policy files, render them per host, validate and build typed policies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ccci.errors import InputError, Location
from ccci.inventory import Host, Inventory
from ccci.policy import schema, template
from ccci.policy.build import BUILDERS
from ccci.policy.model import OrphanStackPolicy, Policy, PrunePolicy, StackSelector
from ccci.render.escape import has_unsafe
from ccci.yamlsrc import Document, PathKey, load_file


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files named on the command line, or every ``*.yaml``/``*.yml`` in named folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            found.append(path)
        else:
            raise InputError(Location(str(path), 0), "no such file or directory")
    return found


def read(paths: Iterable[Path]) -> list[Document]:
    docs: list[Document] = []
    for path in discover(paths):
        docs.extend(load_file(path, str(path)))
    return docs


def require_policies(paths: Iterable[Path]) -> None:
    """Refuse an empty policy set: with no policy, every host "matches policy", so a
    mistyped ``-p`` or a missing checkout would report a healthy host and exit 0."""
    named = list(paths)
    if not read(named):
        where = ", ".join(str(p) for p in named) or "policies"
        raise InputError(
            Location(where, 0),
            "no policy documents found (pass --allow-empty if an empty policy set is meant)",
        )


def _check_header(doc: Document) -> str:
    if not isinstance(doc.data, dict):
        raise InputError(doc.location(()), "a policy document is a mapping")
    kind = doc.data.get("kind")
    if not isinstance(kind, str) or kind not in BUILDERS:
        known = ", ".join(sorted(BUILDERS))
        raise InputError(doc.location(("kind",)), f"unknown kind {kind!r} (known: {known})")
    return str(kind)


def build(doc: Document) -> Policy:
    """Validate one (rendered) document against its kind's schema and build it."""
    kind = _check_header(doc)
    _refuse_control_characters(doc)
    schema.validate(doc, kind)
    try:
        return BUILDERS[kind](doc)
    except InputError as exc:
        raise hide_sensitive(doc, exc) from None


def _refuse_control_characters(doc: Document) -> None:
    """No policy value holds a control character (a newline, a tab, an escape, a bidi
    override): each one that reaches a unit file, a path, a command line or a terminal
    could end a field early or start another. Checked after rendering, so a var cannot
    bring one in either."""

    def walk(value: Any, path: PathKey) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(str(key), (*path, key))
                walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))
        elif isinstance(value, str) and has_unsafe(value):
            char = next(c for c in value if has_unsafe(c))
            raise InputError(
                doc.location(path), f"holds the control character U+{ord(char):04X}: refused"
            )

    walk(doc.data, ())


def hide_sensitive(doc: Document, exc: InputError) -> InputError:
    """``exc`` without the values ``doc`` rendered from secret-looking vars: a builder's
    message quotes the value it refused, and that message may reach a PR comment."""
    message = exc.message
    for path in doc.sensitive:
        value = doc.value_at(path)
        for form in (repr(value), str(value)):
            if form and form in message:
                message = message.replace(form, "the rendered value")
    return exc if message == exc.message else InputError(exc.location, message)


@dataclass(frozen=True)
class HostPolicies:
    host: Host
    policies: tuple[Policy, ...]


def load_for_hosts(
    paths: Iterable[Path], inventory: Inventory, hosts: list[Host]
) -> list[HostPolicies]:
    """Load, render, validate and build every policy for every host, before anything runs.

    A document whose ``hosts:`` matches none of the inventory's hosts is still validated
    (rendered with the ``all`` vars), so a typo is caught in review, not on the host.
    """
    docs = read(paths)
    for doc in docs:
        _check_header(doc)
    targeted: dict[int, list[Host]] = {}
    for i, doc in enumerate(docs):
        try:
            targeted[i] = inventory.match(str(doc.data.get("hosts", "all")))
        except InputError as exc:
            raise InputError(doc.location(("hosts",)), exc.message) from None
    result = [
        HostPolicies(
            host,
            tuple(
                build(template.render(d, host.vars, host.name))
                for i, d in enumerate(docs)
                if host in targeted[i]
            ),
        )
        for host in hosts
    ]
    result = [HostPolicies(hp.host, finalize(hp.policies, hp.host)) for hp in result]
    selected = {h.name for h in hosts}
    for i, doc in enumerate(docs):
        # Validate what this run does not use too: for the hosts it targets outside
        # --limit, or with the ``all`` vars when it targets no host at all.
        others = [h for h in targeted[i] if h.name not in selected]
        if not targeted[i]:
            _validate_untargeted(doc, inventory)
        for host in others:
            build(template.render(doc, host.vars, host.name))
    # Selectors resolve per host, so check them for the hosts outside --limit as well.
    for host in {
        h.name: h for i in targeted for h in targeted[i] if h.name not in selected
    }.values():
        finalize(
            tuple(
                build(template.render(d, host.vars, host.name))
                for i, d in enumerate(docs)
                if host in targeted[i]
            ),
            host,
        )
    _check_unique(result)
    return result


def finalize(policies: tuple[Policy, ...], host: Host) -> tuple[Policy, ...]:
    """Resolve StackSelector references and fill host facts into policy values.

    Done once per host after every document is built, so a selector may be defined in any
    file; an unknown selector name is an error at the line that names it.
    """
    selectors = {p.meta.name: p.match for p in policies if isinstance(p, StackSelector)}

    def pattern(name: str, source: Location) -> str:
        if name not in selectors:
            known = ", ".join(sorted(selectors)) or "none defined"
            raise InputError(source, f"unknown StackSelector {name!r} (known: {known})")
        return selectors[name]

    # abra names a server's folder after the server, not after ccci's inventory host: any
    # folder unless the host var abra_server names one.
    server = str(host.vars.get("abra_server") or "")
    done: list[Policy] = []
    for policy in policies:
        if isinstance(policy, PrunePolicy):
            gates = tuple(
                replace(g, match=pattern(g.selector, g.source)) if g.selector else g
                for g in policy.gates
            )
            policy = replace(policy, gates=gates)
        elif isinstance(policy, OrphanStackPolicy):
            if policy.run_apps_selector:
                policy = replace(
                    policy, run_apps=pattern(policy.run_apps_selector, policy.run_apps_source)
                )
            policy = replace(policy, abra_server=server)
        done.append(policy)
    from ccci.sandbox import finish_timers  # the nightly's writable paths need them all

    return finish_timers(tuple(done))


def _validate_untargeted(doc: Document, inventory: Inventory) -> None:
    """A document for no inventory host is rendered with the ``all`` vars; when it needs a
    variable only hosts define, it cannot be checked here and is left to ``hosts:`` review."""
    from jinja2 import UndefinedError

    try:
        rendered = template.render(doc, inventory.all_vars, "(none)")
    except InputError as exc:
        if isinstance(exc.__context__, UndefinedError):
            return
        raise
    build(rendered)


def _check_unique(per_host: list[HostPolicies]) -> None:
    for hp in per_host:
        seen: dict[tuple[str, str], Location] = {}
        for policy in hp.policies:
            key = (policy.meta.kind, policy.meta.name)
            if key in seen:
                raise InputError(
                    policy.meta.source,
                    f"duplicate {policy.meta.kind} name {policy.meta.name!r} "
                    f"(first at {seen[key]})",
                )
            seen[key] = policy.meta.source
