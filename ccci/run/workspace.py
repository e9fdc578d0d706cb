"""The facade the CLI drives: settings in, plans and reports out. No click in here."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccci.config import inventory as inventory_mod
from ccci.config.inventory import Host, Inventory
from ccci.config.yamlcache import ParsedCache
from ccci.errors import CcciError, InputError, Location, StalePlan
from ccci.facts.model import SCOPE_FULL, Facts, SwarmScope
from ccci.quantities import format_time
from ccci.state.journal import Journal

# What a live plan needs before its first reads is imported above; the policy loader, the
# plan and the gathering are imported where they are used, so the first reads (see
# ccci.run.opening) start before ccci has imported them, not after.
if TYPE_CHECKING:
    from ccci.connectors.base import Connector
    from ccci.plan.model import Plan
    from ccci.policy.load import HostPolicies


@dataclass(frozen=True)
class Settings:
    """Where things are; every path may be relative to the current directory."""

    policies: tuple[Path, ...] = (Path("policies"),)
    inventory: Path = Path("inventory.yaml")
    limit: str | None = None
    state_dir: Path = Path("/var/lib/ccci")
    journal: Path | None = None
    metrics: Path | None = None
    kinds: frozenset[str] | None = None
    scope: str = SCOPE_FULL
    # -c/--connection: every host's connection (``localhost`` stays local, as in Ansible).
    connection: str | None = None
    # --forks: at most this many hosts gathered, planned and applied at once.
    forks: int = 5

    @property
    def journal_path(self) -> Path:
        """``--journal``, else the state directory's journal: the one file status reads last runs
        from."""
        return self.journal or self.state_dir / "journal.jsonl"

    @property
    def metrics_path(self) -> Path:
        """node_exporter's textfile collector reads ``*.prom``; point it at this file."""
        return self.metrics or self.state_dir / "ccci.prom"

    def last_use_path(self, host: str) -> Path:
        """Per host: when each image was last in use (see ccci.state.lastuse)."""
        return self.state_dir / f"last-use-{host}.json"

    @property
    def lock_path(self) -> Path:
        """One lock file per state directory: two applies sharing a state directory never run at
        once."""
        return self.state_dir / "ccci.lock"


def connector_for(host: Host) -> Connector:
    """The host's connector by its ``ansible_connection`` (a ``-c`` override is already in
    its vars, see :func:`with_connection`), not yet connected."""
    from ccci.connectors import connection

    return connection.connector_for(host.name, host.vars)


def with_connection(inventory: Inventory, override: str | None) -> Inventory:
    """The inventory with ``-c`` decided into every host's ``ansible_connection``, so every
    caller of :func:`connector_for` (residual too) reaches the host the same way."""
    from ccci.connectors.connection import connection_of

    if not override:
        return inventory
    hosts = {
        name: replace(
            host, vars={**host.vars, "ansible_connection": connection_of(name, host.vars, override)}
        )
        for name, host in inventory.hosts.items()
    }
    return replace(inventory, hosts=hosts)


