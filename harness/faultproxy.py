"""A fault-injecting HTTP proxy on a unix socket, in front of the private engine's socket.

This is a fake, and the tests that use it say so: a real engine cannot be made to answer
500 to one chosen call on demand, nor to let a test act at the exact moment between ccci's
last re-check and its action. Everything else is real: every request that no rule names
is forwarded unchanged to the private engine, and its answer is relayed unchanged.

A rule names a method and a path pattern (matched against the path without the API
version prefix and without the query, e.g. ``DELETE /images/sha256:…``) and says what to
do with the first ``times`` matching requests:

- ``answer(status, message)``: reply as the engine replies to a failed call, with a JSON
  body ``{"message": …}``; the request never reaches the engine;
- ``before(callback)``: run ``callback`` (in the proxy's thread, the request held back)
  and then forward the request, so a test can change the engine at that exact moment;
- ``drop``: close the connection without an answer, as a dying engine does.

One request per connection: the proxy asks the engine for ``Connection: close`` and
closes the client's connection after relaying the answer, so HTTP framing is the
engine's own and the client simply reconnects. A request that asks to upgrade the
connection (``Upgrade:``, as BuildKit's ``POST /grpc`` does) is forwarded as it came, and
then the bytes are relayed both ways until either side closes, as the engine's own socket
would carry them. Stdlib only, like the rest of the harness.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?(?=/)")
_REASONS = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}
_MAX_HEADER = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One request as the proxy saw it; ``path`` has neither version prefix nor query."""

    method: str
    path: str
    query: str


@dataclass(frozen=True)
class Reply:
    """An answer the proxy gives instead of the engine."""

    status: int
    message: str


DROP = Reply(0, "connection dropped")


@dataclass
class Rule:
    """What to do with the first ``times`` requests matching ``method`` and ``pattern``."""

    method: str
    pattern: re.Pattern[str]
    reply: Reply | None = None
    callback: Callable[[Request], None] | None = None
    times: int = 1
    fired: list[Request] = field(default_factory=list)

    def matches(self, request: Request) -> bool:
        return (
            len(self.fired) < self.times
            and request.method == self.method
            and self.pattern.fullmatch(request.path) is not None
        )


