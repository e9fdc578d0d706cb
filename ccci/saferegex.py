"""Regular expressions from policies, matched in time linear in the name.

Stack selectors, ``keep`` patterns and live-stack gates are written in policy PRs and run
against engine names chosen by recipe PRs, in the nightly job and before every deploy. With
Python's backtracking ``re``, ``^([a-z0-9]+)+-[0-9a-f]{6}_ci_`` against one 34-character
stack name never finishes. RE2 (the ``google-re2`` bindings) has no backtracking: every
match is linear, whatever the pattern. It also refuses what only backtracking can do
(back-references, look-arounds), so such a pattern is an error at load, never a slow plan.

Where RE2 is not installed, a pattern that nests one unbounded quantifier inside another
(the shape of every catastrophic backtracking case) is refused instead, and the rest run
with ``re``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Protocol

# Long enough for any honest stack pattern, short enough that compiling is instant.
MAX_PATTERN = 1000
# RE2's memory for one compiled pattern; a bigger automaton is refused, not built.
_MAX_MEM = 8 << 20


class Matcher(Protocol):
    """What rules need of a compiled pattern: its text and a search."""

    @property
    def pattern(self) -> str:
        """The policy's own text, for messages that name the pattern an author wrote."""

    def search(self, text: str) -> Any:
        """A match anywhere in ``text`` or None, as ``re.Pattern.search``; linear in
        ``text`` with RE2."""


def _re2() -> Any:
    try:
        import re2  # type: ignore[import-untyped]
    except ImportError:
        return None
    return re2


@cache
def compile_policy(pattern: str) -> Matcher:
    """Compile a policy's pattern for ``search``; raise ValueError saying why not."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"too long: {len(pattern)} characters (at most {MAX_PATTERN})")
    try:
        # Python's words for a plain syntax error are the ones a policy author knows.
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return _linear(pattern)


_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


@cache
def compile_schema_pattern(pattern: str) -> Matcher:
    """A JSON Schema ``pattern`` with JSON Schema's (ECMA-262's) meaning: ``$`` is the end
    of the text. Python's ``re.search`` lets ``$`` match before a final newline, so
    ``"24h\\n"`` would pass ``^([0-9]+[wdhms])+$``; RE2's ``$`` does not."""
    if _re2() is None:
        # Without RE2, the same meaning from Python: a ``$`` that is not escaped ends the text.
        return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))
    return _linear(_U_ESCAPE.sub(r"\\x{\1}", pattern))


def _linear(pattern: str) -> Matcher:
    re2 = _re2()
    if re2 is None:
        return _compile_checked(pattern)
    options = re2.Options()
    options.log_errors = False  # the one-line error below says it all
    options.max_mem = _MAX_MEM
    try:
        compiled: Matcher = re2.compile(pattern, options=options)
    except re2.error as exc:
        raise ValueError(_re2_message(exc)) from None
    return compiled


def _re2_message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    hint = ""
    if "escape sequence" in text and "\\Z" in text:
        hint = " (write $ for the end: RE2 has no \\Z)"
    elif "perl operator" in text or "escape sequence: \\" in text:
        hint = " (RE2 matches in linear time: no back-references or look-arounds)"
    return f"not a regular expression ccci can run: {text}{hint}"


def problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a policy pattern, or None when it can."""
    try:
        compile_policy(pattern)
    except ValueError as exc:
        return str(exc)
    return None


def _compile_checked(pattern: str) -> Matcher:
    """Python's ``re`` for a pattern without nested unbounded quantifiers."""
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if _nests_quantifiers(pattern):
        raise ValueError(
            "not a regular expression ccci can run: it nests one repeat inside an unbounded "
            "one (like (a+)+), which could take for ever"
        )
    return compiled


def _nests_quantifiers(pattern: str) -> bool:
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as sre  # type: ignore[attr-defined]

    repeats = (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT))

    def walk(items: Any, inside: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                _low, high, body = arg
                # Any repeat inside an unbounded one: (a+)+, (a|aa)*, (a{1,9})+.
                if inside and (high is C.MAXREPEAT or high > 1):
                    return True
                found = walk(body, inside or high is C.MAXREPEAT)
            elif op is C.SUBPATTERN:
                found = walk(arg[-1], inside)
            elif op is C.BRANCH:
                found = any(walk(branch, inside) for branch in arg[1])
            else:
                found = False
            if found:
                return True
        return False

    try:
        return walk(sre.parse(pattern), False)
    except (re.error, RecursionError):
        return True
