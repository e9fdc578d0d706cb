"""What the nightly's sandbox must leave writable, read from the policies it runs.

The nightly runs with ``ProtectSystem=full`` and ``ProtectHome=read-only``: everything is
read-only but the paths in ``ReadWritePaths=``. A fixed list there goes stale the day a
policy reaps env files under ``/root/.abra`` (the reap then fails every night with a
read-only file system), so the list is derived: the unit folders TimerPolicies write and
mask units in, and the fixed folder above every env file an OrphanStackPolicy reaps. The
state directory is the caller's (it is an option of the command the unit runs).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import replace

from ccci.errors import InputError
from ccci.policy.model import OrphanStackPolicy, Policy, TimerPolicy
from ccci.systemd.values import check_path

_GLOB = frozenset("*?[{")


def fixed_folder(pattern: str) -> str:
    """The deepest folder every file matching a shell pattern is under:
    ``/root/.abra/servers/*/*.env`` → ``/root/.abra/servers``."""
    fixed: list[str] = []
    for part in posixpath.normpath(pattern).split("/")[:-1]:
        if _GLOB & set(part):
            break
        fixed.append(part)
    return "/".join(fixed) or "/"


def env_file_folders(policies: Iterable[Policy]) -> list[str]:
    """The folders env files are reaped from; a pattern that could be anywhere is an error
    (a sandbox writable at / is no sandbox)."""
    found: set[str] = set()
    for policy in policies:
        if not isinstance(policy, OrphanStackPolicy) or "env_file" not in policy.reap:
            continue
        if not policy.env_file_glob:
            continue
        folder = fixed_folder(policy.env_file_glob)
        try:
            if folder == "/":
                raise ValueError("env files anywhere under / would leave all of it writable")
            check_path(folder)
        except ValueError as exc:
            raise InputError(
                policy.meta.source, f"env_file: the nightly's sandbox cannot hold it: {exc}"
            ) from None
        found.add(folder)
    return sorted(found)


def unit_folders(policies: Iterable[Policy]) -> list[str]:
    """The unit folders TimerPolicies write units and masks in."""
    return sorted(
        {
            p.unit_dir.rstrip("/") or "/"
            for p in policies
            if isinstance(p, TimerPolicy) and (p.present or p.absent)
        }
    )


def writable_paths(policies: Iterable[Policy]) -> list[str]:
    """Every folder the policies write in, beyond the state directory."""
    listed = list(policies)
    return sorted({*unit_folders(listed), *env_file_folders(listed)})


def finish_timers(policies: tuple[Policy, ...]) -> tuple[Policy, ...]:
    """Re-render each hardened timer that runs ccci with the writable paths of the host's
    policies added; once per host, after every policy is built."""
    from ccci.systemd.units import render_timer_units

    wanted = [s for p in policies if isinstance(p, TimerPolicy) for s in p.present if s.runs_ccci]
    if not wanted:
        return policies
    derived = writable_paths(policies)
    done: list[Policy] = []
    for policy in policies:
        if isinstance(policy, TimerPolicy) and any(s.runs_ccci for s in policy.present):
            specs = []
            for spec in policy.present:
                if spec.runs_ccci and spec.values.get("hardening"):
                    paths = sorted({*spec.values["read_write_paths"], *derived})
                    values = {**spec.values, "read_write_paths": paths}
                    units = render_timer_units(values)
                    spec = replace(
                        spec, timer_unit=units.timer, service_unit=units.service, values=values
                    )
                specs.append(spec)
            policy = replace(policy, present=tuple(specs))
        done.append(policy)
    return tuple(done)
