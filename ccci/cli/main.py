"""The ``ccci`` group: every command registered from its own module."""

from __future__ import annotations

import importlib
import os

import click

from ccci import __version__

# Each command's module and object, imported only when that command runs (or help lists
# it): the janitor a CI run calls before every deploy pays for its own command's imports,
# not for every other command's.
COMMANDS: dict[str, tuple[str, str]] = {
    "reconcile": ("ccci.cli.reconcile", "reconcile"),
    "apply": ("ccci.cli.apply", "apply_cmd"),
    "facts": ("ccci.cli.facts", "facts"),
    "status": ("ccci.cli.status", "status"),
    "images": ("ccci.cli.images", "images"),
    "systemd": ("ccci.cli.systemd", "systemd"),
    "janitor": ("ccci.cli.janitor", "janitor"),
    "residual": ("ccci.cli.residual", "residual"),
    "policy": ("ccci.cli.policy", "policy"),
    "schema": ("ccci.cli.policy", "schema"),
}


class _LazyGroup(click.Group):
    """A group whose commands are found in :data:`COMMANDS` when asked for by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, as click lists them in help: sorted."""
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported now; one added with add_command wins."""
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, name = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="ccci")
def cli() -> None:
    """Keep a Docker Swarm CI host healthy, declaratively.

    Policies in policies/*.yaml say what the host should look like; ccci gathers the
    host's facts, plans only the surgical changes that close the gap, each with its
    reason, and applies them under a lock with a journal.
    """


def main() -> None:
    """The console-script entry point; under NO_COLOR click's own output is plain too."""
    # Honour NO_COLOR for click's own output as well.
    if "NO_COLOR" in os.environ:
        os.environ.setdefault("TERM", "dumb")
    cli(prog_name="ccci")
