"""BuildKit's own disk-usage records, asked over the engine's ``/grpc`` endpoint.

Before API 1.42 ``/system/df`` sizes every image, container and volume whatever it is asked
for (about 0.3 s of the engine's own time at 1,500 images and 1,500 containers, most of a
plan), while a prune of the build cache reads only BuildKit's records, and the engine's
``/system/df`` takes those from this same call: its builder asks BuildKit's
``Control.DiskUsage`` and copies each record's fields. buildx's ``docker`` driver reaches
BuildKit the same way: ``POST /grpc`` with ``Upgrade: h2c``, then gRPC over HTTP/2 on the
connection the engine hands over.

Anything but a whole, well-formed answer is :class:`Unavailable` and the caller asks
``/system/df`` instead: a refusal (no ``101``: an engine without the endpoint, a socket proxy
that allows no POST), an HTTP/2 or gRPC error, a connection closed early, or a handshake not
done within :data:`HANDSHAKE_SECONDS` (a proxy that does not pass an upgraded connection on
both ways). Only a wait for the answer itself beyond the read timeout is a timeout, as any
read's. HTTP/2's framing, flow control and header compression are the ``h2`` library's
(python-hyper's sans-I/O implementation); this module, and so h2, is imported only when the
call is made (``EngineReads.build_cache_records``). The one protobuf message is decoded by
:mod:`ccci.connectors.protowire`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from ccci.connectors.protowire import fields, signed, timestamp

# Our SETTINGS acknowledged proves both directions reach the engine; that takes a round
# trip on a local socket, so a proxy that passes only one direction is found out long
# before the read timeout.
HANDSHAKE_SECONDS = 5.0

_UPGRADE = (
    b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
    b"Content-Length: 0\r\n\r\n"
)
_METHOD = "/moby.buildkit.v1.Control/DiskUsage"
# One gRPC frame: not compressed, zero bytes long: DiskUsageRequest with no filter.
_EMPTY_REQUEST = b"\x00\x00\x00\x00\x00"
_MAX_HEAD = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What /system/df gives a record with no creation time.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


class Unavailable(Exception):
    """The engine did not answer this way; the message says what it did instead."""


def disk_usage(sock: socket.socket, timeout: float) -> list[dict[str, Any]]:
    """The build cache's records in ``/system/df``'s ``BuildCache`` shape (so one parser reads
    both), asked over ``sock``: connected to the engine, nothing sent on it yet."""
    try:
        message = _exchange(sock, timeout)
    except h2.exceptions.H2Error as exc:
        raise Unavailable(f"HTTP/2 error: {exc}") from None
    try:
        return [_record(raw) for number, raw in fields(message) if number == 1]
    except (ValueError, TypeError, OverflowError) as exc:  # WireError, bad UTF-8, a bad time
        raise Unavailable(f"the answer is no DiskUsageResponse: {exc}") from None


# ---- the exchange ---------------------------------------------------------------------


def _exchange(sock: socket.socket, timeout: float) -> bytes:
    """The gRPC answer's one message, once its stream ended with status 0. The handshake has
    HANDSHAKE_SECONDS from the start; the answer has ``timeout`` from the moment our SETTINGS
    are acknowledged, one deadline however the engine's frames trickle in."""
    handshake_by = time.monotonic() + HANDSHAKE_SECONDS
    pending = _upgrade(sock, handshake_by)
    conn, reply = _request(sock)
    answer_by: float | None = None
    while True:
        if not pending:
            answering = answer_by is not None
            pending = _receive(sock, answer_by or handshake_by, answering=answering)
        for event in conn.receive_data(pending):
            if reply.acknowledges(event):
                answer_by = answer_by or time.monotonic() + timeout
            elif reply.take(event, conn):
                return _message(reply.headers, bytes(reply.body))
        pending = b""
        if out := conn.data_to_send():
            sock.sendall(out)


def _request(sock: socket.socket) -> tuple[h2.connection.H2Connection, _Reply]:
    """Open HTTP/2 on the upgraded connection and send the one call; the h2 connection and
    what will gather its answer."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", _METHOD),
            (":authority", "docker"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    conn.send_data(stream, _EMPTY_REQUEST, end_stream=True)
    sock.sendall(conn.data_to_send())
    return conn, _Reply(stream)


class _Reply:
    """The answer's headers and body as its stream's events bring them."""

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.headers: dict[str, str] = {}
        self.body = bytearray()

    def acknowledges(self, event: object) -> bool:
        """Whether ``event`` acknowledges our SETTINGS: the engine reads what we send."""
        return isinstance(event, h2.events.SettingsAcknowledged)

    def take(self, event: object, conn: h2.connection.H2Connection) -> bool:
        """Take in one event; True once our stream has ended. An event of another stream (a
        push, which a gRPC server never makes) is not ours; a reset or the end of the
        connection is no answer."""
        events = h2.events
        if isinstance(event, events.ConnectionTerminated):
            raise Unavailable(f"the engine ended HTTP/2 (error {event.error_code})")
        if getattr(event, "stream_id", self.stream) != self.stream:
            return False
        if isinstance(event, events.ResponseReceived | events.TrailersReceived):
            self.headers.update(_text(event.headers or []))
        elif isinstance(event, events.DataReceived):
            self.body += event.data or b""
            conn.acknowledge_received_data(event.flow_controlled_length or 0, self.stream)
        elif isinstance(event, events.StreamReset):
            raise Unavailable(f"the engine reset the stream (HTTP/2 error {event.error_code})")
        return isinstance(event, events.StreamEnded)


def _upgrade(sock: socket.socket, by: float) -> bytes:
    """Ask for HTTP/2 on the connection; what came after the ``101`` answer's head."""
    sock.sendall(_UPGRADE)
    received = b""
    while b"\r\n\r\n" not in received:
        if len(received) > _MAX_HEAD:
            raise Unavailable("POST /grpc: the answer's head is too long")
        received += _receive(sock, by, answering=False)
    head, _, rest = received.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if status.split(" ")[1:2] != ["101"]:
        raise Unavailable(f"POST /grpc was answered {status!r}, not 101 Switching Protocols")
    return rest


