"""``ccci policy diff --output markdown``: the PR comment.

A summary table first (one row per host whose plan changes: added, changed and removed
changes, bytes, risk), then the meanings, then one folded ``<details>`` per changed host
with its plan difference. Unchanged hosts are counted, not shown. The whole comment stays
under GitHub's 65,536-character limit (65,000 by default, to leave room): what does not fit
is cut whole (rows, hosts), and a note at the end says what was cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ccci.quantities import format_bytes, plural
from ccci.render import escape
from ccci.review.difftext import headline, impact_lines, meaning_line, risk_counts, where
from ccci.review.impact import HostImpact
from ccci.review.semantic_diff import SemanticDiff

LIMIT = 65_000
# Room kept for the note that says what was cut.
_NOTE_ROOM = 600
PER_SECTION = 50


# Every value shown is escaped by the one helper: cells and text as literal characters,
# the <summary> as HTML text, code lines unable to close their fence.
_cell = escape.markdown_cell
_code = escape.code_line


def _signed_bytes(delta: int) -> str:
    if not delta:
        return "0"
    return f"{'+' if delta > 0 else '−'}{format_bytes(abs(delta))}"


@dataclass
class _Page:
    """Text under a budget; whatever does not fit is counted for the note."""

    budget: int
    parts: list[str] = field(default_factory=list)
    size: int = 0
    cut: dict[str, int] = field(default_factory=dict)

    def fits(self, text: str) -> bool:
        return self.size + len(text) + 1 <= self.budget

    def add(self, text: str, what: str = "") -> bool:
        """Add ``text`` (a line or block) if it fits; else count it under ``what``."""
        if self.fits(text) and not (what and self.cut.get(what)):
            self.parts.append(text)
            self.size += len(text) + 1
            return True
        if what:
            self.cut[what] = self.cut.get(what, 0) + 1
        return False

    def text(self) -> str:
        return "\n".join(self.parts)


def _host_table(page: _Page, diff: SemanticDiff, impacts: Sequence[HostImpact]) -> None:
    changed = [i for i in impacts if not i.is_unchanged()]
    unchanged = len(impacts) - len(changed)
    if not changed:
        page.add(f"No host's plan changes ({plural(len(impacts), 'host')} planned).")
        page.add("")
        return
    page.add("| host | +add | ~change | −remove | bytes | risk |")
    page.add("|---|--:|--:|--:|--:|---|")
    for impact in changed:
        risk = diff.risk_for(impact.host)
        page.add(
            f"| {_cell(impact.host)} | {impact.count('added')} | {impact.count('changed')} "
            f"| {impact.count('removed')} | {_signed_bytes(impact.bytes_delta())} "
            f"| {risk.value if risk else '—'} |",
            "rows of the host table",
        )
    page.add("")
    hidden = f"{plural(unchanged, 'host')} unchanged (not shown). " if unchanged else ""
    page.add(
        f"{hidden}+add: changes only the new policies plan; ~change: planned differently; "
        "−remove: no longer planned; bytes: the change in bytes freed."
    )
    page.add("")


def _meanings(page: _Page, diff: SemanticDiff) -> None:
    page.add("#### What the change means")
    page.add("")
    if diff.is_empty():
        page.add("No change in meaning: the policies do the same on every host.")
        page.add("")
        return
    page.add("| risk | policy | change | why |")
    page.add("|---|---|---|---|")
    for change in diff.changes:
        subject = change.subject + (f" ({where(change.source)})" if change.source else "")
        page.add(
            f"| {change.meaning.risk.value} | {_cell(subject)} | {_cell(meaning_line(change))} "
            f"| {_cell(change.meaning.why)} |",
            "changes in meaning",
        )
    page.add("")
    page.add(risk_counts(diff))
    page.add("")


def _details(page: _Page, diff: SemanticDiff, impact: HostImpact) -> None:
    lines = impact_lines(impact, PER_SECTION)
    block = "\n".join(
        [
            "<details><summary>"
            f"{escape.html_text(headline(impact, diff.risk_for(impact.host)))}</summary>",
            "",
            "```text",
            *(_code(line) for line in lines),
            "```",
            "",
            "</details>",
            "",
        ]
    )
    page.add(block, "hosts' plan details")


def _note(cut: dict[str, int], limit: int) -> str:
    parts = [f"{count} {what}" for what, count in cut.items()]
    return (
        f"> **Cut to fit a PR comment ({limit:,} characters):** {', '.join(parts)} "
        "not shown. Run `ccci policy diff` with the same arguments for everything."
    )


def render_markdown(
    diff: SemanticDiff,
    impacts: Sequence[HostImpact] | None = None,
    facts_label: str = "",
    limit: int = LIMIT,
) -> str:
    """The PR comment, under ``limit`` characters: whatever does not fit is cut whole (rows, hosts)
    and a closing note says what was cut."""
    page = _Page(limit - _NOTE_ROOM)
    title = (
        f"**ccci policy diff** {escape.inline_code(diff.base)} → {escape.inline_code(diff.head)}"
    )
    if impacts is not None:
        page.add(f"{title}, planned on the hosts in {escape.inline_code(facts_label)}")
        page.add("")
        _host_table(page, diff, impacts)
    else:
        page.add(title)
        page.add("")
    _meanings(page, diff)
    if impacts is not None:
        for impact in impacts:
            if not impact.is_unchanged():
                _details(page, diff, impact)
    text = page.text().rstrip("\n") + "\n"
    if page.cut:
        text += "\n" + _note(page.cut, limit) + "\n"
    return text
