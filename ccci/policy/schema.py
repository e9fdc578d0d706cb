"""JSON Schema validation with errors that read ``file:line: field: problem``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ccci.config.yamlsrc import Document, PathKey
from ccci.errors import InputError
from ccci.saferegex import compile_policy, compile_schema_pattern, problem

# The packaged schemas, beside the modules (a plain path: importlib.resources and what it
# imports cost more than a janitor run's reads, and ccci is always installed as files).
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def schema_names() -> list[str]:
    """Every kind that has a schema, from the packaged ``schemas/`` directory."""
    return sorted(
        p.name.removesuffix(".json") for p in SCHEMAS.iterdir() if p.name.endswith(".json")
    )


@cache
def schema_text(kind: str) -> str:
    """The packaged JSON Schema of ``kind`` as written: what a cached pass was judged by
    (see ccci.policy.validated)."""
    return (SCHEMAS / f"{kind}.json").read_text(encoding="utf-8")


@cache
def schema(kind: str) -> dict[str, Any]:
    """The packaged JSON Schema of ``kind``, read once: editors and ccci check the same."""
    return dict(json.loads(schema_text(kind)))


@cache
def _validator(kind: str) -> Any:
    import jsonschema

    base = jsonschema.validators.validator_for(schema(kind))
    cls = jsonschema.validators.extend(base, {"pattern": _pattern_keyword})
    checker = jsonschema.FormatChecker()
    # A policy regex must be one ccci can run in linear time (RE2), not just one Python
    # can compile.
    checker.checks("regex", raises=ValueError)(_policy_regex)
    return cls(schema(kind), format_checker=checker)


def _policy_regex(value: object) -> bool:
    if isinstance(value, str):
        compile_policy(value)
    return True


def _pattern_keyword(validator: Any, pattern: str, instance: Any, _schema: Any) -> Any:
    """``pattern`` anchored as JSON Schema means it: ``^…$`` is the whole text, so no value
    passes with a trailing newline (see ccci.saferegex.compile_schema_pattern)."""
    from jsonschema import ValidationError

    if not validator.is_type(instance, "string"):
        return
    if compile_schema_pattern(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@dataclass(frozen=True)
class Problem:
    """One schema error in ccci's words: where, what, and which JSON Schema keyword failed."""

    path: PathKey
    message: str
    keyword: str
    instance: Any
    schema: dict[str, Any]


def problems(doc: Document, kind: str) -> list[Problem]:
    """Every schema error of ``doc``, described (``validate`` raises only the first;
    ``ccci policy check`` lists them all)."""
    return [
        Problem(*_describe(doc, e), e.validator, e.instance, e.schema)
        for e in _validator(kind).iter_errors(doc.data)
    ]


def listed(doc: Document, kind: str) -> Iterator[tuple[PathKey, str]]:
    """Every schema error of a document, each once, for ``ccci policy check``.

    ``validate`` raises the first; here all are listed, with one change: a required field
    reported missing next to an unknown one is most likely the same field misspelt
    (``spce:``), so only the unknown one is reported, at each unknown key.
    """
    described = problems(doc, kind)
    unknown_in = {p.path[:-1] for p in described if p.keyword == "additionalProperties"}
    seen: set[tuple[PathKey, str]] = set()
    for found in described:
        path, message = found.path, found.message
        if found.keyword == "required" and path in unknown_in:
            continue
        paths = [path]
        if found.keyword == "additionalProperties" and isinstance(found.instance, dict):
            allowed = found.schema.get("properties", {})
            paths = [(*path[:-1], k) for k in found.instance if k not in allowed]
        for each in paths:
            if (each, message) not in seen:
                seen.add((each, message))
                yield each, message


def validate(doc: Document, kind: str) -> None:
    """Raise InputError for the first problem in ``doc`` (by line), naming where it is."""
    found = problems(doc, kind)
    if not found:
        return
    # An unknown key explains a "missing" one (``spce:`` for ``spec:``), so it goes first.
    located = [(p.keyword != "additionalProperties", p.path, p.message) for p in found]
    _, path, message = min(located, key=lambda pm: (pm[0], doc.line_of(pm[1]), len(pm[1])))
    raise InputError(doc.location(path), message)


def _article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _describe(doc: Document, error: Any) -> tuple[PathKey, str]:
    path: PathKey = tuple(error.absolute_path)
    sub = error.schema
    value = error.instance
    # A value rendered from a secret-looking var is never echoed: errors reach PR comments.
    shown = "the rendered value" if doc.is_sensitive(path) else repr(value)
    title = sub.get("title")
    kind = error.validator
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(sub.get("properties", {}))
        # YAML reads a bare ``on``/``yes`` key as a boolean: sort by text, never by type.
        extra = sorted((k for k in value if k not in sub.get("properties", {})), key=str)
        return (*path, extra[0]), f"unknown field (allowed: {', '.join(allowed)})"
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else "?"
        return path, f"missing required field {name!r}"
    if kind == "format" and error.validator_value == "regex":
        why = problem(value) if isinstance(value, str) else None
        if why:
            return path, f"{shown} is {why}"
    if kind in ("pattern", "format") and title:
        return path, f"{shown} is not {_article(title)}"
    if kind == "type":
        expected = str(title or error.validator_value)
        return path, f"{shown} is not {_article(expected)}"
    if kind == "const":
        return path, f"{shown}: must be {error.validator_value!r}"
    if kind == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return path, f"{shown}: must be one of {choices}"
    if kind == "oneOf":
        options = sorted(
            {k for branch in error.validator_value for k in branch.get("required", [])}
        )
        return path, f"write exactly one of: {', '.join(options)}"
    if kind == "minProperties":
        names = ", ".join(sorted(sub.get("properties", {})))
        return path, f"must name at least one of: {names}"
    if doc.is_sensitive(path):
        return path, f"{shown} does not fit the schema ({kind})"
    return path, error.message
