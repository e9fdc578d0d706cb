"""The Jinja2 side of policy templates: a sandbox that keeps native types, within budgets.

Imported only when a policy value is more than a plain substitution (see
:func:`ccci.policy.template.render`): importing Jinja2 and compiling each template is a
good part of a run's start-up, and the shipped policies need neither.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain, islice
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.sandbox import SandboxedEnvironment

from ccci.config.yamlsrc import Document, PathKey
from ccci.errors import InputError
from ccci.policy.template import (
    MAX_INT_BITS,
    MAX_ITERATIONS,
    MAX_RENDERED,
    TIME_BUDGET,
    BudgetExceeded,
    check_size,
    walk_templates,
)


class _OverTime(BaseException):
    """Raised from the timer: a BaseException so that no ``except Exception`` in a
    template's call chain can swallow it."""


def _native_concat(values: Iterator[Any]) -> Any:
    """A lone ``{{ expr }}`` keeps its value's type (a bool stays a bool, the string
    ``"2024"`` stays a string); anything mixed with text is joined as text, up to
    MAX_RENDERED characters."""
    head = list(islice(values, 2))
    if not head:
        return ""
    if len(head) == 1:
        value = head[0]
        if isinstance(value, Undefined):
            # StrictUndefined raises on str(): a missing variable is an error here too.
            str(value)
        check_size(value)
        return value
    parts: list[str] = []
    size = 0
    for item in chain(head, values):
        text = str(item)
        size += len(text)
        if size > MAX_RENDERED:
            raise BudgetExceeded(f"renders to more than {MAX_RENDERED:,} characters")
        parts.append(text)
    return "".join(parts)


_BIG_WIDTH = re.compile(r"\d{6,}")


def _check_format(fmt: str) -> None:
    """A format string cannot ask for a field a million characters wide."""
    if _BIG_WIDTH.search(fmt):
        raise BudgetExceeded("a format width of a million characters or more")


def _sized(length: int) -> None:
    if length > MAX_RENDERED:
        raise BudgetExceeded(f"a value of more than {MAX_RENDERED:,} characters")


class _Counter:
    """Items the template's ranges have produced in one render."""

    def __init__(self) -> None:
        self.left = MAX_ITERATIONS

    def range(self, *args: int) -> Iterator[int]:
        for item in range(*args):
            self.left -= 1
            if self.left < 0:
                raise BudgetExceeded(f"loops over more than {MAX_ITERATIONS:,} items")
            yield item


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be over budget, before it is computed."""
    sequences = (str, list, tuple)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, sequences) and isinstance(times, int):
                _sized(len(seq) * max(times, 0))
        both_ints = isinstance(left, int) and isinstance(right, int)
        if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits")
    elif operator == "**":
        powers = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
        if powers and left.bit_length() * right > MAX_INT_BITS:
            raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        _sized(len(left) + len(right))


class _NativeSandbox(SandboxedEnvironment):
    """Sandboxed, yet keeps native types: ``"{{ threshold }}"`` may render to a bool or int.

    Every operator and call that one C-level step could blow up (``'a' * 10**9``,
    ``10 ** 10**8``, ``'{:>999999999}'.format(x)``, ``x.center(10**9)``) is checked before
    it runs; sizes after. Loops are bounded by the range budget and the timer.
    """

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(_native_concat)  # type: ignore[assignment]
    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        check_size(result)
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str) and getattr(target, "__name__", "") in ("format", "format_map"):
            _check_format(owner)
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_RENDERED:
                raise BudgetExceeded(f"an argument over {MAX_RENDERED:,} ({arg.bit_length()} bits)")
        result = super().call(__context, __obj, *args, **kwargs)
        check_size(result)
        return result


def _guarded_filter(name: str, func: Any) -> Any:
    """A filter whose numeric arguments and result stay within the budget."""
    from jinja2.utils import _PassArg

    # A filter that takes the context or environment first has its value second.
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    def guarded(*args: Any, **kwargs: Any) -> Any:
        value, *rest = args[skip:] or ("",)
        numbers = [a for a in (*rest, *kwargs.values()) if isinstance(a, int)]
        if any(not isinstance(a, bool) and abs(a) > MAX_RENDERED for a in numbers):
            raise BudgetExceeded(f"filter {name}: an argument over {MAX_RENDERED:,}")
        if name == "format" and isinstance(value, str):
            _check_format(value)
        if name == "replace" and len(rest) >= 2 and isinstance(value, str):
            old, new = str(rest[0]), str(rest[1])
            grows = value.count(old) * max(len(new) - len(old), 0) if old else len(new) * len(value)
            _sized(len(value) + grows)
        result = func(*args, **kwargs)
        check_size(result)
        return result

    for attribute in ("jinja_pass_arg",):
        if hasattr(func, attribute):
            setattr(guarded, attribute, getattr(func, attribute))
    return guarded


_ENV = _NativeSandbox(undefined=StrictUndefined, autoescape=False)
_ENV.filters = {name: _guarded_filter(name, f) for name, f in _ENV.filters.items()}


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Stop a render that runs longer than ``seconds``. Only the main thread receives
    signals; elsewhere the size and loop budgets still hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise _OverTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render_data(doc: Document, variables: dict[str, Any], host: str) -> Any:
    """The document's data with every templated string rendered by the sandbox; errors
    name the value's file:line:field."""
    counter = _Counter()

    def one(path: PathKey, value: str) -> Any:
        try:
            # The document's ranges share one loop budget (nested loops multiply).
            return _ENV.from_string(value).render({**variables, "range": counter.range})
        except _OverTime:
            raise InputError(
                doc.location(path),
                f"cannot render for host {host}: took longer than {TIME_BUDGET:g}s",
            ) from None
        except BudgetExceeded as exc:
            raise InputError(
                doc.location(path), f"cannot render for host {host}: over budget: {exc}"
            ) from None
        except TemplateError as exc:
            raise InputError(doc.location(path), f"cannot render for host {host}: {exc}") from None
        except Exception as exc:  # an expression that fails (1 / 0, 'a' + 1) is bad input
            problem = f"{type(exc).__name__}: {exc}"
            raise InputError(
                doc.location(path), f"cannot render for host {host}: {problem}"
            ) from None

    with _deadline(TIME_BUDGET):
        return walk_templates(doc.data, (), one)
