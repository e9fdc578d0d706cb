"""disk_usage's HTTP/2 exchange against a fake engine: the far end of a socket pair that
answers ``POST /grpc`` as each test says, then speaks HTTP/2 with h2's server side.

The exchange is proven against the real engine in tests/faults/test_buildkit_reads.py. The
fake is here for the faults a real engine cannot be made to produce on demand: a stream
reset, a GOAWAY, a connection dropped mid-answer, SETTINGS never acknowledged, frames that
keep coming while the answer does not, a compressed or malformed message, and an answer
large enough that the client must replenish HTTP/2's flow-control windows. Each must end as
records, :class:`~ccci.connectors.buildkit.Unavailable` or (only for the answer's own
deadline) a TimeoutError; never a hang.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from ccci.connectors import buildkit
from ccci.connectors.buildkit import Unavailable, disk_usage
from tests.unit.protoenc import bytes_field, grpc_frame, int_field, stamp, str_field

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
RESPONSE = [(":status", "200"), ("content-type", "application/grpc")]
OK_TRAILERS = [("grpc-status", "0"), ("grpc-message", "")]
# How long the fake waits on the client before it calls the test broken.
PATIENCE = 10.0
# How long a scenario that never answers keeps its connection going before it closes it.
GIVE_UP = 30.0


class ClientGone(Exception):
    """The client closed its end: the scenario is over."""


class FakeEngine:
    """The engine's end of one connection, as a scenario drives it; ``client`` is the end
    disk_usage is handed."""

    def __init__(self, client: socket.socket, sock: socket.socket) -> None:
        self.client = client
        self.sock = sock
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.head = b""
        self.request_headers: dict[str, str] = {}
        self.request_body = b""
        self.window_updates = 0

    def _recv(self, wait: float) -> bytes | None:
        """The client's next bytes, or None when nothing came within ``wait``."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        except OSError as exc:
            raise ClientGone from exc
        if not data:
            raise ClientGone
        return data

    def from_client(self) -> bytes:
        data = self._recv(PATIENCE)
        if data is None:
            raise AssertionError(f"the client sent nothing for {PATIENCE:g} s")
        return data

    def send(self, data: bytes) -> None:
        self.sock.settimeout(PATIENCE)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise
        except OSError as exc:
            raise ClientGone from exc

    def flush(self) -> None:
        if out := self.conn.data_to_send():
            self.send(out)

    def feed(self, data: bytes, *, answer: bool = True) -> list[h2.events.Event]:
        """The client's bytes into h2; what h2 answers is sent unless ``answer`` is False
        (then it waits in h2 for the next flush)."""
        events = self.conn.receive_data(data)
        self.window_updates += sum(isinstance(e, h2.events.WindowUpdated) for e in events)
        if answer:
            self.flush()
        return events

    def read_head(self) -> None:
        while b"\r\n\r\n" not in self.head:
            self.head += self.from_client()

    def switch(self, *, settings_in_head: bool = False) -> None:
        """Answer the upgrade with 101 and open HTTP/2 with the server's SETTINGS."""
        self.read_head()
        self.conn.initiate_connection()
        if settings_in_head:
            self.send(SWITCHING + self.conn.data_to_send())
        else:
            self.send(SWITCHING)
            self.flush()

    def take_request(self, *, acknowledge: bool = True) -> int:
        """Read the call to its end, acknowledging the client's SETTINGS on the way unless
        told to hold that back for the next flush; its stream."""
        while True:
            for event in self.feed(self.from_client(), answer=acknowledge):
                if isinstance(event, h2.events.RequestReceived):
                    self.request_headers = {str(k): str(v) for k, v in event.headers or []}
                elif isinstance(event, h2.events.DataReceived):
                    self.request_body += event.data or b""
                elif isinstance(event, h2.events.StreamEnded):
                    return event.stream_id

    def send_body(self, stream: int, body: bytes) -> None:
        """DATA frames as flow control allows, waiting for the client's WINDOW_UPDATEs."""
        while body:
            room = min(
                self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size
            )
            if not room:
                self.feed(self.from_client())
                continue
            self.conn.send_data(stream, body[:room])
            body = body[room:]
            self.flush()

    def answer(
        self, stream: int, body: bytes, trailers: list[tuple[str, str]] = OK_TRAILERS
    ) -> None:
        self.conn.send_headers(stream, RESPONSE)
        self.send_body(stream, body)
        self.conn.send_headers(stream, trailers, end_stream=True)
        self.flush()

    def idle(self, seconds: float, *, speaking: bool = True) -> None:
        """Take what the client sends for ``seconds``; into h2 when ``speaking``, else dropped
        (so nothing of the client's is acknowledged)."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            data = self._recv(left)
            if data is not None and speaking:
                self.feed(data)

    def pinging(self, every: float, *, speaking: bool = True) -> None:
        """A PING every ``every`` seconds and nothing else, until GIVE_UP; then the end of the
        connection."""
        until = time.monotonic() + GIVE_UP
        while time.monotonic() < until:
            self.conn.ping(b"12345678")
            self.flush()
            self.idle(every, speaking=speaking)
        self.sock.shutdown(socket.SHUT_WR)

    def linger(self) -> None:
        """Keep the connection open, dropping what comes, until the client closes it."""
        while True:
            if self._recv(PATIENCE) is None:
                raise AssertionError(f"the client kept its end open for {PATIENCE:g} s")


Scenario = Callable[[FakeEngine], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Scenario], FakeEngine]]:
    """Start a fake engine running a scenario; at the end, close the client's end and join."""
    started: list[tuple[FakeEngine, threading.Thread]] = []
    failures: list[BaseException] = []

    def start(scenario: Scenario) -> FakeEngine:
        client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        engine = FakeEngine(client, server)

        def run() -> None:
            try:
                scenario(engine)
                engine.linger()
            except ClientGone:
                pass
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=run, name="fake-engine", daemon=True)
        thread.start()
        started.append((engine, thread))
        return engine

    yield start
    for engine, thread in started:
        engine.client.close()
        thread.join(PATIENCE)
        engine.sock.close()
        assert not thread.is_alive(), "the fake engine did not stop"
    if failures:
        raise failures[0]


