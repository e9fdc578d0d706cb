"""A saved plan is a claim: re-derived from policies and fresh facts, kept only where the
fresh plan agrees, and read from disk checked for form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccci.errors import CcciError, InputError, Location, StalePlan
from ccci.facts.model import Facts
from ccci.plan.fingerprint import SWARM_KEY, fingerprints_for, moved
from ccci.plan.model import Change, GateResult, HostPlan, Plan
from ccci.serde import to_jsonable


@dataclass(frozen=True)
class Verdict:
    """A saved host plan judged against a fresh one: what may be applied, and why not."""

    host: HostPlan
    refused: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()


def judge_saved(saved: HostPlan, fresh: HostPlan, facts: Facts) -> Verdict:
    """Keep the saved changes the fresh plan (same policies, fresh ``facts``) makes too.

    A saved plan is data to compare, never orders: what is applied is the fresh plan's own
    change (its paths, unit contents, stack objects and gates). ``refused`` names each
    claim the policies do not make now, or that cannot be checked (no fingerprint);
    ``stale`` each fingerprint that moved. Either refuses the whole plan.
    """
    refused: list[str] = []
    stale: list[str] = []
    fresh_changes = {c.address: c for c in fresh.changes}
    accepted: set[str] = set()
    for change in saved.changes:
        address = change.address
        if address in accepted:
            refused.append(f"{address}: listed twice")
            continue
        if address not in saved.fingerprints:
            refused.append(f"{address}: has no fingerprint, so its facts cannot be checked")
            continue
        now = fresh_changes.get(address)
        prints = fresh.fingerprints if now is not None else fingerprints_for(facts, (change,))
        if prints.get(address) != saved.fingerprints[address]:
            stale.append(address)
            continue
        if now is None:
            refused.append(f"{address}: {_why_not(fresh, change)}")
            continue
        differ = change.differs_from(now)
        if differ:
            refused.append(f"{address}: {', '.join(differ)} not as the policies plan it now")
            continue
        accepted.add(address)
    if SWARM_KEY not in saved.fingerprints:
        refused.append(f"{SWARM_KEY}: has no fingerprint, so its facts cannot be checked")
    elif saved.fingerprints[SWARM_KEY] != fresh.fingerprints.get(SWARM_KEY):
        stale.append(SWARM_KEY)
    for policy in dict.fromkeys(c.policy for c in saved.changes):
        mine = [_gate_claim(g) for g in saved.gates_for(policy)]
        theirs = [_gate_claim(g) for g in fresh.gates_for(policy)]
        if sorted(mine, key=json.dumps) != sorted(theirs, key=json.dumps):
            have, want = _gate_kinds(saved, policy), _gate_kinds(fresh, policy)
            refused.append(
                f"policy {policy}: gates {have} differ from the policies' in their values"
                if have == want
                else f"policy {policy}: gates {have} are not the policies' ({want})"
            )
    kept = HostPlan(
        host=fresh.host,
        changes=tuple(c for c in fresh.changes if c.address in accepted),
        noops=fresh.noops,
        gates=fresh.gates,
        fingerprints=fresh.fingerprints,
        manual=fresh.manual,
    )
    return Verdict(kept, tuple(refused), tuple(stale))


def _gate_claim(result: GateResult) -> Any:
    """A gate as a saved plan claims it: what it checks, not where the policy file was read
    from (``-p policies`` and ``-p /srv/ci/policies`` are the same policies)."""
    claim = to_jsonable(result.gate)
    claim.pop("source", None)
    return claim


def _gate_kinds(plan: HostPlan, policy: str) -> str:
    kinds = [g.gate.kind.value for g in plan.gates_for(policy)]
    return ", ".join(kinds) if kinds else "none"


def _why_not(fresh: HostPlan, change: Change) -> str:
    """Why the fresh plan has no such change: a closed gate, a noop's reason, or nothing."""
    closed = [g for g in fresh.gates_for(change.policy) if not g.open]
    if change.gated and closed:
        gate = closed[0]
        kind = gate.gate.kind.value
        return f"policy {change.policy} holds it now: gate {kind} closed ({gate.observed})"
    noop = next((n for n in fresh.noops if n.address == change.address), None)
    if noop is not None:
        return f"the policies would not do this now: {noop.reason} (policy {noop.policy})"
    return "no policy plans this now"


class PlanRefused(CcciError):
    """A saved plan claims something the policies would not do now: refused whole."""


def stale_message(moved: list[str]) -> str:
    """The one wording of a stale saved plan: at most three moved facts named, and what to do."""
    shown = ", ".join(moved[:3]) + (f" and {len(moved) - 3} more" if len(moved) > 3 else "")
    return (
        f"saved plan is stale: the facts it was made from have moved ({shown}); "
        "make a new plan with ccci reconcile --plan"
    )


def refuse_if_stale(plan: Plan, fresh: dict[str, Facts]) -> None:
    """Raises StalePlan when the facts gathered again just before acting moved from those the plan
    was judged on: an operator's pause must not let apply act on a changed host."""
    found = [
        f"{host_plan.host}: {address}"
        for host_plan in plan.hosts
        if host_plan.host in fresh
        for address in moved(host_plan, fresh[host_plan.host])
    ]
    if found:
        raise StalePlan(stale_message(found))


def read_plan(path: Path) -> Plan:
    """A saved plan's data, checked only for form: :meth:`Workspace.rederive` decides what
    of it may be applied."""
    from ccci.plan.model import PLAN_FORMAT
    from ccci.serde import read_json

    data = read_json(path)  # size, depth and syntax: one-line errors
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != PLAN_FORMAT:
        raise InputError(
            Location(str(path), 1),
            f"format_version: {version!r} is not {PLAN_FORMAT}; make a new plan with "
            "ccci reconcile --plan --out",
        )
    try:
        return Plan.from_dict(data)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise InputError(Location(str(path), 1), f"not a ccci plan: {exc}") from None
