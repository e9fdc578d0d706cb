"""Nonsense and hostile input is refused with one line naming file, line and field, a
non-zero exit and no action: never a traceback, never "Host matches policy"."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ccci.cli.main import cli
from ccci.config.inventory import load as load_inventory
from ccci.config.yamlsrc import MAX_FILE_BYTES
from ccci.errors import InputError
from ccci.facts.model import Daemon, DiskUsage, Facts
from ccci.serde import read_json, to_jsonable

PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: 80%}
  prune:
    dangling_images: {older_than: 24h}
"""

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
FACTS = Facts(
    host="localhost",
    gathered_at=NOW,
    daemon=Daemon("localhost", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True),
    disks=(DiskUsage("/var/lib/docker", 100, 50, 50),),
)
SNAPSHOT = {"format_version": 1, "hosts": {"localhost": to_jsonable(FACTS)}}


def ccci(cwd: Path, *args: str) -> Result:
    with contextlib.chdir(cwd):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "prune.yaml").write_text(PRUNE, encoding="utf-8")
    (tmp_path / "snap.json").write_text(json.dumps(SNAPSHOT), encoding="utf-8")
    return tmp_path


def plan(repo: Path, *args: str) -> Result:
    return ccci(repo, "reconcile", "--plan", "--facts", "snap.json", *args)


def one_line_error(result: Result, starts: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"ccci: {starts}"), result.stderr
    assert result.stderr.count("\n") == 1


def test_the_snapshot_fixture_plans_cleanly(repo: Path) -> None:
    assert plan(repo).exit_code == 0


@pytest.mark.parametrize("folder", ["empty", "missing-docs"])
def test_an_empty_policy_set_is_an_error_unless_allowed(repo: Path, folder: str) -> None:
    (repo / folder).mkdir()
    if folder == "missing-docs":
        (repo / folder / "blank.yaml").write_text("# nothing yet\n", encoding="utf-8")

    refused = plan(repo, "-p", folder, "--detailed-exitcode")
    allowed = plan(repo, "-p", folder, "--allow-empty", "--detailed-exitcode")

    one_line_error(refused, f"{folder}: no policy documents found (pass --allow-empty")
    assert "Host matches policy" not in refused.output
    assert allowed.exit_code == 0
    assert allowed.stdout.startswith("No changes. Host matches policy.")


def test_a_duration_too_long_for_any_clock_is_a_located_error(repo: Path) -> None:
    prune = repo / "policies" / "prune.yaml"
    prune.write_text(PRUNE.replace("older_than: 24h", "older_than: 9999999999w"), "utf-8")

    planned = plan(repo)
    checked = ccci(repo, "policy", "check")

    one_line_error(planned, "policies/prune.yaml:8: spec.prune.dangling_images.older_than: ")
    assert "longer than 100 years" in planned.stderr
    assert checked.exit_code == 1 and "longer than 100 years" in checked.stdout


def test_a_value_with_a_trailing_newline_does_not_pass_an_anchored_pattern(repo: Path) -> None:
    prune = repo / "policies" / "prune.yaml"
    prune.write_text(PRUNE.replace("older_than: 24h", 'older_than: "24h\\n"'), "utf-8")

    one_line_error(plan(repo), "policies/prune.yaml:8: spec.prune.dangling_images.older_than: ")


@pytest.mark.parametrize("char", ["\\t", "\\e", "\\u202e", "\\x85"])
def test_no_policy_string_may_hold_a_control_character(repo: Path, char: str) -> None:
    prune = repo / "policies" / "prune.yaml"
    prune.write_text(
        PRUNE.replace("path: /var/lib/docker", f'path: "/var/lib/{char}docker"'), "utf-8"
    )

    result = plan(repo)

    one_line_error(result, "policies/prune.yaml:6: spec.gates.disk_usage.path: holds the control")


def test_a_policy_file_over_the_size_limit_is_refused_unread(repo: Path) -> None:
    big = repo / "policies" / "big.yaml"
    big.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1), encoding="utf-8")

    one_line_error(plan(repo), f"policies/big.yaml: larger than {MAX_FILE_BYTES // 1024} KiB")


def test_a_snapshot_nested_a_hundred_thousand_deep_is_one_line(repo: Path) -> None:
    (repo / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")

    result = ccci(repo, "reconcile", "--plan", "--facts", "deep.json")

    one_line_error(result, "deep.json: not JSON ccci wrote: nested too deeply")
    with pytest.raises(InputError, match="nested too deeply"):
        read_json(repo / "deep.json")


@pytest.mark.parametrize(
    ("out", "says"),
    [
        ("policies", "--out policies: is a folder"),
        ("no/such/folder/plan.json", "--out no/such/folder/plan.json: no folder no/such/folder"),
    ],
)
def test_out_at_a_folder_or_a_missing_parent_is_one_line(repo: Path, out: str, says: str) -> None:
    one_line_error(plan(repo, "--out", out), says)


@contextmanager
def full_disk(folder: Path) -> Iterator[Path]:
    """A real, tiny tmpfs at ``folder``, filled to the last byte (ccci's tests run as root,
    as the nightly does)."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    try:
        with (folder / "filler").open("wb", buffering=0) as stream, contextlib.suppress(OSError):
            while True:
                stream.write(b"x" * 4096)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_out_on_a_full_disk_is_one_line_and_leaves_no_half_plan(repo: Path) -> None:
    with full_disk(repo / "full") as folder:
        result = plan(repo, "--out", "full/plan.json")
        left = sorted(p.name for p in folder.iterdir())

    one_line_error(result, "full/plan.json: cannot write: No space left on device")
    assert left == ["filler"]


def test_out_never_replaces_a_device_file(repo: Path) -> None:
    one_line_error(plan(repo, "--out", "/dev/full"), "--out /dev/full: not a regular file")
    assert Path("/dev/full").is_char_device()


def test_a_second_inventory_document_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("all:\n  hosts: {cc-ci: {}}\n---\nall:\n  hosts: {other: {}}\n", "utf-8")

    with pytest.raises(InputError) as caught:
        load_inventory(path)

    assert str(caught.value) == f"{path}:4: an inventory is one YAML document, not several"


@pytest.mark.parametrize("name", ["../../../esc/x", "a/b", "..", "-rf", "cc ci"])
def test_an_inventory_host_that_is_not_a_safe_file_name_is_refused(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(f"all:\n  hosts:\n    {json.dumps(name)}: {{}}\n", "utf-8")

    with pytest.raises(InputError) as caught:
        load_inventory(path)

    assert str(caught.value).startswith(f"{path}:3: all.hosts.{name}: host name ")
    assert "is not a safe file name" in str(caught.value)


def test_policy_diff_refuses_a_side_with_no_policies(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "prune.yaml").write_text(PRUNE, encoding="utf-8")

    result = ccci(tmp_path, "policy", "diff", "a", "b")
    allowed = ccci(tmp_path, "policy", "diff", "a", "b", "--allow-empty")

    one_line_error(result, "a: no policy documents in policies (pass --allow-empty")
    assert allowed.exit_code == 0
