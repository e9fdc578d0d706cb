"""The human ``ccci policy diff``: meanings grouped by policy, then the impact per host.

The line builders here are shared with the markdown comment, which puts the same lines
in folded code blocks.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ccci.errors import Location
from ccci.plan.model import Change
from ccci.quantities import format_bytes, format_time, plural
from ccci.render.escape import terminal
from ccci.render.redact import mask_unit_pair
from ccci.render.style import Style
from ccci.render.text import short
from ccci.review.findings import host_note
from ccci.review.impact import ChangeDelta, GateDelta, HostImpact, ManualDelta
from ccci.review.meanings.base import Risk
from ccci.review.semantic_diff import PolicyChange, SemanticDiff

_RISK_COLOUR = {Risk.SAFER: "green", Risk.NEUTRAL: "dim", Risk.RISKIER: "red"}
PLAIN = Style(enabled=False)


def where(source: Location | None) -> str:
    """``file:line`` of a policy, terminal-escaped (a file name may hold anything); '' when
    unknown."""
    return terminal(f"{source.file}:{source.line}") if source else ""


def risk_counts(diff: SemanticDiff) -> str:
    """The closing tally, riskier first: what a reviewer looks at before reading the lines."""
    counts = diff.counts()
    parts = [f"{counts[r]} {r.value}" for r in (Risk.RISKIER, Risk.NEUTRAL, Risk.SAFER)]
    return f"{plural(len(diff.changes), 'change')} in meaning: {', '.join(parts)}."


def meaning_line(change: PolicyChange) -> str:
    """The meaning and, unless it holds on every host of the policy, where it holds."""
    hosts = "" if change.everywhere else host_note(change.hosts)
    return terminal(f"{change.meaning.text}{hosts}")


def semantic_lines(diff: SemanticDiff, style: Style = PLAIN) -> list[str]:
    """Meanings grouped by policy, each with its risk and why; an empty diff says so in a sentence
    rather than printing nothing."""
    if diff.is_empty():
        return ["No change in meaning: the policies do the same on every host."]
    lines: list[str] = []
    subject = None
    for change in diff.changes:
        if change.subject != subject:
            subject = terminal(change.subject)
            place = f"  ({where(change.source)})" if change.source else ""
            lines.append(style(subject, "bold") + place)
        risk = change.meaning.risk
        label = style(f"{risk.value:<8}", _RISK_COLOUR[risk])
        lines.append(f"  {label} {meaning_line(change)}")
        lines.append(style(terminal(f"           # {change.meaning.why}"), "dim"))
    lines += ["", risk_counts(diff)]
    return lines


def bytes_note(impact: HostImpact) -> str:
    """How much more (or less) the head plan frees than the base, or '' when the same."""
    delta = impact.bytes_delta()
    if not delta:
        return ""
    return f", frees {format_bytes(abs(delta))} {'more' if delta > 0 else 'less'}"


def _differ(count: int, noun: str) -> str:
    return f"{plural(count, noun)} {'differs' if count == 1 else 'differ'}"


def headline(impact: HostImpact, risk: Risk | None) -> str:
    """One host's plan difference in a line (counts, bytes, gates, manual actions, risk), shared by
    the text and the markdown comment."""
    counts = f"+{impact.count('added')} ~{impact.count('changed')} −{impact.count('removed')}"
    gated = f", {_differ(len(impact.gates), 'gate')}" if impact.gates else ""
    manual = f", {_differ(len(impact.manual), 'manual action')}" if impact.manual else ""
    shown = f"; risk: {risk.value}" if risk else ""
    return f"{terminal(impact.host)}: {counts}{bytes_note(impact)}{gated}{manual}{shown}"


def _change_lines(delta: ChangeDelta) -> list[str]:
    change = delta.change
    size = f"  ~{format_bytes(change.bytes_freed)}" if change.bytes_freed else ""
    head = f"{change.action.symbol} {short(change.address)} ({terminal(change.label)}){size}"
    if delta.status == "changed" and delta.base is not None:
        was = delta.base
        if (was.action, was.label) != (change.action, change.label):
            head += f"  [was: {was.action.symbol} ({terminal(was.label)})]"
        elif was.bytes_freed != change.bytes_freed:
            head += f"  [was: ~{format_bytes(was.bytes_freed or 0)}]"
    source = f"{change.source.file}:{change.source.line}"
    reason = terminal(f"  # {change.reason}; policy {change.policy} {source}")
    return [head, reason, *_unit_diff(change)]


def _unit_diff(change: Change) -> list[str]:
    """A unit file the plan writes, as a diff of what is on the host and what would be."""
    if change.kind != "unit":
        return []
    before, after = mask_unit_pair(
        str((change.before or {}).get("content", "")), str((change.after or {}).get("content", ""))
    )
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [f"    {terminal(line)}" for line in lines if not line.startswith(("---", "+++", "@@"))]


def _gate_line(delta: GateDelta) -> str:
    def state(result: object) -> str:
        if result is None:
            return "(none)"
        return "open" if getattr(result, "open", False) else "closed"

    now = delta.head or delta.base
    observed = f" ({now.observed})" if now else ""
    return terminal(
        f"{delta.policy} {delta.gate}: {state(delta.base)} → {state(delta.head)}{observed}"
    )


def _manual_line(delta: ManualDelta) -> str:
    item = delta.head or delta.base
    assert item is not None
    mark = "+" if delta.base is None else "-" if delta.head is None else "~"
    return f"{mark} ! {short(item.address)} {terminal(f'({item.label}): {item.reason}')}"


SECTIONS = (
    ("added", "Only the new policies plan:"),
    ("removed", "No longer planned:"),
    ("changed", "Planned differently:"),
)


def impact_lines(impact: HostImpact, per_section: int | None = None) -> list[str]:
    """The plan difference of one host; ``per_section`` caps long lists with a count."""
    lines: list[str] = []
    for status, title in SECTIONS:
        deltas = [d for d in impact.changes if d.status == status]
        if not deltas:
            continue
        lines.append(title)
        shown = deltas if per_section is None else deltas[:per_section]
        for delta in shown:
            lines += [f"  {line}" for line in _change_lines(delta)]
        if len(shown) < len(deltas):
            lines.append(f"  … and {len(deltas) - len(shown)} more")
    if impact.gates:
        lines.append("Gates:")
        lines += [f"  {_gate_line(g)}" for g in impact.gates]
    if impact.manual:
        lines.append("To do by hand:")
        lines += [f"  {_manual_line(m)}" for m in impact.manual]
    return lines


def impact_section(
    diff: SemanticDiff, impacts: Sequence[HostImpact], facts_label: str, style: Style = PLAIN
) -> list[str]:
    """Each host whose plan differs, with its lines; unchanged hosts are counted and at most five
    named, so a fleet diff stays readable."""
    lines = [style(f"Impact on the hosts in {facts_label}:", "bold")]
    changed = [i for i in impacts if not i.is_unchanged()]
    for impact in changed:
        lines.append(
            f"{headline(impact, diff.risk_for(impact.host))} (as of {format_time(impact.now)})"
        )
        lines += [f"  {line}" for line in impact_lines(impact)]
    unchanged = [i.host for i in impacts if i.is_unchanged()]
    if unchanged:
        names = ", ".join(terminal(h) for h in unchanged[:5]) + (
            f" and {len(unchanged) - 5} more" if len(unchanged) > 5 else ""
        )
        lines.append(f"{plural(len(unchanged), 'host')} unchanged: {names}.")
    return lines


def render_text(
    diff: SemanticDiff,
    impacts: Sequence[HostImpact] | None = None,
    facts_label: str = "",
    style: Style = PLAIN,
) -> str:
    """The human diff: meanings first, then with ``impacts`` what each host's plan does
    differently."""
    lines = semantic_lines(diff, style)
    if impacts is not None:
        lines += ["", *impact_section(diff, impacts, facts_label, style)]
    return "\n".join(lines)
