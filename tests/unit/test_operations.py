"""The plan says what apply does: each change carries its operation, set by the rule, and
apply acts on it alone and checks every precondition the change carries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ccci.apply.executor import Executor
from ccci.errors import Location
from ccci.facts.model import BuildCacheRecord, Facts
from ccci.plan.address import Address, AddressKind
from ccci.plan.model import Action, Change, HostPlan, Operation, Precondition, Work
from ccci.plan.results import Status
from ccci.state.journal import Journal
from tests.unit.fakes import FakeConnector
from tests.unit.test_retention_units import (
    DAY,
    EVICT_ONLY,
    FULL_DISK,
    NOW,
    OLD_APP,
    apply_plan,
    facts,
    image,
    plan_for,
)

FROM_A = "127.0.0.1:5000/a/app@sha256:" + "1c" * 32
FROM_B = "127.0.0.1:5000/b/app@sha256:" + "1c" * 32


def test_an_address_reads_back_as_the_text_it_was_written_from() -> None:
    for text in ("image:sha256:ab", "image:redis:7-alpine", "daemon:registry_auth:r:5000"):
        assert str(Address.parse(text)) == text
    assert Address.parse("stack:ci-42") == Address(AddressKind.STACK, "ci-42")


def test_an_address_of_a_kind_ccci_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError):
        Address.parse("volume:data")


def test_an_image_pulled_by_digest_from_two_repositories_is_evicted_by_untagging_each(
    tmp_path: Path,
) -> None:
    idle = image(digests=(FROM_A, FROM_B), ident=OLD_APP, size=10)
    current = facts(images=(idle,), disks=(FULL_DISK,), last_use={OLD_APP: NOW - 60 * DAY})
    plan = plan_for(EVICT_ONLY, current, tmp_path)
    [change] = plan.changes
    assert change.work == Work(Operation.UNTAG_IMAGE, refs=(FROM_A, FROM_B))
    # The fake finds an image by the references in its RepoTags: here, its repo digests.
    raw = {"Id": OLD_APP, "RepoTags": [FROM_A, FROM_B], "Created": "2026-01-01T00:00:00Z"}
    conn = FakeConnector(images={OLD_APP: raw})

    report = apply_plan(plan, current, conn, tmp_path)

    assert [r.status for r in report.results] == [Status.OK]
    assert conn.calls == [("untag_image", FROM_A), ("untag_image", FROM_B)]
    assert OLD_APP not in conn.images


def test_an_image_one_digest_names_is_evicted_by_id(tmp_path: Path) -> None:
    idle = image(digests=(FROM_A,), ident=OLD_APP, size=10)
    current = facts(images=(idle,), disks=(FULL_DISK,), last_use={OLD_APP: NOW - 60 * DAY})

    [change] = plan_for(EVICT_ONLY, current, tmp_path).changes

    assert change.work == Work(Operation.REMOVE_IMAGE)


def build_cache_engine(records: list[dict[str, Any]], **fake: Any) -> FakeConnector:
    """An engine holding build cache records as ``/system/df`` reports them: enough to
    stage a build that starts using a record between the plan and its removal."""
    return FakeConnector(system_df={"BuildCache": records}, **fake)


RECORD = BuildCacheRecord("rec1", "regular", "", False, False, 7, NOW - 30 * DAY, None)
REMOVE_RECORD = Change(
    "build_cache:rec1",
    Action.DELETE,
    "regular rec1",
    "dangling build cache",
    "prune",
    Location("policies.yaml", 3),
    bytes_freed=7,
    preconditions=(Precondition.BUILD_CACHE_UNUSED,),
    work=Work(Operation.REMOVE_BUILD_CACHE),
)


def _apply(
    conn: FakeConnector, current: Facts, tmp_path: Path, change: Change = REMOVE_RECORD
) -> Any:
    journal = Journal(tmp_path / "journal.jsonl")
    try:
        executor = Executor(conn, journal, "run1", clock=lambda: NOW)
        return executor._one(change, HostPlan("cc-ci", (change,)), current, {})
    finally:
        journal.close()


@pytest.mark.parametrize(("field", "why"), [("InUse", "in use"), ("Shared", "shared")])
def test_a_build_cache_record_used_since_the_plan_is_left_alone(
    tmp_path: Path, field: str, why: str
) -> None:
    conn = build_cache_engine([{"ID": "rec1", "Type": "regular", field: True, "Size": 7}])
    current = replace(facts(), build_cache=(RECORD,))

    result = _apply(conn, current, tmp_path)

    assert result.status is Status.SKIPPED
    assert why in result.message
    assert conn.calls == []


def test_a_build_cache_record_still_unused_is_removed(tmp_path: Path) -> None:
    conn = build_cache_engine([{"ID": "rec1", "Type": "regular", "Size": 7}])
    current = replace(facts(), build_cache=(RECORD,))

    result = _apply(conn, current, tmp_path)

    assert (result.status, result.bytes_freed) == (Status.OK, 7)
    assert conn.calls == [("remove_build_cache", "rec1")]


def test_a_programming_error_while_applying_is_raised_not_reported_as_a_failed_change(
    tmp_path: Path,
) -> None:
    # The removal fails with a bug in ccci's own terms (a TypeError), not a refusal.
    broken = {("remove_build_cache",): TypeError("unsupported operand")}
    conn = build_cache_engine([{"ID": "rec1", "Type": "regular", "Size": 7}], raises=broken)
    current = replace(facts(), build_cache=(RECORD,))

    with pytest.raises(TypeError):
        _apply(conn, current, tmp_path)
