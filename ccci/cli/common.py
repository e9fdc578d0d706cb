"""What every host command shares: the workspace options, the settings and workspace they
build, unreachable hosts, colour. Click only; the workspace is imported when a command runs."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ccci.cli.options import F, inventory_option
from ccci.policy.workscope import SCOPE_ALL, SCOPES

# ``--detailed-exitcode``: changes are pending (or, after apply, the host did not converge).
EXIT_CHANGES = 2


# The options several commands share, spelt once (flags, type, default); each command says
# in its help what the option means there (the nightly's --forks is the nightly run's).
_SHARED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "limit": (("-l", "--limit"), {"metavar": "PATTERN"}),
    "state_dir": (
        ("--state-dir",),
        {
            "type": click.Path(path_type=Path),
            "envvar": "CCCI_STATE_DIR",
            "default": Path("/var/lib/ccci"),
            "show_default": True,
        },
    ),
    "connection": (("-c", "--connection"), {"type": click.Choice(["local", "ssh"])}),
    "forks": (
        ("-f", "--forks"),
        {"type": click.IntRange(1, 256), "default": 5, "show_default": True},
    ),
    "scope": (
        ("--scope", "work_scope"),
        {"type": click.Choice(SCOPES), "default": SCOPE_ALL, "show_default": True},
    ),
}


def shared_option(name: str, help: str | None = None, **extra: Any) -> Callable[[F], F]:
    """One of the options in ``_SHARED``, with this command's help."""
    flags, settings = _SHARED[name]
    return click.option(*flags, help=help, **settings, **extra)


def workspace_options(func: F) -> F:
    """The options every host command takes. None is a parameter of the command: each is
    remembered in the click context, and :func:`host_settings` builds the run from them."""
    remembered: dict[str, Any] = {"expose_value": False, "callback": _remember}
    options: list[Callable[[F], F]] = [
        click.option(
            "-p",
            "--policies",
            "policies",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Policy file or folder; repeatable.  [default: policies]",
            **remembered,
        ),
        functools.partial(inventory_option, **remembered),
        shared_option("limit", "Only hosts matching this pattern (Ansible syntax).", **remembered),
        shared_option(
            "state_dir", "Lock and journal live here (env CCCI_STATE_DIR).", **remembered
        ),
        click.option(
            "--journal",
            type=click.Path(path_type=Path),
            help="JSONL journal path.  [default: STATE_DIR/journal.jsonl]",
            **remembered,
        ),
        shared_option(
            "connection",
            "Reach every host this way (localhost stays local).  "
            "[default: each host's ansible_connection, else local]",
            **remembered,
        ),
        shared_option("forks", "At most this many hosts at once.", **remembered),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"ccci.{param.name}"] = value
    return value


def host_settings() -> Any:
    """The run's settings from the workspace options the command was given."""
    from ccci.run.workspace import Settings

    metrics = os.environ.get("CCCI_METRICS")
    meta = click.get_current_context().meta
    return Settings(
        meta.get("ccci.policies") or (Path("policies"),),
        meta["ccci.inventory"],
        meta.get("ccci.limit"),
        meta["ccci.state_dir"],
        meta.get("ccci.journal"),
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
    """Exit 1 after the output when a host could not be reached: what was shown covers only part of
    the inventory."""
    if workspace.unreachable:
        sys.exit(1)


def output_style(stream: Any = None) -> Any:
    """Colour for ``stream`` (stdout by default) only when it is a terminal that wants it."""
    from ccci.render.style import Style, wants_colour

    return Style(wants_colour(stream or sys.stdout))
