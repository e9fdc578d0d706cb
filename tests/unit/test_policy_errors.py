"""Every bad policy is refused before anything runs, with one line: ``file:line: field: problem``.

Each case edits one line of a valid policy, so the expected line number is the edited one;
the table of them is data, tests/unit/cases/policy_errors.yaml.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ccci.cli.main import cli
from ccci.config.inventory import Host, Inventory
from ccci.config.inventory import load as load_inventory
from ccci.errors import InputError
from ccci.facts.model import Daemon, DiskUsage, Facts
from ccci.facts.snapshot import snapshot_json
from ccci.policy.build import BUILDERS
from ccci.policy.load import HostPolicies, load_for_hosts
from ccci.policy.model import GateKind, PrunePolicy

REPO = Path(__file__).resolve().parents[2]

VALID = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata:
  name: ci-docker-prune
hosts: all
spec:
  gates:
    disk_usage:
      path: /var/lib/docker
      at_least: 80%
    no_live_stacks:
      match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'
    no_converging_services: true
  prune:
    dangling_images:
      older_than: 24h
    stopped_containers:
      older_than: 24h
    dangling_build_cache:
      older_than: 24h
"""


def edit(line: int, text: str | None, insert: bool = False) -> str:
    """VALID with 1-based ``line`` replaced by ``text`` (deleted when None), or ``text``
    inserted before it."""
    lines = VALID.splitlines()
    if insert:
        assert text is not None
        lines.insert(line - 1, text)
    elif text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    return "\n".join(lines) + "\n"


def _inventory(**host_vars: object) -> Inventory:
    variables: dict[str, Any] = {
        "inventory_hostname": "cc-ci",
        "docker_data_root": "/var/lib/docker",
    }
    variables.update(host_vars)
    host = Host("cc-ci", variables, ("all", "ci"))
    groups: dict[str, tuple[str, ...]] = {"all": ("cc-ci",), "ci": ("cc-ci",)}
    return Inventory(
        {"cc-ci": host}, groups, "inventory.yaml", {"docker_data_root": "/var/lib/docker"}
    )


def load(files: dict[str, str], inventory: Inventory | None = None) -> list[HostPolicies]:
    """Write ``files`` into the current directory and load them as the CLI would."""
    inv = inventory or _inventory()
    for name, text in files.items():
        Path(name).write_text(text, encoding="utf-8")
    return load_for_hosts([Path(n) for n in files], inv, inv.limit(None))


def error_of(files: dict[str, str], inventory: Inventory | None = None) -> str:
    with pytest.raises(InputError) as caught:
        load(files, inventory)
    return str(caught.value)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative names, as a user types them, are what errors show.
    monkeypatch.chdir(tmp_path)


def test_the_valid_policy_loads_into_typed_values() -> None:
    (hp,) = load({"policy.yaml": VALID})
    (policy,) = hp.policies
    assert isinstance(policy, PrunePolicy)
    assert [g.kind for g in policy.gates] == [
        GateKind.DISK_USAGE,
        GateKind.NO_LIVE_STACKS,
        GateKind.NO_CONVERGING_SERVICES,
    ]
    assert policy.gates[1].match == "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
    assert policy.gates[0].at_least == pytest.approx(0.8)
    assert policy.dangling_images is not None
    assert policy.dangling_images.total_seconds() == 24 * 3600
    assert str(policy.meta.source) == "policy.yaml:4: metadata.name"
    assert (
        str(policy.source_of("stopped_containers"))
        == "policy.yaml:17: spec.prune.stopped_containers"
    )


CASES = Path(__file__).parent / "cases" / "policy_errors.yaml"
_EDITS = ("replace", "insert", "delete", "end_with")