def record(n: int) -> bytes:
    return (
        str_field(1, f"rec-{n:05d}")
        + int_field(4, 1024 * n)
        + bytes_field(6, stamp(1796172728 + n))
        + int_field(8, n)
        + str_field(9, f"mount / from exec step {n}")
        + str_field(10, "regular")
    )


def message(*records: bytes) -> bytes:
    return b"".join(bytes_field(1, r) for r in records)


def answering(body: bytes, *, settings_in_head: bool = False) -> Scenario:
    def scenario(engine: FakeEngine) -> None:
        engine.switch(settings_in_head=settings_in_head)
        engine.answer(engine.take_request(), body)

    return scenario


def assert_unavailable(
    serve: Callable[[Scenario], FakeEngine], scenario: Scenario, match: str, timeout: float = 1.0
) -> None:
    """The exchange with an engine playing ``scenario`` ends as Unavailable, saying ``match``."""
    engine = serve(scenario)
    with pytest.raises(Unavailable, match=match):
        disk_usage(engine.client, timeout)


def test_a_whole_answer_gives_its_records_for_the_call_that_was_asked(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    engine = serve(answering(grpc_frame(message(record(1), record(2)))))

    records = disk_usage(engine.client, 1.0)

    assert records[0] == {
        "ID": "rec-00001",
        "Parent": "",
        "Type": "regular",
        "Description": "mount / from exec step 1",
        "InUse": False,
        "Shared": False,
        "Size": 1024,
        "CreatedAt": "2026-12-02T00:52:09Z",
        "LastUsedAt": None,
        "UsageCount": 1,
    }
    assert [(r["ID"], r["Size"], r["UsageCount"]) for r in records] == [
        ("rec-00001", 1024, 1),
        ("rec-00002", 2048, 2),
    ]
    assert engine.head.startswith(b"POST /grpc HTTP/1.1\r\n")
    assert b"\r\nUpgrade: h2c\r\n" in engine.head
    assert engine.request_headers[":path"] == "/moby.buildkit.v1.Control/DiskUsage"
    assert engine.request_headers["content-type"] == "application/grpc"
    assert engine.request_body == b"\x00\x00\x00\x00\x00"


def test_an_answer_larger_than_the_flow_control_windows_gives_every_record_in_order(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    body = grpc_frame(message(*(record(n) for n in range(5000))))
    assert len(body) > 65_535
    engine = serve(answering(body))

    records = disk_usage(engine.client, 5.0)

    assert [r["ID"] for r in records] == [f"rec-{n:05d}" for n in range(5000)]
    assert records[4999]["Size"] == 1024 * 4999
    assert engine.window_updates > 0


def test_http2_bytes_in_the_same_write_as_the_101_head_are_not_lost(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    engine = serve(answering(grpc_frame(message(record(7))), settings_in_head=True))

    records = disk_usage(engine.client, 1.0)

    assert [r["ID"] for r in records] == ["rec-00007"]


def test_a_refused_upgrade_is_unavailable_and_names_the_status(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    refusal = b'{"message":"page not found"}'

    def scenario(engine: FakeEngine) -> None:
        engine.read_head()
        engine.send(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(refusal), refusal)
        )

    assert_unavailable(serve, scenario, "404")


def test_a_trailers_only_grpc_error_is_unavailable_with_its_status(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    def scenario(engine: FakeEngine) -> None:
        engine.switch()
        stream = engine.take_request()
        engine.conn.send_headers(
            stream,
            [*RESPONSE, ("grpc-status", "12"), ("grpc-message", "unknown service")],
            end_stream=True,
        )
        engine.flush()

    assert_unavailable(serve, scenario, "gRPC status 12: unknown service")


def test_a_reset_of_the_call_s_stream_is_unavailable(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    def scenario(engine: FakeEngine) -> None:
        engine.switch()
        stream = engine.take_request()
        engine.conn.send_headers(stream, RESPONSE)
        engine.conn.reset_stream(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)
        engine.flush()

    assert_unavailable(serve, scenario, "reset the stream")


def test_a_goaway_with_an_error_is_unavailable(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    def scenario(engine: FakeEngine) -> None:
        engine.switch()
        engine.take_request()
        engine.conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        engine.flush()

    assert_unavailable(serve, scenario, "ended HTTP/2")


def test_a_connection_closed_mid_answer_is_unavailable(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    def scenario(engine: FakeEngine) -> None:
        engine.switch()
        stream = engine.take_request()
        engine.conn.send_headers(stream, RESPONSE)
        engine.conn.send_data(stream, grpc_frame(message(record(1), record(2)))[:40])
        engine.flush()
        engine.sock.shutdown(socket.SHUT_WR)

    assert_unavailable(serve, scenario, "closed the connection")


def silent(engine: FakeEngine) -> None:
    engine.read_head()
    engine.send(SWITCHING)


def own_settings_only(engine: FakeEngine) -> None:
    engine.read_head()
    engine.conn.initiate_connection()
    engine.send(SWITCHING)
    engine.flush()


def own_settings_and_pings(engine: FakeEngine) -> None:
    own_settings_only(engine)
    engine.pinging(0.1, speaking=False)


@pytest.mark.parametrize("scenario", [silent, own_settings_only, own_settings_and_pings])
def test_settings_never_acknowledged_are_unavailable_within_the_handshake(
    serve: Callable[[Scenario], FakeEngine],
    monkeypatch: pytest.MonkeyPatch,
    scenario: Scenario,
) -> None:
    monkeypatch.setattr(buildkit, "HANDSHAKE_SECONDS", 0.5)
    assert_unavailable(serve, scenario, "handshake", 60.0)


def test_pings_without_an_answer_do_not_extend_its_deadline(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    def scenario(engine: FakeEngine) -> None:
        engine.switch()
        engine.take_request()
        engine.pinging(0.2)

    engine = serve(scenario)
    with pytest.raises(TimeoutError):
        disk_usage(engine.client, 1.0)


def test_frames_already_waiting_when_the_answer_s_deadline_passes_do_not_extend_it(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    def scenario(engine: FakeEngine) -> None:
        engine.switch()
        stream = engine.take_request(acknowledge=False)
        engine.conn.send_headers(stream, RESPONSE)
        for _ in range(15_000):
            engine.conn.send_data(stream, b"")
        engine.conn.send_data(stream, grpc_frame(message(record(1))))
        engine.conn.send_headers(stream, OK_TRAILERS, end_stream=True)
        everything = engine.conn.data_to_send()
        engine.sock.setblocking(False)
        sent = engine.sock.send(everything)
        assert sent == len(everything), "the socket's buffer did not hold the whole answer"

    engine = serve(scenario)
    with pytest.raises(TimeoutError):
        disk_usage(engine.client, 0.01)


def test_a_compressed_message_is_unavailable(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    engine = serve(answering(b"\x01" + grpc_frame(message(record(1)))[1:]))
    with pytest.raises(Unavailable, match="uncompressed"):
        disk_usage(engine.client, 1.0)


def test_a_message_that_is_no_disk_usage_response_is_unavailable(
    serve: Callable[[Scenario], FakeEngine],
) -> None:
    engine = serve(answering(grpc_frame(b"\x0a\x96")))
    with pytest.raises(Unavailable, match="no DiskUsageResponse"):
        disk_usage(engine.client, 1.0)
