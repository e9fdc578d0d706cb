"""BASE and HEAD may be git revisions: the policies and inventory are read at that revision
(in a temporary folder), relative to where the command runs inside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from review_helpers import commit, edit, git, init_repo, run_cli

from ccci.errors import CcciError, InputError
from ccci.review.diffrun import run_diff
from ccci.review.gitrev import materialize


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits: the base policies, then a PR that lowers the prune threshold."""
    root = init_repo(tmp_path / "policy-repo")
    edit(root, "policies/prune.yaml", "at_least: 80%", "at_least: 70%")
    commit(root, "prune earlier")
    return root


def texts(root: Path, base: str, head: str) -> list[str]:
    return [c.meaning.text for c in run_diff(base, head, cwd=root).diff.changes]


def test_two_revisions_are_compared_by_meaning(repo: Path) -> None:
    assert texts(repo, "HEAD~1", "HEAD") == ["prune threshold 80% → 70% (prunes more often)"]
    assert texts(repo, "HEAD", "HEAD~1") == ["prune threshold 70% → 80% (prunes less often)"]


def test_a_branch_name_and_the_working_tree_can_be_compared(repo: Path) -> None:
    git(repo, "branch", "-q", "before", "HEAD~1")
    edit(repo, "policies/orphans.yaml", "orphan_after: 3h", "orphan_after: 30m")
    assert texts(repo, "before", ".") == [
        "orphan_after 3h → 30m (a run longer than 30m would be reaped while alive)",
        "prune threshold 80% → 70% (prunes more often)",
    ]


def test_a_revision_is_read_without_touching_the_working_tree(repo: Path) -> None:
    with materialize("HEAD~1", ["policies", "inventory.yaml"], repo) as tree:
        assert tree.revision
        assert (tree.root / "policies" / "prune.yaml").read_text().count("at_least: 80%") == 1
        assert (tree.root / "inventory.yaml").exists()
        kept = tree.root
    assert not kept.exists()
    assert "at_least: 70%" in (repo / "policies" / "prune.yaml").read_text()


def test_the_first_pr_that_adds_policies_compares_against_none(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("policies to come\n")
    commit(root, "empty")
    init_repo(root)
    changes = run_diff("HEAD~1", "HEAD", cwd=root, allow_empty=True).diff.changes
    assert {c.meaning.text.split(":")[0] for c in changes if c.kind == "PrunePolicy"} == {
        "policy ci-docker-prune added"
    }


def test_a_policy_repository_in_a_subfolder_is_read_from_there(tmp_path: Path) -> None:
    root = tmp_path / "mono"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    init_repo(root / "ops" / "ci")
    edit(root / "ops" / "ci", "policies/prune.yaml", "at_least: 80%", "at_least: 90%")
    commit(root / "ops" / "ci", "prune later")
    assert texts(root / "ops" / "ci", "HEAD~1", "HEAD") == [
        "prune threshold 80% → 90% (prunes less often)"
    ]


def test_neither_a_folder_nor_a_revision_is_one_clean_error(repo: Path) -> None:
    with pytest.raises(
        CcciError, match=r"^no-such-branch: neither a directory nor a git revision$"
    ):
        run_diff("no-such-branch", "HEAD", cwd=repo)
    result = run_cli(["policy", "diff", "no-such-branch", "HEAD"], repo)
    assert result.exit_code == 1
    assert result.stderr == "ccci: no-such-branch: neither a directory nor a git revision\n"


def test_a_broken_side_names_the_revision_file_line_and_field(repo: Path) -> None:
    edit(repo, "policies/prune.yaml", "at_least: 70%", "at_least: 170%")
    commit(repo, "broken")
    with pytest.raises(InputError) as caught:
        run_diff("HEAD~1", "HEAD", cwd=repo)
    assert str(caught.value) == (
        "HEAD:policies/prune.yaml:7: spec.gates.disk_usage.at_least: '170%' is not a percentage"
    )
    result = run_cli(["policy", "diff", "HEAD~1", "HEAD"], repo)
    assert result.exit_code == 1
    assert result.stderr.startswith("ccci: HEAD:policies/prune.yaml:7: spec.gates")