def _receive(sock: socket.socket, by: float, *, answering: bool) -> bytes:
    """What the engine sends next, waiting until ``by``. Past it, a handshake not done is
    Unavailable and a wait for the answer is a TimeoutError, even while bytes keep coming:
    a deadline is one whatever the engine sends meanwhile."""
    try:
        left = by - time.monotonic()
        if left <= 0:
            raise TimeoutError("past the deadline")
        sock.settimeout(left)
        data = sock.recv(65536)
    except TimeoutError:
        if answering:
            raise
        raise Unavailable(
            f"the HTTP/2 handshake on /grpc was not done within {HANDSHAKE_SECONDS:g} s"
        ) from None
    if not data:
        raise Unavailable("the engine closed the connection before BuildKit's answer ended")
    return data


def _text(pairs: Iterable[tuple[bytes | str, bytes | str]]) -> dict[str, str]:
    """HTTP/2 headers as text (h2 gives bytes unless told an encoding)."""
    return {
        (k.decode("latin-1") if isinstance(k, bytes) else k): (
            v.decode("latin-1") if isinstance(v, bytes) else v
        )
        for k, v in pairs
    }


def _message(headers: dict[str, str], body: bytes) -> bytes:
    """The one message of a unary gRPC answer whose status is OK (a failed call may come as
    headers alone: its status is then there, not in trailers)."""
    if headers.get(":status") != "200":
        raise Unavailable(f"BuildKit's call was answered HTTP {headers.get(':status')}")
    if headers.get("grpc-status") != "0":
        raise Unavailable(
            f"BuildKit answered gRPC status {headers.get('grpc-status')}: "
            f"{headers.get('grpc-message', '')}"
        )
    if len(body) < 5 or body[0] != 0:
        raise Unavailable("BuildKit's answer is not one uncompressed gRPC message")
    size = int.from_bytes(body[1:5], "big")
    if len(body) != 5 + size:
        raise Unavailable(f"BuildKit's answer holds {len(body) - 5} bytes, not the {size} it says")
    return body[5:]


# ---- the message ----------------------------------------------------------------------

# UsageRecord's fields (moby/buildkit api/services/control/control.proto) by number, named as
# /system/df names them; Mutable (2) is not in /system/df's answer, Parents (12) is only in
# newer engines' and kept as is.
_STRINGS = {1: "ID", 5: "Parent", 9: "Description", 10: "Type"}
_BOOLS = {3: "InUse", 11: "Shared"}
_INTS = {4: "Size", 8: "UsageCount"}
_CREATED, _LAST_USED, _PARENTS = 6, 7, 12


def _record(raw: int | bytes) -> dict[str, Any]:
    """One UsageRecord as ``/system/df`` writes a build cache record."""
    if not isinstance(raw, bytes):
        raise TypeError("a record that is not a message")
    record: dict[str, Any] = {
        "ID": "",
        "Parent": "",
        "Type": "",
        "Description": "",
        "InUse": False,
        "Shared": False,
        "Size": 0,
        "CreatedAt": _GO_ZERO_TIME,
        "LastUsedAt": None,
        "UsageCount": 0,
    }
    parents: list[str] = []
    for number, value in fields(raw):
        if isinstance(value, int):
            if number in _BOOLS:
                record[_BOOLS[number]] = bool(value)
            elif number in _INTS:
                record[_INTS[number]] = signed(value)
        elif number in _STRINGS:
            record[_STRINGS[number]] = value.decode("utf-8")
        elif number == _CREATED:
            record["CreatedAt"] = _rfc3339(*timestamp(value))
        elif number == _LAST_USED:
            record["LastUsedAt"] = _rfc3339(*timestamp(value))
        elif number == _PARENTS:
            parents.append(value.decode("utf-8"))
    if parents:
        record["Parents"] = parents
    return record


def _rfc3339(seconds: int, nanos: int) -> str:
    """A timestamp as Go writes one in JSON: RFC 3339, nanoseconds without trailing zeros."""
    if not 0 <= nanos < 1_000_000_000:
        raise ValueError(f"a timestamp with {nanos} nanoseconds")
    moment = (_EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None)
    fraction = f"{nanos:09d}".rstrip("0")
    return moment.isoformat(timespec="seconds") + (f".{fraction}Z" if fraction else "Z")
