"""OrphanStackPolicy: reap the run-apps whose CI run was killed before its teardown.

A stack is a run-app when its name matches ``run_apps`` and no ``keep`` pattern; it is
orphaned when past its own deadline label, or when its newest object is older than
``orphan_after``, even while its services still converge (a stuck deploy is not a run).
Without the facts that tell a live stack from leftovers, no stack is judged at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ccci.facts.model import Facts, Stack
from ccci.plan import Action, Change, Manual, Noop, Precondition
from ccci.policy.model import OrphanStackPolicy
from ccci.rules import Context, RuleOutput
from ccci.rules.convergence import unsettled
from ccci.rules.gates import missing_reason
from ccci.units import format_duration, format_spec_duration, format_time


def _deadline(stack: Stack, label: str) -> tuple[datetime | None, str]:
    """The earliest deadline stamped on any of the stack's objects, and any bad value."""
    found: list[datetime] = []
    bad = ""
    for labels in stack.labels():
        raw = labels.get(label)
        if raw is None:
            continue
        try:
            found.append(datetime.fromtimestamp(int(raw), tz=UTC))
        except (ValueError, OverflowError):
            bad = raw
    return (min(found) if found else None), bad


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
    mine = [u for u in unsettled(facts, now) if u.service.stack == stack.name]
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
    if policy.expires_label:
        deadline, bad = _deadline(stack, policy.expires_label)
        if deadline is not None and deadline <= now:
            ago = format_duration(now - deadline)
            return (
                True,
                f"run-app past its deadline {policy.expires_label}="
                f"{format_time(deadline)} ({ago} ago)",
            )
        if bad and deadline is None:
            note = f"; label {policy.expires_label}={bad!r} is not a unix time"
        else:
            note = ""
    else:
        note = ""
    newest = stack.newest()
    env = facts.file(policy.env_file_for(stack.name)) if policy.env_file else None
    if (
        env is not None
        and env.exists
        and env.modified
        and (newest is None or env.modified > newest)
    ):
        newest = env.modified
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


def reapable(policy: OrphanStackPolicy, stack: Stack, facts: Facts) -> dict[str, list[str]]:
    """What of the stack this policy reaps, by kind, in reap order."""
    objects = stack.objects()
    plan: dict[str, list[str]] = {}
    for kind in policy.reap:
        if kind == "env_file":
            path = policy.env_file_for(stack.name)
            found = facts.file(path)
            if found is not None and found.exists:
                plan[kind] = [path]
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


def _stacks(policy: OrphanStackPolicy, facts: Facts) -> list[Stack]:
    """Every stack, including run-apps known only from abra's env file (and maybe a few
    unlabelled secrets): a run killed before its deploy leaves just those."""
    from_env = {policy.stack_of_env_file(f.path) for f in facts.files if f.exists} - {""}
    stacks = list(facts.stacks(tuple(sorted(from_env))))
    known = {s.name for s in stacks}
    stacks += [Stack(n, (), (), (), (), ()) for n in sorted(from_env - known)]
    return sorted(stacks, key=lambda s: s.name)


def plan_orphans(policy: OrphanStackPolicy, ctx: Context) -> RuleOutput:
    facts, now, name = ctx.facts, ctx.now, policy.meta.name
    source = policy.meta.source
    lacking = missing_reason(facts, *ORPHAN_NEEDS)
    if lacking:
        yield Noop(f"policy:{name}", name, f"no stack judged: {lacking}", name, source)
        return
    for stack in _stacks(policy, facts):
        address = f"stack:{stack.name}"
        orphaned, why = orphan_verdict(policy, stack, facts, now)
        present = {k: list(v) for k, v in stack.objects().items() if v}
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
            reason=why,
            policy=name,
            source=source,
            before={kind: names for kind, names in objects.items()},
            preconditions=(Precondition.STACK_ORPHANED,),
            params={"wait_seconds": policy.wait.total_seconds()},
        )
