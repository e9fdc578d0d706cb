"""StackSelector: a named pattern. Its effect shows on the policies that use it (their
resolved patterns change too), so the selector's own change is neutral."""

from __future__ import annotations

from ccci.policy.model import StackSelector
from ccci.review.meanings.base import Meaning, Risk, pattern_change


def changed(old: StackSelector, new: StackSelector) -> list[Meaning]:
    """Neutral: a selector does nothing alone, and its effect shows on the policies that use it."""
    if old.match == new.match:
        return []
    text, _ = pattern_change(old.match, new.match)
    return [
        Meaning(
            "spec.match",
            f"selector {new.meta.name} {text}",
            Risk.NEUTRAL,
            "its effect shows on the policies that use it",
        )
    ]


def added(policy: StackSelector) -> Meaning:
    """Neutral: a name for a pattern does nothing alone."""
    return Meaning(
        "",
        f"selector {policy.meta.name} added: {policy.match!r}",
        Risk.NEUTRAL,
        "a name for a pattern; it does nothing alone",
    )


def removed(policy: StackSelector) -> Meaning:
    """Neutral: a name for a pattern did nothing alone."""
    return Meaning(
        "",
        f"selector {policy.meta.name} removed: {policy.match!r}",
        Risk.NEUTRAL,
        "a name for a pattern; it did nothing alone",
    )