def _edited(ident: str, case: dict[str, Any]) -> str:
    """VALID with the one edit ``case`` names (see the case file's header)."""
    edits = [k for k in _EDITS if k in case]
    unknown = set(case) - {"line", "error", *_EDITS}
    assert len(edits) == 1 and not unknown, f"{CASES.name}: {ident}: one edit, line and error"
    line, how = case["line"], edits[0]
    if how == "end_with":
        return "\n".join([*VALID.splitlines()[: line - 1], case[how]]) + "\n"
    if how == "delete":
        return edit(line, None)
    return edit(line, case[how], insert=how == "insert")


def _bad_inputs() -> list[Any]:
    cases = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    return [pytest.param(_edited(i, c), c["error"], id=i) for i, c in cases.items()]


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize(("text", "expected"), BAD_INPUTS)
def test_a_bad_policy_is_one_line_naming_file_line_and_field(text: str, expected: str) -> None:
    assert error_of({"policy.yaml": text}) == expected


def test_a_bad_regex_names_the_problem_python_found() -> None:
    try:
        re.compile("([")
    except re.error as exc:
        problem = str(exc)
    assert error_of({"policy.yaml": edit(12, "      match: '(['")}) == (
        f"policy.yaml:12: spec.gates.no_live_stacks.match: '([' is not a regular expression: "
        f"{problem}"
    )


def test_an_unknown_kind_lists_the_known_ones() -> None:
    known = ", ".join(sorted(BUILDERS))
    assert error_of({"policy.yaml": edit(2, "kind: PrunePolcy")}) == (
        f"policy.yaml:2: kind: unknown kind 'PrunePolcy' (known: {known})"
    )


def test_an_error_in_a_later_document_names_that_documents_line() -> None:
    second = VALID.replace("ci-docker-prune", "weekly").replace("at_least: 80%", "at_least: 8O%")
    error = error_of({"policy.yaml": VALID + "---\n" + second})
    assert error == "policy.yaml:31: spec.gates.disk_usage.at_least: '8O%' is not a percentage"


def test_duplicate_policy_names_across_files_point_at_both() -> None:
    error = error_of({"a.yaml": VALID, "b.yaml": VALID})
    assert error == (
        "b.yaml:4: metadata.name: duplicate PrunePolicy name 'ci-docker-prune' "
        "(first at a.yaml:4: metadata.name)"
    )


# Jinja2 values over inventory vars.


def test_a_template_renders_from_the_hosts_vars() -> None:
    text = edit(9, '      path: "{{ docker_data_root }}/volumes"')
    (hp,) = load({"policy.yaml": text}, _inventory(docker_data_root="/srv/docker"))
    policy = hp.policies[0]
    assert isinstance(policy, PrunePolicy)
    assert policy.gates[0].path == "/srv/docker/volumes"


def test_the_sandbox_refuses_dunder_attributes() -> None:
    error = error_of({"policy.yaml": edit(9, "      path: \"{{ ''.__class__.__mro__ }}\"")})
    assert error.startswith(
        "policy.yaml:9: spec.gates.disk_usage.path: cannot render for host cc-ci: "
    )
    assert "__class__" in error
    assert "unsafe" in error


@pytest.mark.parametrize(("flag", "gated"), [(True, True), (False, False)])
def test_a_template_can_render_a_native_bool(flag: bool, gated: bool) -> None:
    text = edit(13, '    no_converging_services: "{{ wait_for_deploys }}"')
    (hp,) = load({"policy.yaml": text}, _inventory(wait_for_deploys=flag))
    policy = hp.policies[0]
    assert isinstance(policy, PrunePolicy)
    kinds = [g.kind for g in policy.gates]
    assert (GateKind.NO_CONVERGING_SERVICES in kinds) is gated


def test_a_template_that_renders_the_wrong_type_is_a_schema_error_at_its_line() -> None:
    text = edit(10, '      at_least: "{{ threshold }}"')
    error = error_of({"policy.yaml": text}, _inventory(threshold=80))
    assert error == "policy.yaml:10: spec.gates.disk_usage.at_least: 80 is not a percentage"


