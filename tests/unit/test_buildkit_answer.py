"""BuildKit's DiskUsage answer read without the engine (ccci.connectors.buildkit's pure parts):
a UsageRecord becomes exactly the dict ``/system/df`` writes for it, so the one parser
(parse_build_cache) reads both; timestamps are written as Go writes them; and any gRPC answer
or message that is not whole and well formed is Unavailable, so the caller falls back to
``/system/df``. The HTTP/2 exchange itself is proven against the real engine in
tests/faults/test_buildkit_reads.py; here ``_exchange`` is replaced by a function returning
chosen bytes."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any, cast

import h2.exceptions
import pytest

from ccci.connectors import buildkit
from ccci.connectors.buildkit import Unavailable, _message, _record, _rfc3339, disk_usage
from ccci.connectors.protowire import WireError
from ccci.facts.docker import parse_build_cache
from ccci.facts.model import BuildCacheRecord
from tests.unit.protoenc import bytes_field, grpc_frame, int_field, stamp, str_field, varint

OK = {":status": "200", "content-type": "application/grpc", "grpc-status": "0"}

# The record a real BuildKit answer on Engine 20.10 held, and what /system/df said of it.
REAL_RECORD = (
    str_field(1, "n51bal47umkpnu6kwt2ixovun")
    + int_field(2, 1)
    + bytes_field(6, stamp(1796172728, 201451297))
    + bytes_field(7, stamp(1796172728, 252414780))
    + int_field(8, 1)
    + str_field(9, "local source for context")
    + str_field(10, "source.local")
)
REAL_DF_RECORD: dict[str, Any] = {
    "ID": "n51bal47umkpnu6kwt2ixovun",
    "Parent": "",
    "Type": "source.local",
    "Description": "local source for context",
    "InUse": False,
    "Shared": False,
    "Size": 0,
    "CreatedAt": "2026-12-02T00:52:08.201451297Z",
    "LastUsedAt": "2026-12-02T00:52:08.25241478Z",
    "UsageCount": 1,
}


# ---- _record ----------------------------------------------------------------------------


def test_the_real_engine_s_record_is_exactly_what_system_df_wrote_for_it() -> None:
    assert _record(REAL_RECORD) == REAL_DF_RECORD


def test_the_real_record_parses_to_the_build_cache_record_system_df_s_would() -> None:
    assert parse_build_cache(_record(REAL_RECORD)) == BuildCacheRecord(
        id="n51bal47umkpnu6kwt2ixovun",
        type="source.local",
        description="local source for context",
        in_use=False,
        shared=False,
        size=0,
        created=datetime(2026, 12, 2, 0, 52, 8, 201451, tzinfo=UTC),
        last_used=datetime(2026, 12, 2, 0, 52, 8, 252414, tzinfo=UTC),
    )
    assert parse_build_cache(_record(REAL_RECORD)) == parse_build_cache(REAL_DF_RECORD)


def test_every_field_lands_under_system_df_s_name() -> None:
    raw = (
        str_field(1, "rec")
        + int_field(2, 1)
        + int_field(3, 1)
        + int_field(4, 123456789012)
        + str_field(5, "parent-id")
        + bytes_field(6, stamp(1, 5))
        + bytes_field(7, stamp(2, 500000000))
        + int_field(8, 42)
        + str_field(9, "mount / from exec /bin/sh -c make")
        + str_field(10, "exec.cachemount")
        + int_field(11, 1)
    )
    assert _record(raw) == {
        "ID": "rec",
        "Parent": "parent-id",
        "Type": "exec.cachemount",
        "Description": "mount / from exec /bin/sh -c make",
        "InUse": True,
        "Shared": True,
        "Size": 123456789012,
        "CreatedAt": "1970-01-01T00:00:01.000000005Z",
        "LastUsedAt": "1970-01-01T00:00:02.5Z",
        "UsageCount": 42,
    }


def test_a_record_with_every_field_parses_to_its_build_cache_record() -> None:
    raw = (
        str_field(1, "rec")
        + int_field(3, 1)
        + int_field(4, 4096)
        + bytes_field(6, stamp(1796172728, 201451297))
        + bytes_field(7, stamp(1796172790))
        + str_field(9, "pulled from example/image")
        + str_field(10, "regular")
        + int_field(11, 1)
    )
    assert parse_build_cache(_record(raw)) == BuildCacheRecord(
        id="rec",
        type="regular",
        description="pulled from example/image",
        in_use=True,
        shared=True,
        size=4096,
        created=datetime(2026, 12, 2, 0, 52, 8, 201451, tzinfo=UTC),
        last_used=datetime(2026, 12, 2, 0, 53, 10, tzinfo=UTC),
    )


def test_a_record_with_no_created_at_dates_from_go_s_zero_time_and_was_never_used() -> None:
    record = _record(str_field(1, "fresh"))
    assert record["CreatedAt"] == "0001-01-01T00:00:00Z"
    assert record["LastUsedAt"] is None
    assert record == {
        "ID": "fresh",
        "Parent": "",
        "Type": "",
        "Description": "",
        "InUse": False,
        "Shared": False,
        "Size": 0,
        "CreatedAt": "0001-01-01T00:00:00Z",
        "LastUsedAt": None,
        "UsageCount": 0,
    }


def test_a_record_with_no_times_parses_as_created_at_the_epoch_and_never_used() -> None:
    parsed = parse_build_cache(_record(str_field(1, "fresh")))
    assert parsed.created == datetime(1970, 1, 1, tzinfo=UTC)
    assert parsed.last_used is None


def test_mutable_is_not_in_the_record() -> None:
    record = _record(str_field(1, "m") + int_field(2, 1))
    assert "Mutable" not in record
    assert set(record) == {
        "ID",
        "Parent",
        "Type",
        "Description",
        "InUse",
        "Shared",
        "Size",
        "CreatedAt",
        "LastUsedAt",
        "UsageCount",
    }


def test_parents_are_kept_in_order_and_only_when_present() -> None:
    raw = str_field(1, "child") + str_field(12, "p2") + int_field(8, 3) + str_field(12, "p1")
    record = _record(raw)
    assert record["Parents"] == ["p2", "p1"]
    assert "Parents" not in _record(str_field(1, "orphan"))


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (
        int_field(40, 7)
        + bytes_field(41, b"\xff\xfe not text")
        + varint(42 << 3 | 5)
        + b"\x01\x02\x03\x04"
        + varint(43 << 3 | 1)
        + b"\x01\x02\x03\x04\x05\x06\x07\x08"
    )
    assert _record(unknown + REAL_RECORD + unknown) == REAL_DF_RECORD


def test_a_negative_size_is_read_as_int64() -> None:
    assert _record(str_field(1, "x") + int_field(4, -1))["Size"] == -1


def test_a_record_that_is_a_number_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _record(5)


def test_a_cut_short_record_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        _record(REAL_RECORD[:-3])


def test_a_cut_short_timestamp_inside_a_record_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        _record(str_field(1, "x") + bytes_field(6, b"\x08\xb8"))


# ---- _rfc3339 ---------------------------------------------------------------------------


def test_nanoseconds_are_written_without_trailing_zeros() -> None:
    assert _rfc3339(1796172728, 201451300) == "2026-12-02T00:52:08.2014513Z"
    assert _rfc3339(1796172728, 252414780) == "2026-12-02T00:52:08.25241478Z"
    assert _rfc3339(1796172728, 201451297) == "2026-12-02T00:52:08.201451297Z"


def test_leading_zeros_of_the_nanoseconds_are_kept() -> None:
    assert _rfc3339(0, 1) == "1970-01-01T00:00:00.000000001Z"
    assert _rfc3339(0, 1000) == "1970-01-01T00:00:00.000001Z"


def test_a_whole_second_has_no_fraction() -> None:
    assert _rfc3339(1796172728, 0) == "2026-12-02T00:52:08Z"
    assert _rfc3339(0, 0) == "1970-01-01T00:00:00Z"


def test_go_s_zero_time_is_written_as_go_writes_it() -> None:
    assert _rfc3339(-62135596800, 0) == "0001-01-01T00:00:00Z"


def test_a_time_before_the_epoch_counts_its_nanoseconds_forward() -> None:
    assert _rfc3339(-1, 500000000) == "1969-12-31T23:59:59.5Z"


# ---- _message ---------------------------------------------------------------------------


def test_an_ok_answer_gives_its_one_message() -> None:
    assert _message(OK, grpc_frame(REAL_RECORD)) == REAL_RECORD


def test_an_ok_answer_may_hold_an_empty_message() -> None:
    assert _message(OK, b"\x00\x00\x00\x00\x00") == b""


@pytest.mark.parametrize("status", ["404", "502", None])
def test_an_http_status_other_than_200_is_unavailable(status: str | None) -> None:
    headers = {k: v for k, v in OK.items() if k != ":status"}
    if status is not None:
        headers[":status"] = status
    with pytest.raises(Unavailable, match=f"HTTP {status}"):
        _message(headers, grpc_frame(b""))


def test_a_grpc_status_other_than_0_is_unavailable_with_its_message() -> None:
    headers = {**OK, "grpc-status": "12", "grpc-message": "unknown service"}
    with pytest.raises(Unavailable, match="status 12: unknown service"):
        _message(headers, b"")


def test_an_answer_with_no_grpc_status_is_unavailable() -> None:
    headers = {k: v for k, v in OK.items() if k != "grpc-status"}
    with pytest.raises(Unavailable, match="gRPC status None"):
        _message(headers, grpc_frame(b""))


def test_a_compressed_message_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="uncompressed"):
        _message(OK, b"\x01" + grpc_frame(b"abc")[1:])


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x00\x00\x00\x00"])
def test_an_answer_shorter_than_its_prefix_is_unavailable(body: bytes) -> None:
    with pytest.raises(Unavailable, match="not one uncompressed"):
        _message(OK, body)


def test_a_message_shorter_than_its_prefix_says_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="holds 3 bytes, not the 4"):
        _message(OK, b"\x00\x00\x00\x00\x04abc")


def test_a_message_longer_than_its_prefix_says_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="holds 4 bytes, not the 3"):
        _message(OK, b"\x00\x00\x00\x00\x03abcd")


def test_two_messages_are_unavailable() -> None:
    with pytest.raises(Unavailable):
        _message(OK, grpc_frame(b"ab") + grpc_frame(b"cd"))


# ---- disk_usage, with the exchange replaced ---------------------------------------------


def answering(monkeypatch: pytest.MonkeyPatch, message: bytes) -> None:
    """Make ``_exchange`` return ``message`` (the real exchange is proven in tests/engine)."""

    def exchange(sock: socket.socket, timeout: float) -> bytes:
        return message

    monkeypatch.setattr(buildkit, "_exchange", exchange)


NO_SOCKET = cast(socket.socket, None)


def test_disk_usage_gives_each_record_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    second = str_field(1, "second") + int_field(4, 10)
    answering(
        monkeypatch,
        bytes_field(1, REAL_RECORD) + int_field(2, 9) + bytes_field(1, second),
    )
    records = disk_usage(NO_SOCKET, 1.0)
    assert [r["ID"] for r in records] == ["n51bal47umkpnu6kwt2ixovun", "second"]
    assert records[0] == REAL_DF_RECORD
    assert records[1]["Size"] == 10


def test_disk_usage_of_an_empty_answer_is_no_records(monkeypatch: pytest.MonkeyPatch) -> None:
    answering(monkeypatch, b"")
    assert disk_usage(NO_SOCKET, 1.0) == []


@pytest.mark.parametrize(
    ("why", "message"),
    [
        ("cut short inside a record", bytes_field(1, REAL_RECORD)[:-4]),
        ("cut short inside a varint", b"\x0a\x96"),
        ("a record cut short within its own bytes", bytes_field(1, REAL_RECORD[:-3])),
        ("a group", b"\x0b\x0c"),
        ("a varint longer than ten bytes", b"\x10" + b"\xff" * 10 + b"\x01"),
        ("a record that is a number", int_field(1, 5)),
        ("an ID that is not UTF-8", bytes_field(1, bytes_field(1, b"\xff\xfe"))),
        ("a parent that is not UTF-8", bytes_field(1, bytes_field(12, b"\xc3"))),
    ],
)
def test_an_answer_that_is_no_disk_usage_response_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, why: str, message: bytes
) -> None:
    answering(monkeypatch, message)
    with pytest.raises(Unavailable, match="no DiskUsageResponse"):
        disk_usage(NO_SOCKET, 1.0)


def test_an_http2_error_in_the_exchange_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def exchange(sock: socket.socket, timeout: float) -> bytes:
        raise h2.exceptions.ProtocolError("bad frame")

    monkeypatch.setattr(buildkit, "_exchange", exchange)
    with pytest.raises(Unavailable, match="HTTP/2 error: bad frame"):
        disk_usage(NO_SOCKET, 1.0)


# Year 10000 (no datetime holds it), and a second's worth of nanoseconds.
@pytest.mark.parametrize("answer", ["0a0c0a01783207088083d1ffaf07", "0a0b0a01783206108094ebdc03"])
def test_a_timestamp_out_of_range_or_with_bad_nanoseconds_is_unavailable(
    answer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buildkit, "_exchange", lambda *_: bytes.fromhex(answer))
    with socket.socket() as unused, pytest.raises(buildkit.Unavailable):
        buildkit.disk_usage(unused, 1.0)
