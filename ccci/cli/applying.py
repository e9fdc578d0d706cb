"""Asking and applying, shared by ``reconcile --apply``, ``apply`` and ``janitor``: refuse
without a terminal or --yes, confirm after the plan is shown, apply and recap per host."""

from __future__ import annotations

import sys
from typing import Any

import click

from ccci.cli.common import EXIT_CHANGES, output_style
from ccci.errors import CcciError


def can_ask(yes: bool) -> None:
    """Without --yes, apply asks first; with nobody at a terminal to answer, it refuses
    before doing any work (a script or timer says --yes, as the nightly unit does)."""
    if not yes and not sys.stdin.isatty():
        raise CcciError(
            "refusing to apply without --yes when stdin is not a terminal; nothing was done"
        )


def confirm(plan: Any, yes: bool) -> None:
    """Ask before acting, after the plan (every object to remove, by name) is shown."""
    if yes or not plan.can_apply():
        return
    removals = plan.to_remove()
    others = sum(plan.counts().values()) - removals
    hosts = ", ".join(h.host for h in plan.hosts if h.changes)
    click.confirm(
        f"Apply {removals} removal(s) and {others} other change(s) on {hosts}?",
        abort=True,
        err=True,
    )


def apply_plan(
    workspace: Any, plan: Any, saved: bool, detailed_exitcode: bool, output: str = "text"
) -> None:
    """Apply and print each result as it lands, then one recap per host in inventory order; exit 1
    when a host was unreachable or a change failed, and EXIT_CHANGES under ``--detailed-exitcode``
    when a host did not converge."""
    from ccci.plan.results import Status
    from ccci.render import text as render_text

    stream = sys.stderr if output == "json" else sys.stdout
    style = output_style(stream)

    def show(host: str, result: Any) -> None:
        click.echo(render_text.result_line(host, result, style), file=stream)

    reports = {r.host: r for r in workspace.apply(plan, saved=saved, on_result=show)}
    click.echo("", file=stream)
    for host in workspace.inventory.hosts:
        if host in reports:
            for line in render_text.render_report(reports[host], style):
                click.echo(line, file=stream)
        elif host in workspace.unreachable:
            click.echo(f"{host}: UNREACHABLE! {workspace.unreachable[host]}", file=stream)
            click.echo(f"{host} : ok=0 changed=0 failed=0 skipped=0 unreachable=1", file=stream)
    if workspace.unreachable or any(r.count(Status.FAILED) for r in reports.values()):
        sys.exit(1)
    if detailed_exitcode and not all(r.converged for r in reports.values()):
        sys.exit(EXIT_CHANGES)
