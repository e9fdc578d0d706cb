"""What a plan needs gathered: disk paths, units, client configs, files, and whether the
slow facts (exited containers' finish times, sizes, build cache) are worth asking for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ccci.facts.model import Facts
from ccci.plan.model import HostPlan
from ccci.policy.model import (
    DaemonPolicy,
    Gate,
    ImageRetention,
    OrphanStackPolicy,
    Policy,
    PrunePolicy,
    TimerPolicy,
)


def disk_paths(policies: Iterable[Policy]) -> list[str]:
    """Paths whose filesystems the gates of these policies measure."""
    paths = {g.path for p in policies for g in getattr(p, "gates", ()) if g.path}
    paths |= {p.evict.gate.path for p in policies if isinstance(p, ImageRetention) and p.evict}
    return sorted(paths)


def systemd_needs(policies: Iterable[Policy]) -> tuple[list[str], list[str]]:
    """The units to ask systemd about, and the unit files to read, for the timer policies."""
    units: dict[str, None] = {}
    files: dict[str, None] = {}
    for p in policies:
        if not isinstance(p, TimerPolicy):
            continue
        for spec in p.present:
            units[spec.timer_name] = None
            units[spec.service_name] = None
            for filename in spec.files:
                files[f"{p.unit_dir.rstrip('/')}/{filename}"] = None
        for unit, _ in p.absent:
            units[unit] = None
            files[f"{p.unit_dir.rstrip('/')}/{unit}"] = None
    return list(units), list(files)


def client_config_paths(policies: Iterable[Policy]) -> list[str]:
    """Docker client configs the daemon policies read for registry credentials."""
    return sorted({p.client_config for p in policies if isinstance(p, DaemonPolicy) and p.registry})


def inspect_cutoff(policies: Iterable[Policy], now: datetime) -> datetime | None:
    """Containers created after this cannot be old enough for any prune policy, so their
    finish time need not be inspected. None: inspect none (no policy prunes containers)."""
    ages = [
        p.stopped_containers
        for p in policies
        if isinstance(p, PrunePolicy) and p.stopped_containers is not None
    ]
    return now - min(ages) if ages else datetime.min.replace(tzinfo=now.tzinfo)


def may_want_slow(policies: Iterable[Policy], facts: Facts) -> bool:
    """Whether a trial plan on ``facts`` could want a slow fact they lack: a prune of the
    build cache (not gathered yet) or an eviction, with its disk gates open. Without one no
    trial plan is made: the janitor's policies never want them, and with the usual nightly
    disk gates closed the trial would only find those gates closed. Pure: a disk gate is
    judged as the rules judge it, on the facts' disks."""
    from ccci.policy.model import GateKind
    from ccci.rules.gates import evaluate

    def disk_open(name: str, gates: Iterable[Gate]) -> bool:
        return all(
            evaluate(name, g, facts).open for g in gates if g.kind is GateKind.DISK_USAGE
        )

    def could_want(p: Policy) -> bool:
        if isinstance(p, PrunePolicy) and p.dangling_build_cache is not None:
            return "build_cache" in facts.not_gathered and disk_open(p.meta.name, p.gates)
        if isinstance(p, ImageRetention) and p.evict is not None:
            return disk_open(p.meta.name, (p.evict.gate,))
        return False

    return any(could_want(p) for p in policies)


def wants_image_sizes(plan: HostPlan, policies: Iterable[Policy]) -> bool:
    """Whether an eviction's gates are open: only then are unique image sizes (from the
    engine's slow disk-usage call) worth asking for."""
    closed = {g.policy for g in plan.closed_gates()}
    return any(
        isinstance(p, ImageRetention) and p.evict is not None and p.meta.name not in closed
        for p in policies
    )


def wants_build_cache(plan: HostPlan, policies: Iterable[Policy]) -> bool:
    """Whether a prune policy that selects build cache has all its gates open: only then is
    the build cache's read worth making (BuildKit's call, else the engine's slow
    disk-usage call)."""
    closed = {g.policy for g in plan.closed_gates()}
    return any(
        isinstance(p, PrunePolicy)
        and p.dangling_build_cache is not None
        and p.meta.name not in closed
        for p in policies
    )


def file_globs(policies: Iterable[Policy]) -> list[str]:
    """Patterns for abra's env files, in every server folder unless ``abra_server`` names
    one: a file left without any engine object is still a stack, and whose it is is read
    from the file, so every file is looked at, not only those of stacks already known."""
    return sorted(
        {p.env_file_glob for p in policies if isinstance(p, OrphanStackPolicy) and p.env_file_glob}
    )


def file_paths(policies: Iterable[Policy], facts: Facts) -> list[str]:
    """Files the rules will ask about beyond the globs: none. An env file's path is never
    made from a stack name (a name is the recipe's to choose, a path is not); the globs
    find every env file there is, and each says whose it is."""
    return []
