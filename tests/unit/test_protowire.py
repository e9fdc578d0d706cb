"""The protobuf wire-format reader (ccci.connectors.protowire): BuildKit's disk-usage answer is
decoded by it alone, so every record kind, the int64 sign, unknown and repeated fields, and
every malformed message it must refuse are checked against bytes built here by hand."""

from __future__ import annotations

import pytest

from ccci.connectors.protowire import WireError, fields, signed, timestamp
from tests.unit.protoenc import bytes_field, fixed32_field, fixed64_field, int_field, varint

# ---- the encoder itself, against the spec's worked examples ---------------------------


def test_the_test_encoder_writes_the_spec_s_own_example() -> None:
    # The encoding guide's example: field 1 = 150 is 08 96 01.
    assert int_field(1, 150) == b"\x08\x96\x01"
    assert bytes_field(2, b"testing") == b"\x12\x07testing"
    assert varint(-1) == b"\xff" * 9 + b"\x01"


# ---- varints ----------------------------------------------------------------------------


def test_a_one_byte_varint_is_read() -> None:
    assert list(fields(b"\x08\x00")) == [(1, 0)]
    assert list(fields(b"\x08\x7f")) == [(1, 127)]


def test_a_two_byte_varint_is_read() -> None:
    # 300 = 0b10_0101100: low seven bits 0x2c with the continuation bit, then 0x02.
    assert list(fields(b"\x08\xac\x02")) == [(1, 300)]
    assert list(fields(b"\x08\x80\x01")) == [(1, 128)]


def test_a_ten_byte_varint_is_read_whole() -> None:
    # Nine bytes of seven one-bits and a last byte 0x01: 2**64 - 1.
    assert list(fields(b"\x08" + b"\xff" * 9 + b"\x01")) == [(1, 2**64 - 1)]


def test_a_two_byte_key_gives_the_field_number_above_fifteen() -> None:
    # Field 16, varint: key 16 << 3 = 128 = 80 01.
    assert list(fields(b"\x80\x01\x05")) == [(16, 5)]


def test_a_varint_longer_than_ten_bytes_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="ten bytes"):
        list(fields(b"\x08" + b"\xff" * 10 + b"\x01"))


def test_a_key_longer_than_ten_bytes_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        list(fields(b"\x80" * 11 + b"\x00"))


# ---- signed int64 -----------------------------------------------------------------------


def test_minus_one_as_int64_is_ten_bytes_and_signed_reads_it_back() -> None:
    data = b"\x08" + b"\xff" * 9 + b"\x01"
    [(number, value)] = list(fields(data))
    assert number == 1
    assert isinstance(value, int)
    assert value == 2**64 - 1
    assert signed(value) == -1


def test_the_most_negative_int64_is_read_back() -> None:
    # -2**63 is 1 << 63: nine bytes 0x80 and a last byte 0x01.
    [(_, value)] = list(fields(b"\x08" + b"\x80" * 9 + b"\x01"))
    assert isinstance(value, int)
    assert value == 1 << 63
    assert signed(value) == -(2**63)


def test_signed_leaves_non_negative_int64_values_alone() -> None:
    assert signed(0) == 0
    assert signed(300) == 300
    assert signed(2**63 - 1) == 2**63 - 1


def test_signed_turns_the_top_half_negative() -> None:
    assert signed(2**63) == -(2**63)
    assert signed(2**64 - 2) == -2
    assert signed(2**64 - 62135596800) == -62135596800


# ---- length-delimited, fixed, unknown and repeated fields ------------------------------


def test_a_length_delimited_field_is_its_raw_bytes() -> None:
    assert list(fields(b"\x0a\x03abc")) == [(1, b"abc")]
    assert list(fields(b"\x0a\x00")) == [(1, b"")]


def test_fixed32_and_fixed64_fields_are_their_raw_bytes_and_what_follows_is_read() -> None:
    data = (
        fixed32_field(15, b"\x01\x02\x03\x04")
        + fixed64_field(16, b"\x11\x12\x13\x14\x15\x16\x17\x18")
        + int_field(1, 7)
    )
    assert data[:1] == b"\x7d"  # field 15, wire type 5
    assert data[5:7] == b"\x81\x01"  # field 16, wire type 1
    assert list(fields(data)) == [
        (15, b"\x01\x02\x03\x04"),
        (16, b"\x11\x12\x13\x14\x15\x16\x17\x18"),
        (1, 7),
    ]


def test_repeated_fields_come_once_per_element_in_order() -> None:
    data = bytes_field(12, b"c") + int_field(3, 1) + bytes_field(12, b"a") + bytes_field(12, b"b")
    assert list(fields(data)) == [(12, b"c"), (3, 1), (12, b"a"), (12, b"b")]


def test_an_empty_message_has_no_fields() -> None:
    assert list(fields(b"")) == []


# ---- malformed messages -----------------------------------------------------------------


def test_a_cut_short_varint_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="inside a varint"):
        list(fields(b"\x08\x96"))


def test_a_cut_short_key_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="inside a varint"):
        list(fields(b"\x08\x01\x80"))


def test_a_key_with_no_value_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        list(fields(b"\x08"))
    with pytest.raises(WireError):
        list(fields(b"\x0a"))


def test_a_cut_short_length_delimited_field_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="inside field 1"):
        list(fields(b"\x0a\x05abc"))


def test_a_cut_short_fixed_width_field_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="inside field 1"):
        list(fields(b"\x09\x00\x00\x00\x00"))
    with pytest.raises(WireError, match="inside field 1"):
        list(fields(b"\x0d\x00\x00"))


def test_the_fields_before_a_cut_are_yielded_first() -> None:
    reader = fields(b"\x08\x01\x12\x09short")
    assert next(reader) == (1, 1)
    with pytest.raises(WireError):
        next(reader)


@pytest.mark.parametrize("wire", [3, 4, 6, 7])
def test_group_and_undefined_wire_types_are_wire_errors(wire: int) -> None:
    with pytest.raises(WireError, match=f"wire type {wire}"):
        list(fields(bytes([1 << 3 | wire]) + b"\x00\x00\x00\x00\x00\x00\x00\x00"))


def test_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)


# ---- google.protobuf.Timestamp ----------------------------------------------------------


def test_a_timestamp_is_seconds_and_nanos() -> None:
    data = int_field(1, 1796172728) + int_field(2, 201451297)
    assert timestamp(data) == (1796172728, 201451297)


def test_an_empty_timestamp_is_the_epoch() -> None:
    assert timestamp(b"") == (0, 0)


def test_a_timestamp_before_the_epoch_has_negative_seconds() -> None:
    data = int_field(1, -62135596800)
    assert len(data) == 11  # key and a ten-byte varint
    assert timestamp(data) == (-62135596800, 0)


def test_a_timestamp_skips_fields_it_does_not_know() -> None:
    data = (
        bytes_field(3, b"junk")
        + int_field(1, 5)
        + fixed32_field(4, b"\x00\x00\x00\x00")
        + fixed64_field(5, b"\xff" * 8)
        + int_field(2, 6)
        + int_field(9, 99)
    )
    assert timestamp(data) == (5, 6)


def test_a_cut_short_timestamp_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        timestamp(b"\x08\xb8")


def test_a_ten_byte_varint_wider_than_64_bits_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="64 bits"):
        list(fields(bytes.fromhex("08" + "ff" * 9 + "02")))
