"""``ccci images``: each host's images and why each stays."""

from __future__ import annotations

from pathlib import Path

import click

from ccci.cli.common import (
    exit_if_unreachable,
    host_settings,
    show_unreachable,
    workspace_for,
    workspace_options,
)
from ccci.cli.options import errors, facts_option, output_option


@click.command()
@workspace_options
@output_option
@facts_option
@errors
def images(
    output: str,
    facts_file: Path | None,
) -> None:
    """List each host's images and why each stays: retained (by which policy), in use (by
    what), when last used, and its size."""
    from ccci.render import images as render_images

    workspace = workspace_for(host_settings())
    plan, facts_by_host = workspace.plan(None, facts_file, fingerprinted=False)
    rows = {
        h.host: render_images.image_rows(
            facts_by_host[h.host], workspace.policies_of(h.host), plan.now
        )
        for h in plan.hosts
    }
    if output == "json":
        click.echo(render_images.render_json(rows))
    else:
        click.echo("\n\n".join(render_images.render_text(h, r, plan.now) for h, r in rows.items()))
    show_unreachable(workspace, output)
    exit_if_unreachable(workspace)
