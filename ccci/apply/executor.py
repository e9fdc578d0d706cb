"""Apply a plan: re-check, act, journal, verify.

Between the plan and the act a deploy may have started, so each change is re-checked on
fresh facts right before it runs: its policy's gates, then its own preconditions. A failed
change does not stop the others (there is no rollback); each result goes to the journal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from ccci.apply.reap import SINGULAR, leftovers, reap_stack
from ccci.connectors.base import Connector
from ccci.connectors.engineapi import is_docker_error
from ccci.connectors.local import ConnectionFailed
from ccci.errors import CcciError, explain
from ccci.facts.docker import add_build_cache, gather, image_from_inspect, refresh_swarm
from ccci.facts.model import ACTIVE_CONTAINER_STATES, SCOPE_FULL, SCOPE_STACKS, Facts
from ccci.plan.fingerprint import subjects
from ccci.plan.model import Change, GateResult, HostPlan, Operation, Precondition
from ccci.plan.results import ChangeResult, HostReport, Status
from ccci.policy.model import GateKind
from ccci.quantities import format_time
from ccci.rules.convergence import redeployed
from ccci.rules.gates import evaluate
from ccci.rules.usage import resolve
from ccci.state.journal import Journal

# Gates that a deploy can close at any moment; the disk gate is checked once, at the start,
# because pruning itself lowers usage and must not stop halfway through its own work.
_LIVE_GATES = frozenset({GateKind.NO_LIVE_STACKS, GateKind.NO_CONVERGING_SERVICES})
_START_GATES = frozenset(GateKind) - _LIVE_GATES


def scope_for(plan: HostPlan) -> str:
    """A plan that only reaps stacks needs only the stack facts (the janitor's fast path)."""
    return SCOPE_STACKS if all(c.kind == "stack" for c in plan.changes) else SCOPE_FULL


def _gate_paths(plan: HostPlan) -> list[str]:
    """The filesystems the plan's gates measure: without a refresh, apply gathers these disks again
    to re-check the gates before acting."""
    return sorted({g.gate.path for g in plan.gates if g.gate.path})


class Executor:
    """Applies one host's plan through a connector."""

    def __init__(
        self,
        conn: Connector,
        journal: Journal,
        run_id: str,
        clock: Callable[[], datetime],
        on_result: Callable[[ChangeResult], None] = lambda _: None,
        refresh: Callable[..., Facts] | None = None,
        scope: str = SCOPE_FULL,
        planned_at: datetime | None = None,
        cluster: Connector | None = None,
    ) -> None:
        self.conn = conn
        # Where services and tasks are read again before a change: the host's own engine,
        # or, on a node of a shared swarm view, its cluster host's (a worker cannot list them).
        self.cluster = cluster or conn
        self.journal = journal
        self.run_id = run_id
        self.clock = clock
        # Gates are re-checked as of the plan's time when it is ahead of the clock (a plan
        # made with --now): a service the plan judged stuck is still stuck at apply.
        self.planned_at = planned_at
        self.on_result = on_result
        # ``refresh(scope=…, plan_at=…)`` gathers as the policies do; ``scope`` is what
        # they were planned on, so the check after apply sees what the plan saw.
        self.refresh = refresh
        self.scope = scope

    def run(
        self,
        plan: HostPlan,
        facts: Facts | None,
        replan: Callable[[Facts], tuple[str, ...]] | None = None,
    ) -> HostReport:
        """Apply ``plan``; then gather again and report what is not yet as the policies want.

        ``replan`` plans the fresh facts with the same policies and time: a change
        can make new work (removing an image unshares its build cache), so the host has
        converged only when that plan is empty too. Those facts are gathered as the policies
        need them (images too when a policy keeps images present), never only what the
        changes touched, or a janitor's apply would report every kept image missing.
        """
        results = []
        if plan.changes and facts is not None:
            closed_at_start = self._closed(plan.gates, facts, _START_GATES)
            for change in plan.changes:
                result = self._one(change, plan, facts, closed_at_start)
                self._record(plan.host, result)
                self.on_result(result)
                results.append(result)
        remaining: tuple[str, ...] = ()
        lost: ConnectionFailed | None = None
        if plan.changes:
            try:
                if replan is not None:
                    # Gathered whole, not lean for the plan's time: a superset of what the
                    # plan was made from.
                    after = self.current(plan, self.scope)
                else:
                    after = self.current(plan, scope_for(plan))
                remaining = tuple(c.address for c in plan.changes if _still_there(c, after))
                if replan is not None:
                    remaining += tuple(a for a in replan(after) if a not in remaining)
            except ConnectionFailed as exc:
                # The engine stopped answering (it died mid-apply): nothing can be verified,
                # so the recap counts every planned change as remaining, and then the run
                # ends on that error. Without a recap, status would show the previous run.
                lost = exc
                remaining = tuple(c.address for c in plan.changes)
        # Manual actions are never done by apply: until an operator does them, the host
        # does not match policy.
        remaining += tuple(m.address for m in plan.manual if m.address not in remaining)
        report = HostReport(plan.host, tuple(results), len(plan.noops), remaining)
        self.journal.write(
            {
                "type": "recap",
                "time": format_time(self.clock()),
                "run": self.run_id,
                "host": plan.host,
                "ok": report.count(Status.OK) + report.noops,
                "changed": report.count(Status.OK),
                "failed": report.count(Status.FAILED),
                "skipped": report.count(Status.SKIPPED),
                "converged": report.converged,
                "remaining": list(remaining),
                "bytes_freed": report.bytes_freed,
            }
        )
        if lost is not None:
            raise lost
        return report

    def current(self, plan: HostPlan, scope: str, plan_at: datetime | None = None) -> Facts:
        """Fresh facts: as the policies gather them (for planning at ``plan_at`` when
        given) when known, else what the plan's changes name (engine objects, gate paths,
        env files)."""
        if self.refresh is not None:
            facts = self.refresh(scope=scope, plan_at=plan_at)
        else:
            facts = gather(self.conn, _gate_paths(plan), scope=scope)
        # A reaped stack's env file is no longer found through its stack: ask for it by name.
        known = {f.path for f in facts.files}
        named = sorted({t.name for c in plan.changes for t in c.targets if t.kind == "env_file"})
        extra = tuple(self.conn.stat_file(p) for p in named if p not in known)
        return replace(facts, files=facts.files + extra)

    def _closed(
        self, gates: tuple[GateResult, ...], facts: Facts, kinds: frozenset[GateKind] | None
    ) -> dict[str, str]:
        """Policy name → why its gate is closed now, re-evaluated on ``facts``."""
        closed: dict[str, str] = {}
        for planned in gates:
            if kinds is not None and planned.gate.kind not in kinds:
                continue
            as_of = max(self.clock(), self.planned_at or datetime.min.replace(tzinfo=UTC))
            now = evaluate(planned.policy, planned.gate, facts, now=as_of)
            if not now.open and planned.policy not in closed:
                closed[planned.policy] = f"gate {planned.gate.kind.value} closed: {now.observed}"
        return closed

    def _one(
        self, change: Change, plan: HostPlan, facts: Facts, closed_at_start: dict[str, str]
    ) -> ChangeResult:
        if change.gated and change.policy in closed_at_start:
            return ChangeResult(change, Status.SKIPPED, closed_at_start[change.policy])
        try:
            policy_gates = plan.gates_for(change.policy) if change.gated else ()
            if any(g.gate.kind in _LIVE_GATES for g in policy_gates):
                fresh = refresh_swarm(self.cluster, facts)
                closed = self._closed(policy_gates, fresh, kinds=_LIVE_GATES)
                if closed:
                    return ChangeResult(change, Status.SKIPPED, closed[change.policy])
            else:
                fresh = facts
            blocker = self._blocker(change, fresh)
            if blocker is not None:
                return blocker
            freed, notes = self._act(change, plan)
        except Exception as exc:
            # The engine's or the OS's refusal is the message; go on with the rest. Anything
            # else is a bug in ccci, and reporting it as a "failed" change would hide it.
            if not _refusal(exc):
                raise
            if self._gone_meanwhile(change):
                return ChangeResult(change, Status.OK, "already gone")
            return ChangeResult(change, Status.FAILED, explain(exc))
        if notes:
            left = ", ".join(notes)
            return ChangeResult(change, Status.OK, f"done; left, not in the plan: {left}", freed)
        return ChangeResult(change, Status.OK, "done", freed)

    def _gone_meanwhile(self, change: Change) -> bool:
        """Whether a refused removal's subject is gone anyway: someone else (another host
        alias of the same engine, applied at once) removed it between check and act."""
        ident = change.subject.ident
        try:
            if change.work.operation in (Operation.REMOVE_IMAGE, Operation.UNTAG_IMAGE):
                return self.conn.inspect_image(ident) is None
            if change.work.operation is Operation.REMOVE_CONTAINER:
                return self.conn.inspect_container(ident) is None
        except Exception as exc:
            if not _refusal(exc):
                raise
        return False

    def _blocker(self, change: Change, facts: Facts) -> ChangeResult | None:
        """A result that replaces acting, when a precondition no longer holds."""
        ident = change.subject.ident
        checks = set(change.preconditions)
        if checks & {Precondition.IMAGE_DANGLING, Precondition.IMAGE_UNUSED}:
            raw = self.conn.inspect_image(ident)
            if raw is None:
                return ChangeResult(change, Status.OK, "already gone")
            image = image_from_inspect(raw)
            if Precondition.IMAGE_DANGLING in checks and image.tags:
                return ChangeResult(change, Status.SKIPPED, f"now tagged {', '.join(image.tags)}")
            if Precondition.IMAGE_UNUSED in checks:
                users = [
                    c["Names"][0].lstrip("/")
                    for c in self.conn.containers_of_image(ident)
                    if c.get("ImageID") == ident
                ]
                users += [s.name for s in facts.services if resolve(s.image, [image])]
                if users:
                    return ChangeResult(change, Status.SKIPPED, f"now used by {', '.join(users)}")
        if Precondition.STACK_ORPHANED in checks:
            fresh = refresh_swarm(self.cluster, facts)
            # Converging is no reason to stop (a stuck orphan converges for ever); being
            # deployed again since the plan is.
            again = redeployed(ident, facts, fresh)
            if again:
                return ChangeResult(change, Status.SKIPPED, f"stack deployed again: {again}")
        if Precondition.CONTAINER_STOPPED in checks:
            raw = self.conn.inspect_container(ident)
            if raw is None:
                return ChangeResult(change, Status.OK, "already gone")
            state = (raw.get("State") or {}).get("Status", "")
            if state in ACTIVE_CONTAINER_STATES:
                return ChangeResult(change, Status.SKIPPED, f"container is now {state}")
        if Precondition.BUILD_CACHE_UNUSED in checks:
            return self._build_cache_blocker(change, facts)
        return None

    def _build_cache_blocker(self, change: Change, facts: Facts) -> ChangeResult | None:
        """Re-read the record: a build started since the plan may use or share it now."""
        ident = change.subject.ident
        record = next(
            (r for r in add_build_cache(self.conn, facts).build_cache if r.id == ident), None
        )
        if record is None:
            return ChangeResult(change, Status.OK, "already gone")
        if record.in_use:
            return ChangeResult(change, Status.SKIPPED, "build cache now in use")
        if record.shared:
            return ChangeResult(change, Status.SKIPPED, "build cache now shared with an image")
        return None

    def _timer(self, change: Change) -> None:
        """Enable and (re)start a present timer, or stop, disable and mask an absent one."""
        unit = change.subject.ident
        self.conn.systemctl("daemon-reload")
        if change.work.operation is Operation.START_TIMER:
            self.conn.systemctl("enable", unit)
            self.conn.systemctl("restart", unit)
            return
        self.conn.systemctl("stop", unit)
        self.conn.systemctl("disable", unit)
        if change.work.path:
            self.conn.remove_file(change.work.path)
        self.conn.systemctl("mask", unit)
        self.conn.systemctl("daemon-reload")

    def _act(self, change: Change, plan: HostPlan) -> tuple[int, list[str]]:
        """Act; the bytes freed, and what was left alone that the change met on the way."""
        if change.work.operation is Operation.REAP_STACK:
            notes = reap_stack(
                self.conn,
                change.subject.ident,
                change.targets,
                change.work.reap,
                change.work.wait_seconds,
                lambda: self.current(plan, SCOPE_STACKS),
                cluster=self.cluster,
            )
            return 0, notes
        return self._act_one(change), []

    def _act_one(self, change: Change) -> int:
        ident, work = change.subject.ident, change.work
        match work.operation:
            case Operation.WRITE_UNIT:
                self.conn.write_file(work.path, work.content)
                return 0
            case Operation.START_TIMER | Operation.MASK_TIMER:
                self._timer(change)
                return 0
            case Operation.PULL_IMAGE:
                for ref in work.refs:
                    self.conn.pull(ref)
                return 0
            case Operation.UNTAG_IMAGE:
                self._untag(ident, work.refs)
                return change.bytes_freed or 0
            case Operation.REMOVE_IMAGE:
                self.conn.remove_image(ident)
                return change.bytes_freed or 0
            case Operation.REMOVE_CONTAINER:
                self.conn.remove_container(ident)
                return change.bytes_freed or 0
            case Operation.REMOVE_BUILD_CACHE:
                return int(self.conn.remove_build_cache(ident))
        raise CcciError(f"{work.operation.value} is not done one object at a time")

    def _untag(self, ident: str, refs: tuple[str, ...]) -> None:
        """Untag each reference; the last untag deletes the image. A reference that has
        moved to another image since the plan is not this image's any more: it is left
        alone, and the image, still present, fails the change."""
        for ref in refs:
            named = self.conn.inspect_image(ref)
            if named is not None and named.get("Id") == ident:
                self.conn.untag_image(ref)
        if self.conn.inspect_image(ident) is not None:
            what = "repo digests" if all("@" in r for r in refs) else "tags"
            raise CcciError(f"{ident[:19]} is still present: its {what} changed since the plan")

    def _record(self, host: str, result: ChangeResult) -> None:
        change = result.change
        self.journal.write(
            {
                "type": "change",
                "time": format_time(self.clock()),
                "run": self.run_id,
                "host": host,
                "address": change.address,
                "action": change.action.value,
                "label": change.label,
                "policy": change.policy,
                "source": str(change.source),
                "reason": change.reason,
                "status": result.status.value,
                "message": result.message,
                "bytes_freed": result.bytes_freed,
            }
        )


def _refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is the world saying no (the engine, the OS, systemd through ccci's own
    errors) rather than a programming error."""
    return isinstance(exc, CcciError | OSError) or is_docker_error(exc)


def _still_there(change: Change, facts: Facts) -> bool:
    """Whether a planned delete's subject is still present; for a stack, whether any of
    the kinds the policy reaps is left of it, planned or joined since (kinds it does not
    reap may stay)."""
    ident = change.subject.ident
    if change.work.operation is Operation.REAP_STACK:
        kinds = change.work.reap
        env_files = [t.name for t in change.targets if t.kind == "env_file"]
        wanted = {SINGULAR[k] for k in kinds if k in SINGULAR}
        wanted |= {"container"} if "services" in kinds else set()
        left = leftovers(facts, ident, env_files[0] if env_files else "")
        return any(kind in wanted for kind, _ in left)
    return change.address in subjects(facts)
