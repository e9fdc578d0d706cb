"""Reap one orphaned stack, in the order that lets each step succeed, then prove it is gone.

Services go first; their tasks' containers must be gone before the secrets, configs and
networks they hold can be removed; networks linger for seconds after their containers, so
they are retried; volumes go last of the engine's objects, then abra's env file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ccci.errors import explain
from ccci.facts.model import STACK_LABEL, Facts

_POLL_SECONDS = 0.25
SINGULAR = {
    "services": "service",
    "secrets": "secret",
    "configs": "config",
    "networks": "network",
    "volumes": "volume",
    "containers": "container",
    "env_file": "env file",
}


class ReapFailed(Exception):
    """Something of the stack could not be removed; the message names each leftover."""


def leftovers(facts: Facts, stack: str, env_file: str = "") -> list[tuple[str, str]]:
    """Every (kind, name) of ``stack`` still present: labelled objects, abra's secrets by
    name prefix, task containers, the env files that say they are its (see
    ``ccci.facts.stacks``), and ``env_file`` when it is named."""
    found: list[tuple[str, str]] = []
    current = facts.stack(stack)
    if current is not None:
        for kind, names in current.objects().items():
            found += [(SINGULAR[kind], name) for name in names]
    found += [("container", c.name) for c in facts.containers if c.labels.get(STACK_LABEL) == stack]
    owned = [f.path for f in current.env_files] if current is not None else []
    if env_file and env_file not in owned:
        file = facts.file(env_file)
        if file is not None and file.exists:
            owned.append(env_file)
    found += [(SINGULAR["env_file"], path) for path in owned]
    return found


def _wait_until(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def reap_stack(
    conn: Any,
    stack: str,
    kinds: dict[str, list[str]],
    wait_seconds: float,
    current: Callable[[], Facts],
) -> None:
    """Remove what ``kinds`` names of ``stack`` as the host has it now; raise ReapFailed.

    ``current`` gathers fresh stack facts; objects are taken from it, not from the plan,
    so an object that appeared since is reaped too and one already gone is no error.
    """
    errors: list[str] = []
    env_file = (kinds.get("env_file") or [""])[0]
    facts = current()
    now = facts.stack(stack)
    objects = now.objects() if now is not None else {}

    def remove_all(kind: str) -> None:
        for name in objects.get(kind, ()):
            try:
                conn.remove_object(kind, name)
            except Exception as exc:
                errors.append(f"{SINGULAR[kind]} {name}: {explain(exc)}")

    if "services" in kinds:
        remove_all("services")
    if not conn.stack_services(stack):
        # No service left (reaped now, or removed by a teardown killed halfway): its task
        # containers still hold volumes and networks for a few seconds; wait them out.
        gone = _wait_until(
            lambda: not conn.stack_containers(stack) and not conn.stack_services(stack),
            wait_seconds,
        )
        if not gone:
            names = [c["Names"][0].lstrip("/") for c in conn.stack_containers(stack)]
            raise ReapFailed(
                f"tasks of {stack} still present after {wait_seconds:.0f}s: {', '.join(names)}"
            )
    for kind in ("secrets", "configs"):
        if kind in kinds:
            remove_all(kind)
    if "networks" in kinds:
        pending = list(objects.get("networks", ()))
        last: dict[str, str] = {}

        def networks_removed() -> bool:
            for name in list(pending):
                try:
                    conn.remove_object("networks", name)
                    pending.remove(name)
                except Exception as exc:  # still attached for a moment after its containers go
                    last[name] = explain(exc)
            return not pending

        if not _wait_until(networks_removed, wait_seconds):
            errors += [f"network {n}: {last.get(n, 'still present')}" for n in pending]
    if "volumes" in kinds:
        remove_all("volumes")
    if env_file:
        try:
            conn.remove_file(env_file)
        except OSError as exc:
            errors.append(f"env file {env_file}: {exc.strerror}")
    left = leftovers(current(), stack, env_file)
    wanted = {SINGULAR[k] for k in kinds} | {"container"}
    left = [(kind, name) for kind, name in left if kind in wanted]
    if left or errors:
        named = {e.split(":", 1)[0] for e in errors}
        detail = errors + [f"{k} {n} is left" for k, n in left if f"{k} {n}" not in named]
        raise ReapFailed(f"{stack} not fully reaped: {'; '.join(detail)}")
