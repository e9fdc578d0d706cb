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
    def api(self) -> Any:
        """The engine's client, for gathering's list and inspect calls (docker's APIClient, or
        plain HTTP in front of it on a local socket); the SDK is imported only when needed."""

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, leave_out: tuple[str, ...] = ()
    ) -> Any:
        """GET an endpoint no client method covers (``/system/df?type=…``), decoded JSON; the
        answer may come without the top-level keys in ``leave_out`` (what the caller never
        reads and is costly to decode)."""

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        """The build cache's records asked of BuildKit itself, in ``/system/df``'s shape, or
        None when the engine cannot be asked that way (then ``/system/df`` is): before API
        1.42 that call sizes everything else too."""

    def inspect_image(self, image_id: str) -> dict[str, Any] | None:
        """The image's inspect (by id or reference) just before acting on it; None when it is
        gone."""

    def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        """The container's inspect, for its exit time or a last check; None when it is gone."""

    def containers_of_image(self, image_id: str) -> list[dict[str, Any]]:
        """Containers in any state created from the image or one built on it: apply's last look for
        a user before removing it."""

    def stack_containers(self, stack: str) -> list[dict[str, Any]]:
        """Containers of a stack's tasks, in any state: the reap waits until none is left."""

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        """The stack's services by label, as the engine has them now (not as gathered)."""

    def events(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Container and image events between two moments, bounded: the uses of images a run made
        between two ccci runs."""

    # ---- the engine: acts -----------------------------------------------------------
    def remove_container(self, container_id: str) -> None:
        """Remove a stopped container, never forced and never with its volumes: the engine's refusal
        of a running one backs up the precondition."""

    def remove_image(self, image_id: str) -> None:
        """Remove one image by id, never forced, leaving its untagged parents (not in the plan)."""

    def untag_image(self, ref: str) -> None:
        """Remove one reference; the engine deletes the image with its last one."""

    def pull(self, ref: str) -> str:
        """Pull ``ref``; the engine's last status line, or the registry's own words as the error."""

    def remove_build_cache(self, record_id: str) -> int:
        """Prune one build cache record by id; the bytes the engine says it freed."""

    def remove_object(self, kind: str, ident: str) -> None:
        """Remove one service, secret, config, network or volume (``kind`` as a reap names it);
        already gone is done."""

    # ---- the host: files, disks, systemd --------------------------------------------
    def disk_usage(self, path: str) -> DiskUsage:
        """How full the filesystem holding ``path`` is, as ``df`` counts it (not what Docker
        holds)."""

    def client_config(self, path: str) -> ClientConfig:
        """The Docker client config at ``path``: which registries have credentials, never the
        secrets themselves."""

    def stat_file(self, path: str) -> FileFact:
        """A file's existence, size, time and whose it is (an env file's ``DOMAIN`` and
        ``STACK_NAME``); nothing else of it is read."""

    def glob(self, pattern: str) -> list[str]:
        """Paths matching a shell pattern, sorted (abra's env files of every app on a server)."""

    def remove_file(self, path: str) -> None:
        """Remove a file; already gone is done."""

    def write_file(self, path: str, content: str) -> None:
        """Write atomically: a reader sees the old file or the new, never half."""

    def systemctl(self, verb: str, *units: str, options: Sequence[str] = ()) -> str:
        """Run ``systemctl VERB OPTIONS -- UNITS`` on the host; its stdout, or an error naming the
        command and what systemd said."""

    def units(self, names: list[str]) -> tuple[str, tuple[Unit, ...]]:
        """systemd's state and the named units; without a usable systemd the units are unknown (none
        returned), not absent."""

    def unit_file(self, path: str) -> UnitFile:
        """What is at ``path`` in a unit directory, and whether ccci could write there (never in the
        Nix store)."""

    def close(self) -> None:
        """Release the engine connection and, over SSH, the master and its private folder."""


if TYPE_CHECKING:
    from ccci.connectors.local import LocalConnector
    from ccci.connectors.ssh import SshConnector

    def _both_are_connectors(local: LocalConnector, ssh: SshConnector) -> list[Connector]:
        """Never called: mypy checks here that both connectors satisfy the Protocol."""
        return [local, ssh]
