"""``ccci janitor``: reap orphaned run-app stacks now (the call before each deploy)."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from ccci.cli.common import (
    exit_if_unreachable,
    host_settings,
    output_style,
    show_unreachable,
    workspace_for,
    workspace_options,
)
from ccci.cli.options import errors, output_option, parse_now

JANITOR_KINDS = frozenset({"OrphanStackPolicy", "StackSelector"})


@click.command()
@workspace_options
@click.option("--plan", "plan_only", is_flag=True, help="Only show what would be reaped.")
@output_option
@click.option("--now", help="Judge ages as of this time (RFC 3339); default: the clock.")
@errors
def janitor(
    plan_only: bool,
    output: str,
    now: str | None,
) -> None:
    """Reap orphaned run-app stacks now: only the OrphanStackPolicy policies, applied
    without asking. The cheap call a CI run makes before each deploy."""
    from dataclasses import replace

    from ccci.facts.model import SCOPE_STACKS

    settings = replace(
        host_settings(),
        kinds=JANITOR_KINDS,
        scope=SCOPE_STACKS,
    )
    workspace = workspace_for(settings)
    with contextlib.nullcontext() if plan_only else workspace.locked():
        _janitor(workspace, plan_only, output, now)


def _janitor(workspace: Any, plan_only: bool, output: str, now: str | None) -> None:
    from ccci.render import json as render_json
    from ccci.render import text as render_text

    plan, _ = workspace.plan(parse_now(now), fingerprinted=output == "json")
    if output == "json":
        click.echo(render_json.render_plan(plan))
    else:
        click.echo(render_text.render_plan(plan, output_style()))
    show_unreachable(workspace, output)
    if not plan_only and plan.can_apply():
        from ccci.cli.applying import apply_plan

        apply_plan(workspace, plan, saved=False, detailed_exitcode=False, output=output)
    exit_if_unreachable(workspace)