class FaultProxy:
    """A proxy listening on its own socket; use :func:`running` to start and stop it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self._dir = tempfile.mkdtemp(prefix="ccci-fp-")  # short: a socket path has ≤ 107 bytes
        self.socket = os.path.join(self._dir, "docker.sock")
        self.rules: list[Rule] = []
        self.seen: list[Request] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    @property
    def docker_host(self) -> str:
        """What ccci's ``docker_host`` (or ``DOCKER_HOST``) is set to, to go through here."""
        return f"unix://{self.socket}"

    # ---- rules ----------------------------------------------------------------------

    def answer(
        self, method: str, pattern: str, status: int = 500, message: str = "", times: int = 1
    ) -> Rule:
        text = message or f"injected fault: {status} for {method} {pattern}"
        return self._add(Rule(method, re.compile(pattern), reply=Reply(status, text), times=times))

    def before(
        self, method: str, pattern: str, callback: Callable[[Request], None], times: int = 1
    ) -> Rule:
        return self._add(Rule(method, re.compile(pattern), callback=callback, times=times))

    def drop(self, method: str, pattern: str, times: int = 1) -> Rule:
        return self._add(Rule(method, re.compile(pattern), reply=DROP, times=times))

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def _rule_for(self, request: Request) -> Rule | None:
        with self._lock:
            self.seen.append(request)
            for rule in self.rules:
                if rule.matches(request):
                    rule.fired.append(request)
                    return rule
        return None

    # ---- serving --------------------------------------------------------------------

    def start(self) -> None:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True
            # The engine it stands in for listens with the kernel's full backlog; with
            # socketserver's default of 5, a client's burst of connections (a run's first
            # reads) was refused with EAGAIN, which the engine never does.
            request_queue_size = 128

        self._server = Server(self.socket, Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def _serve(self, client: socket.socket) -> None:
        # The reader holds the socket open until it is closed too: a dropped connection
        # must reach the client as soon as this returns.
        reader = client.makefile("rb")
        try:
            head = _read_head(reader)
            if head is None:
                return
            request, raw_head = _parse_head(head)
            rule = self._rule_for(request)
            if rule is not None and rule.callback is not None:
                try:
                    rule.callback(request)
                except Exception as exc:  # reported to the test, which fails on it
                    self.errors.append(f"{request.method} {request.path}: {exc!r}")
            body = _read_body(reader, head)
            if rule is not None and rule.reply is not None:
                if rule.reply is not DROP:
                    client.sendall(_reply_bytes(rule.reply))
                return
            if _header(head, "upgrade") is not None:
                self._tunnel(client, reader, head + b"\r\n\r\n" + body)
            else:
                self._forward(client, raw_head, body)
        except OSError:
            return  # the client went away (a killed ccci): nothing to relay
        finally:
            with contextlib.suppress(OSError):
                reader.close()
                client.close()

    def _forward(self, client: socket.socket, raw_head: bytes, body: bytes) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                upstream.connect(self.upstream)
            except OSError:
                return  # the engine is down: the client sees its connection dropped
            upstream.sendall(raw_head + body)
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        finally:
            upstream.close()

    def _tunnel(self, client: socket.socket, reader: BinaryIO, request: bytes) -> None:
        """Forward an upgrade request unchanged, then relay both ways until one side closes."""
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                upstream.connect(self.upstream)
            except OSError:
                return
            upstream.sendall(request)

            def client_to_engine() -> None:
                with contextlib.suppress(OSError, ValueError):  # ValueError: reader closed
                    while chunk := reader.read1(65536):  # type: ignore[attr-defined]
                        upstream.sendall(chunk)
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)

            relay = threading.Thread(target=client_to_engine, daemon=True)
            relay.start()
            with contextlib.suppress(OSError):
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)
            # The engine closed: so does the client's side, at once (the relay's read of it
            # holds the reader, so closing the reader alone would wait for the client).
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            relay.join(timeout=5)
        finally:
            upstream.close()


@contextlib.contextmanager
def running(upstream: str) -> Iterator[FaultProxy]:
    """A started proxy in front of ``upstream`` (a ``unix://`` docker host), stopped after."""
    proxy = FaultProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


# ---- HTTP/1.1, as little of it as a proxy that closes each connection needs ------------


def _read_head(reader: BinaryIO) -> bytes | None:
    """The request line and headers (None when the client closed without a request)."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(_MAX_HEADER)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return b"".join(lines).rstrip(b"\r\n")
        lines.append(line)
        if sum(len(x) for x in lines) > _MAX_HEADER:
            raise OSError("request head too large")


def _parse_head(head: bytes) -> tuple[Request, bytes]:
    """The request, and its head rewritten to ask the engine to close after answering."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    path, _, query = target.partition("?")
    headers = [h for h in lines[1:] if not h.lower().startswith(("connection:", "keep-alive:"))]
    raw = "\r\n".join([lines[0], *headers, "Connection: close"]) + "\r\n\r\n"
    return Request(method, _VERSION_PREFIX.sub("", path), query), raw.encode("latin-1")


def _header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _read_body(reader: BinaryIO, head: bytes) -> bytes:
    """The request body exactly as sent: Content-Length bytes, or every chunk up to the
    last one and its trailer, framing included (it is forwarded as it came)."""
    length = _header(head, "content-length")
    if length is not None:
        return reader.read(int(length))
    if (_header(head, "transfer-encoding") or "").lower() != "chunked":
        return b""
    body = b""
    while True:
        size_line = reader.readline(_MAX_HEADER)
        body += size_line
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (trailer := reader.readline(_MAX_HEADER)) not in (b"\r\n", b"\n", b""):
                body += trailer
            return body + b"\r\n"
        body += reader.read(size + 2)  # the chunk and its CRLF


def _reply_bytes(reply: Reply) -> bytes:
    body = json.dumps({"message": reply.message}).encode()
    reason = _REASONS.get(reply.status, "Error")
    head = (
        f"HTTP/1.1 {reply.status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
