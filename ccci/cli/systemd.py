"""``ccci systemd install``: ccci's own nightly run as a oneshot and a timer."""

from __future__ import annotations

from pathlib import Path

import click

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
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    envvar="CCCI_STATE_DIR",
    default=Path("/var/lib/ccci"),
    show_default=True,
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
) -> None:
    """Install ccci-reconcile.service (Type=oneshot, SuccessExitStatus=75 for a busy lock,
    hardened but able to reach the Docker socket and write where the policies in the
    working directory write) and ccci-reconcile.timer."""
    from ccci.connectors.local import LocalConnector
    from ccci.systemd.install import (
        UNIT_NAME,
        install,
        nightly_args,
        nightly_policies,
        nightly_values,
    )
    from ccci.systemd.units import render_nixos_module, render_timer_units

    where = working_directory.resolve()
    policies, note = nightly_policies(where)
    if note:
        click.echo(f"note: {note}", err=True)
    values = nightly_values(
        where,
        on_calendar,
        randomized_delay,
        state_dir,
        unit_dir,
        policies,
        unit_dir_writable=fmt != "nix",
    )
    if fmt == "nix":
        click.echo(render_nixos_module(values, nightly_args(state_dir)), nl=False)
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
