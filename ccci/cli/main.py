"""The ``ccci`` group: every command registered from its own module."""

from __future__ import annotations

import os

import click

from ccci import __version__
from ccci.cli.apply import apply_cmd
from ccci.cli.facts import facts
from ccci.cli.images import images
from ccci.cli.janitor import janitor
from ccci.cli.policy import policy, schema
from ccci.cli.reconcile import reconcile
from ccci.cli.residual import residual
from ccci.cli.status import status
from ccci.cli.systemd import systemd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ccci")
def cli() -> None:
    """Keep a Docker Swarm CI host healthy, declaratively.

    Policies in policies/*.yaml say what the host should look like; ccci gathers the
    host's facts, plans only the surgical changes that close the gap, each with its
    reason, and applies them under a lock with a journal.
    """


COMMANDS = (reconcile, apply_cmd, facts, status, images, systemd, janitor, residual, policy, schema)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    """The console-script entry point; under NO_COLOR click's own output is plain too."""
    # Honour NO_COLOR for click's own output as well.
    if "NO_COLOR" in os.environ:
        os.environ.setdefault("TERM", "dumb")
    cli(prog_name="ccci")
