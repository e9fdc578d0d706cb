"""What every host command shares: the workspace options, the settings and workspace they
build, unreachable hosts, colour. Click only; the workspace is imported when a command runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ccci.cli.options import F, inventory_option

# ``--detailed-exitcode``: changes are pending (or, after apply, the host did not converge).
EXIT_CHANGES = 2


def workspace_options(func: F) -> F:
    options = [
        click.option(
            "-p",
            "--policies",
            "policies",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Policy file or folder; repeatable.  [default: policies]",
        ),
        inventory_option,
        click.option(
            "-l",
            "--limit",
            metavar="PATTERN",
            help="Only hosts matching this pattern (Ansible syntax).",
        ),
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            envvar="CCCI_STATE_DIR",
            default=Path("/var/lib/ccci"),
            show_default=True,
            help="Lock and journal live here (env CCCI_STATE_DIR).",
        ),
        click.option(
            "--journal",
            type=click.Path(path_type=Path),
            help="JSONL journal path.  [default: STATE_DIR/journal.jsonl]",
        ),
        # Every host command takes these; kept out of the commands' signatures (the
        # context carries them to host_settings) because none of them decides anything else.
        click.option(
            "-c",
            "--connection",
            type=click.Choice(["local", "ssh"]),
            expose_value=False,
            callback=_remember,
            help="Reach every host this way (localhost stays local).  "
            "[default: each host's ansible_connection, else local]",
        ),
        click.option(
            "-f",
            "--forks",
            type=click.IntRange(1, 256),
            default=5,
            show_default=True,
            expose_value=False,
            callback=_remember,
            help="At most this many hosts at once.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"ccci.{param.name}"] = value
    return value


def host_settings(
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
) -> Any:
    from ccci.run.workspace import Settings

    metrics = os.environ.get("CCCI_METRICS")
    meta = click.get_current_context().meta
    return Settings(
        policies or (Path("policies"),),
        inventory,
        limit,
        state_dir,
        journal,
        metrics=Path(metrics) if metrics else None,
        connection=meta.get("ccci.connection"),
        forks=meta.get("ccci.forks") or 5,
    )


def workspace_for(settings: Any) -> Any:
    """The workspace, showing each host's progress on a terminal (never in a log)."""
    from ccci.run.workspace import Workspace

    workspace = Workspace(settings)
    if sys.stderr.isatty():
        workspace.progress = lambda host, what: click.echo(f"{host}: {what}…", err=True)
    return workspace


def show_unreachable(workspace: Any, output: str = "text") -> None:
    """One line per host that could not be reached, in the inventory's order (to stderr
    beside JSON, which stays one document)."""
    for host in workspace.inventory.hosts:
        if host in workspace.unreachable:
            click.echo(f"{host}: UNREACHABLE! {workspace.unreachable[host]}", err=output == "json")


def exit_if_unreachable(workspace: Any) -> None:
    if workspace.unreachable:
        sys.exit(1)


def output_style(stream: Any = None) -> Any:
    from ccci.render.style import Style, wants_colour

    return Style(wants_colour(stream or sys.stdout))
