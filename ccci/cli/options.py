"""What every ccci command shares: the error mapping and the common options. Imports only
click, so any command module can use it without slowing ``ccci --help``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ccci.errors import CcciError

F = TypeVar("F", bound=Callable[..., Any])


def errors(func: F) -> F:
    """Map ccci's one error base class to its one-line message and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CcciError as exc:
            from ccci.render.escape import terminal

            # One line, whatever engine name or input value the message quotes.
            click.echo(f"ccci: {terminal(exc)}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def inventory_option(func: F, **extra: Any) -> F:
    """``-i/--inventory``, as every command that reads the live inventory takes it."""
    return click.option(
        "-i",
        "--inventory",
        type=click.Path(path_type=Path),
        envvar="CCCI_INVENTORY",
        default=Path("inventory.yaml"),
        show_default=True,
        help="Ansible-style YAML inventory (env CCCI_INVENTORY); without it, localhost.",
        **extra,
    )(func)


def output_option(func: F) -> F:
    """``-o/--output text|json``: JSON is for scripts, and stays pure JSON on stdout."""
    return click.option(
        "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
    )(func)


def facts_option(func: F) -> F:
    """``--facts SNAPSHOT``: plan offline against what ``ccci facts`` saved."""
    return click.option(
        "--facts",
        "facts_file",
        type=click.Path(path_type=Path),
        help="Read a snapshot from ccci facts instead of the live host.",
    )(func)


def parse_now(value: str | None) -> datetime | None:
    """The moment ``--now`` names, or None for the clock's time.

    Every command that plans at a chosen time (reconcile, janitor, status, policy diff)
    reads the option here, so a time one accepts is a time all accept, with one message.
    """
    if value is None:
        return None
    from ccci.quantities import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise CcciError(
            f"--now: {value!r} is not an RFC 3339 time like 2026-11-27T03:00:00Z"
        ) from None
