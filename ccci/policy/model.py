"""Typed policies. Once built, they hold parsed values only (ratios, timedeltas, patterns)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from ccci.errors import Location


class GateKind(enum.Enum):
    DISK_USAGE = "disk_usage"
    NO_LIVE_STACKS = "no_live_stacks"
    NO_CONVERGING_SERVICES = "no_converging_services"


@dataclass(frozen=True)
class Gate:
# How long a service may converge after its spec last changed before it counts as stuck:
# longer than any healthy deploy or pull of a CI host, short enough that one stuck deploy
# does not hold the nightly prune back for a whole night.
DEFAULT_STUCK_AFTER = timedelta(minutes=30)


    """A condition that must hold for a policy to act. Plain data, so plans can carry it
    and apply can re-check it against fresh facts just before acting.

    ``stuck_after`` (convergence gates only): a service still converging this long after
    its spec last changed is stuck, not in flight, and no longer holds the gate closed.
    """

    kind: GateKind
    source: Location
    path: str = ""
    at_least: float = 0.0
    match: str = ""
    selector: str = ""

    @cached_property
    stuck_after: timedelta = DEFAULT_STUCK_AFTER
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.match)


@dataclass(frozen=True)
class PolicyMeta:
    """What every policy has: its name, kind, host pattern and where it was written."""

    name: str
    kind: str
    hosts: str
    source: Location


@dataclass(frozen=True)
class PrunePolicy:
    """The gated, surgical prune. A ``None`` selector means that kind is not pruned."""

    meta: PolicyMeta
    gates: tuple[Gate, ...]
    dangling_images: timedelta | None
    stopped_containers: timedelta | None
    dangling_build_cache: timedelta | None
    sources: dict[str, Location] = field(default_factory=dict)

    def source_of(self, selector: str) -> Location:
        """Where a prune selector was written, for the ``policy … file:line`` in reasons."""
        return self.sources.get(selector, self.meta.source)


@dataclass(frozen=True)
class StackSelector:
    """A named stack pattern, so the run-app pattern is written once and shared."""

    meta: PolicyMeta
    match: str


REAP_ORDER = ("services", "secrets", "configs", "networks", "volumes", "env_file")


@dataclass(frozen=True)
class OrphanStackPolicy:
    """Which stacks are CI run-apps, when one counts as orphaned, and what to reap.

    ``run_apps`` is the resolved pattern; ``run_apps_selector`` the StackSelector it came
    from, if any. ``env_file`` has ``{server}`` filled in for the host, ``{domain}`` not.
    """

    meta: PolicyMeta
    run_apps: str
    run_apps_selector: str
    run_apps_source: Location
    orphan_after: timedelta
    expires_label: str
    keep: tuple[str, ...]
    reap: tuple[str, ...]
    env_file: str
    wait: timedelta

    @cached_property
    def run_apps_pattern(self) -> re.Pattern[str]:
        return re.compile(self.run_apps)

    @cached_property
    def keep_patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(k) for k in self.keep)

    @property
    def env_file_glob(self) -> str:
        """The env file template as a shell pattern matching every app's file."""
        return self.env_file.replace("{domain}", "*") if "env_file" in self.reap else ""

    def stack_of_env_file(self, path: str) -> str:
        """The stack an env file belongs to (its domain with '.' back to '_'), or ''."""
        if not self.env_file or "{domain}" not in self.env_file:
            return ""
        head, _, tail = self.env_file.partition("{domain}")
        if not (path.startswith(head) and path.endswith(tail)) or len(path) <= len(head + tail):
            return ""
        domain = path[len(head) : len(path) - len(tail)]
        return "" if "/" in domain else domain.replace(".", "_")

    def env_file_for(self, stack: str) -> str:
        """abra's env file for a stack: its domain is the stack name with '_' back to '.'."""
        if not self.env_file:
            return ""
        return self.env_file.replace("{domain}", stack.replace("_", "."))


DEFAULT_CLIENT_CONFIG = "/root/.docker/config.json"


@dataclass(frozen=True)
class DaemonPolicy:
    """Expectations of the Docker daemon; each unset field is not checked."""

    meta: PolicyMeta
    registry: str = ""
    registry_user: str = ""
    client_config: str = DEFAULT_CLIENT_CONFIG
    data_root: str = ""
    storage_driver: str = ""
    min_api_version: tuple[int, int] | None = None


DEFAULT_UNIT_DIR = "/etc/systemd/system"


@dataclass(frozen=True)
class TimerSpec:
    """A timer that must exist, with the unit files ccci renders for it."""

    name: str
    on_calendar: str
    source: Location
    timer_unit: str
    service_unit: str
    # The timer runs ccci itself: its sandbox also gets the folders the host's other
    # policies write in (ccci.sandbox), added once every policy of the host is built.
    runs_ccci: bool = False
    # The template values the units were rendered from, to render them again then.
    values: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def files(self) -> dict[str, str]:
        """Unit file name → rendered content, service first (the timer starts it)."""
        return {f"{self.name}.service": self.service_unit, f"{self.name}.timer": self.timer_unit}


@dataclass(frozen=True)
class TimerPolicy:
    """Timers present (rendered, enabled, started) and absent (stopped, disabled, masked)."""

    meta: PolicyMeta
    unit_dir: str
    present: tuple[TimerSpec, ...]
    absent: tuple[tuple[str, Location], ...]


@dataclass(frozen=True)
class Eviction:
    """High/low watermarks: start at ``gate``'s threshold, free down to ``down_to``."""

    gate: Gate
    down_to: float
    unused_for: timedelta
    max_per_run: int
    source: Location


@dataclass(frozen=True)
class ImageRetention:
    """Images that are the cache: kept, warmed, and evicted only by least recent use."""

    meta: PolicyMeta
    retain: tuple[str, ...]
    ensure_present: tuple[str, ...]
    evict: Eviction | None
    sources: dict[str, Location] = field(default_factory=dict)


Policy = (
    PrunePolicy | StackSelector | OrphanStackPolicy | DaemonPolicy | TimerPolicy | ImageRetention
)
