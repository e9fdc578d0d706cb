"""The facade of ``ccci policy diff``: two sides in, meanings (and impact) out."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ccci.render.redact import Scrubber, scrubber_for
from ccci.review.gitrev import materialize
from ccci.review.impact import HostImpact, impact
from ccci.review.semantic_diff import SemanticDiff, diff
from ccci.review.sides import load_side


@dataclass(frozen=True)
class DiffResult:
    """What ``policy diff`` found, for any renderer: the meanings, each host's impact when a
    snapshot was given (``facts_label`` names it), and the scrubber every text goes through."""

    diff: SemanticDiff
    impacts: tuple[HostImpact, ...] | None = None
    facts_label: str = ""
    # Both sides' secret values, for every renderer of this result to pass its text through.
    scrub: Scrubber = field(default_factory=Scrubber)


def run_diff(
    base: str,
    head: str,
    policies: Sequence[str] = ("policies",),
    inventory: str = "inventory.yaml",
    facts: Path | None = None,
    now: datetime | None = None,
    cwd: Path | None = None,
    allow_empty: bool = False,
) -> DiffResult:
    """Load BASE and HEAD (folders or git revisions), compare them, and with ``facts``
    plan that snapshot under both."""
    from ccci.facts.snapshot import read_snapshot

    snapshot = read_snapshot(facts) if facts is not None else None
    names = [*policies, inventory]
    with ExitStack() as stack:
        old_tree = stack.enter_context(materialize(base, names, cwd))
        new_tree = stack.enter_context(materialize(head, names, cwd))
        old = load_side(old_tree, policies, inventory, allow_empty)
        new = load_side(new_tree, policies, inventory, allow_empty)
    meanings = diff(old, new)
    scrub = scrubber_for([*old.inventory.hosts.values(), *new.inventory.hosts.values()])
    if snapshot is None or facts is None:
        return DiffResult(meanings, scrub=scrub)
    return DiffResult(meanings, impact(old, new, snapshot, facts, now), str(facts), scrub)
