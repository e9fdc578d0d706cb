"""OrphanStackPolicy: reap the run-apps whose CI run was killed before its teardown.

A stack is a run-app when its name matches ``run_apps`` and no ``keep`` pattern; it is
orphaned when past its own deadline label, or when its newest object is older than
``orphan_after``, even while its services still converge (a stuck deploy is not a run).
Without the facts that tell a live stack from leftovers, no stack is judged at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ccci.facts.model import Facts, Stack
from ccci.facts.stacks import run_app_secrets, undecided_env_files, unsafe_name
from ccci.plan.address import AddressKind, addr
from ccci.plan.model import Action, Change, Manual, Noop, Operation, Precondition, Target, Work
from ccci.policy.model import OrphanStackPolicy
from ccci.quantities import format_duration, format_spec_duration, format_time
from ccci.rules import Context, RuleOutput
from ccci.rules.convergence import unsettled_in
from ccci.rules.gates import describe_gaps, unsure
from ccci.rules.swarmreap import NODE_KINDS, in_swarm, member_outcome, on_member, unreached_nodes

# A unix time is ASCII digits and nothing else: int() would also take '１２３', ' 12',
# '+12' or '1_2', and a recipe chooses its own labels. Eleven digits reach the year 5138.
_UNIX_TIME = re.compile(r"\A[0-9]{1,11}\Z")


def _deadline(stack: Stack, label: str) -> tuple[datetime | None, str]:
    """The latest deadline stamped on any of the stack's objects, and a bad value if any.

    The latest counts: a volume's labels never change, so a run extends its deadline only
    by stamping a later one on another object (a service update, a new config)."""
    found: list[datetime] = []
    bad = ""
    for labels in stack.labels():
        raw = labels.get(label)
        if raw is None:
            continue
        if _UNIX_TIME.match(raw):
            try:
                found.append(datetime.fromtimestamp(int(raw), tz=UTC))
                continue
            except (ValueError, OverflowError, OSError):
                pass
        bad = raw
    return (max(found) if found else None), bad


# What the janitor must see to tell a live stack from leftovers and judge an age: without
# the services every stack looks partial, and its volumes would look like an orphan's.
ORPHAN_NEEDS = ("services", "secrets", "configs", "networks", "volumes")


def orphan_verdict(
    policy: OrphanStackPolicy, stack: Stack, facts: Facts, now: datetime
) -> tuple[bool, str]:
    """Whether a stack is an orphan to reap now, and the reason either way.

    Convergence does not save a run-app past its deadline or ``orphan_after``: its run is
    over, and removing its services is what ends a pull or a placement that never finishes.
    One younger than that stays, converging or not (a deploy keeps its newest object fresh).
    """
    orphaned, why = _verdict(policy, stack, facts, now)
    mine = unsettled_in(facts, stack.name, now)
    if not mine or not why.startswith("run-app"):
        return orphaned, why
    first = mine[0]
    more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
    state = f"service {first.service.name} {first.describe(now)}{more}"
    if orphaned:
        return True, f"{why}; reaped although {state}"
    return False, f"{state}; {why}"


def _verdict(
    policy: OrphanStackPolicy, stack: Stack, facts: Facts, now: datetime
) -> tuple[bool, str]:
    if not policy.run_apps_pattern.search(stack.name):
        return False, f"not a run-app (does not match {policy.run_apps!r})"
    kept = next((k for k in policy.keep_patterns if k.search(stack.name)), None)
    if kept is not None:
        return False, f"kept by pattern {kept.pattern!r}"
    note = ""
    if policy.expires_label:
        deadline, bad = _deadline(stack, policy.expires_label)
        if bad:
            note = f"; label {policy.expires_label}={bad!r} is not a unix time"
        if deadline is not None:
            return _by_deadline(policy, stack, deadline, now, note)
    newest = stack.newest()
    if newest is None:
        return False, f"run-app of unknown age (no object has a creation time){note}"
    age = now - newest
    limit = format_spec_duration(policy.orphan_after)
    if age >= policy.orphan_after:
        return True, f"run-app, newest object {format_duration(age)} old ≥ {limit}{note}"
    return (
        False,
        f"run-app, newest object {format_duration(age)} old < {limit} "
        f"(its run may still be going){note}",
    )


def _by_deadline(
    policy: OrphanStackPolicy, stack: Stack, deadline: datetime, now: datetime, note: str
) -> tuple[bool, str]:
    """A run that stamped its deadline is judged by it, not by ``orphan_after``: past it,
    it is over; ahead of it, it is kept, but never beyond ``max_lifetime``."""
    stamp = f"{policy.expires_label}={format_time(deadline)}"
    if deadline <= now:
        ago = format_duration(now - deadline)
        return True, f"run-app past its deadline {stamp} ({ago} ago){note}"
    born = stack.oldest()
    lifetime = format_spec_duration(policy.max_lifetime)
    ahead = format_duration(deadline - now)
    if born is not None and now - born >= policy.max_lifetime:
        return (
            True,
            f"run-app {format_duration(now - born)} old ≥ max_lifetime {lifetime}: its "
            f"deadline {stamp} (in {ahead}) keeps it no longer{note}",
        )
    return False, f"run-app before its deadline {stamp} (in {ahead}; at most {lifetime}){note}"


def reapable(policy: OrphanStackPolicy, stack: Stack, facts: Facts) -> dict[str, list[str]]:
    """What of the stack this policy reaps, by kind, in reap order."""
    objects = stack.objects()
    plan: dict[str, list[str]] = {}
    for kind in policy.reap:
        if kind == "env_file":
            # Only the files in this policy's folder that say they are this stack's.
            paths = [f.path for f in stack.env_files if policy.owns_env_file(f.path)]
            if paths:
                plan[kind] = paths
        elif objects.get(kind):
            plan[kind] = list(objects[kind])
    return plan


def _label(stack: Stack, objects: dict[str, list[str]]) -> str:
    parts = [
        f"{len(names)} {kind if len(names) != 1 else kind.rstrip('s')}"
        for kind, names in objects.items()
    ]
    state = "" if stack.live else "partial, "
    return state + ", ".join(parts).replace("env_file", "env file").replace(
        "env files", "env files"
    )


def _stacks(
    policy: OrphanStackPolicy, facts: Facts
) -> tuple[tuple[Stack, ...], dict[str, tuple[str, ...]]]:
    """Every stack, including run-apps known only from abra's env file or only from their
    unlabelled secrets: a run killed before its deploy, or right after ``abra app secret
    generate``, leaves just those; and the secrets whose stack cannot be decided.
    ``ccci.facts.stacks`` decides what is whose."""
    stacks = facts.stacks()
    known = {s.name for s in stacks}
    learnt, ambiguous = run_app_secrets(facts.secrets, known, policy.run_apps_pattern)
    return (facts.stacks(tuple(sorted(learnt))) if learnt else stacks), ambiguous


def _undecided(
    policy: OrphanStackPolicy, facts: Facts, ambiguous: dict[str, tuple[str, ...]]
) -> RuleOutput:
    """Secrets and env files whose stack cannot be decided: left, never reaped on a guess,
    and manual actions, so the host does not count as converged while they are there."""
    name, source = policy.meta.name, policy.meta.source
    for secret, candidates in sorted(ambiguous.items()):
        yield Manual(
            addr(AddressKind.SECRET, secret),
            "unlabelled secret",
            "owner undecidable: its name starts like the run-app stacks "
            f"{', '.join(candidates)}; left",
            "remove it by hand once its run is over, or anchor the run-app pattern at the end "
            "of the stack name (…_ci_example_org$) so that one prefix decides",
            name,
            source,
        )
    for file, why in undecided_env_files(facts.files):
        if policy.owns_env_file(file.path):
            yield Manual(
                addr(AddressKind.ENV_FILE, file.path),
                "env file",
                f"owner undecidable: {why}; left",
                "remove it by hand once its app is gone, or set its STACK_NAME",
                name,
                source,
            )


def plan_orphans(policy: OrphanStackPolicy, ctx: Context) -> RuleOutput:
    """The OrphanStackPolicy rule: one reap per orphaned run-app stack, naming the exact objects it
    removes; a stack it may not or cannot reap is a manual action, and without the facts that tell a
    live stack from leftovers no stack is judged."""
    facts, now, name = ctx.facts, ctx.now, policy.meta.name
    source = policy.meta.source
    gaps = facts.missing(*ORPHAN_NEEDS)
    if gaps:
        why = f"no stack judged: {describe_gaps(gaps)}"
        yield unsure(addr(AddressKind.POLICY, name), name, why, gaps, name, source)
        return
    stacks, ambiguous = _stacks(policy, facts)
    yield from _undecided(policy, facts, ambiguous)
    for stack in stacks:
        address = addr(AddressKind.STACK, stack.name)
        present = {k: list(v) for k, v in stack.objects().items() if v}
        if stack.env_files:
            present["env_file"] = [f.path for f in stack.env_files]
        refused = unsafe_name(stack.name)
        if refused:
            # A recipe chose this name (a label, an env file's STACK_NAME): never act on it,
            # and never let it pass unseen.
            yield Manual(
                address,
                _label(stack, present),
                f"refused: {refused}",
                "find what made it (a recipe under test chose the name) and remove it by hand",
                name,
                source,
            )
            continue
        member = on_member(facts)
        if member and in_swarm(stack):
            # Its swarm's cluster host judges the stack; this node reaps its own volumes.
            yield from member_outcome(policy, stack, facts, _label(stack, present))
            continue
        orphaned, why = orphan_verdict(policy, stack, facts, now)
        if not orphaned:
            yield Noop(address, _label(stack, present), why, name, source)
            continue
        objects = reapable(policy, stack, facts)
        if not objects:
            # An orphan left behind is drift, not a match: it keeps the host unconverged
            # (recap, exit code, metrics) until someone removes it or widens ``reap``.
            left = ", ".join(k for k, v in stack.objects().items() if v)
            yield Manual(
                address,
                _label(stack, present),
                f"{why}, but reaps none of what is left ({left})",
                f"remove the stack's {left} by hand, or add them to the policy's reap list",
                name,
                source,
            )
            continue
        yield Change(
            address=address,
            action=Action.DELETE,
            label=_label(stack, objects),
            reason=f"{why}; nothing of it is left in the swarm" if member else why,
            policy=name,
            source=source,
            before={kind: names for kind, names in objects.items()},
            preconditions=(Precondition.STACK_ORPHANED,),
            work=Work(
                Operation.REAP_STACK,
                # A node never removes the swarm's objects, whatever it was asked to reap.
                reap=tuple(k for k in policy.reap if not member or k in NODE_KINDS),
                wait_seconds=policy.wait.total_seconds(),
            ),
            targets=_targets(stack, objects),
        )
        yield from unreached_nodes(policy, stack, facts)


def _targets(stack: Stack, objects: dict[str, list[str]]) -> tuple[Target, ...]:
    """The exact objects the reap removes, with their engine ids: apply removes these and
    nothing that joins the stack after the plan."""
    ids = {("services", s.name): s.id for s in stack.services}
    ids |= {("secrets", s.name): s.id for s in stack.secrets}
    ids |= {("configs", c.name): c.id for c in stack.configs}
    ids |= {("networks", n.name): n.id for n in stack.networks}
    ids |= {("volumes", v.name): v.name for v in stack.volumes}
    return tuple(
        Target(kind, name, ids.get((kind, name), ""))
        for kind, names in objects.items()
        for name in names
    )