def each_host(
    targets: list[HostPolicies],
    work: Callable[[HostPolicies], Any],
    forks: int,
    progress: Callable[[str, str], None] | None = None,
    alone: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``work`` for every target, at most ``forks`` at once (threads: the work waits on
    engines and ssh, not on the CPU). A host that cannot be reached is left out with its
    reason in one line and never stops the others; results are keyed by host, so callers
    keep the inventory's order whatever finished first. ``alone`` (one host in all) lets
    the failure end the run as the one-line error it always was."""
    from concurrent.futures import ThreadPoolExecutor

    from ccci.connectors.local import ConnectionFailed

    done: dict[str, Any] = {}
    unreachable: dict[str, str] = {}

    def one(target: HostPolicies) -> None:
        name = target.host.name
        if progress is not None:
            progress(name, "gathering")
        try:
            done[name] = work(target)
        except ConnectionFailed as exc:
            if alone:
                raise
            unreachable[name] = one_line(str(exc), name)
            if progress is not None:
                progress(name, "unreachable")
            return
        if progress is not None:
            progress(name, "gathered")

    if len(targets) <= 1 or forks <= 1:
        for target in targets:
            one(target)
    else:
        with ThreadPoolExecutor(max_workers=min(forks, len(targets))) as pool:
            # list(): re-raise here any error that is not "unreachable" (bad input, a bug).
            list(pool.map(one, targets))
    return done, unreachable


def one_line(message: str, host: str) -> str:
    """The reason alone: the host's name is printed beside it already."""
    text = " ".join(message.split())
    return text.removeprefix(f"{host}: ").removeprefix(f"{host} ")


def _gather(
    target: HostPolicies,
    scope: str,
    plan_at: datetime | None = None,
    last_use: Path | None = None,
    make: Callable[[Host], Connector] = connector_for,
) -> Facts:
    """Gather one host's facts through a connector of its own (see :func:`gather_with`);
    a worker's slow facts wait for the swarm's view (see :meth:`Workspace._complete_lean`)."""
    return _through(
        target,
        lambda conn: _gather_with(conn, target, scope, plan_at, last_use),
        make,
    )


def _gather_with(
    conn: Connector,
    target: HostPolicies,
    scope: str,
    plan_at: datetime | None,
    last_use: Path | None,
) -> Facts:
    from ccci.run.gather import gather_with

    return gather_with(conn, target, scope, plan_at, last_use, shared_later=True)


def _through(
    target: HostPolicies,
    read: Callable[[Connector], Facts],
    make: Callable[[Host], Connector] = connector_for,
) -> Facts:
    """``read`` through a connector of the host's own (``make``'s: a new one, or one opened
    while the policies loaded), closed after; an engine that does not answer makes the host
    unreachable, with the reason in one line."""
    from ccci.connectors.engineapi import is_docker_error
    from ccci.connectors.local import ConnectionFailed

    conn = make(target.host)
    try:
        return read(conn)
    except Exception as exc:
        if not is_docker_error(exc):  # reads of a local engine never import the SDK
            raise
        raise ConnectionFailed(
            f"{target.host.name}: cannot gather facts from {conn.docker_host}: {exc}"
        ) from None
    finally:
        conn.close()


class Workspace:
    """Inventory, policies and state for one invocation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The state directory remembers the files that parsed (a run whose inventory and
        # policies did not change never imports PyYAML); saved when the policies are loaded.
        self._parsed = ParsedCache(settings.state_dir)
        self.inventory: Inventory = with_connection(
            inventory_mod.load(settings.inventory, self._parsed), settings.connection
        )
        self._planned: dict[str, HostPolicies] = {}
        self._facts: dict[str, Facts] = {}
        self._locked = False
        # Hosts that could not be reached by the last plan or apply, with the reason.
        self.unreachable: dict[str, str] = {}
        # (host, what) as each host's work starts and ends: the CLI shows it on a terminal.
        self.progress: Callable[[str, str], None] | None = None

    def require_policies(self) -> None:
        """Refuse an empty policy set (see ccci.policy.files), reading through this run's
        cache of parsed files, so a run whose files did not change never imports yaml."""
        from ccci.policy.files import require_policies

        require_policies(self.settings.policies, self._parsed)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the apply lock across plan and apply, so a second ``reconcile --apply``
        exits 75 before it reads the engine at all."""
        from ccci.apply import lock

        if self._locked:
            yield
            return
        with lock.hold(self.settings.lock_path):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False

    def targets(self, inventory: Inventory | None = None) -> list[HostPolicies]:
        """Every limited host with its validated policies; errors before any change (a live
        plan's first reads run meanwhile, see ccci.run.opening)."""
        inv = inventory or self.inventory
        # The state directory remembers which documents passed their schema, and which
        # hosts' documents passed everything: a run of some kinds (the janitor) then builds
        # only those, and still stops on any document's error (a fast start).
        from ccci.policy.load import load_for_hosts
        from ccci.policy.validated import ValidatedCache

        passed = ValidatedCache(self.settings.state_dir)
        hosts = inv.limit(self.settings.limit)
        return load_for_hosts(
            self.settings.policies, inv, hosts, passed, self._parsed, self.settings.kinds
        )

    def gather(
        self,
        target: HostPolicies,
        plan_at: datetime | None = None,
        make: Callable[[Host], Connector] = connector_for,
    ) -> Facts:
        """One host's facts through a connector of its own, with this run's scope and the host's
        last-use record; with ``plan_at``, only what planning at that time can use."""
        return _gather(
            target,
            self.settings.scope,
            plan_at,
            self.settings.last_use_path(target.host.name),
            make,
        )

    def gather_all(
        self,
        targets: list[HostPolicies],
        plan_at: datetime | None = None,
        make: Callable[[Host], Connector] = connector_for,
    ) -> dict[str, Facts]:
        """Every target's facts, ``forks`` at once, in the targets' order; the hosts that
        cannot be reached go to :attr:`unreachable` instead."""
        found, unreachable = each_host(
            targets,
            lambda t: self.gather(t, plan_at, make),
            self.settings.forks,
            self.progress,
            alone=len(targets) == 1,
        )
        self.unreachable.update(unreachable)
        return {t.host.name: found[t.host.name] for t in targets if t.host.name in found}

    def plan(
        self,
        now: datetime | None = None,
        snapshot: Path | None = None,
        fingerprinted: bool = True,
    ) -> tuple[Plan, dict[str, Facts]]:
        """Plan every targeted host, from live facts or from a saved snapshot. Hosts of one
        swarm share its cluster objects, read from one manager (see ccci.run.swarmscope);
        the facts returned are those each host was planned on. ``fingerprinted``: the plan
        may be saved (``--out``, JSON output), so each change carries its facts' fingerprint;
        a plan only shown, or applied at once, needs none."""
        inventory = self.inventory
        moment = now or datetime.now(UTC)
        facts_by_host: dict[str, Facts]
        if snapshot is not None:
            from ccci.facts.snapshot import read_snapshot

            facts_by_host = read_snapshot(snapshot)
            if not self.settings.inventory.exists():
                # No inventory: the snapshot's hosts are the inventory.
                hosts = {n: Host(n, {"inventory_hostname": n}, ("all",)) for n in facts_by_host}
                inventory = Inventory(hosts, {"all": tuple(hosts)}, str(snapshot))
            targets = self.targets(inventory)
            missing = [t.host.name for t in targets if t.host.name not in facts_by_host]
            if missing:
                have = ", ".join(sorted(facts_by_host)) or "none"
                raise InputError(
                    Location(str(snapshot), 1),
                    f"hosts: no facts for {', '.join(missing)} (has: {have})",
                )
        else:
            targets, facts_by_host = self._load_and_gather(moment)
            targets = [t for t in targets if t.host.name in facts_by_host]
        self._planned = {t.host.name: t for t in targets}
        plan, planned_on = self._plan_shared(
            targets, facts_by_host, moment, live=snapshot is None, fingerprinted=fingerprinted
        )
        self._facts = planned_on
        return plan, planned_on

    def _load_and_gather(self, moment: datetime) -> tuple[list[HostPolicies], dict[str, Facts]]:
        """The policies loaded while the first hosts' connections open and their first reads
        run (see ccci.run.opening), then every host's facts for a plan at ``moment``."""
        from ccci.run.opening import Opening

        hosts = self.inventory.limit(self.settings.limit)  # a bad --limit: before any I/O
        opening = Opening(hosts, self.settings.scope, self.settings.forks, connector_for)
        try:
            targets = self.targets()
            return targets, self.gather_all(targets, plan_at=moment, make=opening.take)
        finally:
            opening.close()

    def _plan_shared(
        self,
        targets: list[HostPolicies],
        facts_by_host: dict[str, Facts],
        moment: datetime,
        live: bool,
        fingerprinted: bool = True,
    ) -> tuple[Plan, dict[str, Facts]]:
        """The one way gathered facts become a plan, for ``reconcile`` and a saved plan's
        re-derivation alike: each swarm's cluster objects shared from its first manager in
        the targets' order, then (``live``) a worker's slow facts read if the shared view
        wants them, then every cluster host planned before its swarm's other nodes. The
        same facts give the same plan, whichever command asked."""
        from ccci.run.swarmscope import plan_in_scope, share

        shared = share(facts_by_host, [t.host.name for t in targets], self.unreachable)
        if live:
            shared = self._complete_lean(targets, facts_by_host, shared, moment)
        return plan_in_scope(
            [(t.host.name, t.policies, shared[t.host.name]) for t in targets],
            moment,
            fingerprinted,
        )

    def _complete_lean(
        self,
        targets: list[HostPolicies],
        gathered: dict[str, Facts],
        shared: dict[str, Facts],
        moment: datetime,
    ) -> dict[str, Facts]:
        """Each worker's build cache and image sizes, read now when its share of the swarm's
        view wants them: on its own view (no services) every gate that asks about the swarm
        was closed, so its gather left the decision to here. Only those hosts are connected
        to again; one that stopped answering since is planned without them (its prune says
        the build cache was not gathered; its eviction counts whole image sizes)."""
        from ccci.run.gather import add_slow, slow_wanted
        from ccci.run.swarmscope import borrows

        wanting = {
            t.host.name: (t, wants)
            for t in targets
            if t.host.name in shared and borrows(gathered[t.host.name])
            for wants in [slow_wanted(t, shared[t.host.name], moment)]
            if wants
        }
        done, _ = each_host(
            [t for t, _ in wanting.values()],
            lambda t: _through(
                t, lambda conn: add_slow(conn, shared[t.host.name], wanting[t.host.name][1])
            ),
            self.settings.forks,
        )
        return {**shared, **done}

    def _member_of(self, host: str) -> SwarmScope | None:
        """The host's share of a swarm view whose cluster work another host of the run does
        (its plan was made on that host's cluster objects), or None."""
        facts = self._facts.get(host)
        swarm = facts.swarm if facts is not None else None
        if swarm is None or swarm.cluster_work or swarm.source not in self.inventory.hosts:
            return None
        return swarm

    def _target_for(self, host: str) -> HostPolicies | None:
        """The host's policies, as the plan being applied was made (or re-derived) with."""
        return self._planned.get(host)

    def _record_last_use(self, facts_by_host: dict[str, Facts]) -> None:
        """Every apply (the nightly, the janitor's full runs) updates when images were used."""
        from ccci.connectors.local import ConnectionFailed
        from ccci.facts.docker import add_finish_times
        from ccci.state import lastuse

        now = datetime.now(UTC)
        for host, facts in facts_by_host.items():
            if facts.scope != SCOPE_FULL or not facts.images:
                continue
            target = self._target_for(host)
            if target is not None:
                conn = connector_for(target.host)
                try:
                    facts = add_finish_times(conn, facts)
                except ConnectionFailed as exc:
                    # Gone since its apply: its record waits for the next run.
                    self.unreachable.setdefault(host, one_line(str(exc), host))
                    continue
                finally:
                    conn.close()
            path = self.settings.last_use_path(host)
            lastuse.write(path, lastuse.advanced(lastuse.read_record(path), facts, now))

    def _write_metrics(self, reports: list[Any], plan: Plan, facts: dict[str, Facts]) -> None:
        from ccci.state import metrics

        text = metrics.render(reports, {h.host: h for h in plan.hosts}, facts, datetime.now(UTC))
        metrics.write(self.settings.metrics_path, text)

    def policies_of(self, host: str) -> tuple[Any, ...]:
        """The policies the last plan used for ``host``."""
        target = self._planned.get(host)
        return target.policies if target is not None else ()

    def _replan(self, host_plan: Any, plan: Plan) -> Callable[[Facts], tuple[str, ...]] | None:
        """Plan fresh facts with the policies and time this plan was made with."""
        from ccci.plan.build import plan_host

        target = self._planned.get(host_plan.host)
        if target is None:
            return None
        return lambda facts: tuple(
            c.address
            for c in plan_host(
                target.host.name, target.policies, facts, plan.now, fingerprinted=False
            ).changes
        )

    def rederive(self, saved: Plan) -> Plan:
        """A saved plan is a claim, not an order: plan every host it names afresh, with the
        policies and fresh facts, and keep exactly the saved changes the fresh plan makes
        too, as the fresh plan has them. Anything else refuses the whole plan, before
        anything is done.

        The fresh plan is made at the clock's time, never at the saved ``now``: a ``now``
        written into the file would otherwise widen every age rule. Ages only grow, so a
        change planned earlier is planned again now unless something moved.
        """
        from ccci.plan.model import PLAN_FORMAT, Plan
        from ccci.plan.saved import PlanRefused, judge_saved, stale_message

        if saved.format_version != PLAN_FORMAT:
            raise PlanRefused(
                f"saved plan refused: format_version {saved.format_version} is not "
                f"{PLAN_FORMAT}; make a new plan with ccci reconcile --plan --out"
            )
        moment = datetime.now(UTC)
        targets = {t.host.name: t for t in self.targets()}
        named = {h.host: targets[h.host] for h in saved.hosts if h.host in targets}
        # Gathered ``forks`` at once, as reconcile does; a host that cannot be reached
        # ends the run before anything is done, as it always did.
        gathered, _ = each_host(
            list(named.values()),
            lambda t: self.gather(t, plan_at=moment),
            self.settings.forks,
            self.progress,
            alone=True,
        )
        # Planned as reconcile plans (the swarm's view shared in inventory order, cluster
        # hosts first): a worker's saved reaps and evictions were made on that view.
        in_order = [t for t in targets.values() if t.host.name in named]
        fresh_plan, planned_on = self._plan_shared(in_order, gathered, moment, live=True)
        fresh_of = {h.host: h for h in fresh_plan.hosts}
        refused: list[str] = []
        stale: list[str] = []
        hosts = []
        facts_by_host: dict[str, Facts] = {}
        for saved_host in saved.hosts:
            name = saved_host.host
            target = targets.get(name)
            if name in facts_by_host:
                refused.append(f"{name}: host listed twice")
                continue
            if target is None:
                refused.append(f"{name}: not a host {self.settings.inventory} and --limit select")
                continue
            facts = planned_on[name]
            facts_by_host[name] = facts
            verdict = judge_saved(saved_host, fresh_of[name], facts)
            refused += [f"{name}: {why}" for why in verdict.refused]
            stale += [f"{name}: {address}" for address in verdict.stale]
            hosts.append(verdict.host)
        if refused and not stale:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            ahead = saved.now - moment
            note = (
                f"; it was made as of {format_time(saved.now)}, ahead of the clock, and apply "
                "plans at the clock's time"
                if ahead.total_seconds() > 60
                else ""
            )
            raise PlanRefused(f"saved plan refused: {refused[0]}{more}{note}; nothing was done")
        if stale:
            raise StalePlan(stale_message(stale))
        self._planned = {n: targets[n] for n in facts_by_host}
        self._facts = facts_by_host
        return Plan(now=moment, hosts=tuple(hosts))

    def apply(self, plan: Plan, saved: bool, on_result: Callable[[str, Any], None]) -> list[Any]:
        """Apply under the lock. A saved plan must come through :meth:`rederive` first; its
        facts are gathered once more before acting (an operator may have taken minutes to
        say yes), and any fingerprint that moved since refuses it whole."""
        from ccci.apply.executor import Executor, scope_for
        from ccci.run.swarmscope import cluster_first

        with self.locked():
            journal = _SharedJournal(self.settings.journal_path)
            run_id = uuid.uuid4().hex[:12]
            executors: dict[str, Executor] = {}
            clusters: list[Connector] = []
            fresh: dict[str, Facts] = {}
            ordered = _InOrder([h.host for h in plan.hosts], on_result)
            by_name = {h.host: h for h in plan.hosts}
            try:
                for name in self.unreachable:
                    # Not reached when planned: its result is "unreachable", and says why.
                    journal.write(_unreachable_recap(name, run_id, self.unreachable[name]))
                for host_plan in plan.hosts:
                    executors[host_plan.host] = self._executor_for(
                        host_plan.host, plan, journal, run_id, ordered, clusters
                    )

                def current(target: HostPolicies) -> Facts | None:
                    host_plan = by_name[target.host.name]
                    if not host_plan.changes:
                        return None
                    at = plan.now if saved else None
                    scope = self.settings.scope if saved else scope_for(host_plan)
                    return executors[host_plan.host].current(host_plan, scope, plan_at=at)

                targets = [self._planned[h.host] for h in plan.hosts]
                alone = len(targets) + len(self.unreachable) == 1
                found, lost = each_host(
                    targets, current, self.settings.forks, self.progress, alone=alone
                )
                fresh = {n: f for n, f in found.items() if f is not None}
                for name, reason in lost.items():
                    journal.write(_unreachable_recap(name, run_id, reason))
                    ordered.finish(name)
                if saved:
                    from ccci.plan.saved import refuse_if_stale

                    refuse_if_stale(plan, fresh)

                def run(target: HostPolicies) -> Any:
                    host_plan = by_name[target.host.name]
                    try:
                        return executors[host_plan.host].run(
                            host_plan, fresh.get(host_plan.host), self._replan(host_plan, plan)
                        )
                    finally:
                        ordered.finish(host_plan.host)

                reachable = [t.host.name for t in targets if t.host.name not in lost]
                done: dict[str, Any] = {}
                gone: dict[str, str] = {}
                # Each swarm's cluster host first: the other nodes' reaps wait for the
                # services that hold their volumes to be gone.
                for wave in cluster_first(reachable, self._facts):
                    wave_done, wave_gone = each_host(
                        [self._planned[n] for n in wave], run, self.settings.forks, alone=alone
                    )
                    done.update(wave_done)
                    gone.update(wave_gone)
                # Lost mid-apply: the executor journalled its recap (not converged).
                self.unreachable.update(lost)
                self.unreachable.update(gone)
                reports = [done[h.host] for h in plan.hosts if h.host in done]
                reached = {n: f for n, f in {**self._facts, **fresh}.items() if n in done}
                self._write_metrics(reports, plan, reached)
                self._record_last_use(reached)
                return reports
            finally:
                journal.close()
                for executor in executors.values():
                    executor.conn.close()
                for cluster_conn in clusters:
                    cluster_conn.close()

    def _executor_for(
        self,
        name: str,
        plan: Plan,
        journal: Journal,
        run_id: str,
        ordered: _InOrder,
        clusters: list[Connector],
    ) -> Any:
        """The executor of one planned host, with its own connector; a node of a shared
        swarm view re-reads the swarm through its cluster host's connector (added to
        ``clusters``, which the caller closes)."""
        from ccci.apply.executor import Executor
        from ccci.run.gather import gather_with
        from ccci.run.swarmscope import gather_member

        host = self.inventory.hosts.get(name)
        target = self._target_for(name)
        if host is None or target is None:
            raise CcciError(f"{name}: host is not in {self.settings.inventory}")
        conn = connector_for(host)
        swarm = self._member_of(host.name)
        cluster = connector_for(self.inventory.hosts[swarm.source]) if swarm else None
        refresh: Callable[..., Facts] = functools.partial(
            gather_with,
            conn,
            target,
            last_use=self.settings.last_use_path(host.name),
        )
        if swarm is not None and cluster is not None:
            clusters.append(cluster)
            refresh = functools.partial(
                gather_member,
                conn,
                cluster,
                target,
                last_use=self.settings.last_use_path(host.name),
                swarm=swarm,
            )
        return Executor(
            conn,
            journal,
            run_id,
            clock=lambda: datetime.now(UTC),
            on_result=functools.partial(ordered.result, host.name),
            refresh=refresh,
            scope=self.settings.scope,
            planned_at=plan.now,
            cluster=cluster,
        )


class _SharedJournal(Journal):
    """The journal, one line at a time from the hosts' threads (its torn-line repair
    measures the file's end first, which two writers at once would get wrong)."""

    def __init__(self, path: Path) -> None:
        import threading

        super().__init__(path)
        self._write_lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        with self._write_lock:
            super().write(entry)


class _InOrder:
    """Each host's results passed on in the plan's host order, whatever finished first:
    the first unfinished host's results go out as they come, the others' wait their turn,
    so ``--forks 1`` and ``--forks 3`` print the same lines."""

    def __init__(self, hosts: list[str], sink: Callable[[str, Any], None]) -> None:
        import threading

        self._hosts = hosts
        self._sink = sink
        self._held: dict[str, list[Any]] = {h: [] for h in hosts}
        self._finished: set[str] = set()
        self._front = 0
        self._lock = threading.Lock()

    def result(self, host: str, result: Any) -> None:
        with self._lock:
            if self._front < len(self._hosts) and self._hosts[self._front] == host:
                self._sink(host, result)
            else:
                self._held[host].append(result)

    def finish(self, host: str) -> None:
        with self._lock:
            self._finished.add(host)
            while self._front < len(self._hosts):
                front = self._hosts[self._front]
                for held in self._held[front]:
                    self._sink(front, held)
                self._held[front] = []
                if front not in self._finished:
                    return
                self._front += 1


def _unreachable_recap(host: str, run_id: str, reason: str) -> dict[str, Any]:
    """A recap line as the executor writes one, for a host that was never reached."""
    return {
        "type": "recap",
        "time": format_time(datetime.now(UTC)),
        "run": run_id,
        "host": host,
        "ok": 0,
        "changed": 0,
        "failed": 0,
        "skipped": 0,
        "unreachable": 1,
        "reason": reason,
        "converged": False,
        "remaining": [],
        "bytes_freed": 0,
    }
