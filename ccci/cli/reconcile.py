"""``ccci reconcile``: plan every host, and with --apply, apply; --out saves the plan."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from ccci.cli.applying import apply_plan, can_ask, confirm
from ccci.cli.common import (
    EXIT_CHANGES,
    exit_if_unreachable,
    host_settings,
    output_style,
    shared_option,
    show_unreachable,
    workspace_for,
    workspace_options,
)
from ccci.cli.options import errors, output_option, parse_now
from ccci.errors import CcciError


@click.command()
@workspace_options
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
@shared_option(
    "scope",
    "node: only what is the host's own (images, containers, build cache, units); "
    "cluster: only orphan stacks (services, secrets, configs, networks and their volumes).",
)
@errors
def reconcile(
    mode: str,
    yes: bool,
    detailed_exitcode: bool,
    output: str,
    out: Path | None,
    facts_file: Path | None,
    now: str | None,
    verbose: bool,
    allow_empty: bool,
    work_scope: str,
) -> None:
    """Plan (and with --apply, apply) what the policies ask of each host."""

    settings = _scoped(host_settings(), work_scope)
    if mode == "apply" and facts_file is not None:
        raise CcciError("--facts plans offline and cannot be combined with --apply")
    if mode == "apply":
        can_ask(yes)
    workspace = workspace_for(settings)
    if not allow_empty:
        workspace.require_policies()
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
    # Only a plan that may be applied later (saved, or JSON that ccci apply accepts) needs
    # each change's fingerprint.
    saving = out is not None or output == "json"
    plan, _ = workspace.plan(parse_now(now), facts_file, fingerprinted=saving)
    # The renderers after the plan: its first reads start before they are imported.
    from ccci.render import json as render_json
    from ccci.render import text as render_text

    if out is not None:
        _save_plan(out, render_json.render_plan(plan) + "\n")
    if output == "json":
        click.echo(render_json.render_plan(plan))
    else:
        click.echo(render_text.render_plan(plan, output_style(), verbose))
        if out is not None:
            click.echo(f"\nSaved the plan to {out}; apply exactly it with: ccci apply {out}")
    show_unreachable(workspace, output)
    if mode == "apply":
        confirm(plan, yes)
        # Applied even with nothing to do: the journal's recap and the metrics then show
        # that the nightly run happened and found the host in order.
        apply_plan(workspace, plan, saved=False, detailed_exitcode=detailed_exitcode, output=output)
        return
    exit_if_unreachable(workspace)
    if detailed_exitcode and not plan.is_empty():
        sys.exit(EXIT_CHANGES)


def _scoped(settings: Any, work_scope: str) -> Any:
    """The run limited to the policies of ``--scope`` (ccci.policy.workscope); a cluster
    run gathers what stacks are made of, as the janitor does."""
    from dataclasses import replace

    from ccci.facts.model import SCOPE_STACKS
    from ccci.policy.workscope import SCOPE_CLUSTER, kinds_for

    kinds = kinds_for(work_scope)
    if kinds is None:
        return settings
    if work_scope == SCOPE_CLUSTER:
        return replace(settings, kinds=kinds, scope=SCOPE_STACKS)
    return replace(settings, kinds=kinds)


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
