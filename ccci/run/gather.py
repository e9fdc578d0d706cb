"""Lean gathering: plan once without the slow facts, then ask only for what the plan needs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ccci.facts.model import Facts, Unit, UnitFile
from ccci.policy.load import HostPolicies

# The host's own reads at once, beside the engine's: under the SSH connector's sessions per
# master (MAX_SESSIONS), which the disk reads of the engine's gathering share.
HOST_READS = 4

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ccci.connectors.base import Connector
    from ccci.facts.docker import Prefetch
    from ccci.policy.model import Gate, Policy


def gather_with(
    conn: Connector,
    target: HostPolicies,
    scope: str,
    plan_at: datetime | None,
    last_use: Path | None = None,
    *,
    shared_later: bool = False,
) -> Facts:
    """Docker facts, then what the policies ask about beyond the engine: env files (which
    depend on the stacks), client configs, systemd units and unit files.

    With ``plan_at`` the facts are gathered for planning at that time: only what the rules
    can use. Exited containers too young for any policy are not inspected, and the build
    cache (BuildKit's own call, else the engine's slowest) only when a policy that prunes
    it has its gates open.

    ``shared_later``: the caller shares the swarm's view before planning. A worker's own
    view has no services, so its gates look closed; the slow facts are then left for
    :func:`slow_wanted` and :func:`add_slow` to decide on the view it is planned on.
    """
    from ccci.facts.docker import add_build_cache, gather

    # The build cache's read first, before anything else is even imported: where it is
    # /system/df's, the run waits on it more than on everything else together.
    lean = plan_at is not None
    early = _early_read(conn, target.policies) if lean else None

    from concurrent.futures import ThreadPoolExecutor

    from ccci.plan.needs import (
        client_config_paths,
        disk_paths,
        file_globs,
        file_paths,
        inspect_cutoff,
        systemd_needs,
    )
    from ccci.run.swarmscope import borrows
    from ccci.state import lastuse

    configs = client_config_paths(target.policies)
    unit_names, unit_paths = systemd_needs(target.policies)
    # The host's own reads run beside the engine's, not after them: over SSH each one is a
    # remote command (a session and a login shell, ~0.1 s), and one after another they
    # were most of a remote host's gathering (benchmarks/fleet_scale.py --profile).
    with ThreadPoolExecutor(max_workers=HOST_READS) as pool:
        globbed = [pool.submit(conn.glob, pattern) for pattern in file_globs(target.policies)]
        systemd = pool.submit(_systemd, conn, unit_names, unit_paths, lean)
        client_configs = [pool.submit(conn.client_config, p) for p in configs]
        facts = gather(
            conn,
            disk_paths(target.policies),
            scope=scope,
            build_cache=not lean,
            inspect_created_before=inspect_cutoff(target.policies, plan_at) if plan_at else None,
        )
        found = {p for done in globbed for p in done.result()}
        files = sorted(set(file_paths(target.policies, facts)) | found)
        stats = tuple(pool.map(conn.stat_file, files))
        systemd_state, units, unit_files = systemd.result()
        facts = replace(
            facts,
            files=stats,
            client_configs=tuple(done.result() for done in client_configs),
            systemd=systemd_state,
            units=units,
            unit_files=unit_files,
        )
    if last_use is not None:
        # Every run that lists containers records what it sees in use (and what the
        # engine's events show came and went since the last run): see ccci.state.lastuse.
        # The record holds what was really seen, so it is kept at the real clock's time,
        # never at a plan's hypothetical --now.
        facts = lastuse.observe(conn, facts, last_use, facts.gathered_at)
    if plan_at is None:
        return facts
    if early is not None:
        # The read was made (its prune's disk gates are open): its answer is kept whatever
        # the prune's other gates say, so no trial plan has to decide on it. More facts
        # never make a closed gate's policy act. While the read is still under way,
        # the rules are imported, so the plan starts the moment the answer is in.
        from ccci.plan.build import preload

        preload(target.policies)
        facts = add_build_cache(conn, facts, early)
    if shared_later and borrows(facts):
        return facts
    return add_slow(conn, facts, slow_wanted(target, facts, plan_at), early)


@dataclass(frozen=True)
class SlowWants:
    """Which of the engine's slow facts a lean plan can use: each is read only when a
    policy that needs it has its gates open (the image sizes are the engine's slowest call,
    and so is the build cache where BuildKit cannot be asked itself)."""

    build_cache: bool = False
    image_sizes: bool = False

    def __bool__(self) -> bool:
        return self.build_cache or self.image_sizes


def slow_wanted(target: HostPolicies, facts: Facts, plan_at: datetime) -> SlowWants:
    """What a trial plan on ``facts`` (a host's own, or its share of a swarm's view) wants of
    the slow facts it lacks. Pure: the read is :func:`add_slow`'s."""
    from ccci.plan.build import plan_host
    from ccci.plan.needs import may_want_slow, wants_build_cache, wants_image_sizes

    if not may_want_slow(target.policies, facts):
        return SlowWants()
    trial = plan_host(target.host.name, target.policies, facts, plan_at, fingerprinted=False)
    return SlowWants(
        build_cache="build_cache" in facts.not_gathered
        and wants_build_cache(trial, target.policies),
        image_sizes=wants_image_sizes(trial, target.policies),
    )


