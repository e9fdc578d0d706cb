"""What applying a plan did: per change and per host. Beside the plan, not in the executor,
so renderers, metrics and status read results without importing apply (facts, reap, rules).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ccci.plan.model import Change


class Status(enum.Enum):
    """How one change ended: done (or already so), refused by the world, or held back."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ChangeResult:
    """One change's outcome, with the message the journal and the recap show."""

    change: Change
    status: Status
    message: str
    bytes_freed: int = 0


@dataclass(frozen=True)
class HostReport:
    """What happened on one host, and whether it now matches the plan."""

    host: str
    results: tuple[ChangeResult, ...]
    noops: int
    remaining: tuple[str, ...]

    def count(self, status: Status) -> int:
        """Results that ended in ``status``: the recap's changed/failed/skipped numbers."""
        return sum(1 for r in self.results if r.status is status)

    @property
    def converged(self) -> bool:
        """Whether the host now matches the plan: nothing planned (changes or manual actions) is
        still there when facts are gathered again after apply."""
        return not self.remaining

    @property
    def bytes_freed(self) -> int:
        """Bytes the changes that were done freed: the plan's estimate for images and containers,
        the engine's own count for build cache."""
        return sum(r.bytes_freed for r in self.results)

    def recap(self) -> str:
        """Ansible's recap line: ok counts what is now as the policy wants it."""
        changed = self.count(Status.OK)
        return (
            f"{self.host} : ok={changed + self.noops} changed={changed} "
            f"failed={self.count(Status.FAILED)} skipped={self.count(Status.SKIPPED)}"
            # Last, not after changed= as Ansible has it: a log read by "failed=0 skipped="
            # keeps matching. A host ccci reached is never unreachable.
            " unreachable=0"
        )
