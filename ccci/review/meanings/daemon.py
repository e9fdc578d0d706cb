"""DaemonPolicy: expectations only. ccci never changes the daemon, so a change moves what
is *reported*: a new check is safer, a dropped check lets drift go unnoticed."""

from __future__ import annotations

from ccci.policy.model import DaemonPolicy
from ccci.review.meanings.base import Meaning, Risk

_FIELDS = {
    "registry": ("spec.registry_auth.registry", "registry auth for"),
    "registry_user": ("spec.registry_auth.user", "registry auth user"),
    "client_config": ("spec.registry_auth.config", "client config"),
    "data_root": ("spec.data_root", "data_root"),
    "storage_driver": ("spec.storage_driver", "storage_driver"),
    "min_api_version": ("spec.min_api_version", "min_api_version"),
}


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ".".join(map(str, value))
    return str(value)


def changed(old: DaemonPolicy, new: DaemonPolicy) -> list[Meaning]:
    """A check turned on is safer, one turned off riskier (drift goes unreported), a new expected
    value neutral; the client config counts only while a registry is checked."""
    found = []
    for name, (field, label) in _FIELDS.items():
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if name == "client_config" and not (old.registry and new.registry):
            continue  # only read when a registry is checked
        if not a:
            found.append(
                Meaning(
                    field,
                    f"now checks {label} {_shown(b)}",
                    Risk.SAFER,
                    "a host that differs shows a manual action",
                )
            )
        elif not b:
            found.append(
                Meaning(
                    field,
                    f"no longer checks {label} {_shown(a)}",
                    Risk.RISKIER,
                    "drift from it would go unreported",
                )
            )
        else:
            found.append(
                Meaning(
                    field,
                    f"{label} {_shown(a)} → {_shown(b)}",
                    Risk.NEUTRAL,
                    f"hosts still at {_shown(a)} get a manual action",
                )
            )
    return found


def _checks(policy: DaemonPolicy) -> str:
    names = [
        label if name != "registry" else f"registry auth for {policy.registry}"
        for name, (_, label) in _FIELDS.items()
        if getattr(policy, name) and name not in ("registry_user", "client_config")
    ]
    return ", ".join(names) or "nothing"


def added(policy: DaemonPolicy) -> Meaning:
    """Safer: a DaemonPolicy reports drift as manual actions and never changes the host."""
    return Meaning(
        "",
        f"policy {policy.meta.name} added: checks {_checks(policy)}",
        Risk.SAFER,
        "drift shows as manual actions; nothing is changed",
    )


def removed(policy: DaemonPolicy) -> Meaning:
    """Riskier: the daemon's drift would go unreported."""
    return Meaning(
        "",
        f"policy {policy.meta.name} removed: it checked {_checks(policy)}",
        Risk.RISKIER,
        "daemon drift would go unreported",
    )
