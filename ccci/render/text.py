"""The human plan: Terraform's shape, with a reason under every change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccci.plan.model import Action, Change, HostPlan, Plan
from ccci.quantities import format_bytes
from ccci.render.escape import terminal
from ccci.render.style import Style

if TYPE_CHECKING:
    # Only an apply's report has results: a plan is rendered without importing them.
    from ccci.plan.results import ChangeResult, HostReport

_ACTION_COLOUR = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.DELETE: "red",
    Action.REPLACE: "yellow",
}


def short(address: str) -> str:
    """``image:sha256:0123…`` → ``image sha256:0123456789ab``; other ids cut to 12.

    Addresses hold engine names, so they are escaped here, once, for every renderer."""
    kind, _, ident = address.partition(":")
    if ident.startswith("sha256:"):
        return terminal(f"{kind} {ident[:19]}")
    return terminal(f"{kind} {ident[:12] if len(ident) == 64 else ident}")


def change_line(change: Change, style: Style) -> str:
    """A change's first line: action sign, address, label and the bytes it would free."""
    size = f"  ~{format_bytes(change.bytes_freed)}" if change.bytes_freed else ""
    head = style(f"{change.action.symbol} {short(change.address)}", _ACTION_COLOUR[change.action])
    return f"{head} ({terminal(change.label)}){size}"


def summary_line(plan: HostPlan | Plan) -> str:
    """``Plan: N to add, N to change, N to remove.``: the line Terraform users look for."""
    counts, manual = plan.counts(), plan.manual_count()
    text = (
        f"Plan: {counts[Action.CREATE]} to add, {counts[Action.UPDATE]} to change, "
        f"{plan.to_remove()} to remove" + (f", {manual} to do by hand." if manual else ".")
    )
    freed = plan.bytes_freed()
    return f"{text} About {format_bytes(freed)} to free." if freed else text


def _unit_diff(change: Change) -> list[str]:
    """A unit file change shows as a unified diff, as a reviewer reads file changes."""
    import difflib

    from ccci.render.redact import mask_unit_pair

    before, after = mask_unit_pair(
        str((change.before or {}).get("content", "")), str((change.after or {}).get("content", ""))
    )
    path = str((change.after or {}).get("path", change.label))
    diff = difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        fromfile=path if change.before else "/dev/null",
        tofile=path,
        lineterm="",
    )
    return [f"      {terminal(line)}" for line in diff]


def _stack_objects(change: Change) -> list[str]:
    """A reap removes many objects; the reviewer sees each one."""
    from ccci.apply.reap import SINGULAR

    return [
        f"      {SINGULAR[kind]:<8} {terminal(name)}"
        for kind, names in (change.before or {}).items()
        for name in names
    ]


def render_host(plan: HostPlan, style: Style, verbose: bool = False) -> list[str]:
    """One host's plan as a reader scans it: the verdict first, then each change with its
    reason, what is left to do by hand, the summary line, the gates and what was left
    alone."""
    lines: list[str] = []
    if plan.is_empty():
        lines.append(style("No changes. Host matches policy.", "green"))
    for change in plan.changes:
        lines += _change_block(change, style)
    if plan.manual:
        lines += _manual_block(plan, style)
    if plan.changes or plan.manual:
        lines += ["", summary_line(plan)]
    if plan.gates:
        lines += _gate_block(plan, style)
    return lines + _noop_block(plan, verbose)


def _change_block(change: Change, style: Style) -> list[str]:
    because = (
        f"  # (because {change.reason}; "
        f"policy {change.policy} {change.source.file}:{change.source.line})"
    )
    lines = [change_line(change, style), style(terminal(because), "dim")]
    if change.kind == "stack":
        lines += _stack_objects(change)
    if change.kind == "unit":
        lines += _unit_diff(change)
    return lines


def _manual_block(plan: HostPlan, style: Style) -> list[str]:
    lines = (
        ["", "To do by hand (ccci does not change these):"]
        if plan.changes
        else ["To do by hand (ccci does not change these):"]
    )
    for item in plan.manual:
        said = f"! {short(item.address)} {terminal(f'({item.label}): {item.reason}')}"
        how = f"  # do: {item.how}; policy {item.policy} {item.source.file}:{item.source.line}"
        lines += [style(said, "yellow"), style(terminal(how), "dim")]
    return lines


def _gate_block(plan: HostPlan, style: Style) -> list[str]:
    lines = ["", "Gates:"]
    width = max(len(terminal(f"{g.policy} {g.gate.kind.value}")) for g in plan.gates)
    for g in plan.gates:
        state = style("open  ", "green") if g.open else style("closed", "yellow")
        name = terminal(f"{g.policy} {g.gate.kind.value}")
        lines.append(f"  {name:<{width}}  {state}  {terminal(g.observed)}")
    return lines


def _noop_block(plan: HostPlan, verbose: bool) -> list[str]:
    lines = [
        terminal(f"Policy {noop.policy} does nothing: {noop.reason}.")
        for noop in plan.policy_noops()
    ]
    others = list(plan.object_noops())
    if others and verbose:
        lines += ["", "Left alone:"]
        lines += [f"  {short(n.address)} {terminal(f'({n.label}): {n.reason}')}" for n in others]
    elif others:
        lines += [
            "",
            f"{len(others)} object{'s' if len(others) != 1 else ''} left alone "
            "(--verbose lists each with its reason).",
        ]
    return lines


def render_plan(plan: Plan, style: Style, verbose: bool = False) -> str:
    """The whole plan; with several hosts each is headed by its name and a total ends it."""
    lines: list[str] = []
    many = len(plan.hosts) > 1
    for i, host in enumerate(plan.hosts):
        if many:
            lines += ([""] if i else []) + [style(f"{terminal(host.host)}:", "bold")]
        body = render_host(host, style, verbose)
        lines += [f"  {line}" if many and line else line for line in body]
    if many:
        lines += ["", f"Total: {summary_line(plan).removeprefix('Plan: ')}"]
    return "\n".join(lines)


def result_line(host: str, result: ChangeResult, style: Style) -> str:
    """One applied change, as Ansible prints a task result: host, change, status, detail."""
    from ccci.plan.results import Status

    colour = {Status.OK: "green", Status.FAILED: "red", Status.SKIPPED: "yellow"}[result.status]
    change = result.change
    return (
        f"{terminal(host)}: {change.action.symbol} {short(change.address)} "
        f"({terminal(change.label)}): "
        + style(f"{result.status.value}", colour)
        + ("" if result.message == "done" else f" ({terminal(result.message)})")
    )


def render_report(report: HostReport, style: Style) -> list[str]:
    """A host's apply in two lines: converged (and what it freed) or what is still to do,
    then the recap line the nightly's log is read by."""
    lines = []
    if report.converged:
        lines.append(
            f"{terminal(report.host)}: converged"
            + (f", freed about {format_bytes(report.bytes_freed)}" if report.bytes_freed else "")
        )
    else:
        lines.append(
            style(
                f"{terminal(report.host)}: not converged, {len(report.remaining)} still to do: ",
                "yellow",
            )
            + ", ".join(short(a) for a in report.remaining[:5])
        )
    lines.append(report.recap())
    return lines
