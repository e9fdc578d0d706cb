"""``ccci residual``: look for what is left of a stack, waiting a bounded time for it to go."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ccci.errors import CcciError
from ccci.policy.model import OrphanStackPolicy

_POLL_SECONDS = 0.5


def find_residual(
    workspace: Any, stack: str, wait: timedelta, env_file: str | None
) -> list[tuple[str, str]]:
    """Leftovers of ``stack`` on the one targeted host, after waiting up to ``wait``."""
    from ccci.facts.docker import gather
    from ccci.facts.model import SCOPE_STACKS
    from ccci.reap import leftovers
    from ccci.workspace import connector_for

    targets = workspace.targets()
    if len(targets) != 1:
        names = ", ".join(t.host.name for t in targets)
        raise CcciError(f"residual looks at one host; narrow with --limit (matched: {names})")
    target = targets[0]
    if env_file is None:
        env_file = next(
            (
                p.env_file_for(stack)
                for p in target.policies
                if isinstance(p, OrphanStackPolicy) and p.env_file
            ),
            "",
        )
    import docker.errors

    conn = connector_for(target.host)
    deadline = time.monotonic() + wait.total_seconds()
    try:
        while True:
            facts = gather(conn, scope=SCOPE_STACKS)
            if env_file:
                facts = replace(facts, files=(conn.stat_file(env_file),))
            found = leftovers(facts, stack, env_file)
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(_POLL_SECONDS)
    except docker.errors.DockerException as exc:
        raise CcciError(f"{target.host.name}: cannot reach {conn.docker_host}: {exc}") from None
    finally:
        conn.close()
