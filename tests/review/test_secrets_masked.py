"""``policy diff`` and ``policy check`` output is posted as a PR comment, so a planted
secret (an inventory var named like one, a value rendered from it, an ``Environment=``
line of a unit file) never appears in any form of it, nor in a plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from review_helpers import BASE, copy_base, edit, host_facts, run_cli

from ccci.errors import Location
from ccci.plan.model import Action, Change, HostPlan, Operation, Plan, Work
from ccci.render import redact
from ccci.render import text as render_text
from ccci.render.style import Style
from ccci.serde import to_jsonable

OLD = "s3cr3t-OLD-value"
NEW = "s3cr3t-NEW-value"


def _with_secret_vars(root: Path, password: str, vault_dir: str) -> Path:
    """The base repository whose inventory holds a password and a secret-named folder
    that the prune's disk gate renders into its path."""
    copy_base(root)
    edit(
        root,
        "inventory.yaml",
        "    abra_dir: /root/.abra\n",
        f"    abra_dir: /root/.abra\n    db_password: {password}\n"
        f"    vault_secret_dir: {vault_dir}\n",
    )
    edit(root, "policies/prune.yaml", '"{{ docker_data_root }}"', '"{{ vault_secret_dir }}"')
    return root


@pytest.mark.parametrize("output", ["text", "json", "markdown"])
def test_a_changed_password_var_is_masked_in_every_diff_output(tmp_path: Path, output: str) -> None:
    base = _with_secret_vars(tmp_path / "base", OLD, f"/srv/{OLD}")
    head = _with_secret_vars(tmp_path / "head", NEW, f"/srv/{NEW}")
    snapshot = tmp_path / "snap.json"
    snapshot.write_text(
        json.dumps({"format_version": 1, "hosts": {"cc-ci": to_jsonable(host_facts("cc-ci"))}}),
        encoding="utf-8",
    )

    result = run_cli(
        ["policy", "diff", str(base), str(head), "-o", output, "--facts", str(snapshot)]
    )

    assert result.exit_code == 0, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "db\\_password" in result.stdout or "db_password" in result.stdout
    assert redact.MASK in result.stdout


def test_the_var_line_says_that_a_masked_value_changed(tmp_path: Path) -> None:
    base = _with_secret_vars(tmp_path / "base", OLD, "/srv/a")
    head = _with_secret_vars(tmp_path / "head", NEW, "/srv/a")

    result = run_cli(["policy", "diff", str(base), str(head)])

    assert "var db_password (masked) → (masked, changed)" in result.stdout
    assert "s3cr3t" not in result.stdout


def test_a_schema_error_never_echoes_a_value_rendered_from_a_secret(tmp_path: Path) -> None:
    root = _with_secret_vars(tmp_path / "repo", OLD, "/srv/a")
    edit(root, "policies/prune.yaml", "at_least: 80%", 'at_least: "{{ db_password }}"')

    checked = run_cli(["policy", "check", "-i", "inventory.yaml", "policies"], root)
    diffed = run_cli(["policy", "diff", str(BASE), str(root)])

    assert checked.exit_code == 1 and diffed.exit_code == 1
    assert "spec.gates.disk_usage.at_least" in checked.stdout
    assert "spec.gates.disk_usage.at_least: the rendered value is not" in diffed.stderr
    assert "s3cr3t" not in checked.stdout + checked.stderr + diffed.stdout + diffed.stderr


def test_environment_lines_of_unit_files_are_masked_in_plan_diffs() -> None:
    before = "[Service]\nEnvironment=API_TOKEN=abc-OLD-123\nExecStart=/bin/x --token=t0k3nOLD\n"
    after = "[Service]\nEnvironment=API_TOKEN=abc-NEW-123\nExecStart=/bin/x --token=t0k3nNEW\n"
    change = Change(
        address="unit:/etc/systemd/system/x.service",
        action=Action.UPDATE,
        label="x.service",
        reason="content differs",
        policy="timers",
        source=Location("policies/timers.yaml", 3),
        before={"path": "/etc/systemd/system/x.service", "content": before},
        after={"path": "/etc/systemd/system/x.service", "content": after},
        work=Work(Operation.WRITE_UNIT, path="/etc/systemd/system/x.service", content=after),
    )
    plan = Plan(host_facts("cc-ci").gathered_at, (HostPlan("cc-ci", (change,)),))

    text = render_text.render_plan(plan, Style(enabled=False))

    assert "abc-" not in text and "t0k3n" not in text
    assert "+Environment=(masked, changed)" in text
    assert "-Environment=(masked)" in text
    assert "--token=(masked)" in text


def test_secret_looking_names_are_recognised() -> None:
    secret = ["db_password", "REGISTRY_TOKEN", "apiKey", "ssh-key", "dbpassword", "aws_secret"]
    plain = ["docker_data_root", "abra_dir", "keep", "monkey", "inventory_hostname", "bypass"]
    assert all(redact.is_secret_name(n) for n in secret)
    assert not any(redact.is_secret_name(n) for n in plain)
    assert redact.secret_values({"db": {"password": "hunter22"}, "x": "visible"}) == {"hunter22"}
