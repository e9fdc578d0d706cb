"""Answers kept per facts snapshot (``Facts.derived``): its stacks and which services are
unsettled are worked out once per Facts instance, and that keeping never shows: another
snapshot gets its own answers, another moment its own judgement, and equality, JSON and a
replaced snapshot see only the facts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ccci.facts.model import (
    STACK_LABEL,
    Container,
    Daemon,
    Facts,
    Image,
    Service,
    SwarmObject,
    Task,
)
from ccci.rules.convergence import Progress, unsettled, unsettled_in
from ccci.rules.usage import image_users
from ccci.serde import to_jsonable

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DAEMON = Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True)


def _service(stack: str, name: str = "app", sid: str = "") -> Service:
    labels = {STACK_LABEL: stack}
    return Service(sid or f"id-{stack}-{name}", f"{stack}_{name}", "app:1", labels, NOW, NOW)


def _secret(name: str) -> SwarmObject:
    return SwarmObject(id=f"id-{name}", name=name, labels={}, created=NOW)


def _facts(*services: Service, secrets: tuple[SwarmObject, ...] = (), **more: object) -> Facts:
    return Facts("cc-ci", NOW, DAEMON, services=services, secrets=secrets, **more)  # type: ignore[arg-type]


def test_two_different_facts_give_their_own_stacks() -> None:
    first = _facts(_service("redi-3fa9c1_ci_example_org"))
    second = replace(first, services=(_service("cras-0b1c2d_ci_example_org"),))
    assert [s.name for s in first.stacks()] == ["redi-3fa9c1_ci_example_org"]
    assert [s.name for s in second.stacks()] == ["cras-0b1c2d_ci_example_org"]
    assert second.stack("redi-3fa9c1_ci_example_org") is None
    assert first.stack("cras-0b1c2d_ci_example_org") is None
    found = second.stack("cras-0b1c2d_ci_example_org")
    assert found is not None and found.live


def test_a_replaced_snapshot_starts_without_the_answers_of_the_one_it_came_from() -> None:
    facts = _facts(_service("redi-3fa9c1_ci_example_org"))
    assert facts.stack("redi-3fa9c1_ci_example_org") is not None
    emptied = replace(facts, services=())
    assert emptied.stacks() == ()
    assert emptied.stack("redi-3fa9c1_ci_example_org") is None


def test_kept_answers_change_neither_equality_nor_json_nor_repr() -> None:
    facts = _facts(_service("redi-3fa9c1_ci_example_org"), secrets=(_secret("x_db_v1"),))
    twin = _facts(_service("redi-3fa9c1_ci_example_org"), secrets=(_secret("x_db_v1"),))
    before = (facts.to_json(), repr(facts), to_jsonable(facts))
    facts.stacks()
    facts.stack("redi-3fa9c1_ci_example_org")
    unsettled(facts, NOW)
    assert (facts.to_json(), repr(facts), to_jsonable(facts)) == before
    assert facts == twin
    assert Facts.from_dict(json.loads(facts.to_json())) == facts


def test_a_stack_only_its_name_finds_takes_its_secret_from_a_shorter_stack_name() -> None:
    # ``x_org_uk``'s secret goes to ``x_org`` in the host's own grouping, which knows no
    # ``x_org_uk``; asked for by name, the longer stack owns it, as it always did.
    facts = _facts(_service("x_org"), secrets=(_secret("x_org_uk_db_v1"),))
    (grouped,) = facts.stacks()
    assert [s.name for s in grouped.secrets] == ["x_org_uk_db_v1"]
    named = facts.stack("x_org_uk")
    assert named is not None and [s.name for s in named.secrets] == ["x_org_uk_db_v1"]
    asked = facts.stack("x_org")
    assert asked is not None and [s.name for s in asked.secrets] == ["x_org_uk_db_v1"]
    assert [s.name for s in facts.stacks(("x_org_uk",))] == ["x_org", "x_org_uk"]


def test_one_snapshot_judged_at_two_moments_gives_each_its_own_judgement() -> None:
    pending = Task("t1", "id-app", "pending", "running", created=NOW)
    facts = _facts(_service("redi-3fa9c1_ci_example_org", sid="id-app"), tasks=(pending,))
    (soon,) = unsettled(facts, NOW + timedelta(minutes=1))
    (late,) = unsettled(facts, NOW + timedelta(hours=2))
    (strict,) = unsettled(facts, NOW + timedelta(minutes=1), timedelta(seconds=30))
    assert soon.progress is Progress.CONVERGING
    assert late.progress is Progress.STUCK
    assert strict.progress is Progress.STUCK


def test_a_stacks_unsettled_services_are_those_of_the_whole_judgement_in_its_order() -> None:
    services = (
        _service("a_ci", "web", "s1"),
        _service("b_ci", "web", "s2"),
        _service("a_ci", "db", "s3"),
        _service("a_ci", "calm", "s4"),
    )
    tasks = tuple(Task(f"t{s.id}", s.id, "pending", "running", created=NOW) for s in services[:3])
    facts = _facts(*services, tasks=tasks)
    whole = unsettled(facts, NOW)
    assert [u.service.id for u in unsettled_in(facts, "a_ci", NOW)] == ["s1", "s3"]
    assert [u.service.id for u in unsettled_in(facts, "b_ci", NOW)] == ["s2"]
    assert unsettled_in(facts, "c_ci", NOW) == ()
    assert unsettled_in(facts, "a_ci", NOW) == tuple(u for u in whole if u.service.stack == "a_ci")


def test_the_images_services_use_are_each_snapshots_own_and_the_containers_each_askers() -> None:
    image = Image("sha256:" + "a" * 64, ("app:1",), (), NOW, 10)
    container = Container("c1", "job", "app:1", image.id, "exited", NOW)
    facts = _facts(_service("redi-3fa9c1_ci_example_org"), images=(image,), containers=(container,))
    assert image_users(facts) == {
        image.id: ["container job (exited)", "service redi-3fa9c1_ci_example_org_app"]
    }
    assert image_users(facts, ignoring=frozenset({"c1"})) == {
        image.id: ["service redi-3fa9c1_ci_example_org_app"]
    }
    unused = replace(facts, services=())
    assert image_users(unused, ignoring=frozenset({"c1"})) == {}
    assert image_users(unused) == {image.id: ["container job (exited)"]}