def add_slow(
    conn: Connector, facts: Facts, wants: SlowWants, early: Prefetch | None = None
) -> Facts:
    """``facts`` with the slow facts ``wants`` names, read through ``conn`` (from ``early``
    when that read was started already and has them)."""
    from ccci.facts.docker import add_build_cache, add_image_sizes

    if wants.build_cache:
        facts = add_build_cache(conn, facts, early)
    if wants.image_sizes:
        facts = add_image_sizes(conn, facts, early)
    return facts


def _systemd(
    conn: Connector, names: list[str], paths: list[str], lean: bool
) -> tuple[str, tuple[Unit, ...], tuple[UnitFile, ...]]:
    """The units, then their files at once; in a plan none where systemd is not usable: the
    timer rule then plans nothing, and over SSH each file is a remote command."""
    state, units = conn.units(names)
    if not names and not paths:
        return state, units, ()  # no timer policy: nothing to ask systemd about
    from concurrent.futures import ThreadPoolExecutor

    from ccci.facts.systemd import usable

    if lean and state and not usable(state):
        return state, units, ()
    with ThreadPoolExecutor(max_workers=HOST_READS) as pool:
        return state, units, tuple(pool.map(conn.unit_file, paths))


def _early_read(conn: Connector, policies: tuple[Policy, ...]) -> Prefetch | None:
    """The build cache's read, started now when a prune of it has every disk gate open
    (statvfs, cheap): then it runs beside the other facts, not after a trial plan, and is
    kept even when the prune's other gates (which need the facts) turn out closed. A closed
    or unmeasurable disk gate, the usual nightly case, starts nothing. When an eviction's
    disk gate is open too, the read is ``/system/df`` itself: before API 1.42 its one answer
    holds the images' sizes beside the build cache, and asked later they would wait on it."""
    from ccci.facts.docker import Prefetch
    from ccci.policy.model import GateKind, ImageRetention, PrunePolicy

    measured: dict[str, float | None] = {}

    def disks_open(gates: Iterable[Gate]) -> bool:
        for gate in gates:
            if gate.kind is not GateKind.DISK_USAGE:
                continue
            if gate.path not in measured:
                try:
                    measured[gate.path] = conn.disk_usage(gate.path).ratio if gate.path else None
                except OSError:
                    measured[gate.path] = None
            ratio = measured[gate.path]
            if ratio is None or ratio < gate.at_least:
                return False
        return True

    pruned = any(
        isinstance(p, PrunePolicy) and p.dangling_build_cache is not None and disks_open(p.gates)
        for p in policies
    )
    if not pruned:
        return None
    sized = any(
        isinstance(p, ImageRetention) and p.evict is not None and disks_open((p.evict.gate,))
        for p in policies
    )
    return Prefetch(conn, sizes_too=sized)
