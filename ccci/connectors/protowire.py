"""Reading protocol buffers' wire format: what decoding one known message needs.

BuildKit's disk-usage answer (ccci.connectors.buildkit) is one small protobuf message of
strings, integers, booleans and timestamps. The wire format is fixed by the protobuf
encoding spec and is four record kinds; the protobuf runtime and generated classes would
cost more to import than the call they decode, and ccci sends nothing but an empty request.
"""

from __future__ import annotations

from collections.abc import Iterator

# Wire types (the key's low three bits).
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {FIXED64: 8, FIXED32: 4}


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (cut short, or a wire type no proto3
    message uses)."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The unsigned varint at ``at`` and where the next field starts."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise WireError("the message ends inside a varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> 64:
                raise WireError("a varint wider than 64 bits")
            return value, at
        shift += 7
        if shift > 63:
            raise WireError("a varint longer than ten bytes")


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Each field as (number, value): an int for a varint, the raw bytes for the others (a
    string, a nested message, a fixed-width number). Repeated fields come once per element,
    in order; fields the reader does not know are the caller's to skip."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, at = _varint(data, at)
            yield number, value
            continue
        if wire == LENGTH:
            size, at = _varint(data, at)
        elif wire in _FIXED_SIZE:
            size = _FIXED_SIZE[wire]
        else:
            raise WireError(f"field {number} has wire type {wire}, which proto3 never writes")
        if at + size > len(data):
            raise WireError(f"the message ends inside field {number}")
        yield number, data[at : at + size]
        at += size


def signed(value: int) -> int:
    """An int64 field's value: negative numbers are written as their 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def timestamp(data: bytes) -> tuple[int, int]:
    """A ``google.protobuf.Timestamp`` as (seconds since the epoch, nanoseconds)."""
    seconds = nanos = 0
    for number, value in fields(data):
        if isinstance(value, int):
            if number == 1:
                seconds = signed(value)
            elif number == 2:
                nanos = value
    return seconds, nanos
