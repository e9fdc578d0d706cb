"""``ccci facts``: each host's facts, or a JSON snapshot to plan offline."""

from __future__ import annotations

import click

from ccci.cli.common import (
    exit_if_unreachable,
    host_settings,
    show_unreachable,
    workspace_for,
    workspace_options,
)
from ccci.cli.options import errors, output_option


@click.command()
@workspace_options
@output_option
@errors
def facts(
    output: str,
) -> None:
    """Gather each host's facts; --output json saves a snapshot for offline planning."""
    from ccci.facts.snapshot import snapshot_json
    from ccci.render.facts import render_facts

    workspace = workspace_for(host_settings())
    gathered = list(workspace.gather_all(workspace.targets()).values())
    if output == "json":
        click.echo(snapshot_json(gathered, workspace.unreachable))
    else:
        click.echo("\n\n".join(render_facts(f) for f in gathered))
    show_unreachable(workspace, output)
    exit_if_unreachable(workspace)
