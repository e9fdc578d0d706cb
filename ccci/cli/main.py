"""Click wiring only: options in, a Workspace call, rendering out, errors to exit codes.

Heavy modules (docker, jsonschema, jinja2) are imported inside the commands, so
``ccci --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from ccci import __version__
from ccci.cli.options import F, errors, facts_option, inventory_option, output_option, parse_now
from ccci.errors import CcciError

EXIT_CHANGES = 2


def _workspace_options(func: F) -> F:
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
        # context carries them to _settings) because none of them decides anything else.
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


def _settings(
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


def _workspace(settings: Any) -> Any:
    """The workspace, showing each host's progress on a terminal (never in a log)."""
    from ccci.run.workspace import Workspace

    workspace = Workspace(settings)
    if sys.stderr.isatty():
        workspace.progress = lambda host, what: click.echo(f"{host}: {what}…", err=True)
    return workspace


def _unreachable(workspace: Any, output: str = "text") -> None:
    """One line per host that could not be reached, in the inventory's order (to stderr
    beside JSON, which stays one document)."""
    for host in workspace.inventory.hosts:
        if host in workspace.unreachable:
            click.echo(f"{host}: UNREACHABLE! {workspace.unreachable[host]}", err=output == "json")


def _exit_if_unreachable(workspace: Any) -> None:
    if workspace.unreachable:
        sys.exit(1)


def _style(stream: Any = None) -> Any:
    from ccci.render.style import Style, wants_colour

    return Style(wants_colour(stream or sys.stdout))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ccci")
def cli() -> None:
    """Keep a Docker Swarm CI host healthy, declaratively.

    Policies in policies/*.yaml say what the host should look like; ccci gathers the
    host's facts, plans only the surgical changes that close the gap, each with its
    reason, and applies them under a lock with a journal.
    """


@cli.command()
@_workspace_options
@click.option(
    "--plan", "mode", flag_value="plan", default=True, help="Show what would change (default)."
)
@click.option("--apply", "mode", flag_value="apply", help="Plan, then apply.")
@click.option("--yes", is_flag=True, help="Apply without asking (the nightly job).")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when in sync, 2 when changes are pending (after --apply: not converged).",
)
@output_option
@click.option("--out", "out", type=click.Path(path_type=Path), help="Save the plan for ccci apply.")
@click.option(
    "--facts",
    "facts_file",
    type=click.Path(path_type=Path),
    help="Plan against a snapshot from ccci facts instead of the live host.",
)
@click.option("--now", help="Plan as of this time (RFC 3339); default: the clock.")
@click.option("-v", "--verbose", is_flag=True, help="List every object left alone, with why.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Accept a policy set with no policy at all (else an error: nothing would be checked).",
)
@errors
def reconcile(
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
    mode: str,
    yes: bool,
    detailed_exitcode: bool,
    output: str,
    out: Path | None,
    facts_file: Path | None,
    now: str | None,
    verbose: bool,
    allow_empty: bool,
) -> None:
    """Plan (and with --apply, apply) what the policies ask of each host."""

    if not allow_empty:
        from ccci.policy.load import require_policies

        require_policies(policies or (Path("policies"),))

    if mode == "apply" and facts_file is not None:
        raise CcciError("--facts plans offline and cannot be combined with --apply")
    if mode == "apply":
        _can_ask(yes)
    workspace = _workspace(_settings(policies, inventory, limit, state_dir, journal))
    with workspace.locked() if mode == "apply" else contextlib.nullcontext():
        _reconcile(workspace, mode, yes, detailed_exitcode, output, out, facts_file, now, verbose)


def _reconcile(
    workspace: Any,
    mode: str,
    yes: bool,
    detailed_exitcode: bool,
    output: str,
    out: Path | None,
    facts_file: Path | None,
    now: str | None,
    verbose: bool,
) -> None:
    from ccci.render import json as render_json
    from ccci.render import text as render_text

    plan, _ = workspace.plan(parse_now(now), facts_file)
    if out is not None:
        _save_plan(out, render_json.render_plan(plan) + "\n")
    if output == "json":
        click.echo(render_json.render_plan(plan))
    else:
        click.echo(render_text.render_plan(plan, _style(), verbose))
        if out is not None:
            click.echo(f"\nSaved the plan to {out}; apply exactly it with: ccci apply {out}")
    _unreachable(workspace, output)
    if mode == "apply":
        _confirm(plan, yes)
        # Applied even with nothing to do: the journal's recap and the metrics then show
        # that the nightly run happened and found the host in order.
        _apply(workspace, plan, saved=False, detailed_exitcode=detailed_exitcode, output=output)
        return
    _exit_if_unreachable(workspace)
    if detailed_exitcode and not plan.is_empty():
        sys.exit(EXIT_CHANGES)


