"""The engine's read calls over a unix socket with the standard library alone: a local
engine's socket, or the one an SSH master forwards to a remote engine (ccci.connectors.ssh).

Importing the docker SDK (requests, urllib3, ssl, …) costs more than a whole plan's
reads on a busy CI box, and a plan or a janitor run only reads. :class:`EngineReads`
answers the list and inspect calls fact gathering makes by plain HTTP on the socket and
hands every other call (removals, pulls) to the SDK's client, made on first use.

A call the engine refuses (any status from 300 up) raises the SDK's own exception
(``NotFound``, ``APIError``) in the SDK's words, so callers catch and report it as they
always have; only then is the SDK imported.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

UNIX_SCHEME = "unix://"


def is_docker_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the SDK's exceptions, without importing the SDK: when it
    was never imported, nothing can have raised one."""
    errors = sys.modules.get("docker.errors")
    return errors is not None and isinstance(exc, errors.DockerException)


# Protocol lines and headers longer than this are no engine's answer.
_MAX_LINE = 64 * 1024


class _BadAnswer(ConnectionError):
    """The socket closed before a whole answer came, or what came is no HTTP answer."""


def _connect(sock: socket.socket, path: str, timeout: float) -> None:
    """Connect to a unix socket, waiting while its listener's backlog is full: a unix socket
    answers that with EAGAIN at once rather than queueing, and a run's first reads come
    in a burst. A listener that stays full for ``timeout`` is a timeout, as any other."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise TimeoutError(f"{path}: the listener's backlog stayed full") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


class _Answer:
    """One GET over a unix socket, as HTTP/1.0: the engine (Go's net/http) then sends the
    body as it is, never chunked, and closes the connection after it, so its end is the
    body's end. http.client would do this too, but importing it (with email and ssl) costs
    ~13 ms, a tenth of a janitor run, for what a read needs of HTTP: a status line,
    headers and a body read to its end."""

    def __init__(self, socket_path: str, timeout: float, target: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            _connect(self._sock, socket_path, timeout)
            request = (
                f"GET {target} HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"
            )
            self._sock.sendall(request.encode("ascii"))
            self._reader = self._sock.makefile("rb")
            self.status, self.reason = self._status_line()
            self.headers = self._headers()
        except BaseException:
            self._sock.close()
            raise

    def _status_line(self) -> tuple[int, str]:
        line = self._reader.readline(_MAX_LINE)
        if not line:
            raise _BadAnswer("Remote end closed connection without response")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise _BadAnswer(f"not an HTTP answer: {line[:60]!r}")
        return int(code), reason

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        while (line := self._reader.readline(_MAX_LINE)) not in (b"\r\n", b"\n"):
            if not line:
                raise _BadAnswer("the connection closed inside the answer's headers")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    def body(self) -> bytes:
        """The whole body: Content-Length bytes when the engine says how many, else up to the
        close (a chunked body, which an HTTP/1.0 answer never is, is decoded all the same)."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length = self.headers.get("content-length")
        if length is None or not length.isdigit():
            return self._reader.read()
        data = self._reader.read(int(length))
        if len(data) < int(length):
            raise _BadAnswer("the connection closed inside the answer's body")
        return data

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = self._reader.readline(_MAX_LINE).split(b";")[0].strip()
            if not size:
                raise _BadAnswer("the connection closed inside a chunked body")
            if int(size, 16) == 0:
                return
            yield self._reader.read(int(size, 16))
            self._reader.readline(_MAX_LINE)

    def lines(self) -> Iterator[bytes]:
        """The body line by line as it streams (the engine's events), until the close."""
        yield from self._reader

    def close(self) -> None:
        """Close the reader and the socket."""
        self._reader.close()
        self._sock.close()


def _decoded(
    path: str, status: int, reason: str, body: bytes, leave_out: tuple[str, ...] = ()
) -> Any:
    """An answer's JSON, or the SDK's exception for an error status; ``leave_out``: keys the
    caller does not read (only ``/system/df``'s container list is left undecoded)."""
    if status >= 300:
        raise _refusal(status, reason, path, body)
    if not body.strip():
        return None
    if "Containers" in leave_out:
        from ccci.connectors.dfanswer import without_containers

        try:
            found = without_containers(body.decode("utf-8"))
        except UnicodeDecodeError:
            found = None  # decoded whole below, which says what is wrong with it
        if found is not None:
            return found
    return json.loads(body)


def _refusal(status: int, reason: str, path: str, body: bytes) -> Exception:
    """The SDK's exception for an error status, in its words (``500 Server Error for …
    ("engine's message")``), so callers catch and report it as they always have. Asking the
    SDK again instead would double every refused call: a busy ``/system/df`` stays busy."""
    import docker.errors

    try:
        explanation = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        explanation = body.decode(errors="replace").strip()
    side = "Client" if status < 500 else "Server"
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls(f"{status} {side} Error for {path}: {reason}", explanation=explanation or None)


def _query(params: dict[str, Any]) -> str:
    """The SDK's encoding of the parameters it sends: booleans as 1/0 (``status`` as
    true, which the engine wants spelled so), filters as JSON."""
    pairs = []
    for key, value in params.items():
        if key == "filters":
            value = json.dumps(
                {k: [v] if isinstance(v, str) else list(v) for k, v in value.items()}
            )
        elif isinstance(value, bool):
            value = ("true" if value else "false") if key == "status" else int(value)
        pairs.append((key, str(value)))
    return urllib.parse.urlencode(pairs)


class EngineReads:
    """The read calls gathering makes, by the SDK's method names and answers; any other
    attribute is the SDK client's (``sdk`` makes it when first needed).

    ``fail_timeout`` and ``fail_connect`` turn a socket failure into the connector's own
    one-line error, as the SDK client's wrapper does for requests' exceptions. ``before``
    runs ahead of every plain-HTTP read, as the SSH connector's SDK client runs it ahead of
    every request: it restarts an SSH master that expired while idle, so the forwarded
    socket answers again.
    """

    def __init__(
        self,
        socket_path: str,
        timeout: float,
        sdk: Callable[[], Any],
        fail_timeout: Callable[[str, str], Exception],
        fail_connect: Callable[[BaseException], Exception],
        before: Callable[[], None] | None = None,
    ) -> None:
        self._socket_path = socket_path
        self._timeout = timeout
        self._sdk_factory = sdk
        self._sdk: Any = None
        self._fail_timeout = fail_timeout
        self._fail_connect = fail_connect
        self._before = before
        # Reads started before they are asked for (see prefetch), by HTTP target.
        self._early: dict[str, Future[Any]] = {}
        self._recording = threading.local()

    # ---- the SDK, for everything else -----------------------------------------------

    @property
    def sdk(self) -> Any:
        """The SDK's client, made (and the SDK imported) on the first call plain HTTP does not
        answer."""
        if self._sdk is None:
            self._sdk = self._sdk_factory()
        return self._sdk

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.sdk, name)

    def close(self) -> None:
        """Close the SDK's client if one was made; the plain-HTTP reads hold no connection open."""
        if self._sdk is not None:
            self._sdk.close()
            self._sdk = None

    # ---- plain HTTP -----------------------------------------------------------------

    def _ask(self, target: str) -> _Answer:
        if self._before is not None:
            self._before()
        return _Answer(self._socket_path, self._timeout, target)

    def prefetch(self, reads: Iterable[Callable[[EngineReads], object]]) -> None:
        """Start ``reads`` now, each on a daemon thread of its own: the first later GET of the
        same target is answered by that read, its error raised then as if it were read then.

        A run starts the reads every gather makes while its policies load
        (ccci.run.opening), so the engine works while ccci starts. Each answer serves one
        call (a later call of the same read asks the engine again, as apply's fresh facts
        must); one nobody asks for is dropped with this object, and the process never waits
        for it at exit. ``reads`` are plain-HTTP reads (the methods below), called here only
        to learn their targets."""
        self._recording.on = True
        try:
            for read in reads:
                read(self)
        finally:
            self._recording.on = False

    def _start_early(self, path: str, target: str) -> None:
        # Only the bytes are read here; they are decoded when asked for. Decoding a big
        # listing holds the interpreter's lock for milliseconds, and an early read runs
        # while the policies load: the run waits on that load, not on the listing.
        answer: Future[tuple[int, str, bytes]] = Future()

        def fetch() -> None:
            try:
                answer.set_result(self._read(path, target))
            except BaseException as exc:  # handed to the caller that asks, as if read then
                answer.set_exception(exc)

        self._early[target] = answer
        threading.Thread(target=fetch, daemon=True, name=f"early {path}").start()

    def _get(
        self, path: str, params: dict[str, Any] | None, leave_out: tuple[str, ...] = ()
    ) -> Any:
        target = f"{path}?{_query(params)}" if params else path
        if getattr(self._recording, "on", False):
            self._start_early(path, target)
            return None
        early = self._early.pop(target, None)
        status, reason, body = early.result() if early is not None else self._read(path, target)
        return _decoded(path, status, reason, body, leave_out)

    def _read(self, path: str, target: str) -> tuple[int, str, bytes]:
        """The answer's status, reason and body; a socket failure is the connector's error."""
        try:
            answer = self._ask(target)
            try:
                return answer.status, answer.reason, answer.body()
            finally:
                answer.close()
        except TimeoutError:
            raise self._fail_timeout("GET", path) from None
        except OSError as exc:
            raise self._fail_connect(exc) from None

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        """BuildKit's records asked of BuildKit itself over ``/grpc`` (ccci.connectors.buildkit),
        in ``/system/df``'s shape; None when the engine does not answer that way (then
        ``/system/df`` is asked, and says what the engine is up to). A socket that cannot be
        reached, or an answer that does not come within the timeout, is the connector's
        error, as any read's."""
        try:
            from ccci.connectors import buildkit
        except ImportError:  # no h2 (a broken install): /system/df still answers
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                if self._before is not None:
                    self._before()
                sock.settimeout(self._timeout)
                _connect(sock, self._socket_path, self._timeout)
            except TimeoutError:
                raise self._fail_timeout("POST", "/grpc") from None
            except OSError as exc:
                raise self._fail_connect(exc) from None
            try:
                return buildkit.disk_usage(sock, self._timeout)
            except buildkit.Unavailable:
                return None
            except TimeoutError:
                raise self._fail_timeout("POST", "/grpc") from None
            except OSError:  # reset on the way: /system/df says what the engine is up to
                return None
        finally:
            sock.close()

    # ---- the SDK's read methods gathering calls ---------------------------------------

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, leave_out: tuple[str, ...] = ()
    ) -> Any:
        """GET any endpoint (``/system/df?type=…``, which the SDK has no method for); the
        answer may come without the top-level keys in ``leave_out``."""
        return self._get(path, params, leave_out)

    def info(self, *args: Any, **kwargs: Any) -> Any:
        """``/info`` by plain HTTP; a call with arguments gathering never makes goes to the SDK."""
        if args or kwargs:
            return self.sdk.info(*args, **kwargs)
        return self._get("/info", None)

    def version(self, *args: Any, **kwargs: Any) -> Any:
        """``/version`` by plain HTTP; a call with arguments gathering never makes goes to the
        SDK."""
        if args or kwargs:
            return self.sdk.version(*args, **kwargs)
        return self._get("/version", None)

    def images(self, *args: Any, **kwargs: Any) -> Any:
        """``/images/json`` (``all`` only) by plain HTTP; any other argument goes to the SDK."""
        if args or set(kwargs) - {"all"}:
            return self.sdk.images(*args, **kwargs)
        every = bool(kwargs.get("all"))
        return self._get("/images/json", {"only_ids": False, "all": every})

    def containers(self, *args: Any, **kwargs: Any) -> Any:
        """``/containers/json`` with ``all`` and ``filters`` by plain HTTP, every container and no
        sizes; any other argument goes to the SDK."""
        if args or set(kwargs) - {"all", "filters"}:
            return self.sdk.containers(*args, **kwargs)
        params: dict[str, Any] = {
            "all": bool(kwargs.get("all")),
            "limit": -1,
            "size": False,
            "trunc_cmd": False,
        }
        if kwargs.get("filters"):
            params["filters"] = kwargs["filters"]
        return self._get("/containers/json", params)

    def inspect_container(self, container_id: str) -> Any:
        """By id alone, as gathering and apply ask; a 404 is the SDK's NotFound."""
        path = f"/containers/{urllib.parse.quote(container_id, safe='')}/json"
        return self._get(path, None)

    def volumes(self, *args: Any, **kwargs: Any) -> Any:
        """``/volumes`` by plain HTTP; a call with arguments goes to the SDK."""
        if args or kwargs:
            return self.sdk.volumes(*args, **kwargs)
        return self._get("/volumes", None)

    def networks(self, *args: Any, **kwargs: Any) -> Any:
        """``/networks`` by plain HTTP; a call with arguments goes to the SDK."""
        if args or kwargs:
            return self.sdk.networks(*args, **kwargs)
        return self._get("/networks", None)

    def services(self, *args: Any, **kwargs: Any) -> Any:
        """``/services`` with ``status`` and ``filters`` by plain HTTP (the reap's
        ``stack_services`` filters by label); any other argument goes to the SDK."""
        if args or set(kwargs) - {"status", "filters"}:
            return self.sdk.services(*args, **kwargs)
        params: dict[str, Any] = {"status": True} if kwargs.get("status") else {}
        if kwargs.get("filters"):
            params["filters"] = kwargs["filters"]
        return self._get("/services", params or None)

    def tasks(self, *args: Any, **kwargs: Any) -> Any:
        """``/tasks`` by plain HTTP; a call with arguments goes to the SDK."""
        if args or kwargs:
            return self.sdk.tasks(*args, **kwargs)
        return self._get("/tasks", None)

    def secrets(self, *args: Any, **kwargs: Any) -> Any:
        """``/secrets`` by plain HTTP (names and labels; the engine never returns the data); a call
        with arguments goes to the SDK."""
        if args or kwargs:
            return self.sdk.secrets(*args, **kwargs)
        return self._get("/secrets", None)

    def configs(self, *args: Any, **kwargs: Any) -> Any:
        """``/configs`` by plain HTTP; a call with arguments goes to the SDK."""
        if args or kwargs:
            return self.sdk.configs(*args, **kwargs)
        return self._get("/configs", None)

    def nodes(self, *args: Any, **kwargs: Any) -> Any:
        """``/nodes`` by plain HTTP; a call with arguments goes to the SDK."""
        if args or kwargs:
            return self.sdk.nodes(*args, **kwargs)
        return self._get("/nodes", None)

    def events(
        self,
        since: int,
        until: int,
        filters: dict[str, Any] | None = None,
        decode: bool = True,
    ) -> Iterator[Any]:
        """A bounded event stream (``until`` ends it), one decoded event at a time; the
        last-use record reads it on every plan. ``close()`` ends it early."""
        params: dict[str, Any] = {"since": since, "until": until}
        if filters:
            params["filters"] = filters
        try:
            answer = self._ask(f"/events?{_query(params)}")
        except TimeoutError:
            raise self._fail_timeout("GET", "/events") from None
        except OSError as exc:
            raise self._fail_connect(exc) from None
        if answer.status >= 300:
            answer.close()
            return self.sdk.events(since=since, until=until, filters=filters, decode=decode)  # type: ignore[no-any-return]
        return _lines(answer, decode)


def _lines(answer: _Answer, decode: bool) -> Iterator[Any]:
    """The engine writes one JSON object per line; the connection closes with the stream."""
    try:
        for line in answer.lines():
            if line.strip():
                yield json.loads(line) if decode else line
    finally:
        answer.close()
