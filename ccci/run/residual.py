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
    """Leftovers of ``stack`` on the one targeted host, after waiting up to ``wait``.

    The facts are gathered as the plan gathers them for stacks (abra's env files of every
    app included), so what belongs to ``stack`` is decided by the same owner as in the
    plan and the reap: a sibling run-app's secret (``<stack>_uk_…``) is not counted as
    left of ``stack``.
    """
    from ccci.apply.reap import leftovers
    from ccci.facts.model import SCOPE_STACKS
    from ccci.run.gather import gather_with
    from ccci.run.workspace import connector_for

    targets = workspace.targets()
    if len(targets) != 1:
        names = ", ".join(t.host.name for t in targets)
        raise CcciError(f"residual looks at one host; narrow with --limit (matched: {names})")
    # Only the orphan policies say where abra's env files are; the rest (timers, client
    # configs) would only make teardown's last call slower.
    target = replace(
        targets[0],
        policies=tuple(p for p in targets[0].policies if isinstance(p, OrphanStackPolicy)),
    )
    from ccci.connectors.engineapi import is_docker_error

    conn = connector_for(target.host)
    deadline = time.monotonic() + wait.total_seconds()
    try:
        while True:
            facts = gather_with(conn, target, SCOPE_STACKS, plan_at=None)
            if env_file and facts.file(env_file) is None:
                facts = replace(facts, files=(*facts.files, conn.stat_file(env_file)))
            found = _left(leftovers, facts, stack, env_file)
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(_POLL_SECONDS)
    except Exception as exc:
        if not is_docker_error(exc):  # reads of a local engine never import the SDK
            raise
        raise CcciError(f"{target.host.name}: cannot reach {conn.docker_host}: {exc}") from None
    finally:
        conn.close()


def _left(leftovers: Any, facts: Any, stack: str, env_file: str | None) -> list[tuple[str, str]]:
    """What ``leftovers`` finds, with abra's env files of the stack (the one named on the
    command line, else those the stack's owner found), each once."""
    current = facts.stack(stack)
    paths = [env_file] if env_file else [f.path for f in getattr(current, "env_files", ())]
    found: list[tuple[str, str]] = []
    for path in paths or [""]:
        found += leftovers(facts, stack, path)
    return list(dict.fromkeys(found))
