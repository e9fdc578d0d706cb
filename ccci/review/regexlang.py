"""Compare what two stack-name patterns match, with an example name as proof.

A ``keep`` pattern that no run-app can match does nothing, and a wider ``run_apps`` reaps
stacks it did not before: both questions are about the *languages* of two regular
expressions, not their text. Patterns are compiled into small automata over the characters
a Docker stack name may hold and explored together, breadth first, so the answer comes with
the shortest name that shows it. Constructs whose meaning needs more than an automaton
(back-references, look-arounds, word boundaries) make the answer "unknown", never a guess.
"""

from __future__ import annotations

import re
import string
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as sre  # type: ignore[attr-defined]
from typing import Any

# Docker stack names hold letters, digits, '_', '-' and '.'; readable examples come first.
ALPHABET = string.ascii_lowercase + string.digits + "-_." + string.ascii_uppercase

_MAX_UNROLL = 64
_MAX_STATES = 20_000
# Edges followed in one comparison before it gives up: review runs on every PR commit,
# so a pattern crafted to explode the subset construction costs a second, not minutes.
BUDGET = 400_000

_BEGIN = "^"
_END = "$"


class Unsupported(Exception):
    """The pattern uses a construct this comparison does not model."""


class _OverBudget(Exception):
    """The comparison followed more than BUDGET edges."""


class _Work:
    """Edges followed so far in one comparison."""

    def __init__(self, budget: int) -> None:
        self.left = budget

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise _OverBudget


@dataclass(frozen=True)
class Nfa:
    """Edges by source state: a label (characters, ``^``, ``$`` or None for epsilon) and
    a target. State 0 starts; ``accept`` accepts. Search semantics are built in."""

    edges: tuple[tuple[tuple[frozenset[str] | str | None, int], ...], ...]
    accept: int


class _Builder:
    def __init__(self, ignore_case: bool) -> None:
        self.edges: list[list[tuple[frozenset[str] | str | None, int]]] = []
        self.ignore_case = ignore_case

    def state(self) -> int:
        self.edges.append([])
        if len(self.edges) > _MAX_STATES:
            raise Unsupported("pattern too large")
        return len(self.edges) - 1

    def edge(self, src: int, label: frozenset[str] | str | None, dst: int) -> None:
        self.edges[src].append((label, dst))

    def chars(self, found: Iterable[str]) -> frozenset[str]:
        chosen = set(found)
        if self.ignore_case:
            chosen |= {c.swapcase() for c in chosen}
        return frozenset(c for c in chosen if c in ALPHABET)

    def sequence(self, items: Any, start: int) -> int:
        """Wire ``items`` from ``start``; return the state where they end."""
        here = start
        for op, arg in items:
            here = self.item(op, arg, here)
        return here

    def item(self, op: Any, arg: Any, start: int) -> int:
        end = self.state()
        if op is C.LITERAL:
            self.edge(start, self.chars(chr(arg)), end)
        elif op is C.NOT_LITERAL:
            self.edge(start, frozenset(ALPHABET) - self.chars(chr(arg)), end)
        elif op is C.ANY:
            self.edge(start, frozenset(ALPHABET), end)
        elif op is C.IN:
            self.edge(start, self.charset(arg), end)
        elif op is C.BRANCH:
            for alternative in arg[1]:
                branch = self.state()
                self.edge(start, None, branch)
                self.edge(self.sequence(alternative, branch), None, end)
        elif op is C.SUBPATTERN:
            _group, add_flags, del_flags, items = arg
            if add_flags or del_flags:
                raise Unsupported("inline flags in a group")
            self.edge(self.sequence(items, start), None, end)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            self.repeat(arg, start, end)
        elif op is C.AT:
            self.anchor(arg, start, end)
        else:
            raise Unsupported(str(op))
        return end

    def charset(self, items: Any) -> frozenset[str]:
        chosen: set[str] = set()
        negate = False
        for op, arg in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                chosen.add(chr(arg))
            elif op is C.RANGE:
                low, high = arg
                chosen |= {c for c in ALPHABET if low <= ord(c) <= high}
            elif op is C.CATEGORY:
                chosen |= _category(arg)
            else:
                raise Unsupported(str(op))
        found = self.chars(chosen)
        return frozenset(ALPHABET) - found if negate else found

    def repeat(self, arg: Any, start: int, end: int) -> None:
        low, high, items = arg
        if low > _MAX_UNROLL or (high is not C.MAXREPEAT and high > _MAX_UNROLL):
            raise Unsupported("repeat count too large")
        here = start
        for _ in range(low):
            here = self.sequence(items, here)
        if high is C.MAXREPEAT:
            loop = self.state()
            self.edge(here, None, loop)
            self.edge(self.sequence(items, loop), None, loop)
            self.edge(loop, None, end)
            return
        self.edge(here, None, end)
        for _ in range(high - low):
            here = self.sequence(items, here)
            self.edge(here, None, end)

    def anchor(self, arg: Any, start: int, end: int) -> None:
        if arg in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
            self.edge(start, _BEGIN, end)
        elif arg in (C.AT_END, C.AT_END_STRING):
            self.edge(start, _END, end)
        else:
            raise Unsupported(str(arg))


def _category(name: Any) -> set[str]:
    tests: dict[Any, Callable[[str], bool]] = {
        C.CATEGORY_DIGIT: str.isdigit,
        C.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
        C.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
        C.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
        C.CATEGORY_SPACE: str.isspace,
        C.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    }
    if name not in tests:
        raise Unsupported(str(name))
    return {c for c in ALPHABET if tests[name](c)}


