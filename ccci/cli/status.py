"""``ccci status``: is each host healthy, and if not, why."""

from __future__ import annotations

from pathlib import Path

import click

from ccci.cli.common import (
    exit_if_unreachable,
    host_settings,
    output_style,
    show_unreachable,
    workspace_for,
    workspace_options,
)
from ccci.cli.options import errors, facts_option, output_option, parse_now


@click.command()
@workspace_options
@output_option
@facts_option
@click.option("--now", help="As of this time (RFC 3339); default: the clock.")
@errors
def status(
    output: str,
    facts_file: Path | None,
    now: str | None,
) -> None:
    """Is each host healthy, and if not, why: disk against every threshold, gates, live and
    converging stacks, orphans, manual actions and the last run from the journal."""
    from ccci.render import status as render_status
    from ccci.state import journal as journal_mod
    from ccci.views.status import host_status

    workspace = workspace_for(host_settings())
    plan, facts_by_host = workspace.plan(parse_now(now), facts_file, fingerprinted=False)
    entries = journal_mod.read(workspace.settings.journal_path)
    statuses = [
        host_status(workspace.policies_of(h.host), facts_by_host[h.host], h, entries, plan.now)
        for h in plan.hosts
    ]
    if output == "json":
        click.echo(render_status.render_json(statuses))
    else:
        style = output_style()
        blocks = {s.host: render_status.render_text(s, style) for s in statuses}
        for host, reason in workspace.unreachable.items():
            blocks[host] = f"{host}: UNREACHABLE! {reason}"
        order = [h for h in workspace.inventory.hosts if h in blocks]
        click.echo("\n\n".join(blocks[h] for h in order))
    if output == "json":
        show_unreachable(workspace, output)
    exit_if_unreachable(workspace)
