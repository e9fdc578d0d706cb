"""Typed policies. Once built, they hold parsed values only (ratios, timedeltas, patterns)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from ccci.errors import Location


class GateKind(enum.Enum):
    DISK_USAGE = "disk_usage"
    NO_LIVE_STACKS = "no_live_stacks"
    NO_CONVERGING_SERVICES = "no_converging_services"


@dataclass(frozen=True)
class Gate:
    """A condition that must hold for a policy to act. Plain data, so plans can carry it
    and apply can re-check it against fresh facts just before acting."""

    kind: GateKind
    source: Location
    path: str = ""
    at_least: float = 0.0
    match: str = ""

    @cached_property
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


Policy = PrunePolicy
