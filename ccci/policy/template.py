"""Policy values as templates over inventory vars: sandboxed, with undefined names as errors.

Most templated values are plain substitutions (``{{ docker_data_root }}``, ``{{ abra_dir
}}/servers/…``, ``{{ path | default(docker_data_root) }}``): those are rendered here, as
Jinja2 would render them. Any other template sends the whole document through the Jinja2
sandbox (:mod:`ccci.policy.jinja_sandbox`), which is imported only then.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ccci.config.yamlsrc import Document, PathKey

# The budget of one rendered value. A policy value is a path, a pattern, a threshold or a
# unit line: a hundred thousand characters is far more than any honest one, and small
# enough that no template can make ccci allocate a gigabyte or loop for minutes.
MAX_RENDERED = 100_000
MAX_ITERATIONS = 100_000
MAX_INT_BITS = 4096
TIME_BUDGET = 2.0  # seconds per document, on the main thread (where signals can reach)


class BudgetExceeded(Exception):
    """A template went over its size or work budget."""


def check_size(value: Any) -> None:
    """Refuse a rendered value over the budget: a string, list or mapping too long, or an
    integer too wide."""
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_RENDERED:
        raise BudgetExceeded(f"a value of more than {MAX_RENDERED:,} items")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits")


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# ``{{ name }}`` or ``{{ name | default(other) }}``, the default a name or a quoted literal
# with no quote, backslash or brace inside (Jinja2 would unescape those).
_PLAIN_EXPR = re.compile(
    rf"\{{\{{ *(?P<name>{_NAME})"
    rf"(?: *\| *default\( *(?:(?P<alt>{_NAME})"
    r"|'(?P<sq>[ -&(-\[\]-z|~]*)'|\"(?P<dq>[ !#-\[\]-z|~]*)\") *\))?"
    r" *\}\}"
)
# Names Jinja2 reads as something other than a variable: literals and operators, and the
# globals it resolves when no variable has the name (a test pins these to jinja2's own).
JINJA_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"}
    | {"else", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}
)
# Text that Jinja2 would read as more than text: a control character (it normalises or
# strips newlines), or, in the text with each expression as NUL, a brace that starts or
# ends a tag, a comment or an expression ("{{{ x }}" is not "{" and x).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TAG_EDGE = re.compile(r"\{[{%#\x00]|[}%#\x00]\}")


class _NotPlain(Exception):
    """A value the plain renderer leaves to Jinja2 (which renders it, or says why not)."""


def _refuse_over(size: int, limit: int) -> None:
    if size > limit:
        raise _NotPlain


def _lookup(name: str, variables: dict[str, Any]) -> Any:
    if name in JINJA_NAMES or name not in variables:
        raise _NotPlain
    return variables[name]


def _plain_value(match: re.Match[str], variables: dict[str, Any]) -> Any:
    """What one ``{{ … }}`` renders to, as the sandbox's ``default`` filter has it: the
    variable when defined, else the default; anything the sandbox would refuse (a default
    argument over budget, an undefined default) is left to it."""
    name, alt = match["name"], match["alt"]
    literal = match["sq"] if match["sq"] is not None else match["dq"]
    has_default = alt is not None or literal is not None
    fallback = _lookup(alt, variables) if alt is not None and alt in variables else None
    # The sandbox's filters refuse a numeric argument over the budget, used or not.
    if isinstance(fallback, int) and not isinstance(fallback, bool):
        _refuse_over(abs(fallback), MAX_RENDERED)
    if name in JINJA_NAMES:
        raise _NotPlain
    if name in variables:
        value = variables[name]
    elif not has_default:
        raise _NotPlain
    elif literal is not None:
        value = literal
    else:
        value = _lookup(alt, variables)
    try:
        check_size(value)
    except BudgetExceeded:
        raise _NotPlain from None
    return value


def _plain(template: str, variables: dict[str, Any]) -> Any:
    """``template`` rendered without Jinja2 when it is only text and plain expressions
    (see _PLAIN_EXPR): a lone expression keeps its value's type, text around expressions
    joins them as text. Raises _NotPlain for anything else."""
    parts: list[Any] = []
    texts: list[str] = []
    at = 0
    for match in _PLAIN_EXPR.finditer(template):
        texts.append(template[at : match.start()])
        parts.append(_plain_value(match, variables))
        at = match.end()
    texts.append(template[at:])
    if not parts or any(_CONTROL.search(text) for text in texts):
        raise _NotPlain
    if _TAG_EDGE.search("\x00".join(texts)):
        raise _NotPlain
    if len(parts) == 1 and not texts[0] and not texts[1]:
        return parts[0]
    joined = texts[0] + "".join(str(p) + text for p, text in zip(parts, texts[1:], strict=True))
    _refuse_over(len(joined), MAX_RENDERED)
    return joined


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _names_a_secret(template: str) -> bool:
    """Whether a template reads a secret-looking name (``db_password``, ``db.token``)."""
    from ccci.render.secretname import is_secret_name

    return any(is_secret_name(word) for word in _IDENTIFIER.findall(template))


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def walk_templates(value: Any, path: PathKey, render_one: Callable[[PathKey, str], Any]) -> Any:
    """``value`` with every templated string replaced by ``render_one(path, string)``."""
    if isinstance(value, dict):
        return {k: walk_templates(v, (*path, k), render_one) for k, v in value.items()}
    if isinstance(value, list):
        return [walk_templates(v, (*path, i), render_one) for i, v in enumerate(value)]
    if isinstance(value, str) and _is_template(value):
        return render_one(path, value)
    return value


def render(doc: Document, variables: dict[str, Any], host: str) -> Document:
    """Render every templated string in ``doc``; errors name the value's file:line:field.

    A document whose templates are all plain is rendered here; one other template sends
    the whole document to the sandbox, so its budgets and errors hold as they always did.
    """
    sensitive: set[PathKey] = set()

    def plain(path: PathKey, value: str) -> Any:
        if _names_a_secret(value):
            sensitive.add(path)
        return _plain(value, variables)

    try:
        data = walk_templates(doc.data, (), plain)
    except _NotPlain:
        from ccci.policy import jinja_sandbox

        data = jinja_sandbox.render_data(doc, variables, host)
        walk_templates(doc.data, (), plain_marks(sensitive))
    return Document(doc.file, doc.index, doc.line, data, doc.lines, frozenset(sensitive))


def plain_marks(sensitive: set[PathKey]) -> Callable[[PathKey, str], Any]:
    """A walker step that only notes which templates read a secret-looking name."""

    def mark(path: PathKey, value: str) -> Any:
        if _names_a_secret(value):
            sensitive.add(path)
        return value

    return mark


def has_templates(doc: Document) -> bool:
    """Whether any string in the document is a template: without one, one build serves every host it
    targets instead of one per host."""

    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return isinstance(value, str) and _is_template(value)

    return walk(doc.data)
