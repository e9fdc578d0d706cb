"""``ccci residual STACK``: prove a stack is gone (teardown calls it last)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ccci.cli.common import (
    host_settings,
    workspace_options,
)
from ccci.cli.options import errors
from ccci.errors import CcciError


@click.command()
@click.argument("stack")
@workspace_options
@click.option(
    "--wait",
    "wait",
    default="0s",
    show_default=True,
    metavar="DURATION",
    help="Keep looking this long (e.g. 30s) for the leftovers to go.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="abra's env file for the stack.  [default: from the OrphanStackPolicy]",
)
@errors
def residual(
    stack: str,
    wait: str,
    env_file: Path | None,
) -> None:
    """Prove a stack is gone: exit 0 when nothing of STACK is left, else list each
    leftover (kind and name) and exit 1. Teardown calls this last."""
    from ccci.quantities import parse_duration
    from ccci.run.residual import find_residual
    from ccci.run.workspace import Workspace

    try:
        patience = parse_duration(wait)
    except ValueError as exc:
        raise CcciError(f"--wait: {exc}") from None
    workspace = Workspace(host_settings())
    found = find_residual(workspace, stack, patience, str(env_file) if env_file else None)
    if not found:
        click.echo(f"Nothing of {stack} is left.")
        return
    for kind, name in found:
        click.echo(f"{kind}\t{name}")
    sys.exit(1)
