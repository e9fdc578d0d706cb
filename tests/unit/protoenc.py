"""A protobuf encoder for tests: the encoding spec written out, so a test's expected bytes
come from the spec and not from the decoder under test (ccci.connectors.protowire)."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """An unsigned varint; a negative int64 is written as its 64-bit two's complement."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def int_field(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def bytes_field(number: int, value: bytes) -> bytes:
    return key(number, 2) + varint(len(value)) + value


def str_field(number: int, value: str) -> bytes:
    return bytes_field(number, value.encode("utf-8"))


def fixed32_field(number: int, value: bytes) -> bytes:
    assert len(value) == 4
    return key(number, 5) + value


def fixed64_field(number: int, value: bytes) -> bytes:
    assert len(value) == 8
    return key(number, 1) + value


def stamp(seconds: int, nanos: int = 0) -> bytes:
    """A google.protobuf.Timestamp; proto3 leaves out fields that are zero."""
    return (int_field(1, seconds) if seconds else b"") + (int_field(2, nanos) if nanos else b"")


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed length-prefixed gRPC message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message
