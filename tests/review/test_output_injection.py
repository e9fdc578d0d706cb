"""Engine names come from recipe PRs: a stack, service or volume name may hold a newline,
a terminal escape or Markdown. Printed, it must stay one visible value: it can neither fake
a line of ccci's own output nor become markup in a PR comment."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from review_helpers import BASE, STACK, copy_base, edit, host_facts, run_cli

from ccci.cli.main import cli
from ccci.facts.model import Facts
from ccci.render import escape
from ccci.serde import to_jsonable

FAKE = "\nNo changes. Host matches policy.\n\x1b[2J\x1b]0;pwned\x07"
EVIL = STACK + FAKE


def _hostile_snapshot(path: Path, extra: str = FAKE) -> Path:
    """cc-ci with a run-app five hours old (an orphan) whose every name carries ``extra``."""
    facts = host_facts("cc-ci", stack_age=timedelta(hours=5))
    evil = STACK + extra
    labels = {"com.docker.stack.namespace": evil}
    facts = dataclasses.replace(
        facts,
        services=tuple(
            dataclasses.replace(s, name=f"{evil}_app", labels=labels) for s in facts.services
        ),
        volumes=tuple(
            dataclasses.replace(v, name=f"{evil}_data", labels=labels) for v in facts.volumes
        ),
        networks=tuple(
            dataclasses.replace(n, name=f"{evil}_default", labels=labels) for n in facts.networks
        ),
        secrets=tuple(dataclasses.replace(s, name=f"{evil}_db_password_v1") for s in facts.secrets),
        files=(),
    )
    assert isinstance(facts, Facts)
    path.write_text(
        json.dumps({"format_version": 1, "hosts": {"cc-ci": to_jsonable(facts)}}),
        encoding="utf-8",
    )
    return path


def _reconcile(cwd: Path, *args: str) -> str:
    """``ccci reconcile --plan ARGS`` in ``cwd`` (offline: every call passes --facts)."""
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(cli, ["reconcile", "--plan", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_stack_name_cannot_fake_the_in_sync_line_of_a_plan(tmp_path: Path) -> None:
    copy_base(tmp_path)
    snapshot = _hostile_snapshot(tmp_path / "snap.json")

    out = _reconcile(tmp_path, "--facts", str(snapshot), "--now", "2026-11-27T03:00:00Z")

    assert "No changes. Host matches policy." in out  # shown, but inside the escaped name
    assert "No changes. Host matches policy." not in out.splitlines()
    assert "\x1b" not in out and "\x07" not in out
    assert "redi-3fa9c1_ci_example_org\\nNo changes. Host matches policy.\\n\\e[2J" in out


def test_verbose_noops_and_gates_escape_names_too(tmp_path: Path) -> None:
    copy_base(tmp_path)
    edit(tmp_path, "policies/orphans.yaml", "orphan_after: 3h", "orphan_after: 30h")
    snapshot = _hostile_snapshot(tmp_path / "snap.json")

    out = _reconcile(tmp_path, "--facts", str(snapshot), "--now", "2026-11-27T03:00:00Z", "-v")

    assert all(not line.startswith("No changes.") for line in out.splitlines())
    assert "\x1b" not in out


def test_status_escapes_stack_and_service_names_too(tmp_path: Path) -> None:
    copy_base(tmp_path)
    snapshot = _hostile_snapshot(tmp_path / "snap.json")

    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(
            cli,
            ["status", "--facts", str(snapshot), "--now", "2026-11-27T03:00:00Z"],
            catch_exceptions=False,
        )

    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "No changes. Host matches policy." not in result.stdout.splitlines()
    assert "redi-3fa9c1_ci_example_org\\nNo changes. Host matches policy.\\n\\e[2J" in result.stdout


def test_policy_diff_text_and_markdown_escape_engine_names(tmp_path: Path) -> None:
    head = copy_base(tmp_path / "head")
    # Without the live-stack gate, the diff shows the gate and the live stack it saw.
    edit(head, "policies/prune.yaml", "    no_live_stacks: {selector: run-apps}\n", "")
    snapshot = _hostile_snapshot(tmp_path / "snap.json", "|<img src=x onerror=alert(1)>`@team\n")

    text = run_cli(["policy", "diff", str(BASE), str(head), "--facts", str(snapshot)])
    markdown = run_cli(
        ["policy", "diff", str(BASE), str(head), "--facts", str(snapshot), "-o", "markdown"]
    )

    assert text.exit_code == 0 and markdown.exit_code == 0, text.stderr + markdown.stderr
    assert "redi-3fa9c1_ci_example_org|<img src=x onerror=alert(1)>`@team\\n" in text.stdout
    # Outside code blocks no raw tag survives; inside them the line cannot end the fence.
    outside = markdown.stdout.split("```text")
    assert all("<img" not in part.split("```")[-1] for part in outside)
    assert "onerror" in markdown.stdout
    assert "\n<img" not in markdown.stdout


def test_markdown_cells_escape_pipes_html_backticks_and_mentions() -> None:
    cell = escape.markdown_cell("a|b <b>x</b> `code` @org/team [l](http://x)\nnext")
    assert "|" not in cell.replace("\\|", "")
    assert "<" not in cell.replace("\\<", "") and "`" not in cell.replace("\\`", "")
    assert "@org" not in cell
    assert "\n" not in cell
    assert escape.html_text("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert escape.inline_code("a`b") == "``a`b``"
    assert "```" not in escape.code_line("x```y")


def test_terminal_escaping_keeps_ordinary_names_as_they_are() -> None:
    assert escape.terminal("redi-3fa9c1_ci_example_org ≥ 80% «ok»") == (
        "redi-3fa9c1_ci_example_org ≥ 80% «ok»"
    )
    assert escape.terminal("a\nb\r\x1b[31m\x07\u202etxt") == "a\\nb\\r\\e[31m\\x07\\u202etxt"
