"""What a gate reports having observed: the words a reviewer reads under ``Gates:``.

The fixtures in ``prune/`` pin the common texts; these cases need facts built in code
(many stacks, a usage a hair under the threshold, stacks an earlier rule reaps).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ccci.errors import Location
from ccci.facts.model import STACK_LABEL, Daemon, DiskUsage, Facts, Service
from ccci.policy.model import Gate, GateKind
from ccci.rules.gates import evaluate

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DAEMON = Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True)
RUN_APPS = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
WHERE = Location("policies/prune.yaml", 10)


def disk_gate(at_least: float = 0.8) -> Gate:
    return Gate(GateKind.DISK_USAGE, WHERE, path="/var/lib/docker", at_least=at_least)


def facts_with_usage(used: int, total: int = 10_000) -> Facts:
    disk = DiskUsage("/var/lib/docker", total=total, used=used, available=total - used)
    return Facts(host="cc-ci", gathered_at=NOW, daemon=DAEMON, disks=(disk,))


def service(stack: str) -> Service:
    return Service(
        id=f"id-{stack}",
        name=f"{stack}_app",
        image="redis:7-alpine",
        labels={STACK_LABEL: stack},
        created=NOW,
        updated=NOW,
    )


def facts_with_stacks(*stacks: str) -> Facts:
    return Facts(
        host="cc-ci", gathered_at=NOW, daemon=DAEMON, services=tuple(service(s) for s in stacks)
    )


STACKS = [
    f"{p}-{h}_ci_example_org"
    for p, h in [("redi", "3fa9c1"), ("word", "0b1c2d"), ("matr", "a1b2c3"), ("next", "d4e5f6")]
]


def test_more_than_three_live_stacks_are_named_up_to_three_and_counted() -> None:
    gate = Gate(GateKind.NO_LIVE_STACKS, WHERE, match=RUN_APPS)
    result = evaluate("ci-docker-prune", gate, facts_with_stacks(*STACKS))
    assert not result.open
    assert result.observed == (
        "4 live run-app stacks: matr-a1b2c3_ci_example_org, next-d4e5f6_ci_example_org, "
        "redi-3fa9c1_ci_example_org and 1 more"
    )


def test_stacks_an_earlier_rule_reaps_do_not_hold_the_gate_closed() -> None:
    gate = Gate(GateKind.NO_LIVE_STACKS, WHERE, match=RUN_APPS)
    reaping = frozenset(STACKS[:2])
    result = evaluate("ci-docker-prune", gate, facts_with_stacks(*STACKS[:2]), reaping)
    assert result.open
    assert result.observed == f"no live stack matches {RUN_APPS!r} once 2 orphans are reaped"

    one = evaluate("ci-docker-prune", gate, facts_with_stacks(STACKS[0]), reaping)
    assert one.observed == f"no live stack matches {RUN_APPS!r} once 1 orphan is reaped"

    rest = evaluate("ci-docker-prune", gate, facts_with_stacks(*STACKS[:3]), reaping)
    assert not rest.open
    assert rest.observed == "1 live run-app stack: matr-a1b2c3_ci_example_org"


@pytest.mark.parametrize(("used", "open_"), [(7999, False), (8000, True), (8001, True)])
def test_the_disk_gate_opens_at_the_threshold_not_before(used: int, open_: bool) -> None:
    assert evaluate("p", disk_gate(), facts_with_usage(used)).open is open_


@pytest.mark.parametrize("used", [7996, 7999])
def test_a_closed_disk_gate_never_reads_as_if_usage_met_the_threshold(used: int) -> None:
    result = evaluate("p", disk_gate(), facts_with_usage(used))
    assert not result.open
    shown = re.fullmatch(r"disk ([\d.]+)% < ([\d.]+)% on /var/lib/docker", result.observed)
    assert shown is not None, result.observed
    assert float(shown.group(1)) < float(shown.group(2)), result.observed
