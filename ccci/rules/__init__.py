"""Rules: pure functions of (policy, facts, now) that yield changes, noops and gate results.

They never do I/O and never read the clock, so every decision can be replayed from a
snapshot and tested as data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ccci.facts.model import Facts
from ccci.plan.model import Change, GateResult, Manual, Noop

Outcome = Change | Noop | GateResult | Manual


@dataclass(frozen=True)
class Context:
    """What a rule may read: the facts, the time, and what earlier rules already planned.

    ``reaping`` names stacks that an earlier rule in the same plan removes, so that gates
    see the state after those changes (reap first, prune next, evict last); ``planned``
    holds every change planned so far, so eviction counts what they free.
    """

    facts: Facts
    now: datetime
    reaping: frozenset[str] = field(default_factory=frozenset)
    retained: dict[str, str] = field(default_factory=dict)
    policies: tuple[Any, ...] = ()
    planned: tuple[Change, ...] = ()


RuleOutput = Iterator[Outcome]
