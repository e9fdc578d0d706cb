"""A live plan's connections, opened while its policies load.

Loading, rendering and validating the policies is most of ccci's start-up, and the engines sit
idle meanwhile; over SSH, a host's first read also waits for its master's handshake. So a live
plan makes the connectors of the hosts it gathers first, starts on each the reads every gather
of the run's scope makes (:func:`ccci.facts.docker.opening_reads`; over SSH that starts the
master), and only then loads the policies. Gathering then finds those answers ready.

What this changes is when reads start, never what is read or decided: the early reads are the
very calls gather makes, each answer serves one call, and nothing is written. A policy error
still ends the run before any change; the answers are then dropped unread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ccci.config.inventory import Host

if TYPE_CHECKING:
    from ccci.connectors.base import Connector


class _Opened:
    """One host's connector and the thread that opens it (connects, starts the early reads)."""

    def __init__(self, conn: Connector, scope: str) -> None:
        self.conn = conn
        self.failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._open, args=(scope,), daemon=True, name=f"open {conn.host}"
        )
        self._thread.start()

    def _open(self, scope: str) -> None:
        from ccci.facts.docker import opening_reads

        try:
            api = self.conn.api  # over SSH: the master's start
        except BaseException as exc:  # the gather that takes this connector reports it
            self.failure = exc
            return
        prefetch = getattr(api, "prefetch", None)  # the SDK's client has none: reads as before
        if prefetch is not None:
            prefetch(opening_reads(scope))

    def wait(self) -> None:
        """Until the connector is made and its early reads started (not answered)."""
        self._thread.join()

    def opening(self) -> bool:
        """Whether it is still connecting (an SSH master that has not answered yet)."""
        return self._thread.is_alive()


class Opening:
    """The connectors of the first ``forks`` hosts, opening; each handed to its gather once."""

    def __init__(
        self,
        hosts: Iterable[Host],
        scope: str,
        forks: int,
        make: Callable[[Host], Connector],
    ) -> None:
        self._make = make
        # Only the hosts gathering starts with: each later host is opened when its turn comes,
        # so no more hosts are reached at once than --forks allows.
        first = list(hosts)[: max(forks, 1)]
        self._opened = {host.name: _Opened(make(host), scope) for host in first}
        self._lock = threading.Lock()

    def take(self, host: Host) -> Connector:
        """The host's connector, its early reads under way (a new one for a host not opened
        here). A host that could not be reached raises that failure now, once: the gather
        reports it as it would have found it, without a second attempt's wait."""
        from ccci.connectors.local import ConnectionFailed

        with self._lock:
            opened = self._opened.pop(host.name, None)
        if opened is None:
            return self._make(host)
        opened.wait()
        if isinstance(opened.failure, ConnectionFailed):
            opened.conn.close()
            raise opened.failure
        return opened.conn

    def close(self) -> None:
        """Close every connector no gather took (the run ended early: a policy error). One still
        opening is left to its daemon thread and the process's exit."""
        with self._lock:
            left, self._opened = self._opened, {}
        for opened in left.values():
            if not opened.opening():
                opened.conn.close()
