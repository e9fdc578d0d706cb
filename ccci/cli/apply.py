"""``ccci apply PLAN``: a saved plan, applied only where a fresh plan agrees."""

from __future__ import annotations

from pathlib import Path

import click

from ccci.cli.applying import apply_plan, can_ask, confirm
from ccci.cli.common import (
    host_settings,
    output_style,
    workspace_for,
    workspace_options,
)
from ccci.cli.options import errors


@click.command("apply")
@click.argument("plan_file", type=click.Path(path_type=Path))
@workspace_options
@click.option("--yes", is_flag=True, help="Apply without asking (scripts and timers).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when a host did not converge.")
@errors
def apply_cmd(
    plan_file: Path,
    yes: bool,
    detailed_exitcode: bool,
) -> None:
    """Apply a saved plan, as a claim: plan again with the policies (-p, -i) on fresh facts
    and apply only the saved changes that plan makes too; anything else in the file, or
    any fact that moved, refuses the whole plan."""
    from ccci.plan.saved import read_plan
    from ccci.render import text as render_text

    saved = read_plan(plan_file)
    if not saved.can_apply():
        click.echo("No changes. Host matches policy.")
        return
    can_ask(yes)
    workspace = workspace_for(host_settings())
    with workspace.locked():
        # What is shown, asked about and applied is the fresh plan's own version of each
        # saved change: never the file's paths, contents, objects or gates.
        plan = workspace.rederive(saved)
        click.echo(render_text.render_plan(plan, output_style()))
        click.echo("")
        confirm(plan, yes)
        apply_plan(workspace, plan, saved=True, detailed_exitcode=detailed_exitcode)
