"""Jinja2 values over inventory vars, sandboxed, with undefined names as errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.sandbox import SandboxedEnvironment

from ccci.errors import InputError
from ccci.yamlsrc import Document, PathKey


def _native_concat(values: Iterator[Any]) -> Any:
    """A lone ``{{ expr }}`` keeps its value's type (a bool stays a bool, the string
    ``"2024"`` stays a string); anything mixed with text is joined as text."""
    head = list(islice(values, 2))
    if not head:
        return ""
    if len(head) == 1:
        value = head[0]
        if isinstance(value, Undefined):
            # StrictUndefined raises on str(): a missing variable is an error here too.
            str(value)
        return value
    return "".join(str(v) for v in chain(head, values))


class _NativeSandbox(SandboxedEnvironment):
    """Sandboxed, yet keeps native types: ``"{{ threshold }}"`` may render to a bool or int."""

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(_native_concat)  # type: ignore[assignment]


_ENV = _NativeSandbox(undefined=StrictUndefined, autoescape=False)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _names_a_secret(template: str) -> bool:
    """Whether a template reads a secret-looking name (``db_password``, ``db.token``)."""
    from ccci.redact import is_secret_name

    return any(is_secret_name(word) for word in _IDENTIFIER.findall(template))


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def render(doc: Document, variables: dict[str, Any], host: str) -> Document:
    """Render every templated string in ``doc``; errors name the value's file:line:field."""

    sensitive: set[PathKey] = set()

    def walk(value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and _is_template(value):
            if _names_a_secret(value):
                sensitive.add(path)
            try:
                return _ENV.from_string(value).render(variables)
            except TemplateError as exc:
                raise InputError(
                    doc.location(path), f"cannot render for host {host}: {exc}"
                ) from None
            except Exception as exc:  # an expression that fails (1 / 0, 'a' + 1) is bad input
                problem = f"{type(exc).__name__}: {exc}"
                raise InputError(
                    doc.location(path), f"cannot render for host {host}: {problem}"
                ) from None
        return value

    data = walk(doc.data, ())
    return Document(doc.file, doc.index, doc.line, data, doc.lines, frozenset(sensitive))


def has_templates(doc: Document) -> bool:
    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return isinstance(value, str) and _is_template(value)

    return walk(doc.data)
