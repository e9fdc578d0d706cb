"""Renderers on hand-built plans: they only render what the plan and its methods say."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ccci.errors import Location
from ccci.plan.model import (
    PLAN_FORMAT,
    Action,
    Change,
    GateResult,
    HostPlan,
    Noop,
    Operation,
    Plan,
    Precondition,
    Work,
)
from ccci.policy.model import Gate, GateKind
from ccci.render import json as render_json
from ccci.render import text as render_text
from ccci.render.style import Style

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
IMAGE_ID = "sha256:" + "ab12" * 16
CONTAINER_ID = "1d" * 32
SOURCE = Location("policies/prune.yaml", 15, "spec.prune.dangling_images")
PLAIN = Style(enabled=False)

DISK_GATE = Gate(
    GateKind.DISK_USAGE, Location("policies/prune.yaml", 10), path="/var/lib/docker", at_least=0.8
)
STACK_GATE = Gate(
    GateKind.NO_LIVE_STACKS, Location("policies/prune.yaml", 11), match="^[a-z0-9]{1,4}-"
)


def image_change(size: int | None = 41_000_000) -> Change:
    return Change(
        address=f"image:{IMAGE_ID}",
        action=Action.DELETE,
        label="redis:<none>",
        reason="dangling, created 3 days ago ≥ 24h",
        policy="ci-docker-prune",
        source=SOURCE,
        before={"tags": [], "digests": [], "size": size},
        bytes_freed=size,
        preconditions=(Precondition.IMAGE_DANGLING, Precondition.IMAGE_UNUSED),
        work=Work(Operation.REMOVE_IMAGE),
    )


def container_change() -> Change:
    return Change(
        address=f"container:{CONTAINER_ID}",
        action=Action.DELETE,
        label="job (redis:7-alpine)",
        reason="exited, exited 3 days ago ≥ 24h",
        policy="ci-docker-prune",
        source=Location("policies/prune.yaml", 16, "spec.prune.stopped_containers"),
        before={"name": "job", "image": "redis:7-alpine", "state": "exited"},
        preconditions=(Precondition.CONTAINER_STOPPED,),
        work=Work(Operation.REMOVE_CONTAINER),
    )


def gates(open_: bool = True) -> tuple[GateResult, ...]:
    observed = "disk 85% on /var/lib/docker ≥ 80%" if open_ else "disk 41% < 80% on /var/lib/docker"
    return (
        GateResult("ci-docker-prune", DISK_GATE, open_, observed),
        GateResult("ci-docker-prune", STACK_GATE, True, "no live stack matches '^[a-z0-9]{1,4}-'"),
    )


def plan_of(*hosts: HostPlan) -> Plan:
    return Plan(now=NOW, hosts=hosts)


def render(plan: Plan, verbose: bool = False) -> list[str]:
    return render_text.render_plan(plan, PLAIN, verbose).splitlines()


def test_an_empty_plan_says_no_changes_first() -> None:
    lines = render(plan_of(HostPlan("cc-ci", gates=gates())))
    assert lines[0] == "No changes. Host matches policy."
    assert not any(line.startswith("Plan:") for line in lines)


def test_a_closed_gate_plan_says_no_changes_first_then_why() -> None:
    noop = Noop(
        "policy:ci-docker-prune",
        "ci-docker-prune",
        "gate disk_usage closed: disk 41% < 80% on /var/lib/docker",
        "ci-docker-prune",
        Location("policies/prune.yaml", 6, "metadata.name"),
    )
    lines = render(plan_of(HostPlan("cc-ci", noops=(noop,), gates=gates(open_=False))))
    assert lines[0] == "No changes. Host matches policy."
    assert (
        "Policy ci-docker-prune does nothing: "
        "gate disk_usage closed: disk 41% < 80% on /var/lib/docker."
    ) in lines


def test_a_delete_renders_its_address_label_size_and_reason_with_the_policy_line() -> None:
    lines = render(plan_of(HostPlan("cc-ci", changes=(image_change(),), gates=gates())))
    assert lines[0] == "- image sha256:ab12ab12ab12 (redis:<none>)  ~39.1 MiB"
    assert lines[1] == (
        "  # (because dangling, created 3 days ago ≥ 24h; "
        "policy ci-docker-prune policies/prune.yaml:15)"
    )


def test_a_change_of_unknown_size_shows_no_size_and_a_short_container_id() -> None:
    lines = render(plan_of(HostPlan("cc-ci", changes=(container_change(),))))
    assert lines[0] == "- container 1d1d1d1d1d1d (job (redis:7-alpine))"
    assert lines[1] == (
        "  # (because exited, exited 3 days ago ≥ 24h; "
        "policy ci-docker-prune policies/prune.yaml:16)"
    )


def test_the_summary_line_counts_removals_and_bytes_to_free() -> None:
    host = HostPlan("cc-ci", changes=(container_change(), image_change()), gates=gates())
    lines = render(plan_of(host))
    assert "Plan: 0 to add, 0 to change, 2 to remove. About 39.1 MiB to free." in lines
    assert "No changes. Host matches policy." not in lines


def test_the_summary_line_without_known_sizes_has_no_bytes() -> None:
    lines = render(plan_of(HostPlan("cc-ci", changes=(container_change(),))))
    assert "Plan: 0 to add, 0 to change, 1 to remove." in lines


def test_gates_are_listed_with_state_and_observed_value() -> None:
    lines = render(plan_of(HostPlan("cc-ci", changes=(image_change(),), gates=gates())))
    start = lines.index("Gates:")
    assert lines[start + 1 : start + 3] == [
        "  ci-docker-prune disk_usage      open    disk 85% on /var/lib/docker ≥ 80%",
        "  ci-docker-prune no_live_stacks  open    no live stack matches '^[a-z0-9]{1,4}-'",
    ]


def test_objects_left_alone_are_counted_and_listed_only_when_verbose() -> None:
    kept = Noop(
        "image:sha256:" + "b2" * 32,
        "redis:<none>",
        "dangling, created 5 hours ago < 24h",
        "ci-docker-prune",
        SOURCE,
    )
    host = HostPlan("cc-ci", changes=(image_change(),), noops=(kept,), gates=gates())
    assert "1 object left alone (--verbose lists each with its reason)." in render(plan_of(host))
    verbose = render(plan_of(host), verbose=True)
    assert verbose[verbose.index("Left alone:") + 1] == (
        "  image sha256:b2b2b2b2b2b2 (redis:<none>): dangling, created 5 hours ago < 24h"
    )


def test_several_hosts_are_headed_indented_and_totalled() -> None:
    plan = plan_of(
        HostPlan("cc-ci", changes=(image_change(),)),
        HostPlan("cc-ci-2"),
    )
    lines = render(plan)
    assert lines[0] == "cc-ci:"
    assert lines[1] == "  - image sha256:ab12ab12ab12 (redis:<none>)  ~39.1 MiB"
    assert "cc-ci-2:" in lines
    assert lines[lines.index("cc-ci-2:") + 1] == "  No changes. Host matches policy."
    assert lines[-1] == "Total: 0 to add, 0 to change, 1 to remove. About 39.1 MiB to free."


def test_colour_is_added_only_when_enabled() -> None:
    plan = plan_of(HostPlan("cc-ci", changes=(image_change(),)))
    assert "\x1b[" not in render_text.render_plan(plan, PLAIN)
    coloured = render_text.render_plan(plan, Style(enabled=True))
    assert "\x1b[31m- image sha256:ab12ab12ab12\x1b[0m" in coloured


def test_plan_methods_decide_emptiness_and_counts() -> None:
    empty = plan_of(HostPlan("cc-ci"))
    assert empty.is_empty() and not empty.can_apply()
    full = plan_of(HostPlan("cc-ci", changes=(image_change(), container_change())), HostPlan("b"))
    assert not full.is_empty() and full.can_apply()
    assert full.counts() == {
        Action.CREATE: 0,
        Action.UPDATE: 0,
        Action.DELETE: 2,
        Action.REPLACE: 0,
    }
    assert full.hosts[0].bytes_freed() == 41_000_000
    assert [c.kind for c in full.hosts[0].changes] == ["image", "container"]


def test_json_output_is_pure_json_with_format_version_and_summary() -> None:
    plan = plan_of(HostPlan("cc-ci", changes=(image_change(), container_change()), gates=gates()))
    document = json.loads(render_json.render_plan(plan))
    assert document["format_version"] == PLAN_FORMAT
    assert document["summary"] == {
        "add": 0,
        "change": 0,
        "remove": 2,
        "bytes_freed": 41_000_000,
        "manual": 0,
        "empty": False,
    }
    (host,) = document["hosts"]
    assert host["changes"][0]["address"] == f"image:{IMAGE_ID}"
    assert host["changes"][0]["action"] == "delete"
    assert host["changes"][0]["preconditions"] == ["image_dangling", "image_unused"]
    assert host["gates"][0]["gate"]["kind"] == "disk_usage"
    assert document["now"] == "2026-11-27T03:00:00Z"


def test_json_for_an_empty_plan_says_so() -> None:
    document = json.loads(render_json.render_plan(plan_of(HostPlan("cc-ci"))))
    assert document["summary"]["empty"] is True
    assert document["summary"]["remove"] == 0


def test_the_json_document_is_also_a_saved_plan() -> None:
    plan = plan_of(HostPlan("cc-ci", changes=(image_change(), container_change()), gates=gates()))
    assert Plan.from_dict(json.loads(render_json.render_plan(plan))) == plan
    assert Plan.from_dict(json.loads(plan.to_json())) == plan
