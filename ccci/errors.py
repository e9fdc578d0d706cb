"""One error base class, so the CLI can map every failure to a one-line message and an exit."""

from __future__ import annotations

from dataclasses import dataclass


class CcciError(Exception):
    """A failure the user can act on; ``str()`` is the whole one-line message."""

    exit_code = 1


class LockBusy(CcciError):
    """Another apply holds the lock; 75 (EX_TEMPFAIL) tells systemd to try again later."""

    exit_code = 75


class StalePlan(CcciError):
    """A saved plan was made from facts that have since moved."""


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file, a 1-based line and the dotted field path."""

    file: str
    line: int
    field: str = ""

    def __str__(self) -> str:
        prefix = f"{self.file}:{self.line}" if self.line else self.file
        return f"{prefix}: {self.field}" if self.field else prefix


class InputError(CcciError):
    """Bad input (policy, inventory, facts, plan): names the file, line and field."""

    def __init__(self, location: Location, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


def explain(exc: BaseException) -> str:
    """The engine's own words for a Docker API error (its ``explanation``), else the text."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip() or type(exc).__name__