def _save_plan(out: Path, text: str) -> None:
    """Write ``--out``; a folder, a missing folder or a full disk is one line, and a
    failed write never leaves half a plan behind."""
    from ccci.state.atomic import write_atomic

    if out.is_dir():
        raise CcciError(f"--out {out}: is a folder; name the file to save the plan in")
    if out.exists() and not out.is_file():
        # The plan is renamed into place: never over a device, a socket or a pipe.
        raise CcciError(f"--out {out}: not a regular file; name the file to save the plan in")
    if not out.parent.is_dir():
        raise CcciError(f"--out {out}: no folder {out.parent} to save the plan in")
    write_atomic(out, text)


def _can_ask(yes: bool) -> None:
    """Without --yes, apply asks first; with nobody at a terminal to answer, it refuses
    before doing any work (a script or timer says --yes, as the nightly unit does)."""
    if not yes and not sys.stdin.isatty():
        raise CcciError(
            "refusing to apply without --yes when stdin is not a terminal; nothing was done"
        )


def _confirm(plan: Any, yes: bool) -> None:
    """Ask before acting, after the plan (every object to remove, by name) is shown."""
    if yes or not plan.can_apply():
        return
    from ccci.plan.model import Action

    counts = plan.counts()
    removals = counts[Action.DELETE] + counts[Action.REPLACE]
    others = sum(counts.values()) - removals
    hosts = ", ".join(h.host for h in plan.hosts if h.changes)
    click.confirm(
        f"Apply {removals} removal(s) and {others} other change(s) on {hosts}?",
        abort=True,
        err=True,
    )


def _apply(
    workspace: Any, plan: Any, saved: bool, detailed_exitcode: bool, output: str = "text"
) -> None:
    from ccci.plan.results import Status
    from ccci.render import text as render_text

    stream = sys.stderr if output == "json" else sys.stdout
    style = _style(stream)

    def show(host: str, result: Any) -> None:
        click.echo(render_text.result_line(host, result, style), file=stream)

    reports = {r.host: r for r in workspace.apply(plan, saved=saved, on_result=show)}
    click.echo("", file=stream)
    for host in workspace.inventory.hosts:
        if host in reports:
            for line in render_text.render_report(reports[host], style):
                click.echo(line, file=stream)
        elif host in workspace.unreachable:
            click.echo(f"{host}: UNREACHABLE! {workspace.unreachable[host]}", file=stream)
            click.echo(f"{host} : ok=0 changed=0 failed=0 skipped=0 unreachable=1", file=stream)
    if workspace.unreachable or any(r.count(Status.FAILED) for r in reports.values()):
        sys.exit(1)
    if detailed_exitcode and not all(r.converged for r in reports.values()):
        sys.exit(EXIT_CHANGES)


