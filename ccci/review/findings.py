"""What ``ccci policy check`` reports: findings with a severity, a place and a field."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ccci.render.redact import Scrubber


class Severity(enum.Enum):
    """An error stops a merge; a warning is worth a look (``--fail-on-warn`` makes it fail)."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem at ``file:line:column`` in ``field``; ``hosts`` when it depends on them.

    ``code`` names the check that found it (``schema``, ``yaml``, ``render``…), so CI can
    filter and people can search the docs.
    """

    severity: Severity
    file: str
    line: int
    column: int
    field: str
    message: str
    code: str
    hosts: tuple[str, ...] = ()

    @property
    def place(self) -> str:
        """``file:line:column`` as editors and CI annotations jump to it; the file alone when no
        line is known."""
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def key(self) -> tuple[str, int, int, str, str, str]:
        """Findings with the same key are one finding seen for several hosts."""
        return (self.file, self.line, self.column, self.field, self.message, self.code)

    def sort_key(self) -> tuple[str, int, int, int, str]:
        """File, then position, errors before warnings at one place: the order a reader fixes them
        in."""
        return (self.file, self.line, self.column, self.severity is Severity.WARNING, self.message)


def merge(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """One finding per place and message, with the hosts it was seen for, sorted by place."""
    merged: dict[tuple[str, int, int, str, str, str], Finding] = {}
    for finding in findings:
        key = finding.key()
        if key in merged:
            known = merged[key]
            hosts = known.hosts + tuple(h for h in finding.hosts if h not in known.hosts)
            merged[key] = replace(known, hosts=hosts)
        else:
            merged[key] = finding
    return tuple(sorted(merged.values(), key=Finding.sort_key))


def host_note(hosts: tuple[str, ...], shown: int = 3) -> str:
    """``for host cc-ci`` / ``for hosts a, b, c and 197 more``; empty when not per host."""
    if not hosts:
        return ""
    if len(hosts) == 1:
        return f" (for host {hosts[0]})"
    head = ", ".join(hosts[:shown])
    more = f" and {len(hosts) - shown} more" if len(hosts) > shown else ""
    return f" (for hosts {head}{more})"


@dataclass(frozen=True)
class CheckReport:
    """Every finding of one check run, and what was read."""

    findings: tuple[Finding, ...]
    files: tuple[str, ...]
    documents: int
    # The inventory's secret values: whatever renders the report passes its text through
    # this, so a value a finding quotes never shows a secret.
    scrub: Scrubber = field(default_factory=Scrubber)

    @property
    def errors(self) -> int:
        """Errors found: any one fails ``policy check``."""
        return sum(f.severity is Severity.ERROR for f in self.findings)

    @property
    def warnings(self) -> int:
        """Warnings found: they fail ``policy check`` only under ``--fail-on-warn``."""
        return sum(f.severity is Severity.WARNING for f in self.findings)

    def failed(self, fail_on_warn: bool = False) -> bool:
        """The check's verdict (its exit status): any error, or any warning under
        ``--fail-on-warn``."""
        return bool(self.errors or (fail_on_warn and self.warnings))
