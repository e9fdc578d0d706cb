"""Which connector reaches a host: Ansible's ``ansible_connection``, or ``-c/--connection``.

The workspace reaches every host through :func:`connector_for` (``ccci.run.workspace``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccci.connectors.local import LocalConnector
from ccci.errors import CcciError

CONNECTIONS = ("local", "ssh")
# Ansible connects to every host over ssh unless told otherwise; ccci's shipped inventory and
# every nightly oneshot describe the machine ccci runs on, so an inventory that does not say
# ``ansible_connection`` means "local": a fleet says ``ssh`` once, in its group's vars (or
# ``-c ssh``), and a nightly never reaches out over ssh to itself by surprise.
DEFAULT_CONNECTION = "local"
# As in Ansible, these names are this machine whatever the default.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def connection_of(host: str, host_vars: Mapping[str, Any], override: str | None = None) -> str:
    """``override`` (the command line), then ``ansible_connection``, then the default;
    ``localhost`` is local unless its own ``ansible_connection`` says otherwise (as in
    Ansible, ``-c ssh`` does not turn this machine into a remote one)."""
    own = str(host_vars.get("ansible_connection") or "")
    chosen = own if host in LOCAL_NAMES else (override or own)
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
