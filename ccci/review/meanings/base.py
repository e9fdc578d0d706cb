"""What one policy change means: a sentence, a risk, and why that risk."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from ccci.quantities import format_percent, format_spec_duration
from ccci.review import regexlang


class Risk(enum.Enum):
    """How a change moves the host: towards losing less (safer) or more (riskier).

    "Riskier" means ccci may now remove something a run, the cache or the operator still
    wants, or a guard against that is weaker; "safer" the opposite; "neutral" neither.
    """

    SAFER = "safer"
    NEUTRAL = "neutral"
    RISKIER = "riskier"

    @property
    def rank(self) -> int:
        """Order for "the worst risk": safer < neutral < riskier."""
        return {"safer": 0, "neutral": 1, "riskier": 2}[self.value]


def worst(risks: list[Risk]) -> Risk | None:
    """The riskiest of ``risks``, or None when there are none (no change is not "safer")."""
    return max(risks, key=lambda r: r.rank) if risks else None


@dataclass(frozen=True)
class Meaning:
    """One change in meaning: ``text`` says what changed and its effect, ``why`` the risk."""

    field: str
    text: str
    risk: Risk
    why: str


def pct(ratio: float) -> str:
    """A ratio as meanings print it (``80%``), the way a policy writes it."""
    return format_percent(ratio)


def dur(delta: timedelta) -> str:
    """A duration as meanings print it, the way a policy writes it (``24h``, ``14d``)."""
    return format_spec_duration(delta)


def added_removed(
    field: str,
    old: tuple[str, ...],
    new: tuple[str, ...],
    added: tuple[str, Risk, str],
    removed: tuple[str, Risk, str],
) -> list[Meaning]:
    """Meanings for items added to and removed from a list; texts take ``{item}``."""
    found = []
    for item in new:
        if item not in old:
            text, risk, why = added
            found.append(Meaning(field, text.format(item=item), risk, why.format(item=item)))
    for item in old:
        if item not in new:
            text, risk, why = removed
            found.append(Meaning(field, text.format(item=item), risk, why.format(item=item)))
    return found


def pattern_change(old: str, new: str) -> tuple[str, regexlang.Comparison]:
    """``'^a' → '^b' (now also e.g. 'b'; no longer e.g. 'a')`` and the comparison."""
    comparison = regexlang.compare(old, new)
    notes = []
    if comparison.gained.exists:
        notes.append(f"now also matches e.g. {comparison.gained.example!r}")
    if comparison.lost.exists:
        notes.append(f"no longer matches e.g. {comparison.lost.example!r}")
    if comparison.same:
        notes.append("the same stack names")
    if comparison.gave_up:
        notes.append(f"gave up comparing after {regexlang.BUDGET:,} steps")
    elif not comparison.known:
        notes.append("too complex to compare")
    return f"{old!r} → {new!r} ({'; '.join(notes)})", comparison
