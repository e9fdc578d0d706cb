"""Which connector reaches a host: Ansible's ``ansible_connection``, or an override.

Not wired into the workspace yet (issue 15's second half does that, with ``-c``): until
then every caller still gets the local connector, and this is the one place to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccci.connectors.local import LocalConnector
from ccci.errors import CcciError

CONNECTIONS = ("local", "ssh")
# Ansible connects to every host over ssh unless told otherwise; ccci's hosts have so far
# all been the machine it runs on (the nightly), so an inventory that does not say
# ``ansible_connection`` keeps meaning "local" until the CLI grows -c/--connection.
DEFAULT_CONNECTION = "local"
# As in Ansible, these names are this machine whatever the default.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def connection_of(host: str, host_vars: Mapping[str, Any], override: str | None = None) -> str:
    """``override`` (the command line), then ``ansible_connection``, then the default;
    ``localhost`` is local unless a connection is named for it."""
    chosen = override or str(host_vars.get("ansible_connection") or "")
    if not chosen:
        chosen = "local" if host in LOCAL_NAMES else DEFAULT_CONNECTION
    if chosen not in CONNECTIONS:
        raise CcciError(
            f"{host}: ansible_connection: {chosen!r} is not one of {', '.join(CONNECTIONS)}"
        )
    return chosen


def connector_for(
    host: str, host_vars: dict[str, Any], override: str | None = None
) -> LocalConnector:
    """A connector of the host's connection kind, not yet connected."""
    if connection_of(host, host_vars, override) == "ssh":
        from ccci.connectors.ssh import SshConnector

        return SshConnector.for_host(host, host_vars)
    return LocalConnector.for_host(host, host_vars)
