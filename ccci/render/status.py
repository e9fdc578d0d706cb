"""Render ``ccci status`` for a person (text) or a script (JSON)."""

from __future__ import annotations

import json
from datetime import timedelta

from ccci.quantities import format_bytes, format_duration, format_percent, format_time, plural
from ccci.render.escape import terminal
from ccci.render.style import Style
from ccci.serde import to_jsonable
from ccci.views.status import HostStatus


def render_text(status: HostStatus, style: Style) -> str:
    """The status screen for a person: the verdict and problems first, then the details they come
    from."""
    verdict = style("healthy", "green") if status.healthy else style("needs attention", "yellow")
    # Every value from a host or a policy (stack, service and unit names, engine errors) is
    # passed through terminal(): it can never pass for ccci's own output. Styling comes after.
    lines = [
        style(f"{terminal(status.host)}: {verdict}", "bold"),
        terminal(f"  engine   {status.engine}"),
    ]
    lines += [terminal(f"  !  {p}") for p in status.problems]
    for disk in status.disks:
        marks = ", ".join(f"{name} at {format_percent(t)}" for name, t in disk.thresholds)
        lines.append(
            terminal(
                f"  disk     {format_percent(disk.ratio)} on {disk.path}"
                + (f" ({marks})" if marks else "")
            )
        )
    for gate in status.gates:
        state = style("open  ", "green") if gate.open else style("closed", "yellow")
        lines.append(
            f"  gate     {terminal(gate.policy)} {gate.gate.kind.value}: {state} "
            f"{terminal(gate.observed)}"
        )
    if status.live_stacks:
        for stack in status.live_stacks:
            age = (
                format_duration(timedelta(seconds=stack.age_seconds))
                if stack.age_seconds is not None
                else "age unknown"
            )
            note = f", converging: {stack.converging}" if stack.converging else ""
            note += f", stuck: {stack.stuck}" if stack.stuck else ""
            lines.append(
                terminal(
                    f"  stack    {stack.name} "
                    f"({plural(stack.services, 'service')}, {age} old{note})"
                )
            )
    else:
        lines.append("  stacks   none live")
    lines.append(terminal(f"  orphans  {', '.join(status.orphans) if status.orphans else 'none'}"))
    for timer in status.timers:
        runs = []
        if timer.next_run:
            runs.append(f"next {format_time(timer.next_run)}")
        if timer.last_run:
            runs.append(f"last {format_time(timer.last_run)}")
        when = f"; {', '.join(runs)}" if runs else ""
        lines.append(
            terminal(f"  timer    {timer.name} (wanted {timer.wanted}): {timer.state}{when}")
        )
    if status.missing_images:
        lines.append(
            terminal(
                f"  missing  {', '.join(status.missing_images)} (to keep warm; not in the cache)"
            )
        )
    for item in status.manual:
        lines.append(terminal(f"  by hand  {item.label}: {item.reason} — {item.how}"))
    lines.append(
        f"  pending  {plural(status.pending, 'change')} (ccci reconcile --plan shows them)"
    )
    run = status.last_run
    if run is None:
        lines.append("  last run none in the journal")
    else:
        result = "converged" if run.converged else "not converged"
        lines.append(
            f"  last run {run.time}: {result}, changed={run.changed} failed={run.failed} "
            f"skipped={run.skipped}, freed {format_bytes(run.bytes_freed)}"
        )
    return "\n".join(lines)


def render_json(statuses: list[HostStatus]) -> str:
    """Every host's status as one versioned document, with ``healthy`` spelt out, since a script
    should not re-derive it from ``problems``."""
    hosts = []
    for status in statuses:
        data = to_jsonable(status)
        data["healthy"] = status.healthy
        hosts.append(data)
    return json.dumps({"format_version": 1, "hosts": hosts}, indent=2, sort_keys=True)