@cli.command("apply")
@click.argument("plan_file", type=click.Path(path_type=Path))
@_workspace_options
@click.option("--yes", is_flag=True, help="Apply without asking (scripts and timers).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when a host did not converge.")
@errors
def apply_cmd(
    plan_file: Path,
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
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
    _can_ask(yes)
    workspace = _workspace(_settings(policies, inventory, limit, state_dir, journal))
    with workspace.locked():
        # What is shown, asked about and applied is the fresh plan's own version of each
        # saved change: never the file's paths, contents, objects or gates.
        plan = workspace.rederive(saved)
        click.echo(render_text.render_plan(plan, _style()))
        click.echo("")
        _confirm(plan, yes)
        _apply(workspace, plan, saved=True, detailed_exitcode=detailed_exitcode)


@cli.command()
@_workspace_options
@output_option
@errors
def facts(
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
    output: str,
) -> None:
    """Gather each host's facts; --output json saves a snapshot for offline planning."""
    from ccci.facts.snapshot import snapshot_json
    from ccci.render.facts import render_facts

    workspace = _workspace(_settings(policies, inventory, limit, state_dir, journal))
    gathered = list(workspace.gather_all(workspace.targets()).values())
    if output == "json":
        click.echo(snapshot_json(gathered, workspace.unreachable))
    else:
        click.echo("\n\n".join(render_facts(f) for f in gathered))
    _unreachable(workspace, output)
    _exit_if_unreachable(workspace)


@cli.command()
@_workspace_options
@output_option
@facts_option
@click.option("--now", help="As of this time (RFC 3339); default: the clock.")
@errors
def status(
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
    output: str,
    facts_file: Path | None,
    now: str | None,
) -> None:
    """Is each host healthy, and if not, why: disk against every threshold, gates, live and
    converging stacks, orphans, manual actions and the last run from the journal."""
    from ccci.render import status as render_status
    from ccci.state import journal as journal_mod
    from ccci.views.status import host_status

    workspace = _workspace(_settings(policies, inventory, limit, state_dir, journal))
    plan, facts_by_host = workspace.plan(parse_now(now), facts_file)
    entries = journal_mod.read(workspace.settings.journal_path)
    statuses = [
        host_status(workspace.policies_of(h.host), facts_by_host[h.host], h, entries, plan.now)
        for h in plan.hosts
    ]
    if output == "json":
        click.echo(render_status.render_json(statuses))
    else:
        style = _style()
        blocks = {s.host: render_status.render_text(s, style) for s in statuses}
        for host, reason in workspace.unreachable.items():
            blocks[host] = f"{host}: UNREACHABLE! {reason}"
        order = [h for h in workspace.inventory.hosts if h in blocks]
        click.echo("\n\n".join(blocks[h] for h in order))
    if output == "json":
        _unreachable(workspace, output)
    _exit_if_unreachable(workspace)


@cli.command()
@_workspace_options
@output_option
@facts_option
@errors
def images(
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
    output: str,
    facts_file: Path | None,
) -> None:
    """List each host's images and why each stays: retained (by which policy), in use (by
    what), when last used, and its size."""
    from ccci.render import images as render_images

    workspace = _workspace(_settings(policies, inventory, limit, state_dir, journal))
    plan, facts_by_host = workspace.plan(None, facts_file)
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
    _unreachable(workspace, output)
    _exit_if_unreachable(workspace)


@cli.group()
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


JANITOR_KINDS = frozenset({"OrphanStackPolicy", "StackSelector"})


@cli.command()
@_workspace_options
@click.option("--plan", "plan_only", is_flag=True, help="Only show what would be reaped.")
@output_option
@click.option("--now", help="Judge ages as of this time (RFC 3339); default: the clock.")
@errors
def janitor(
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
    plan_only: bool,
    output: str,
    now: str | None,
) -> None:
    """Reap orphaned run-app stacks now: only the OrphanStackPolicy policies, applied
    without asking. The cheap call a CI run makes before each deploy."""
    from dataclasses import replace

    from ccci.facts.model import SCOPE_STACKS

    settings = replace(
        _settings(policies, inventory, limit, state_dir, journal),
        kinds=JANITOR_KINDS,
        scope=SCOPE_STACKS,
    )
    workspace = _workspace(settings)
    with contextlib.nullcontext() if plan_only else workspace.locked():
        _janitor(workspace, plan_only, output, now)


def _janitor(workspace: Any, plan_only: bool, output: str, now: str | None) -> None:
    from ccci.render import json as render_json
    from ccci.render import text as render_text

    plan, _ = workspace.plan(parse_now(now))
    if output == "json":
        click.echo(render_json.render_plan(plan))
    else:
        click.echo(render_text.render_plan(plan, _style()))
    _unreachable(workspace, output)
    if not plan_only and plan.can_apply():
        _apply(workspace, plan, saved=False, detailed_exitcode=False, output=output)
    _exit_if_unreachable(workspace)


@cli.command()
@click.argument("stack")
@_workspace_options
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
    policies: tuple[Path, ...],
    inventory: Path,
    limit: str | None,
    state_dir: Path,
    journal: Path | None,
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
    workspace = Workspace(_settings(policies, inventory, limit, state_dir, journal))
    found = find_residual(workspace, stack, patience, str(env_file) if env_file else None)
    if not found:
        click.echo(f"Nothing of {stack} is left.")
        return
    for kind, name in found:
        click.echo(f"{kind}\t{name}")
    sys.exit(1)


# Policy review lives in its own package; importing its commands loads only click.
from ccci.cli.policy import policy, schema  # noqa: E402

cli.add_command(policy)
cli.add_command(schema)


def main() -> None:
    # Honour NO_COLOR for click's own output as well.
    if "NO_COLOR" in os.environ:
        os.environ.setdefault("TERM", "dumb")
    cli(prog_name="ccci")
