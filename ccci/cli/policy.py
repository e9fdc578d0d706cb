"""``ccci policy check``, ``ccci policy diff`` and ``ccci schema``: click wiring only.

Only click is imported at module level, so ``ccci --help`` stays fast; everything else is
imported inside the commands. The lead adds them to the main CLI with
``cli.add_command(policy)`` and ``cli.add_command(schema)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ccci.cli.options import errors, inventory_option, parse_now


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def policy() -> None:
    """Review policy changes: lint them, and say what a change does to the hosts."""


@policy.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@inventory_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: workflow annotations (::error file=…,line=…,col=…::…).",
)
@click.option("--fail-on-warn", is_flag=True, help="Exit 1 on warnings too.")
@errors
def check(paths: tuple[Path, ...], inventory: Path, fmt: str, fail_on_warn: bool) -> None:
    """Lint the policies and the inventory: every problem, at file:line:column.

    PATHS are policy files or folders (default policies/). Each finding names its field:
    YAML, unknown fields, bad values, Jinja2 that cannot render for a host, duplicate
    names, unknown selectors, contradicting policies, host patterns that match no host.
    Exit 0 when there is no error, 1 when there is one.
    """
    from ccci.review.check import run_check
    from ccci.review.checkfmt import RENDERERS

    report = run_check(paths or (Path("policies"),), inventory)
    click.echo(report.scrub(RENDERERS[fmt](report)))
    if report.failed(fail_on_warn):
        sys.exit(1)


@policy.command()
@click.argument("base")
@click.argument("head")
@click.option(
    "-p",
    "--policies",
    "policies",
    multiple=True,
    help="Policy folder or file within each side; repeatable.  [default: policies]",
)
@click.option(
    "-i",
    "--inventory",
    default="inventory.yaml",
    show_default=True,
    help="The inventory within each side.",
)
@click.option(
    "--facts",
    "facts_file",
    type=click.Path(path_type=Path),
    help="Also plan this snapshot (from ccci facts --output json) under both sides.",
)
@click.option(
    "--now", help="Plan the snapshot as of this time (RFC 3339); default: when it was gathered."
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: a PR comment (summary table, folded details, under 65,000 characters).",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Accept a side with no policy at all (the PR that adds the first ones).",
)
@errors
def diff(
    base: str,
    head: str,
    policies: tuple[str, ...],
    inventory: str,
    facts_file: Path | None,
    now: str | None,
    output: str,
    allow_empty: bool,
) -> None:
    """What changes from BASE to HEAD means for the hosts.

    BASE and HEAD are folders (holding policies/ and inventory.yaml) or git revisions
    (origin/main, HEAD, a commit). Each change is said by its meaning, classified
    safer, neutral or riskier, with the reason; with --facts, the snapshot's hosts are
    planned under both and the difference in their plans is shown.
    """
    from ccci.review.diffrun import run_diff

    moment = parse_now(now)
    result = run_diff(
        base,
        head,
        policies or ("policies",),
        inventory,
        facts_file,
        moment,
        allow_empty=allow_empty,
    )
    # Every form goes through the scrubber of both sides' secret values.
    if output == "json":
        from ccci.review.diffjson import render_json

        click.echo(result.scrub(render_json(result.diff, result.impacts)))
    elif output == "markdown":
        from ccci.review.markdown import render_markdown

        text = render_markdown(result.diff, result.impacts, result.facts_label)
        click.echo(result.scrub(text), nl=False)
    else:
        from ccci.render.style import Style, wants_colour
        from ccci.review.difftext import render_text

        style = Style(wants_colour(sys.stdout))
        click.echo(
            result.scrub(render_text(result.diff, result.impacts, result.facts_label, style))
        )


@click.command()
@click.argument("kind", required=False)
@errors
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a policy KIND, or of every kind (an object by kind)."""
    import json

    from ccci.errors import CcciError
    from ccci.policy import schema as schemas

    known = schemas.schema_names()
    if kind is None:
        click.echo(json.dumps({k: schemas.schema(k) for k in known}, indent=2))
        return
    if kind not in known:
        raise CcciError(f"unknown kind {kind!r} (known: {', '.join(known)})")
    click.echo(json.dumps(schemas.schema(kind), indent=2))
