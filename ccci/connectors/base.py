"""What the rest of ccci calls on a connector, as one Protocol.

Gathering, apply, the reap, residual checks and last use take a :class:`Connector`, not
``Any``: mypy then proves the local connector (and the SSH one, which subclasses it) gives
each of them what it calls, and a unit test's fake says by its type what it stands in for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ccci.facts.model import ClientConfig, DiskUsage, FileFact, Unit, UnitFile


class Connector(Protocol):
    """One host's engine, files and systemd. Reads return ``None`` for what is not there;
    refusals raise the engine's, the OS's or ccci's own errors (never a bare Exception)."""

    host: str
    # Where the engine is reached, as error messages name it (``unix:///…``, ``fake://…``).
    docker_host: str

    # ---- the engine: reads ----------------------------------------------------------
    @property
    def api(self) -> Any: ...

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any: ...

    def inspect_image(self, image_id: str) -> dict[str, Any] | None: ...

    def inspect_container(self, container_id: str) -> dict[str, Any] | None: ...

    def containers_of_image(self, image_id: str) -> list[dict[str, Any]]: ...

    def stack_containers(self, stack: str) -> list[dict[str, Any]]: ...

    def stack_services(self, stack: str) -> list[dict[str, Any]]: ...

    def events(self, since: datetime, until: datetime) -> list[dict[str, Any]]: ...

    # ---- the engine: acts -----------------------------------------------------------
    def remove_container(self, container_id: str) -> None: ...

    def remove_image(self, image_id: str) -> None: ...

    def untag_image(self, ref: str) -> None: ...

    def pull(self, ref: str) -> str: ...

    def remove_build_cache(self, record_id: str) -> int: ...

    def remove_object(self, kind: str, ident: str) -> None: ...

    # ---- the host: files, disks, systemd --------------------------------------------
    def disk_usage(self, path: str) -> DiskUsage: ...

    def client_config(self, path: str) -> ClientConfig: ...

    def stat_file(self, path: str) -> FileFact: ...

    def glob(self, pattern: str) -> list[str]: ...

    def remove_file(self, path: str) -> None: ...

    def write_file(self, path: str, content: str) -> None: ...

    def systemctl(self, verb: str, *units: str, options: Sequence[str] = ()) -> str: ...

    def units(self, names: list[str]) -> tuple[str, tuple[Unit, ...]]: ...

    def unit_file(self, path: str) -> UnitFile: ...

    def close(self) -> None: ...


if TYPE_CHECKING:
    from ccci.connectors.local import LocalConnector
    from ccci.connectors.ssh import SshConnector

    def _both_are_connectors(local: LocalConnector, ssh: SshConnector) -> list[Connector]:
        """Never called: mypy checks here that both connectors satisfy the Protocol."""
        return [local, ssh]
