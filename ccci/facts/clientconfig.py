"""Read which registries a Docker client config has credentials for, never the secrets.

``docker login`` stores ``{"auths": {"<registry>": {"auth": base64("user:secret")}}}``, or
delegates to a credential helper (``credsStore``, ``credHelpers``). Like ``docker info``'s
old "Username:" line, ccci takes the user name from the entry; the secret half is dropped
at once and never kept in any fact.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ccci.facts.model import ClientConfig, RegistryAuth
from ccci.facts.refs import registry_host


def _user(entry: dict[str, Any]) -> str:
    if isinstance(entry.get("username"), str):
        return str(entry["username"])
    blob = entry.get("auth")
    if not isinstance(blob, str) or not blob:
        return ""
    try:
        decoded = base64.b64decode(blob, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    # "user:secret"; a blob with no colon is a bare token, and names no user.
    user, sep, _ = decoded.partition(":")
    return user if sep else ""


def parse_client_config(path: str, text: str) -> ClientConfig:
    """Pure: the registries and users a config's text holds credentials for."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ClientConfig(path=path, found=True, error=f"not JSON: {exc.msg}")
    if not isinstance(data, dict):
        return ClientConfig(path=path, found=True, error="not a JSON object")
    for section in ("auths", "credHelpers"):
        if not isinstance(data.get(section) or {}, dict):
            return ClientConfig(path=path, found=True, error=f"{section} is not a JSON object")
    store = data.get("credsStore") or ""
    if not isinstance(store, str):
        return ClientConfig(path=path, found=True, error="credsStore is not a string")
    auths: list[RegistryAuth] = []
    for key, entry in (data.get("auths") or {}).items():
        if isinstance(entry, dict):
            auths.append(RegistryAuth(registry_host(key), _user(entry), "auths"))
    for key, helper in (data.get("credHelpers") or {}).items():
        auths.append(RegistryAuth(registry_host(key), "", f"credential helper {helper}"))
    return ClientConfig(
        path=path,
        found=True,
        auths=tuple(auths),
        creds_store=store,
    )


def read_client_config(path: str) -> ClientConfig:
    """The I/O edge: read the file (missing or unreadable is a fact, not an error)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return ClientConfig(path=path, found=False)
    except (OSError, UnicodeDecodeError) as exc:
        return ClientConfig(path=path, found=False, error=str(getattr(exc, "strerror", exc)))
    return parse_client_config(path, text)
