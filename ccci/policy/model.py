"""Typed policies. Once built, they hold parsed values only (ratios, timedeltas, patterns)."""

from __future__ import annotations

import enum
import fnmatch
import glob as globbing
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from ccci.errors import InputError, Location
from ccci.saferegex import Matcher, compile_policy


class GateKind(enum.Enum):
    """The closed set of gates: the disk is under pressure, no run-app stack is live, no service is
    still converging."""

    DISK_USAGE = "disk_usage"
    NO_LIVE_STACKS = "no_live_stacks"
    NO_CONVERGING_SERVICES = "no_converging_services"


# How long a service may converge after its spec last changed before it counts as stuck:
# longer than any healthy deploy or pull of a CI host, short enough that one stuck deploy
# does not hold the nightly prune back for a whole night.
DEFAULT_STUCK_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class Gate:
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
    stuck_after: timedelta = DEFAULT_STUCK_AFTER

    @cached_property
    def pattern(self) -> Matcher:
        """Compiled once, and linear in the name (see ccci.saferegex); load already refused a bad
        pattern."""
        return compile_policy(self.match)


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


# How long a run's own deadline label can keep its stack, counted from the stack's oldest
# object: longer than any CI run, short enough that a run stamping a far deadline (or one
# killed right after stamping it) does not keep its stack for days.
DEFAULT_MAX_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class OrphanStackPolicy:
    """Which stacks are CI run-apps, when one counts as orphaned, and what to reap.

    ``run_apps`` is the resolved pattern; ``run_apps_selector`` the StackSelector it came
    from, if any. ``env_file`` is the template of abra's env files (``{abra_dir}``,
    ``{server}``, ``{domain}``), or '' when the policy neither reaps nor reads them;
    ``abra_server`` narrows ``{server}`` to one server folder (any folder when empty).
    A deadline label ahead protects a stack for at most ``max_lifetime`` from its oldest
    object.
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
    abra_dir: str = ""
    abra_server: str = ""
    max_lifetime: timedelta = DEFAULT_MAX_LIFETIME

    def __post_init__(self) -> None:
        # abra_server comes from the inventory (a host var) and becomes a folder name in
        # the env files' pattern: one that could name another folder is refused.
        server = self.abra_server
        if server and (
            "/" in server or server in (".", "..") or any(ord(ch) < 32 for ch in server)
        ):
            raise InputError(
                self.meta.source, f"host var abra_server {server!r} is not a folder name"
            )

    @cached_property
    def run_apps_pattern(self) -> Matcher:
        """The run-app pattern, compiled once and linear in the name; load already refused a bad
        one."""
        return compile_policy(self.run_apps)

    @cached_property
    def keep_patterns(self) -> tuple[Matcher, ...]:
        """The ``keep`` patterns, compiled once: a stack matching any is never reaped."""
        return tuple(compile_policy(k) for k in self.keep)

    @property
    def env_file_glob(self) -> str:
        """The env file template as a shell pattern matching every app's file in every
        server folder (or only ``abra_server``'s), or '' when env files are not read."""
        if not self.env_file:
            return ""
        server = globbing.escape(self.abra_server) if self.abra_server else "*"
        return (
            self.env_file.replace("{abra_dir}", globbing.escape(self.abra_dir))
            .replace("{server}", server)
            .replace("{domain}", "*")
        )

    def owns_env_file(self, path: str) -> bool:
        """Whether ``path`` is one of this policy's env files: it matches the pattern folder
        by folder (a ``*`` never spans a ``/``) and has no ``.`` or ``..`` folder."""
        pattern = self.env_file_glob
        if not pattern:
            return False
        want, have = pattern.split("/"), path.split("/")
        if len(want) != len(have) or any(part in (".", "..") for part in have[1:]):
            return False
        return all(fnmatch.fnmatchcase(h, w) for h, w in zip(have, want, strict=True))


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
    # policies write in (ccci.systemd.sandbox), added once every policy of the host is built.
    runs_ccci: bool = False
    # The template values the units were rendered from, to render them again then.
    values: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def timer_name(self) -> str:
        """The timer's unit name. The rule, the gathering, status and review all name the
        unit through here, so what is planned is what is asked of systemd and shown."""
        return f"{self.name}.timer"

    @property
    def service_name(self) -> str:
        """The unit name of the service the timer starts."""
        return f"{self.name}.service"

    @property
    def files(self) -> dict[str, str]:
        """Unit file name → rendered content, service first (the timer starts it)."""
        return {self.service_name: self.service_unit, self.timer_name: self.timer_unit}


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
