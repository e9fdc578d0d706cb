"""``ccci policy check`` runs the loader's own stages (``ccci.policy.pipeline``), so every
error that stops a reconcile is a finding of check, at the same file and line, in the same
words, and a policy set check passes loads.

Before the two shared one pipeline, check skipped the control-character stage, resolved
selectors one policy at a time (so it never saw that a nightly's sandbox could not hold an
orphan policy's env files) and quoted builder errors without hiding rendered secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from review_helpers import policy_repo

from ccci.config import inventory as inventory_mod
from ccci.errors import InputError
from ccci.policy.load import load_for_hosts
from ccci.review.check import run_check
from tests.unit.test_timer_values import ORPHANS, nightly_item, timer_doc

INVENTORY = """\
all:
  children:
    ci:
      hosts:
        cc-ci: {db_password: "s3cr3t-value", keep_days: "soon"}
"""

SELECTOR = {
    "apiVersion": "ccci/v1",
    "kind": "StackSelector",
    "metadata": {"name": "run-apps"},
    "spec": {"match": "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"},
}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty policy repository with one host whose vars hold a secret, as the current
    directory."""
    monkeypatch.chdir(policy_repo(tmp_path, INVENTORY))
    return tmp_path


def write(*docs: dict[str, Any]) -> None:
    Path("policies/p.yaml").write_text(
        yaml.safe_dump_all(docs, sort_keys=False, width=10_000), encoding="utf-8"
    )


def load_error() -> InputError:
    inventory = inventory_mod.load(Path("inventory.yaml"))
    with pytest.raises(InputError) as caught:
        load_for_hosts([Path("policies")], inventory, list(inventory.hosts.values()))
    return caught.value


def check_findings() -> list[tuple[str, int, str]]:
    report = run_check([Path("policies")], Path("inventory.yaml"))
    return [(f.file, f.line, f.message) for f in report.findings]


def assert_check_reports_what_load_refuses() -> InputError:
    error = load_error()
    where = (error.location.file, error.location.line, error.message)
    assert where in check_findings()
    return error


def test_a_control_character_load_refuses_is_a_finding_of_check(repo: Path) -> None:
    write({**SELECTOR, "metadata": {"name": "run\x1b[2Japps"}})
    error = assert_check_reports_what_load_refuses()
    assert error.message == "holds the control character U+001B: refused"


def test_env_files_the_nightlys_sandbox_cannot_hold_are_a_finding_of_check(repo: Path) -> None:
    orphans = {**ORPHANS, "spec": {**ORPHANS["spec"], "env_file": "/{server}/{domain}.env"}}
    write(timer_doc([nightly_item(runs_ccci=True)]), orphans)
    error = assert_check_reports_what_load_refuses()
    assert "env_file: the nightly's sandbox cannot hold it" in error.message
    report = run_check([Path("policies")], Path("inventory.yaml"))
    assert [f.code for f in report.findings if f.message == error.message] == ["sandbox"]


def test_an_unknown_selector_is_the_same_error_in_check_and_load(repo: Path) -> None:
    orphans = {**ORPHANS, "spec": {**ORPHANS["spec"], "run_apps": {"selector": "run-ap"}}}
    write(SELECTOR, orphans)
    error = assert_check_reports_what_load_refuses()
    assert error.message == "unknown StackSelector 'run-ap' (known: run-apps)"


def test_a_bad_hosts_regex_is_the_same_error_in_check_and_load(repo: Path) -> None:
    write({**SELECTOR, "hosts": "~["})
    error = assert_check_reports_what_load_refuses()
    assert error.location.field == "hosts"


def test_a_builder_error_hides_a_rendered_secret_in_check_as_in_load(repo: Path) -> None:
    orphans = {**ORPHANS, "spec": {**ORPHANS["spec"], "orphan_after": "{{ db_password }}"}}
    write(orphans)
    error = load_error()
    assert "s3cr3t-value" not in error.message
    assert all("s3cr3t-value" not in message for _, _, message in check_findings())


def test_a_policy_set_check_passes_is_one_load_accepts(repo: Path) -> None:
    write(SELECTOR, timer_doc([nightly_item(runs_ccci=True)]), ORPHANS)
    assert check_findings() == []
    inventory = inventory_mod.load(Path("inventory.yaml"))
    (loaded,) = load_for_hosts([Path("policies")], inventory, list(inventory.hosts.values()))
    assert len(loaded.policies) == 3
