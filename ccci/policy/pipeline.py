"""The one road from a YAML document to a host's typed policies.

Every document takes the same stages in the same order, whoever asks:

1. ``kind_of``: a mapping of a known kind;
2. ``targets``: the hosts its ``hosts:`` pattern picks;
3. rendering (:mod:`ccci.policy.template`): Jinja2 with one host's vars, or with the
   ``all`` vars when it targets no host (``render_untargeted``);
4. ``validate``: no control character in any value, then the kind's JSON Schema;
5. ``construct``: the kind's typed builder;
6. ``finalize``: per host, selector references and host facts resolved, the nightly's
   sandbox widened to what the other policies write;
7. ``duplicates``: one name per kind per host.

:mod:`ccci.policy.load` runs them and stops at the first error, which is right before acting
on a host. ``ccci policy check`` (:mod:`ccci.review.check`) runs the very same stages
document by document and host by host and passes a list to collect every error in, so a
set of policies that check passes is one that load accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from ccci.config.inventory import Host, Inventory
from ccci.config.yamlsrc import Document, PathKey
from ccci.errors import InputError, Location
from ccci.policy import schema, template
from ccci.policy.build import BUILDERS
from ccci.policy.model import OrphanStackPolicy, Policy, PrunePolicy, StackSelector, TimerPolicy
from ccci.policy.validated import ValidatedCache
from ccci.render.escape import has_unsafe

# The host name a document that targets no host is rendered for.
NO_HOST = "(none)"

# What ``finalize`` reads of a host's other policies, by the kind it finalizes: a policy that
# names a selector needs the StackSelectors, and the nightly's sandbox the folders env files
# are reaped from. A run that uses only some kinds builds these too (see ``kinds_to_build``).
FINALIZE_READS: dict[str, frozenset[str]] = {
    "PrunePolicy": frozenset({"StackSelector"}),
    "OrphanStackPolicy": frozenset({"StackSelector"}),
    "TimerPolicy": frozenset({"OrphanStackPolicy"}),
}


def kind_of(doc: Document) -> str:
    """The document's kind; a document that is not a mapping of a known kind is refused
    before anything else is read from it."""
    if not isinstance(doc.data, dict):
        raise InputError(doc.location(()), "a policy document is a mapping")
    kind = doc.data.get("kind")
    if not isinstance(kind, str) or kind not in BUILDERS:
        known = ", ".join(sorted(BUILDERS))
        raise InputError(doc.location(("kind",)), f"unknown kind {kind!r} (known: {known})")
    return kind


def targets(doc: Document, inventory: Inventory) -> list[Host]:
    """The inventory hosts the document's ``hosts:`` pattern picks (``all`` by default).

    A pattern that is not text targets none here: the schema says what is wrong with it.
    A bad pattern (an unsafe regex) is an error at the document's ``hosts:`` line.
    """
    pattern = doc.data.get("hosts", "all")
    if not isinstance(pattern, str):
        return []
    try:
        return inventory.match(pattern)
    except InputError as exc:
        raise InputError(doc.location(("hosts",)), exc.message) from None


def kinds_to_build(kinds: frozenset[str] | None) -> frozenset[str] | None:
    """The kinds a run that uses ``kinds`` must build to finalize them as a run of every kind
    would (None: every kind): ``kinds`` and, transitively, what ``finalize`` reads for them."""
    if kinds is None:
        return None
    wanted = set(kinds)
    todo = list(wanted)
    while todo:
        for kind in FINALIZE_READS.get(todo.pop(), frozenset()) - wanted:
            wanted.add(kind)
            todo.append(kind)
    return frozenset(wanted)


def render_for(doc: Document, host: Host) -> Document:
    """The document as ``host`` sees it: every value rendered with the host's vars."""
    return template.render(doc, host.vars, host.name)


def render_untargeted(doc: Document, inventory: Inventory) -> Document | None:
    """A document for no inventory host, rendered with the ``all`` vars so that a typo is
    caught in review rather than on the host. None when it needs a variable only hosts
    define: then it cannot be checked here and is left to ``hosts:`` review."""
    from jinja2 import UndefinedError

    try:
        return template.render(doc, inventory.all_vars, NO_HOST)
    except InputError as exc:
        if isinstance(exc.__context__, UndefinedError):
            return None
        raise


def _control_characters(doc: Document) -> Iterator[InputError]:
    """No policy value holds a control character (a newline, a tab, an escape, a bidi
    override): each one that reaches a unit file, a path, a command line or a terminal
    could end a field early or start another. Checked after rendering, so a var cannot
    bring one in either."""
    todo: list[tuple[Any, PathKey]] = [(doc.data, ())]
    while todo:
        value, path = todo.pop()
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                todo.append((item, (*path, key)))
                todo.append((str(key), (*path, key)))
        elif isinstance(value, list):
            todo.extend((item, (*path, i)) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str) and has_unsafe(value):
            char = next(c for c in value if has_unsafe(c))
            yield InputError(
                doc.location(path), f"holds the control character U+{ord(char):04X}: refused"
            )


