"""The ready-to-copy CI in docs/examples runs: each file is parsed and its commands are run,
as the CI would run them, in a temporary policy repository with a pull-request branch.

Only what needs the network is left out (``pip install``); ``curl`` and ``gh`` are fakes that
record what they were asked to post, and ``ccci`` is the CLI with the review commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from review_helpers import SNAPSHOT, commit, edit, git, init_repo

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
DRONE = EXAMPLES / ".drone.yml"
GITHUB = EXAMPLES / "github" / "ccci-policy-review.yml"

CCCI_SHIM = f"""#!{sys.executable}
import sys
from ccci.cli.main import cli, main
from ccci.cli.policy import policy, schema
for command in (policy, schema):
    if command.name not in cli.commands:
        cli.add_command(command)
main()
"""

# Records its arguments, and the file a `--data @file` names.
CURL_FAKE = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_LOG/curl.args"
for arg in "$@"; do
  case "$arg" in @*) cp "${arg#@}" "$FAKE_LOG/curl.data" ;; esac
done
"""

# No comment to edit yet: `--edit-last` fails, as gh does, and the workflow creates one.
GH_FAKE = """#!/bin/sh
case "$*" in *--edit-last*) exit 1 ;; esac
printf '%s\\n' "$@" > "$FAKE_LOG/gh.args"
while [ $# -gt 0 ]; do
  if [ "$1" = "--body-file" ]; then cp "$2" "$FAKE_LOG/gh.body"; fi
  shift
done
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def pr(tmp_path: Path) -> Path:
    """A clone of a policy repository (origin on ``main`` with a facts snapshot), on a
    branch that lowers the prune threshold and shortens orphan_after."""
    work = init_repo(tmp_path / "seed")
    (work / "facts").mkdir()
    shutil.copy(SNAPSHOT, work / "facts" / "snapshot.json")
    commit(work, "facts")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(origin))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "checkout", "-q", "-b", "prune-sooner")
    edit(clone, "policies/prune.yaml", "at_least: 80%", "at_least: 70%")
    edit(clone, "policies/orphans.yaml", "orphan_after: 3h", "orphan_after: 30m")
    commit(clone, "prune and reap sooner")
    return clone


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, str]:
    """PATH with ccci and the fakes first; FAKE_LOG where the fakes write."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    _executable(bin_dir / "ccci", CCCI_SHIM)
    _executable(bin_dir / "curl", CURL_FAKE)
    _executable(bin_dir / "gh", GH_FAKE)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "NO_COLOR": "1",
    }


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _needs_network(command: str) -> bool:
    return command.lstrip().startswith("pip ")


def _drone_env(step: dict[str, Any]) -> dict[str, str]:
    env = {}
    for name, value in (step.get("environment") or {}).items():
        env[name] = "secret-token" if isinstance(value, dict) else str(value)
    return env


DRONE_PR = {
    "DRONE_BUILD_EVENT": "pull_request",
    "DRONE_TARGET_BRANCH": "main",
    "DRONE_PULL_REQUEST": "7",
    "DRONE_REPO": "ops/ci-policies",
    "DRONE_REPO_LINK": "https://git.invalid/ops/ci-policies",
}


def test_the_drone_pipeline_checks_diffs_and_posts_the_comment(
    pr: Path, tools: dict[str, str]
) -> None:
    pipeline = yaml.safe_load(DRONE.read_text(encoding="utf-8"))
    assert pipeline["kind"] == "pipeline"
    ran = []
    for step in pipeline["steps"]:
        env = {**tools, **DRONE_PR, **_drone_env(step)}
        for command in step["commands"]:
            if _needs_network(command):
                continue
            done = _run(command, pr, env)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            ran.append(command.split()[0:3])
    assert ["ccci", "policy", "check"] in ran
    assert ["ccci", "policy", "diff"] in ran
    log = Path(tools["FAKE_LOG"])
    args = (log / "curl.args").read_text().splitlines()
    assert args[-1] == "https://git.invalid/api/v1/repos/ops/ci-policies/issues/7/comments"
    assert "Authorization: token secret-token" in args
    body = json.loads((log / "curl.data").read_text())["body"]
    _assert_comment(body)


def test_the_github_workflow_checks_diffs_and_posts_the_comment(
    pr: Path, tools: dict[str, str], tmp_path: Path
) -> None:
    workflow = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    job = workflow["jobs"]["review"]
    summary = tmp_path / "summary.md"
    expressions = {
        "github.base_ref": "main",
        "github.token": "secret-token",
        "github.event.pull_request.number": "7",
    }

    def expand(value: Any) -> str:
        return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: expressions[m.group(1)], str(value))

    ran = []
    for step in job["steps"]:
        if "run" not in step or _needs_network(step["run"]):
            continue
        env = {**tools, "GITHUB_STEP_SUMMARY": str(summary)}
        env |= {k: expand(v) for k, v in {**job.get("env", {}), **step.get("env", {})}.items()}
        done = _run(step["run"], pr, env)
        assert done.returncode == 0, f"{step['run']}\n{done.stdout}\n{done.stderr}"
        ran.append(step["name"])
    assert ran == ["Check the policies", "Say what the change means", "Comment on the pull request"]
    log = Path(tools["FAKE_LOG"])
    assert (log / "gh.args").read_text().splitlines()[:3] == ["pr", "comment", "7"]
    _assert_comment((log / "gh.body").read_text())
    _assert_comment(summary.read_text())


def test_a_broken_policy_fails_the_github_check_step_with_annotations(
    pr: Path, tools: dict[str, str]
) -> None:
    edit(pr, "policies/prune.yaml", "at_least: 70%", "at_least: 170%")
    workflow = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    (check,) = [
        s for s in workflow["jobs"]["review"]["steps"] if s.get("name") == "Check the policies"
    ]
    done = _run(check["run"], pr, tools)
    assert done.returncode == 1
    assert done.stdout.startswith("::error file=policies/prune.yaml,line=7,col=50,")


def _assert_comment(body: str) -> None:
    lines = body.splitlines()
    assert lines[0].startswith("**ccci policy diff** `")
    assert lines[2] == "| host | +add | ~change | −remove | bytes | risk |"
    assert lines[4].startswith("| cc-ci | ")
    assert lines[4].endswith(" | riskier |")
    assert "prune threshold 80% → 70% (prunes more often)" in body
    assert "<details><summary>cc-ci:" in body
    assert len(body) <= 65_000