@cache
def compile_pattern(pattern: str) -> Nfa | None:
    """The automaton of ``re.search(pattern, name)``, or None when it cannot be modelled."""
    try:
        parsed = sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    # MULTILINE and DOTALL change nothing here: a stack name holds no newline.
    builder = _Builder(ignore_case=bool(parsed.state.flags & re.IGNORECASE))
    try:
        # Search semantics: anything may come before and after the match.
        start = builder.state()
        builder.edge(start, frozenset(ALPHABET), start)
        body = builder.state()
        builder.edge(start, None, body)
        end = builder.sequence(list(parsed), body)
        accept = builder.state()
        builder.edge(end, None, accept)
        builder.edge(accept, frozenset(ALPHABET), accept)
    except (Unsupported, RecursionError):
        return None
    return Nfa(tuple(tuple(e) for e in builder.edges), accept)


def _closure(
    nfa: Nfa, states: Iterable[int], at_start: bool, at_end: bool, work: _Work
) -> frozenset[int]:
    seen = set(states)
    todo = list(seen)
    while todo:
        state = todo.pop()
        work.spend(len(nfa.edges[state]) + 1)
        for label, target in nfa.edges[state]:
            passable = label is None or (label == _BEGIN and at_start) or (label == _END and at_end)
            if passable and target not in seen:
                seen.add(target)
                todo.append(target)
    return frozenset(seen)


def _step(nfa: Nfa, states: frozenset[int], char: str, work: _Work) -> frozenset[int]:
    work.spend(sum(len(nfa.edges[s]) for s in states) + 1)
    moved = {
        target
        for state in states
        for label, target in nfa.edges[state]
        if isinstance(label, frozenset) and char in label
    }
    return _closure(nfa, moved, at_start=False, at_end=False, work=work)


def _accepts(nfa: Nfa, states: frozenset[int], at_start: bool, work: _Work) -> bool:
    return nfa.accept in _closure(nfa, states, at_start=at_start, at_end=True, work=work)


@dataclass(frozen=True)
class Answer:
    """``known`` False: the patterns could not be compared. Else ``example`` is a name
    that shows the property, or None when no name has it."""

    known: bool
    example: str | None = None
    # Set when the comparison stopped at its budget rather than at something unmodelled.
    gave_up: bool = False

    @property
    def exists(self) -> bool:
        """A name with the property was found (``example``)."""
        return self.known and self.example is not None

    @property
    def never(self) -> bool:
        """Proven that no name has the property; not the same as "could not tell"."""
        return self.known and self.example is None


UNKNOWN = Answer(known=False)
GAVE_UP = Answer(known=False, gave_up=True)


def _search(
    first: str, second: str, want: Callable[[bool, bool], bool], budget: int | None = None
) -> Answer:
    """The shortest name for which ``want(matches first, matches second)`` holds; after
    ``budget`` edges (default BUDGET) the answer is GAVE_UP, never a guess."""
    try:
        return _explore(first, second, want, _Work(BUDGET if budget is None else budget))
    except _OverBudget:
        return GAVE_UP


def _explore(first: str, second: str, want: Callable[[bool, bool], bool], work: _Work) -> Answer:
    a, b = compile_pattern(first), compile_pattern(second)
    if a is None or b is None:
        return UNKNOWN
    start = (
        _closure(a, {0}, at_start=True, at_end=False, work=work),
        _closure(b, {0}, at_start=True, at_end=False, work=work),
    )
    if want(_accepts(a, start[0], True, work), _accepts(b, start[1], True, work)):
        return Answer(True, "")
    queue: deque[tuple[frozenset[int], frozenset[int], str]] = deque([(*start, "")])
    seen = {start}
    while queue:
        sa, sb, text = queue.popleft()
        for char in ALPHABET:
            na, nb = _step(a, sa, char, work), _step(b, sb, char, work)
            if (na, nb) in seen:
                continue
            if want(_accepts(a, na, False, work), _accepts(b, nb, False, work)):
                return Answer(True, text + char)
            seen.add((na, nb))
            if len(seen) > _MAX_STATES:
                return UNKNOWN
            queue.append((na, nb, text + char))
    return Answer(True, None)


def overlap(first: str, second: str) -> Answer:
    """A stack name both patterns match."""
    return _search(first, second, lambda x, y: x and y)


def only_first(first: str, second: str) -> Answer:
    """A stack name ``first`` matches and ``second`` does not."""
    return _search(first, second, lambda x, y: x and not y)


@dataclass(frozen=True)
class Comparison:
    """How a new pattern's set of names relates to the old one's, with examples."""

    gained: Answer
    lost: Answer

    @property
    def known(self) -> bool:
        """Both directions were decided, so ``same``, ``wider`` and ``narrower`` can be trusted."""
        return self.gained.known and self.lost.known

    @property
    def gave_up(self) -> bool:
        """The search hit its step budget: the reviewer is told so, rather than a guess."""
        return self.gained.gave_up or self.lost.gave_up

    @property
    def same(self) -> bool:
        """Proven to match exactly the same stack names, however differently written."""
        return self.gained.never and self.lost.never

    @property
    def wider(self) -> bool:
        """Proven to match every old name and more: the policy now reaches more stacks."""
        return self.gained.exists and self.lost.never

    @property
    def narrower(self) -> bool:
        """Proven to match fewer names and no new one."""
        return self.lost.exists and self.gained.never


def compare(old: str, new: str) -> Comparison:
    """Names the new pattern gains and loses relative to the old one."""
    return Comparison(gained=only_first(new, old), lost=only_first(old, new))
