"""Which services are still converging, which are stuck, and what their tasks say.

One judgement shared by the convergence gate, the janitor, ``ccci status`` and the metrics,
so they never disagree. A service's clock starts when its spec last changed (created,
updated, or its update started), not at its newest task: a crash loop or a pending task
that swarm retries keeps making new tasks and would otherwise look fresh for ever. Still
converging ``stuck_after`` past that, it is *stuck*: nothing is in flight any more, so it
neither holds the prune back nor saves its stack from the janitor.

A crash loop is judged by the failures since its spec changed, not by the state of the task
of the moment (running for a second between two crashes), so the answer does not flicker
from one plan to the next.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ccci.facts.model import Facts, Service, Task
from ccci.policy.model import DEFAULT_STUCK_AFTER
from ccci.quantities import format_duration, format_spec_duration, plural

# Task states on the way to ``running``: a task in one of them means a deploy, a pull or a
# restart is still in flight. ``allocated`` and a desired state of ``ready`` (a restart
# waiting out its delay, a rolling update's next task) are on the way too.
PENDING_TASK_STATES = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
MEANT_TO_RUN = frozenset({"running", "ready"})
FAILED_TASK_STATES = frozenset({"failed", "rejected"})
UPDATING_STATES = frozenset({"updating", "rollback_started"})
# An update swarm paused (its failure action) makes no progress until someone acts: stuck
# from the start, whatever ``stuck_after`` says.
PAUSED_STATES = frozenset({"paused", "rollback_paused"})
# A failure this recent, since the spec last changed, means the service is restarting even
# when the task of the moment happens to be running.
RECENT_FAILURE = timedelta(minutes=10)
_MAX_ERROR = 120


class Progress(enum.Enum):
    """Whether a deploy is still in flight (it holds the prune gate) or stuck (nothing in flight: it
    neither blocks the prune nor saves its stack from the janitor)."""

    CONVERGING = "converging"
    STUCK = "stuck"


@dataclass(frozen=True)
class Unsettled:
    """A service that has not converged: in flight (``converging``) or ``stuck``."""

    service: Service
    progress: Progress
    why: str
    since: datetime
    errors: tuple[str, ...] = ()

    @property
    def stuck(self) -> bool:
        """The one test the gates, the janitor, status and metrics use, so they never disagree on
        it."""
        return self.progress is Progress.STUCK

    @property
    def error(self) -> str:
        """What its tasks say, most frequent first (``non-zero exit (1) ×5``)."""
        return "; ".join(self.errors)

    def describe(self, now: datetime) -> str:
        """``stuck (1 task pending, desired running) for 2 hours: no suitable node …``"""
        text = f"{self.progress.value} ({self.why})"
        if self.stuck:
            text += f" for {format_duration(now - self.since)}"
        return f"{text}: {self.error}" if self.error else text


def _errors(tasks: Iterable[Task]) -> tuple[str, ...]:
    """The tasks' error texts, counted: the engine repeats one per failed attempt."""
    counts: Counter[str] = Counter()
    for task in tasks:
        text = (task.error or "").removeprefix("task: ").strip()
        if not text and task.state == "starting":
            text = "health check not passed yet"
        if text:
            counts[" ".join(text.split())[:_MAX_ERROR]] += 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(f"{text} ×{n}" if n > 1 else text for text, n in ordered)


def _failed_since(task: Task, since: datetime) -> bool:
    moment = task.changed or task.created
    return task.state in FAILED_TASK_STATES and moment is not None and moment >= since


def _recent(task: Task, now: datetime) -> bool:
    moment = task.changed or task.created
    return moment is not None and now - moment <= RECENT_FAILURE


def judge(
    service: Service, tasks: list[Task], now: datetime, stuck_after: timedelta
) -> Unsettled | None:
    """The service's convergence, or None when it has converged."""
    since = service.spec_changed
    pending = [
        t for t in tasks if t.desired_state in MEANT_TO_RUN and t.state in PENDING_TASK_STATES
    ]
    failed = [t for t in tasks if _failed_since(t, since)]
    # Every failure since the spec changed explains; only a recent one shows a crash loop
    # between two of its restarts (a service that failed once long ago has recovered).
    recent = [t for t in failed if _recent(t, now)]
    errors = _errors(pending + failed)
    if service.update_state in PAUSED_STATES:
        note = f": {service.update_message}" if service.update_message else ""
        why = f"update {service.update_state}{note}"
        return Unsettled(service, Progress.STUCK, why, since, errors)
    if service.update_state in UPDATING_STATES:
        why = f"update {service.update_state}"
    elif pending:
        states = ", ".join(sorted({t.state for t in pending}))
        desired = ", ".join(sorted({t.desired_state for t in pending}))
        why = f"{plural(len(pending), 'task')} {states}, desired {desired}"
    elif recent:
        why = (
            f"restarting: {plural(len(recent), 'task')} failed in the last "
            f"{format_spec_duration(RECENT_FAILURE)}"
        )
    else:
        return None
    progress = Progress.STUCK if now - since >= stuck_after else Progress.CONVERGING
    return Unsettled(service, progress, why, since, errors)


def unsettled(
    facts: Facts, now: datetime, stuck_after: timedelta = DEFAULT_STUCK_AFTER
) -> tuple[Unsettled, ...]:
    """Every service that has not converged, in service-name order.

    Judged once per facts, ``now`` and threshold (see ``Facts.derived``): every stack's
    orphan verdict and every convergence gate of a plan asks, and judging every service
    for each of them made a plan quadratic in stacks x services."""
    return facts.derived((unsettled, now, stuck_after), lambda: _judge_all(facts, now, stuck_after))


def _judge_all(facts: Facts, now: datetime, stuck_after: timedelta) -> tuple[Unsettled, ...]:
    by_service: dict[str, list[Task]] = {}
    for task in facts.tasks:
        by_service.setdefault(task.service_id, []).append(task)
    found = (judge(s, by_service.get(s.id, []), now, stuck_after) for s in facts.services)
    return tuple(u for u in found if u is not None)


def unsettled_in(
    facts: Facts, stack: str, now: datetime, stuck_after: timedelta = DEFAULT_STUCK_AFTER
) -> tuple[Unsettled, ...]:
    """The services of ``stack`` among :func:`unsettled`, in its order: bucketed once per
    facts, as the janitor asks for each of its stacks."""

    def bucket() -> dict[str, tuple[Unsettled, ...]]:
        grouped: dict[str, list[Unsettled]] = {}
        for found in unsettled(facts, now, stuck_after):
            grouped.setdefault(found.service.stack, []).append(found)
        return {name: tuple(found) for name, found in grouped.items()}

    return facts.derived((unsettled_in, now, stuck_after), bucket).get(stack, ())


def redeployed(stack: str, before: Facts, after: Facts) -> str:
    """Why the plan's verdict on ``stack`` no longer holds: one of its services was created
    or had its spec changed since ``before`` was gathered (someone deployed it again).
    Converging alone is no reason: a stuck orphan converges for ever."""
    seen = {s.id: s.spec_changed for s in before.services if s.stack == stack}
    for service in after.services:
        if service.stack != stack:
            continue
        if service.id not in seen:
            return f"service {service.name} was created since the plan"
        if service.spec_changed > seen[service.id]:
            return f"service {service.name} was updated since the plan"
    return ""
