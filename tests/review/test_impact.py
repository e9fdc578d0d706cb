"""``ccci policy diff --facts``: the recorded snapshot is planned under both versions and
the difference is shown per host: changes added and dropped, bytes, stacks, timers, gates."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from review_helpers import SNAPSHOT, commit, edit, init_repo, run_cli

from ccci.errors import InputError
from ccci.quantities import parse_time
from ccci.review.diffrun import run_diff


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The base policies, then a PR: prune at 70%, reap after 30m, the reconcile timer
    hourly, and docker-prune.timer no longer kept absent."""
    root = init_repo(tmp_path / "policy-repo")
    edit(root, "policies/prune.yaml", "at_least: 80%", "at_least: 70%")
    edit(root, "policies/orphans.yaml", "orphan_after: 3h", "orphan_after: 30m")
    edit(root, "policies/timers.yaml", "on_calendar: daily", "on_calendar: hourly")
    edit(root, "policies/timers.yaml", "  absent:\n    - docker-prune.timer\n", "")
    commit(root, "reap and prune sooner")
    return root


def test_the_snapshot_is_planned_under_both_versions(repo: Path) -> None:
    (host,) = run_diff("HEAD~1", "HEAD", facts=SNAPSHOT, cwd=repo).impacts or ()
    assert host.host == "cc-ci"
    assert [(d.status, d.address) for d in host.changes] == [
        ("added", "unit:ccci-reconcile.timer"),
        ("added", "timer:ccci-reconcile.timer"),
        ("added", "stack:redi-3fa9c1_ci_example_org"),
        ("added", "container:" + "1d" * 32),
        ("added", "image:sha256:" + "0" * 64),
        ("removed", "timer:docker-prune.timer"),
    ]
    assert host.bytes_delta() == 120_000_000
    assert host.kinds("added") == {"unit": 1, "timer": 1, "stack": 1, "container": 1, "image": 1}
    assert [
        (g.policy, g.gate, g.base and g.base.open, g.head and g.head.open) for g in host.gates
    ] == [
        ("ci-docker-prune", "disk_usage", False, True),
        ("ci-docker-prune", "no_live_stacks", False, True),
    ]


def test_the_text_output_shows_the_meanings_then_each_changed_host(repo: Path) -> None:
    result = run_cli(["policy", "diff", "HEAD~1", "HEAD", "--facts", str(SNAPSHOT)], repo)
    assert result.exit_code == 0, result.output
    impact = result.output.split(f"Impact on the hosts in {SNAPSHOT}:\n", 1)[1]
    assert impact.splitlines()[:11] == [
        "cc-ci: +5 ~0 −1, frees 114.4 MiB more, 2 gates differ; risk: riskier "
        "(as of 2026-11-27T03:00:00Z)",
        "  Only the new policies plan:",
        "    ~ unit ccci-reconcile.timer (/etc/systemd/system/ccci-reconcile.timer)",
        "      # differs from the policy; policy schedules policies/timers.yaml:7",
        "        -OnCalendar=daily",
        "        +OnCalendar=hourly",
        "    ~ timer ccci-reconcile.timer (ccci-reconcile.timer)",
        "      # unit files change: reload systemd, enable and restart the timer; "
        "policy schedules policies/timers.yaml:7",
        "    - stack redi-3fa9c1_ci_example_org "
        "(1 service, 1 secret, 1 network, 1 volume, 1 env file)",
        "      # run-app, newest object 1 hour old ≥ 30m; "
        "policy reap-killed-runs policies/orphans.yaml:3",
        "    - container 1d1d1d1d1d1d (job (redis:7-alpine))",
    ]
    assert "  No longer planned:\n    - timer docker-prune.timer (docker-prune.timer)" in impact
    assert (
        "    ci-docker-prune disk_usage: closed → open (disk 75% on /var/lib/docker ≥ 70%)"
        in impact
    )


def test_now_moves_the_moment_both_plans_are_made_at(repo: Path) -> None:
    (later,) = (
        run_diff(
            "HEAD~1", "HEAD", facts=SNAPSHOT, cwd=repo, now=_time("2026-11-27T06:00:00Z")
        ).impacts
        or ()
    )
    # Four hours on, the run-app is an orphan for both versions: no longer a difference.
    assert "stack:redi-3fa9c1_ci_example_org" not in [d.address for d in later.changes]


def test_a_policy_change_that_plans_the_same_leaves_the_host_unchanged(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo")
    edit(root, "policies/orphans.yaml", "keep: ['^demo-']", "keep: ['^demo-', '^test-']")
    commit(root, "keep test stacks")
    result = run_diff("HEAD~1", "HEAD", facts=SNAPSHOT, cwd=root)
    (host,) = result.impacts or ()
    assert host.is_unchanged()
    output = run_cli(["policy", "diff", "HEAD~1", "HEAD", "--facts", str(SNAPSHOT)], root).output
    assert output.endswith("1 host unchanged: cc-ci.\n")


def test_a_snapshot_of_hosts_no_inventory_knows_is_refused(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(SNAPSHOT.read_text().replace('"cc-ci"', '"elsewhere"'))
    with pytest.raises(InputError, match="no host of the snapshot \\(elsewhere\\) is in either"):
        run_diff("HEAD~1", "HEAD", facts=other, cwd=repo)


def test_json_output_carries_meanings_and_impact(repo: Path) -> None:
    result = run_cli(
        ["policy", "diff", "HEAD~1", "HEAD", "--facts", str(SNAPSHOT), "-o", "json"], repo
    )
    document = json.loads(result.output)
    assert document["format_version"] == 1
    assert document["risk"] == "riskier"
    assert document["summary"] == {"neutral": 1, "riskier": 3, "safer": 0}
    (host,) = document["impact"]
    assert (host["host"], host["added"], host["changed"], host["removed"]) == ("cc-ci", 5, 0, 1)
    assert host["bytes_delta"] == 120_000_000


def _time(text: str) -> datetime:
    return parse_time(text)