def validate(
    doc: Document,
    kind: str,
    problems: list[InputError] | None = None,
    passed: ValidatedCache | None = None,
) -> bool:
    """Whether the (rendered) document may be built: no control character, then its kind's
    JSON Schema. Without ``problems`` the first error is raised; with it, every error is
    added there (each schema error once, an unknown field rather than the "missing" one it
    most likely misspells).

    ``passed`` (a run's load, never ``policy check``, which passes ``problems``) skips the
    schema for a document that passed it before; the control characters are always checked.
    """
    if problems is None:
        check_characters(doc)
        if passed is None:
            schema.validate(doc, kind)
        else:
            passed.validate(kind, doc.data, lambda: schema.validate(doc, kind))
        return True
    found = list(_control_characters(doc))
    found.extend(InputError(doc.location(path), why) for path, why in schema.listed(doc, kind))
    problems.extend(found)
    return not found


def check_characters(doc: Document) -> None:
    """``validate``'s first step alone, raising the first control character: what a document
    whose build is known to pass still gets (it is cheap, and never skipped)."""
    for error in _control_characters(doc):
        raise error


def construct(doc: Document, kind: str) -> Policy:
    """The kind's typed policy from a valid document; a builder's error never echoes a
    value rendered from a secret-looking var."""
    try:
        return BUILDERS[kind](doc)
    except InputError as exc:
        raise hide_sensitive(doc, exc) from None


def build(doc: Document, passed: ValidatedCache | None = None) -> Policy:
    """Validate one (rendered) document against its kind's schema and build it; with
    ``passed``, a document that passed before skips the schema (see ``validate``)."""
    kind = kind_of(doc)
    validate(doc, kind, passed=passed)
    return construct(doc, kind)


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


def finalize(
    policies: tuple[Policy, ...], host: Host, problems: list[InputError] | None = None
) -> tuple[Policy, ...]:
    """Resolve StackSelector references and fill host facts into policy values, then widen
    the nightly's sandbox to what the host's policies write (``widen_sandbox``).

    Done once per host after every document is built, so a selector may be defined in any
    file; an unknown selector name is an error at the line that names it. Without
    ``problems`` the first error is raised; with it, each is added there and the policy it
    is in is left out, so every unknown selector is reported.
    """
    return widen_sandbox(resolve(policies, host, problems), problems)


def resolve(
    policies: tuple[Policy, ...], host: Host, problems: list[InputError] | None = None
) -> tuple[Policy, ...]:
    """``finalize``'s first half: selector references and host facts (see there)."""
    selectors = {p.meta.name: p.match for p in policies if isinstance(p, StackSelector)}
    server = abra_server(host)
    done: list[Policy] = []
    for policy in policies:
        try:
            done.append(_resolve(policy, selectors, server))
        except InputError as exc:
            if problems is None:
                raise
            problems.append(exc)
    return tuple(done)


def abra_server(host: Host) -> str:
    """The one thing ``finalize`` reads of the host itself: abra names a server's folder after
    the server, not after ccci's inventory host, so any folder unless the host var
    abra_server names one. It is part of what decides that a host's policies finalize (the
    env-file folder in the nightly's sandbox), so the load's cache keys on it too."""
    return str(host.vars.get("abra_server") or "")


def widen_sandbox(
    policies: tuple[Policy, ...], problems: list[InputError] | None = None
) -> tuple[Policy, ...]:
    """``finalize``'s second half: a hardened timer that runs ccci may write where the
    host's other policies do (:mod:`ccci.systemd.sandbox`); a folder no sandbox can hold is an
    error, raised or (with ``problems``) added there, the policies then left as they are."""
    if not any(isinstance(p, TimerPolicy) for p in policies):
        # Only a timer's units change here: a run without one (the janitor's) need not
        # import the sandbox and the unit values it checks with.
        return policies
    from ccci.systemd.sandbox import finish_timers  # the nightly's writable paths need them all

    try:
        return finish_timers(policies)
    except InputError as exc:
        if problems is None:
            raise
        problems.append(exc)
        return policies


def _resolve(policy: Policy, selectors: dict[str, str], server: str) -> Policy:
    def pattern(name: str, source: Location) -> str:
        if name not in selectors:
            known = ", ".join(sorted(selectors)) or "none defined"
            raise InputError(source, f"unknown StackSelector {name!r} (known: {known})")
        return selectors[name]

    if isinstance(policy, PrunePolicy):
        gates = tuple(
            replace(g, match=pattern(g.selector, g.source)) if g.selector else g
            for g in policy.gates
        )
        return replace(policy, gates=gates)
    if isinstance(policy, OrphanStackPolicy):
        if policy.run_apps_selector:
            policy = replace(
                policy, run_apps=pattern(policy.run_apps_selector, policy.run_apps_source)
            )
        return replace(policy, abra_server=server)
    return policy


def duplicates(policies: Iterable[Policy]) -> Iterator[tuple[Policy, Location]]:
    """Each policy whose kind and name an earlier one of the host already has, with where
    that first one is: two policies of one name would make plans and journals ambiguous."""
    seen: dict[tuple[str, str], Location] = {}
    for policy in policies:
        key = (policy.meta.kind, policy.meta.name)
        if key in seen:
            yield policy, seen[key]
        else:
            seen[key] = policy.meta.source
