"""Reap one orphaned stack, in the order that lets each step succeed, then prove it is gone.

Services go first; their tasks' containers must be gone before the secrets, configs and
networks they hold can be removed; networks linger for seconds after their containers, so
they are retried; volumes go last of the engine's objects, then abra's env file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ccci.connectors.base import Connector
from ccci.errors import CcciError, explain
from ccci.facts.model import STACK_LABEL, Facts, FileFact
from ccci.plan.model import Target

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


_PLURAL = {singular: plural for plural, singular in SINGULAR.items()}
_GONE = FileFact(path="", exists=False)


class ReapFailed(CcciError):
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


def _still_planned(
    facts: Facts, targets: tuple[Target, ...]
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Per kind, (name, id) of each target still there as planned; and each target
    re-created since the plan (another id under its name), which is left alone."""
    ids: dict[str, list[tuple[str, str]]] = {}
    skipped: list[str] = []
    for target in targets:
        if target.kind == "env_file":
            continue
        now_id = _present(facts, target.kind, target.name)
        if now_id is None:
            continue  # gone already: nothing to do
        if target.id and now_id != target.id:
            skipped.append(f"{SINGULAR[target.kind]} {target.name} (re-created since the plan)")
            continue
        ids.setdefault(target.kind, []).append((target.name, now_id))
    return ids, skipped


def _remove(
    conn: Connector, ids: dict[str, list[tuple[str, str]]], kind: str, errors: list[str]
) -> None:
    """Remove each object of ``kind`` by id; a refusal is noted in ``errors``, not raised,
    so the rest of the stack is still reaped."""
    for name, ident in ids.get(kind, ()):
        try:
            conn.remove_object(kind, ident)
        except Exception as exc:
            errors.append(f"{SINGULAR[kind]} {name}: {explain(exc)}")


def _wait_for_tasks(conn: Connector, swarm: Connector, stack: str, wait_seconds: float) -> None:
    """With no service left (reaped now, or removed by a teardown killed halfway), wait
    until its task containers, which still hold volumes and networks for a few seconds,
    are gone; ReapFailed naming them if they outlast ``wait_seconds``."""
    if swarm.stack_services(stack):
        return
    gone = _wait_until(
        lambda: not conn.stack_containers(stack) and not swarm.stack_services(stack),
        wait_seconds,
    )
    if not gone:
        names = [c["Names"][0].lstrip("/") for c in conn.stack_containers(stack)]
        raise ReapFailed(
            f"tasks of {stack} still present after {wait_seconds:.0f}s: {', '.join(names)}"
        )


def _remove_networks(
    conn: Connector, networks: list[tuple[str, str]], wait_seconds: float, errors: list[str]
) -> None:
    """Networks stay attached for a moment after their containers go: each is retried
    until removed or ``wait_seconds`` pass; what is left is noted with its last refusal."""
    pending = list(networks)
    last: dict[str, str] = {}

    def networks_removed() -> bool:
        for name, ident in list(pending):
            try:
                conn.remove_object("networks", ident)
                pending.remove((name, ident))
            except Exception as exc:  # still attached for a moment after its containers go
                last[name] = explain(exc)
        return not pending

    if pending and not _wait_until(networks_removed, wait_seconds):
        errors += [f"network {n}: {last.get(n, 'still present')}" for n, _ in pending]


def _present(facts: Facts, kind: str, name: str) -> str | None:
    """The id of the object of that kind and name the engine holds now, or None."""
    if kind == "volumes":
        return name if any(v.name == name for v in facts.volumes) else None
    pool: tuple[Any, ...] = {
        "services": facts.services,
        "secrets": facts.secrets,
        "configs": facts.configs,
        "networks": facts.networks,
    }.get(kind, ())
    return next((o.id for o in pool if o.name == name), None)


def reap_stack(
    conn: Connector,
    stack: str,
    targets: tuple[Target, ...],
    kinds: tuple[str, ...],
    wait_seconds: float,
    current: Callable[[], Facts],
    cluster: Connector | None = None,
) -> list[str]:
    """Remove exactly ``targets`` of ``stack``, then prove they are gone; raise ReapFailed.

    Each target is re-checked on fresh facts and removed by its id, so an object that is
    gone already is no error and one re-created under the same name since the plan is left
    alone. Whatever of the kinds the policy reaps (``kinds``) joined the stack since the
    plan is not removed either: it is returned, one "kind name" each, to be reported.
    What belongs to the stack after the reap is asked of the facts' one owner of that
    (``leftovers``), so a sibling's secret (``<stack>_uk_…``) is not taken for one that
    joined this stack: the facts hold abra's env files, which name the sibling.
    """
    errors: list[str] = []
    planned = {(t.kind, t.name) for t in targets}
    ids, skipped = _still_planned(current(), targets)
    _remove(conn, ids, "services", errors)
    # Whether services are left is the swarm's to say: on a node of a shared swarm view, its
    # cluster host's engine (which removed them first); the task containers are this node's.
    _wait_for_tasks(conn, cluster or conn, stack, wait_seconds)
    _remove(conn, ids, "secrets", errors)
    _remove(conn, ids, "configs", errors)
    _remove_networks(conn, ids.get("networks", []), wait_seconds, errors)
    _remove(conn, ids, "volumes", errors)
    env_files = [t.name for t in targets if t.kind == "env_file"]
    for env_file in env_files:
        try:
            conn.remove_file(env_file)
        except OSError as exc:
            errors.append(f"env file {env_file}: {exc.strerror}")
    after = current()
    removed = {(kind, name) for kind, pairs in ids.items() for name, _ in pairs}
    left = [
        f"{SINGULAR[t.kind]} {t.name}"
        for t in targets
        if (t.kind, t.name) in removed and _present(after, t.kind, t.name) is not None
    ]
    left += [f"env file {p}" for p in env_files if (after.file(p) or _GONE).exists]
    left += [
        f"container {name}"
        for kind, name in leftovers(after, stack)
        if kind == "container" and "services" in kinds
    ]
    if left or errors:
        named = {e.split(":", 1)[0] for e in errors}
        detail = errors + [f"{item} is left" for item in left if item not in named]
        raise ReapFailed(f"{stack} not fully reaped: {'; '.join(detail)}")
    wanted = {SINGULAR[k] for k in kinds if k in SINGULAR}
    appeared = [
        f"{kind} {name}"
        for kind, name in leftovers(after, stack)
        if kind in wanted and kind != "env file" and (_PLURAL[kind], name) not in planned
    ]
    return skipped + appeared
