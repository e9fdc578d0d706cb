"""``policy diff <revision>`` runs on PR commits, so the revision's tree is hostile: an
entry named ``..`` (``git mktree`` accepts one) must never make ccci write outside the
temporary folder it reads the revision into."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from review_helpers import git, init_repo, run_cli

from ccci.errors import CcciError
from ccci.review.diffrun import run_diff


def _object(root: Path, kind: str, data: bytes) -> str:
    args = ["git", "hash-object", "-w", "--stdin"] if kind == "blob" else ["git", "mktree"]
    done = subprocess.run(args, cwd=root, input=data, capture_output=True, check=True)
    return done.stdout.decode().strip()


def _crafted_commit(root: Path, policies_entries: list[tuple[str, str, str]]) -> str:
    """A commit whose ``policies`` tree holds exactly ``policies_entries`` (mode, sha,
    name), parented on HEAD, made with git's plumbing as an attacker would."""
    listing = "".join(
        f"{mode} {'tree' if mode == '040000' else 'blob'} {sha}\t{name}\n"
        for mode, sha, name in policies_entries
    )
    policies = _object(root, "tree", listing.encode())
    inventory = git(root, "rev-parse", "HEAD:inventory.yaml").strip()
    top = _object(
        root,
        "tree",
        f"040000 tree {policies}\tpolicies\n100644 blob {inventory}\tinventory.yaml\n".encode(),
    )
    return git(root, "commit-tree", top, "-p", "HEAD", "-m", "crafted").strip()


def _dotdot_chain(root: Path, depth: int, name: str, content: bytes) -> tuple[str, str, str]:
    """A tree entry ``..`` holding ``..`` … ``depth`` times, then the file ``name``."""
    blob = _object(root, "blob", content)
    tree = _object(root, "tree", f"100644 blob {blob}\t{name}\n".encode())
    for _ in range(depth - 1):
        tree = _object(root, "tree", f"040000 tree {tree}\t..\n".encode())
    return ("040000", tree, "..")


def test_a_tree_entry_dotdot_is_refused_and_nothing_is_written_outside(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "deep" / "er" / "repo")
    prune = git(root, "rev-parse", "HEAD:policies/prune.yaml").strip()
    crafted = _crafted_commit(
        root,
        [
            ("100644", prune, "prune.yaml"),
            _dotdot_chain(root, 3, "pwned.yaml", b"kind: PrunePolicy\n# from the PR\n"),
        ],
    )
    before = {p for p in tmp_path.rglob("*") if ".git" not in p.parts}

    with pytest.raises(CcciError, match=r"refusing tree entry 'policies/\.\./\.\./\.\./pwned"):
        run_diff("HEAD", crafted, cwd=root)
    result = run_cli(["policy", "diff", "HEAD", crafted], root)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "refusing tree entry" in result.stderr
    after = {p for p in tmp_path.rglob("*") if ".git" not in p.parts}
    assert after == before
    assert not list(Path("/tmp").glob("pwned.yaml"))


def test_a_tree_entry_dot_git_is_refused(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo")
    hook = _object(root, "blob", b"#!/bin/sh\necho pwned\n")
    hooks = _object(root, "tree", f"100755 blob {hook}\tpost-checkout\n".encode())
    dotgit = _object(root, "tree", f"040000 tree {hooks}\thooks\n".encode())
    crafted = _crafted_commit(root, [("040000", dotgit, ".git")])

    with pytest.raises(CcciError, match=r"refusing tree entry 'policies/\.git/hooks/"):
        run_diff("HEAD", crafted, cwd=root)
