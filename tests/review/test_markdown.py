"""``--output markdown`` is a PR comment: the host table first, then the meanings, then one
folded ``<details>`` per changed host; unchanged hosts are hidden, and the whole comment stays
under 65,000 characters, with a note saying what was cut."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from review_helpers import GIB, base_timer_units, copy_base, edit, host_facts, run_cli

from ccci.facts.model import DiskUsage
from ccci.facts.snapshot import snapshot_json
from ccci.review.diffrun import run_diff
from ccci.review.markdown import LIMIT, render_markdown


def _inventory(hosts: list[str]) -> str:
    lines = "".join(f"        {h}: {{}}\n" for h in hosts)
    return (
        "all:\n  vars:\n    docker_data_root: /var/lib/docker\n    abra_dir: /root/.abra\n"
        f"  children:\n    ci:\n      hosts:\n{lines}"
    )


@pytest.fixture
def sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """old/ and new/ (the prune threshold lowered to 70%) with two hosts; snap.json holds
    cc-ci at 75% disk (the change prunes there) and cc-ci2 at 50% (nothing changes)."""
    monkeypatch.chdir(tmp_path)
    for side in ("old", "new"):
        copy_base(tmp_path / side)
        (tmp_path / side / "inventory.yaml").write_text(_inventory(["cc-ci", "cc-ci2"]))
    edit(tmp_path / "new", "policies/prune.yaml", "at_least: 80%", "at_least: 70%")
    units = base_timer_units()
    # The run-app's services are gone (a partial stack, not live), so only the disk gate
    # decides.
    busy = dataclasses.replace(host_facts("cc-ci", units=units), services=(), tasks=())
    quiet = dataclasses.replace(
        busy, host="cc-ci2", disks=(DiskUsage("/var/lib/docker", 100 * GIB, 50 * GIB, 50 * GIB),)
    )
    Path("snap.json").write_text(snapshot_json([busy, quiet]))
    return tmp_path


def test_the_comment_starts_with_the_host_table_and_folds_each_changed_host(
    sides: Path,
) -> None:
    result = run_cli(["policy", "diff", "old", "new", "--facts", "snap.json", "-o", "markdown"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[:8] == [
        "**ccci policy diff** `old` → `new`, planned on the hosts in `snap.json`",
        "",
        "| host | +add | ~change | −remove | bytes | risk |",
        "|---|--:|--:|--:|--:|---|",
        "| cc-ci | 2 | 0 | 0 | +114.4 MiB | riskier |",
        "",
        "1 host unchanged (not shown). +add: changes only the new policies plan; ~change: "
        "planned differently; −remove: no longer planned; bytes: the change in bytes freed.",
        "",
    ]
    assert (
        "| riskier | PrunePolicy ci-docker-prune (policies/prune.yaml:3) | prune threshold "
        "80% → 70% (prunes more often) | it starts pruning with more of the disk still free |"
    ) in lines
    assert result.output.count("<details>") == 1
    assert (
        "<details><summary>cc-ci: +2 ~0 −0, frees 114.4 MiB more, 1 gate differs; "
        "risk: riskier</summary>"
    ) in lines
    assert "cc-ci2" not in result.output
    assert "Cut to fit" not in result.output


def test_without_facts_the_meanings_table_comes_first(sides: Path) -> None:
    output = run_cli(["policy", "diff", "old", "new", "-o", "markdown"]).output
    assert output.splitlines()[:7] == [
        "**ccci policy diff** `old` → `new`",
        "",
        "#### What the change means",
        "",
        "| risk | policy | change | why |",
        "|---|---|---|---|",
        "| riskier | PrunePolicy ci-docker-prune (policies/prune.yaml:3) | prune threshold "
        "80% → 70% (prunes more often) | it starts pruning with more of the disk still free |",
    ]
    assert "<details>" not in output


def test_a_table_cell_cannot_break_the_table(sides: Path) -> None:
    edit(sides / "new", "policies/orphans.yaml", "keep: ['^demo-']", "keep: ['^demo-', '^(a|b)-']")
    output = run_cli(["policy", "diff", "old", "new", "-o", "markdown"]).output
    assert "keep '^(a\\|b)-' added" in output


def test_two_hundred_hosts_stay_under_the_limit_with_a_note_saying_what_was_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hosts = [f"ci-{i:03d}" for i in range(200)]
    for side in ("old", "new"):
        copy_base(tmp_path / side)
        (tmp_path / side / "inventory.yaml").write_text(_inventory(hosts))
    edit(tmp_path / "new", "policies/prune.yaml", "at_least: 80%", "at_least: 70%")
    edit(tmp_path / "new", "policies/orphans.yaml", "orphan_after: 3h", "orphan_after: 30m")
    units = base_timer_units()
    Path("snap.json").write_text(
        snapshot_json([host_facts(h, units=units, dangling_images=80) for h in hosts])
    )
    result = run_diff("old", "new", facts=Path("snap.json"))
    text = render_markdown(result.diff, result.impacts, "snap.json")
    assert len(text) <= LIMIT
    assert all(f"| {h} | 82 | 0 | 0 | +8.9 GiB | riskier |" in text for h in hosts)
    shown = text.count("<details>")
    assert 0 < shown < 200
    assert text.rstrip().endswith(
        f"> **Cut to fit a PR comment (65,000 characters):** {200 - shown} hosts' plan details "
        "not shown. Run `ccci policy diff` with the same arguments for everything."
    )
    # Long lists are capped per host, with a count of the rest.
    assert "  … and 32 more" in text


def test_a_tiny_limit_cuts_rows_too_and_still_fits(sides: Path) -> None:
    result = run_diff("old", "new", facts=Path("snap.json"))
    text = render_markdown(result.diff, result.impacts, "snap.json", limit=900)
    assert len(text) <= 900
    assert "Cut to fit a PR comment (900 characters)" in text
