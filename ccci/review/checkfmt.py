"""Check findings as text (people), JSON (tools) and GitHub workflow annotations (PRs)."""

from __future__ import annotations

import json

from ccci.quantities import plural
from ccci.render.escape import terminal
from ccci.review.findings import CheckReport, Finding, host_note

CHECK_FORMAT = 1


def _body(finding: Finding) -> str:
    field = f"{finding.field}: " if finding.field else ""
    return f"{field}{finding.message}{host_note(finding.hosts)}"


def summary(report: CheckReport) -> str:
    """The last line of a check: errors and warnings counted, and how much was read, so "no
    problems" shows what it covers."""
    read = f"{plural(len(report.files), 'file')} ({plural(report.documents, 'document')})"
    if not report.findings:
        return f"No problems in {read}."
    counts = f"{plural(report.errors, 'error')}, {plural(report.warnings, 'warning')}"
    return f"{counts} in {read}."


def render_text(report: CheckReport) -> str:
    """``file:line:col: error: field: message [code]``, as compilers and linters print."""
    lines = [
        terminal(f"{f.place}: {f.severity.value}: {_body(f)} [{f.code}]") for f in report.findings
    ]
    return "\n".join([*lines, *([""] if lines else []), summary(report)])


def render_json(report: CheckReport) -> str:
    """Findings and counts as one versioned document for tools (``format_version``)."""
    document = {
        "format_version": CHECK_FORMAT,
        "findings": [
            {
                "severity": f.severity.value,
                "file": f.file,
                "line": f.line,
                "column": f.column,
                "field": f.field,
                "message": f.message,
                "code": f.code,
                "hosts": list(f.hosts),
            }
            for f in report.findings
        ],
        "summary": {
            "errors": report.errors,
            "warnings": report.warnings,
            "files": len(report.files),
            "documents": report.documents,
        },
    }
    return json.dumps(document, indent=2, sort_keys=True)


def _escape_data(text: str) -> str:
    # Newlines are GitHub's own escapes (%0A), so a message cannot start a second workflow
    # command; every other control character is made visible.
    encoded = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return terminal(encoded)


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: CheckReport) -> str:
    """GitHub Actions workflow commands: each finding shows on the PR's changed line."""
    lines = []
    for f in report.findings:
        props = [f"file={_escape_property(f.file)}"]
        if f.line:
            props += [f"line={f.line}", f"col={f.column or 1}"]
        props.append(f"title={_escape_property(f'ccci policy check ({f.code})')}")
        lines.append(f"::{f.severity.value} {','.join(props)}::{_escape_data(_body(f))}")
    lines.append(summary(report))
    return "\n".join(lines)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}
