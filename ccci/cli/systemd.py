"""``ccci systemd install``: ccci's own nightly run as a oneshot and a timer."""

from __future__ import annotations

from pathlib import Path

import click

from ccci.cli.common import shared_option
from ccci.cli.options import errors


@click.group()
def systemd() -> None:
    """ccci's own nightly reconcile as a systemd oneshot and timer."""


@systemd.command("install")
@click.option(
    "--print", "print_only", is_flag=True, help="Print the units instead of installing them."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["unit", "nix"]),
    default="unit",
    show_default=True,
    help="unit: systemd unit files; nix: the equivalent NixOS module.",
)
@click.option(
    "--unit-dir",
    type=click.Path(path_type=Path),
    default=Path("/etc/systemd/system"),
    show_default=True,
)
@click.option(
    "--working-directory",
    type=click.Path(path_type=Path),
    default=Path("."),
    help="Where the nightly run finds policies/ and inventory.yaml.  [default: .]",
)
@click.option("--on-calendar", default="daily", show_default=True)
@click.option("--randomized-delay", default="15m", show_default=True)
@shared_option("state_dir")
@shared_option(
    "scope",
    "What the nightly's reconcile acts on: all (one run for the whole inventory, or a "
    "single host); node (each node's own oneshot: never cluster objects); cluster.",
)
@shared_option(
    "limit",
    "The hosts the nightly reconciles (Ansible syntax).  [default: every host]",
)
@shared_option("forks", "At most this many hosts at once in the nightly run.")
@shared_option(
    "connection",
    "Reach every host this way (localhost stays local).  [default: each host's ansible_connection]",
)
@errors
def systemd_install(
    print_only: bool,
    fmt: str,
    unit_dir: Path,
    working_directory: Path,
    on_calendar: str,
    randomized_delay: str,
    state_dir: Path,
    work_scope: str,
    limit: str | None,
    forks: int,
    connection: str | None,
) -> None:
    """Install ccci-reconcile.service (Type=oneshot, SuccessExitStatus=75 for a busy lock,
    hardened but able to reach the Docker socket and write where the policies in the
    working directory write) and ccci-reconcile.timer. On a farm: one manager's nightly
    for every node over SSH (the default, --scope all), or each node's own with
    --scope node and exactly one manager's with --scope all (docs/operations.md)."""
    from ccci.connectors.local import LocalConnector
    from ccci.systemd.install import (
        UNIT_NAME,
        Farm,
        check_farm,
        install,
        nightly_args,
        nightly_hosts,
        nightly_policies,
        nightly_values,
    )
    from ccci.systemd.units import render_nixos_module, render_timer_units

    farm = check_farm(Farm(work_scope, limit, forks, connection))
    where = working_directory.resolve()
    policies, note = nightly_policies(where, farm)
    if note:
        click.echo(f"note: {note}", err=True)
    hosts = nightly_hosts(where, farm)
    if len(hosts) > 1 or any(how == "ssh" for _, how in hosts):
        reached = ", ".join(f"{name} ({how})" for name, how in hosts)
        click.echo(f"note: the nightly reconciles {reached}", err=True)
    values = nightly_values(
        where,
        on_calendar,
        randomized_delay,
        state_dir,
        unit_dir,
        policies,
        unit_dir_writable=fmt != "nix",
        farm=farm,
    )
    if fmt == "nix":
        ssh = any(how == "ssh" for _, how in hosts)
        click.echo(render_nixos_module(values, nightly_args(state_dir, farm), ssh), nl=False)
        return
    units = render_timer_units(values)
    files = {f"{UNIT_NAME}.service": units.service, f"{UNIT_NAME}.timer": units.timer}
    if print_only:
        for filename, content in files.items():
            click.echo(f"# {unit_dir / filename}\n{content}")
        return
    for path in install(LocalConnector(host="localhost"), unit_dir, files, state_dir):
        click.echo(f"wrote {path}")
    click.echo(f"enabled and started {UNIT_NAME}.timer")
