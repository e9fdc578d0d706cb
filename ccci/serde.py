"""JSON round-trip for the frozen dataclasses of facts and plans.

One generic codec, driven by type hints, so every snapshot and saved plan is written and read
the same way and a new field needs no hand-written (de)serialiser.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from ccci.quantities import format_time, parse_time

T = TypeVar("T")


# A snapshot of a busy CI host is a few MiB; more is not a snapshot ccci wrote, and
# parsing it would cost minutes (50 MB took 26 s).
MAX_JSON_BYTES = 32 << 20


def read_json(path: Path) -> Any:
    """A JSON file ccci wrote (a facts snapshot, a saved plan), as data; anything else (too
    big, nested past Python's recursion limit, not JSON) is a one-line InputError."""
    from ccci.errors import InputError, Location

    where = Location(str(path), 0)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise InputError(where, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise InputError(where, f"larger than {MAX_JSON_BYTES >> 20} MiB: refused unread")
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise InputError(where, "not JSON ccci wrote: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise InputError(where, f"not UTF-8: {exc.reason}") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", 0)
        raise InputError(Location(str(path), line), f"not JSON: {exc}") from None


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names, None for any other type; once per class, as
    ``dataclasses.fields`` is rebuilt on each call and a plan fingerprints thousands."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


# Exactly these types are JSON values already (a str or int enum is a subclass, not one of
# them, and is turned into its value below): most values of a record are, so they go first.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    """Turn dataclasses, enums, datetimes and tuples into plain JSON values."""
    cls: type = type(value)
    if cls in _PLAIN:
        return value
    names = _field_names(cls)
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(cls: type[T], data: Any) -> T:
    """Rebuild an instance of ``cls`` from :func:`to_jsonable` output; raise ValueError."""
    return typing.cast(T, _decode(cls, data, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's resolved field hints, once per class: resolving them (string
    annotations, evaluated) cost more than decoding the objects of a snapshot (0.38 s of
    0.57 s for 3,000 objects). Callers only read the dict."""
    return typing.get_type_hints(cls)


def _decode(hint: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _decode(non_none[0], data, where)
    if hint is Any:
        return data
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _decode_dataclass(hint, data, where)
    if origin is tuple or origin is dict:
        return _decode_collection(origin, args, data, where)
    return _decode_scalar(hint, data, where)


def _decode_dataclass(cls: type, data: Any, where: str) -> Any:
    """An instance of ``cls`` from its fields; unknown and missing fields are refused."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}: missing field {f.name!r}")
    return cls(**kwargs)


def _decode_collection(origin: Any, args: tuple[Any, ...], data: Any, where: str) -> Any:
    """A ``tuple[X, ...]`` from a list, or a ``dict[str, X]`` from an object."""
    if origin is tuple:
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list")
        item = args[0] if args else Any
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    return {k: _decode(args[1], v, f"{where}.{k}") for k, v in data.items()}


def _decode_scalar(hint: Any, data: Any, where: str) -> Any:
    """An enum, a time, a duration, or a plain JSON value of the hinted type."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(data)
    if hint is datetime:
        if not isinstance(data, str):
            raise ValueError(f"{where}: expected a timestamp")
        return parse_time(data)
    if hint is timedelta:
        return timedelta(seconds=float(data))
    if hint is float and isinstance(data, int):
        return float(data)
    if isinstance(hint, type) and not isinstance(data, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {type(data).__name__}")
    return data
