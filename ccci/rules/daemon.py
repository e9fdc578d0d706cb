"""DaemonPolicy: the daemon is as the host promises, else a manual action says what to do.

ccci never writes credentials or daemon settings; these are an operator's to change.
"""

from __future__ import annotations

from ccci.plan.address import AddressKind, addr
from ccci.plan.model import Manual, Noop
from ccci.policy.model import DaemonPolicy
from ccci.quantities import parse_api_version
from ccci.rules import Context, RuleOutput


def _version(text: str) -> tuple[int, int] | None:
    """The engine's API version, or None when it reported none ccci can read."""
    try:
        return parse_api_version(text)
    except ValueError:
        return None


def _registry(policy: DaemonPolicy, ctx: Context) -> RuleOutput:
    name, source = policy.meta.name, policy.meta.source
    address = addr(AddressKind.DAEMON, f"registry_auth:{policy.registry}")
    label = f"registry auth for {policy.registry}"
    config = ctx.facts.client_config(policy.client_config)
    as_user = f" -u {policy.registry_user}" if policy.registry_user else ""
    login = (
        f"run `docker login{as_user} {policy.registry}` "
        f"as the user whose config is {policy.client_config}"
    )
    if config is None:
        yield Manual(address, label, f"{policy.client_config} was not read", login, name, source)
        return
    if not config.found or config.error:
        why = config.error or "does not exist"
        yield Manual(address, label, f"{policy.client_config} {why}", login, name, source)
        return
    entries = [a for a in config.auths if a.registry == policy.registry]
    if not entries:
        helper = (
            f" (credsStore {config.creds_store} may hold it; ccci does not ask helpers)"
            if config.creds_store
            else ""
        )
        yield Manual(
            address,
            label,
            f"no auth entry for {policy.registry} in {policy.client_config}{helper}",
            login,
            name,
            source,
        )
        return
    entry = entries[0]
    if policy.registry_user and entry.user and entry.user != policy.registry_user:
        yield Manual(
            address,
            label,
            f"auth entry for {policy.registry} is for user {entry.user}, "
            f"expected {policy.registry_user}",
            login,
            name,
            source,
        )
        return
    who = f" (user {entry.user})" if entry.user else f" ({entry.via})"
    yield Noop(address, label, f"auth entry present{who}", name, source)


def plan_daemon(policy: DaemonPolicy, ctx: Context) -> RuleOutput:
    """The DaemonPolicy rule: drift only ever yields a manual action, because credentials and daemon
    settings are the operator's to change; a setting the policy leaves out is not checked."""
    daemon = ctx.facts.daemon
    name, source = policy.meta.name, policy.meta.source
    if policy.registry:
        yield from _registry(policy, ctx)
    if policy.data_root:
        address, label = addr(AddressKind.DAEMON, "data_root"), "data-root"
        if daemon.data_root != policy.data_root:
            yield Manual(
                address,
                label,
                f"data-root is {daemon.data_root}, expected {policy.data_root}",
                f'set "data-root": "{policy.data_root}" in /etc/docker/daemon.json '
                "(NixOS: virtualisation.docker.daemon.settings.data-root) and restart dockerd",
                name,
                source,
            )
        else:
            yield Noop(address, label, f"data-root is {daemon.data_root}", name, source)
    if policy.storage_driver:
        address, label = addr(AddressKind.DAEMON, "storage_driver"), "storage driver"
        if daemon.storage_driver != policy.storage_driver:
            yield Manual(
                address,
                label,
                f"storage driver is {daemon.storage_driver}, expected {policy.storage_driver}",
                f'set "storage-driver": "{policy.storage_driver}" in /etc/docker/daemon.json '
                "and restart dockerd (images must be pulled again)",
                name,
                source,
            )
        else:
            yield Noop(address, label, f"storage driver is {daemon.storage_driver}", name, source)
    if policy.min_api_version:
        address, label = addr(AddressKind.DAEMON, "api_version"), "API version"
        wanted = ".".join(map(str, policy.min_api_version))
        have = _version(daemon.api_version)
        if have is None or have < policy.min_api_version:
            yield Manual(
                address,
                label,
                f"engine API {daemon.api_version or 'unknown'} < {wanted}",
                f"upgrade the Docker engine to one that speaks API {wanted} or later",
                name,
                source,
            )
        else:
            yield Noop(address, label, f"engine API {daemon.api_version} ≥ {wanted}", name, source)
