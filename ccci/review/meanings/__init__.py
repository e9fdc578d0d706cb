"""What a change to one policy means, kind by kind (one module per kind, as ``rules/``).

Each kind module has ``changed(old, new)``, ``added(policy)`` and ``removed(policy)`` over
built, finalized policies: typed values (ratios, timedeltas, resolved patterns), so a
change of form (``24h`` → ``1d``, a selector inlined) is no change of meaning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ccci.policy.model import (
    DaemonPolicy,
    ImageRetention,
    OrphanStackPolicy,
    Policy,
    PrunePolicy,
    StackSelector,
    TimerPolicy,
)
from ccci.review.meanings import daemon, orphans, prune, retention, selector, timers
from ccci.review.meanings.base import Meaning, Risk

_Kind = tuple[
    Callable[[Any, Any], list[Meaning]], Callable[[Any], Meaning], Callable[[Any], Meaning]
]

KINDS: dict[type[Any], _Kind] = {
    PrunePolicy: (prune.changed, prune.added, prune.removed),
    OrphanStackPolicy: (orphans.changed, orphans.added, orphans.removed),
    StackSelector: (selector.changed, selector.added, selector.removed),
    DaemonPolicy: (daemon.changed, daemon.added, daemon.removed),
    TimerPolicy: (timers.changed, timers.added, timers.removed),
    ImageRetention: (retention.changed, retention.added, retention.removed),
}

# Where a policy was written is not what it means.
_NOT_MEANING = {"meta", "source", "sources", "run_apps_source"}


def _generic_changed(old: Any, new: Any) -> list[Meaning]:
    """A kind review does not know yet: name each field that differs, neutrally."""
    found = []
    for f in dataclasses.fields(old):
        if f.name in _NOT_MEANING:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a != b:
            found.append(
                Meaning(f"spec.{f.name}", f"{f.name} {a!r} → {b!r}", Risk.NEUTRAL, "review it")
            )
    return found


def changed(old: Policy, new: Policy) -> list[Meaning]:
    """The meanings of the differences between two versions of one policy on one host."""
    handlers = KINDS.get(type(new))
    if handlers is None or type(old) is not type(new):
        return _generic_changed(old, new) if type(old) is type(new) else []
    return handlers[0](old, new)


def added(policy: Policy) -> Meaning:
    """What adding the policy means, by its kind; a kind review does not know is neutral."""
    handlers = KINDS.get(type(policy))
    if handlers is None:
        return Meaning("", f"policy {policy.meta.name} added", Risk.NEUTRAL, "review it")
    return handlers[1](policy)


def removed(policy: Policy) -> Meaning:
    """What removing the policy means, by its kind; a kind review does not know is neutral."""
    handlers = KINDS.get(type(policy))
    if handlers is None:
        return Meaning("", f"policy {policy.meta.name} removed", Risk.NEUTRAL, "review it")
    return handlers[2](policy)


__all__ = ["Meaning", "Risk", "added", "changed", "removed"]