def test_an_expression_that_raises_is_an_input_error() -> None:
    error = error_of({"policy.yaml": edit(10, '      at_least: "{{ 80 / 0 }}%"')})
    assert error.startswith("policy.yaml:10: spec.gates.disk_usage.at_least: cannot render")


def test_a_string_variable_stays_a_string() -> None:
    text = edit(4, '  name: "{{ policy_name }}"')
    (hp,) = load({"policy.yaml": text}, _inventory(policy_name="2024"))
    assert hp.policies[0].meta.name == "2024"


@pytest.mark.parametrize("path", ['"{{ docker_data_root }}"', "/var/lib/docker"])
def test_a_policy_for_no_host_is_still_validated_templated_or_not(path: str) -> None:
    text = (
        edit(10, "      at_least: 180%")
        .replace("hosts: all", "hosts: cl")
        .replace("path: /var/lib/docker", f"path: {path}")
    )
    assert error_of({"policy.yaml": text}) == (
        "policy.yaml:10: spec.gates.disk_usage.at_least: '180%' is not a percentage"
    )


def test_the_shipped_policies_load_for_the_shipped_inventory() -> None:
    inventory = load_inventory(REPO / "inventory.yaml")
    loaded = load_for_hosts([REPO / "policies"], inventory, inventory.limit(None))
    names = {p.meta.name for hp in loaded for p in hp.policies}
    assert "ci-docker-prune" in names


# The CLI turns any of these into exactly one line on stderr and exit 1.


def _snapshot(path: Path) -> None:
    daemon = Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True)
    facts = Facts(
        host="cc-ci",
        gathered_at=datetime(2026, 11, 27, 3, tzinfo=UTC),
        daemon=daemon,
        disks=(DiskUsage("/var/lib/docker", 100, 85, 15),),
    )
    path.write_text(snapshot_json([facts]), encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            edit(10, "      at_least: 180%"),
            "ccci: bad.yaml:10: spec.gates.disk_usage.at_least: '180%' is not a percentage",
        ),
        (
            edit(9, "      path: /var/lib/docker: oops"),
            "ccci: bad.yaml:9: invalid YAML: mapping values are not allowed here",
        ),
        (
            edit(9, '      path: "{{ nope }}"'),
            "ccci: bad.yaml:9: spec.gates.disk_usage.path: cannot render for host cc-ci: "
            "'nope' is undefined",
        ),
    ],
    ids=["bad_percentage", "bad_yaml", "undefined_variable"],
)
def test_reconcile_plan_prints_one_error_line_and_exits_1(text: str, expected: str) -> None:
    Path("bad.yaml").write_text(text, encoding="utf-8")
    _snapshot(Path("snap.json"))
    args = ["reconcile", "--plan", "-p", "bad.yaml", "--facts", "snap.json", "-i", "none.yaml"]

    result = CliRunner().invoke(cli, [*args, "--now", "2026-11-27T03:00:00Z"])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [expected]
    assert result.stdout == ""


def test_reconcile_plan_with_the_same_snapshot_and_a_good_policy_succeeds() -> None:
    # The contrast case: the error test above fails for the policy, not the set-up.
    Path("good.yaml").write_text(VALID, encoding="utf-8")
    _snapshot(Path("snap.json"))
    args = ["reconcile", "--plan", "-p", "good.yaml", "--facts", "snap.json", "-i", "none.yaml"]

    result = CliRunner().invoke(cli, [*args, "--now", "2026-11-27T03:00:00Z", "-o", "json"])

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["empty"] is True


def test_the_installed_command_prints_one_error_line_and_exits_1() -> None:
    Path("bad.yaml").write_text(edit(16, "      older_than: 10"), encoding="utf-8")
    _snapshot(Path("snap.json"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccci",
            "reconcile",
            "--plan",
            "-p",
            "bad.yaml",
            "--facts",
            "snap.json",
            "-i",
            "none.yaml",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "ccci: bad.yaml:16: spec.prune.dangling_images.older_than: 10 is not a duration"
    ]
    assert done.stdout == ""
