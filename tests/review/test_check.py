"""``ccci policy check`` reports every problem it can find, each at ``file:line:column``
with its field, and keeps going past a broken document."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from review_helpers import BASE, copy_base, policy_repo, run_cli

from ccci.review.check import run_check
from ccci.review.checkfmt import render_text

INVENTORY = """\
all:
  vars:
    docker_data_root: /var/lib/docker
  children:
    ci:
      hosts:
        cc-ci: {}
        cc-ci2: {abra_dir: /root/.abra}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty policy repository with a two-host inventory, as the current directory."""
    monkeypatch.chdir(policy_repo(tmp_path, INVENTORY))
    return tmp_path


def findings(files: dict[str, str]) -> list[str]:
    """Write ``files`` under policies/ and check them: one ``file:line:col: …`` per finding."""
    for name, text in files.items():
        Path("policies", name).write_text(text, encoding="utf-8")
    report = run_check([Path("policies")], Path("inventory.yaml"))
    return render_text(report).split("\n\n")[0].splitlines() if report.findings else []


def test_the_seed_like_base_policies_are_clean() -> None:
    report = run_check([BASE / "policies"], BASE / "inventory.yaml")
    assert report.findings == ()
    assert render_text(report) == "No problems in 6 files (6 documents)."


PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
hosts: ci
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: 180%}
  prune:
    dangling_images: {older_than: 24x}
    volumes: {older_than: 1h}
    all: {older_than: 1h}
"""


# One policy file, checked: exactly these findings, each at its line and column.
ONE_FILE = [
    pytest.param(
        "prune.yaml",
        PRUNE,
        [
            "policies/prune.yaml:7:41: error: spec.gates.disk_usage.at_least: "
            "'180%' is not a percentage [schema]",
            "policies/prune.yaml:9:23: error: spec.prune.dangling_images.older_than: "
            "'24x' is not a duration [schema]",
            "policies/prune.yaml:10:5: error: spec.prune.volumes: unknown field "
            "(allowed: dangling_build_cache, dangling_images, stopped_containers) [schema]",
            "policies/prune.yaml:11:5: error: spec.prune.all: unknown field "
            "(allowed: dangling_build_cache, dangling_images, stopped_containers) [schema]",
        ],
        id="every_schema_error_of_a_document_at_its_column",
    ),
    pytest.param(
        "s.yaml",
        "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: a}\nspce: {match: x}\n",
        [
            "policies/s.yaml:4:1: error: spce: unknown field "
            "(allowed: apiVersion, hosts, kind, metadata, spec) [schema]"
        ],
        id="a_misspelt_field_is_unknown_not_also_missing",
    ),
    pytest.param(
        "o.yaml",
        """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: hasty}
spec:
  run_apps: {match: '^x'}
  orphan_after: 30s
  reap: [services]
""",
        ["policies/o.yaml:6:3: error: spec.orphan_after: must be at least 1m [schema]"],
        id="a_bad_duration_found_by_the_builder_names_its_column",
    ),
    pytest.param(
        "t.yaml",
        """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: t}
hosts: ci
spec:
  present:
    - name: a
      on_calendar: "{{ schedule }}"
      exec: "{{ 1 / 0 }}"
      working_directory: "{{ abra_dir }}"
""",
        [
            "policies/t.yaml:8:7: error: spec.present[0].on_calendar: "
            "cannot render: 'schedule' is undefined [render]",
            "policies/t.yaml:9:7: error: spec.present[0].exec: "
            "cannot render: ZeroDivisionError: division by zero [render]",
            "policies/t.yaml:10:7: error: spec.present[0].working_directory: "
            "cannot render: 'abra_dir' is undefined (for host cc-ci) [render]",
        ],
        id="a_jinja2_value_that_cannot_render_for_each_value_and_host",
    ),
    pytest.param(
        "s.yaml",
        """\
apiVersion: ccci/v1
kind: StackSelector
metadata: {name: s}
hosts: staging
spec: {match: "{{ pattern }}{{ 1 +* 2 }}"}
""",
        [
            "policies/s.yaml:4:1: warning: hosts: 'staging' matches no host in inventory.yaml: "
            "the policy applies nowhere [hosts-unmatched]",
            "policies/s.yaml:5:8: error: spec.match: cannot render: unexpected '*' [render]",
        ],
        id="a_document_for_no_host_may_use_host_vars_but_not_broken_templates",
    ),
    pytest.param(
        "o.yaml",
        """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap}
spec:
  run_apps: {selector: run-appz}
  orphan_after: 3h
  reap: [services]
---
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: prune}
spec:
  gates:
    no_live_stacks:
      selector: run-appz
  prune: {dangling_images: {older_than: 24h}}
""",
        [
            "policies/o.yaml:5:14: error: spec.run_apps.selector: unknown StackSelector "
            "'run-appz' (known: none defined) [selector]",
            "policies/o.yaml:15:7: error: spec.gates.no_live_stacks.selector: unknown "
            "StackSelector 'run-appz' (known: none defined) [selector]",
        ],
        id="an_unknown_selector_at_the_line_that_names_it",
    ),
    pytest.param(
        "t.yaml",
        """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: schedules}
spec:
  present:
    - {name: ccci-reconcile, on_calendar: daily, exec: ccci reconcile}
  absent:
    - docker-prune.timer
    - ccci-reconcile
""",
        [
            "policies/t.yaml:9:7: error: spec.absent[1]: timer ccci-reconcile.timer is both absent "
            "here and present in policy schedules (policies/t.yaml:6): each run would undo the "
            "other [timer-conflict]"
        ],
        id="a_timer_both_present_and_absent",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), ONE_FILE)
def test_one_policy_file_gets_each_of_its_findings_at_its_line_and_column(
    repo: Path, name: str, text: str, expected: list[str]
) -> None:
    assert findings({name: text}) == expected


def test_a_broken_document_does_not_hide_the_next_one_or_the_next_file(repo: Path) -> None:
    second = PRUNE.replace("ci-docker-prune", "second").replace("180%", "80%")
    lines = findings(
        {"a.yaml": PRUNE + "---\n" + second, "b.yaml": "kind: Nope\n", "c.yaml": "a: b\n  c: d\n"}
    )
    assert [line.split(": ")[0] for line in lines] == [
        "policies/a.yaml:7:41",
        "policies/a.yaml:9:23",
        "policies/a.yaml:10:5",
        "policies/a.yaml:11:5",
        "policies/a.yaml:21:23",
        "policies/a.yaml:22:5",
        "policies/a.yaml:23:5",
        "policies/b.yaml:1:1",
        "policies/c.yaml:2:4",
    ]
    assert lines[-2].endswith(
        "kind: unknown kind 'Nope' (known: DaemonPolicy, ImageRetention, OrphanStackPolicy, "
        "PrunePolicy, StackSelector, TimerPolicy) [schema]"
    )
    assert lines[-1] == (
        "policies/c.yaml:2:4: error: invalid YAML: mapping values are not allowed here [yaml]"
    )


def test_a_low_watermark_above_the_high_one_is_an_error(repo: Path) -> None:
    text = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: cache}
spec:
  evict:
    when: {disk_usage: {path: /var/lib/docker, at_least: 80%}}
    down_to: 90%
    unused_for: 14d
"""
    (line,) = findings({"r.yaml": text})
    assert line.startswith("policies/r.yaml:7:5: error: spec.evict.down_to: the low watermark 90%")


def test_duplicate_names_on_a_host_are_errors_at_the_second(repo: Path) -> None:
    text = (
        "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: run-apps}\nspec: {match: a}\n"
    )
    assert findings({"a.yaml": text, "b.yaml": text}) == [
        "policies/b.yaml:3:12: error: metadata.name: duplicate StackSelector name 'run-apps' "
        "(first at policies/a.yaml:3) [duplicate-name]"
    ]


def test_the_same_name_for_different_hosts_is_no_duplicate(repo: Path) -> None:
    text = (
        "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: s}\nhosts: HOST\n"
        "spec: {match: a}\n"
    )
    one, two = text.replace("HOST", "cc-ci"), text.replace("HOST", "cc-ci2")
    assert findings({"a.yaml": one, "b.yaml": two}) == []


def test_two_prune_thresholds_on_one_disk_are_a_warning(repo: Path) -> None:
    text = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: {name}}
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: {level}}
  prune: {dangling_images: {older_than: 24h}}
"""

    def prune(name: str, level: str) -> str:
        return text.replace("{name}", name).replace("{level}", level)

    assert findings({"a.yaml": prune("first", "80%"), "b.yaml": prune("second", "70%")}) == [
        "policies/b.yaml:6:41: warning: spec.gates.disk_usage.at_least: PrunePolicy second "
        "prunes at 70% of /var/lib/docker but first at 80% (policies/a.yaml:6): two "
        "thresholds on one disk; the lower one decides [prune-thresholds]"
    ]


ORPHANS = """\
apiVersion: ccci/v1
kind: StackSelector
metadata: {name: run-apps}
spec: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
---
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
spec:
  run_apps: {selector: run-apps}
  orphan_after: 3h
  keep:
    - '^demo-'
    - '^prod_'
  reap: [services]
"""


def test_a_keep_pattern_no_run_app_can_match_is_a_warning(repo: Path) -> None:
    assert findings({"o.yaml": ORPHANS}) == [
        "policies/o.yaml:14:7: warning: spec.keep[1]: keep '^prod_' matches no stack that "
        "run_apps selects ('^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'): it protects nothing "
        "[keep-unmatched]"
    ]


def test_two_orphan_policies_over_the_same_stacks_with_different_ages_are_a_warning(
    repo: Path,
) -> None:
    other = """\
---
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: impatient}
spec:
  run_apps: {match: '_ci_example_org$'}
  orphan_after: 30m
  reap: [services]
"""
    lines = findings({"o.yaml": ORPHANS.replace("    - '^prod_'\n", "") + other})
    assert lines == [
        "policies/o.yaml:21:3: warning: spec.orphan_after: OrphanStackPolicy impatient and "
        "reap-killed-runs (policies/o.yaml:8) both select stacks like "
        "'a-aaaaaa_ci_example_org', with orphan_after 30m and 3h: the shorter one decides "
        "[orphan-overlap]"
    ]


def test_a_timer_present_twice_with_other_settings_is_a_warning(repo: Path) -> None:
    text = """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: {name}}
spec:
  present:
    - {name: nightly, on_calendar: {when}, exec: ccci reconcile}
"""
    first = text.replace("{name}", "a").replace("{when}", "daily")
    second = text.replace("{name}", "b").replace("{when}", "hourly")
    same = text.replace("{name}", "c").replace("{when}", "daily")
    assert findings({"a.yaml": first, "b.yaml": second, "c.yaml": same}) == [
        "policies/b.yaml:6:8: warning: spec.present[0].name: timer nightly.timer is also "
        "present in policy a (policies/a.yaml:6) with other settings: the first one wins "
        "[timer-twice]"
    ]


def test_two_daemon_policies_expecting_different_data_roots_contradict(repo: Path) -> None:
    text = (
        "apiVersion: ccci/v1\nkind: DaemonPolicy\nmetadata: {name: NAME}\n"
        "spec:\n  data_root: ROOT\n"
    )
    one = text.replace("NAME", "daemon").replace("ROOT", "/var/lib/docker")
    two = text.replace("NAME", "moved").replace("ROOT", "/srv/docker")
    assert findings({"a.yaml": one, "b.yaml": two}) == [
        "policies/b.yaml:5:3: error: spec.data_root: data_root /srv/docker contradicts "
        "/var/lib/docker in policy daemon (policies/a.yaml:3): no host can satisfy both "
        "[daemon-conflict]"
    ]


def test_a_hosts_pattern_that_matches_no_host_is_a_warning_and_a_bad_regex_an_error(
    repo: Path,
) -> None:
    text = (
        "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: NAME}\n"
        "hosts: 'PATTERN'\nspec: {match: a}\n"
    )
    assert findings(
        {
            "a.yaml": text.replace("NAME", "a").replace("PATTERN", "ci:&web"),
            "b.yaml": text.replace("NAME", "b").replace("PATTERN", "~cc-[0-9"),
            "c.yaml": text.replace("NAME", "c").replace("PATTERN", "cc-*:!cc-ci2"),
        }
    ) == [
        "policies/a.yaml:4:1: warning: hosts: 'ci:&web' matches no host in inventory.yaml: "
        "the policy applies nowhere [hosts-unmatched]",
        "policies/b.yaml:4:1: error: hosts: '~cc-[0-9' is not a regular expression: "
        "unterminated character set at position 3 [hosts]",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "kind: [PrunePolicy]\n",
            "policies/x.yaml:1:1: error: kind: unknown kind ['PrunePolicy']",
            id="a-list-as-kind",
        ),
        pytest.param(
            "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: s}\nspec:\n  1: x\n",
            "policies/x.yaml:5:3: error: spec.1: field names are text, but YAML reads 1 as "
            "int 1 (quote it)",
            id="a-number-as-field-name",
        ),
        pytest.param(
            "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: s}\non: push\n",
            "policies/x.yaml:4:1: error: on: field names are text, but YAML reads on as "
            "bool True (quote it)",
            id="a-boolean-as-field-name",
        ),
        pytest.param(
            "- just\n- a list\n",
            "policies/x.yaml:1:1: error: a policy document is a mapping",
            id="a-list-as-document",
        ),
        pytest.param(
            "a: &x [*x]\n",
            "policies/x.yaml:1:4: error: a YAML alias refers to itself",
            id="a-recursive-alias",
        ),
        pytest.param(
            "a: \x07\n",
            "policies/x.yaml:1:4: error: invalid YAML: special characters are not allowed",
            id="a-control-character",
        ),
        pytest.param(
            "[" * 2000 + "]" * 2000 + "\n",
            "policies/x.yaml:1:1: error: invalid YAML: nested too deeply",
            id="deep-nesting",
        ),
        pytest.param(
            "a: !!python/object:os.system x\n",
            "policies/x.yaml:1:4: error: invalid YAML: could not determine a constructor",
            id="an-unsafe-tag",
        ),
        pytest.param(
            "a: 1\na: 2\n",
            "policies/x.yaml:2:1: error: a: duplicate key",
            id="a-duplicate-key",
        ),
    ],
)
def test_malformed_yaml_is_a_located_finding_never_a_crash(
    repo: Path, text: str, expected: str
) -> None:
    (line,) = findings({"x.yaml": text})
    assert line.startswith(expected)


def test_an_alias_bomb_is_refused_quickly(repo: Path) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    start = time.monotonic()
    (line,) = findings({"bomb.yaml": "\n".join(lines) + "\n"})
    assert time.monotonic() - start < 10
    assert line.startswith("policies/bomb.yaml:1:1: error: more than 100000 values")


def test_a_broken_inventory_is_reported_and_the_policies_are_still_checked(repo: Path) -> None:
    Path("inventory.yaml").write_text("all:\n  hosts:\n    cc-ci: {}\n  group: {}\n")
    assert findings({"p.yaml": PRUNE.replace("volumes", "stopped_containers")}) == [
        "inventory.yaml:4:3: error: all.group: unknown field (allowed: children, hosts, vars) "
        "[inventory]",
        "policies/p.yaml:7:41: error: spec.gates.disk_usage.at_least: "
        "'180%' is not a percentage [schema]",
        "policies/p.yaml:9:23: error: spec.prune.dangling_images.older_than: "
        "'24x' is not a duration [schema]",
        "policies/p.yaml:11:5: error: spec.prune.all: unknown field "
        "(allowed: dangling_build_cache, dangling_images, stopped_containers) [schema]",
    ]


def test_a_missing_path_is_a_finding(repo: Path) -> None:
    report = run_check([Path("nowhere")], Path("inventory.yaml"))
    assert render_text(report).splitlines()[0] == (
        "nowhere: error: no such file or directory [read]"
    )


def test_the_inventory_named_among_the_paths_is_not_checked_as_a_policy(repo: Path) -> None:
    report = run_check([Path("policies"), Path("inventory.yaml")], Path("inventory.yaml"))
    assert report.findings == ()


def test_check_exits_1_on_errors_0_on_warnings_and_1_with_fail_on_warn(tmp_path: Path) -> None:
    copy_base(tmp_path)
    assert run_cli(["policy", "check"], tmp_path).exit_code == 0
    orphans = tmp_path / "policies" / "orphans.yaml"
    orphans.write_text(orphans.read_text().replace("['^demo-']", "['^demo-', '^prod_']"))
    warned = run_cli(["policy", "check"], tmp_path)
    assert warned.exit_code == 0
    assert warned.output.endswith("0 errors, 1 warning in 6 files (6 documents).\n")
    assert run_cli(["policy", "check", "--fail-on-warn"], tmp_path).exit_code == 1
    orphans.write_text(orphans.read_text().replace("3h", "3 hours"))
    assert run_cli(["policy", "check"], tmp_path).exit_code == 1


def test_github_format_prints_workflow_annotations(tmp_path: Path) -> None:
    copy_base(tmp_path)
    prune = tmp_path / "policies" / "prune.yaml"
    prune.write_text(prune.read_text().replace("at_least: 80%", "at_least: 180%"))
    result = run_cli(["policy", "check", "--format", "github"], tmp_path)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "::error file=policies/prune.yaml,line=7,col=50,title=ccci policy check (schema)"
        "::spec.gates.disk_usage.at_least: '180%25' is not a percentage"
    )


def test_json_format_lists_findings_with_places_and_a_summary(tmp_path: Path) -> None:
    copy_base(tmp_path)
    prune = tmp_path / "policies" / "prune.yaml"
    prune.write_text(prune.read_text().replace("at_least: 80%", "at_least: 180%"))
    document = json.loads(run_cli(["policy", "check", "--format", "json"], tmp_path).output)
    assert document["summary"] == {"documents": 6, "errors": 1, "files": 6, "warnings": 0}
    (finding,) = document["findings"]
    assert finding == {
        "code": "schema",
        "column": 50,
        "field": "spec.gates.disk_usage.at_least",
        "file": "policies/prune.yaml",
        "hosts": [],
        "line": 7,
        "message": "'180%' is not a percentage",
        "severity": "error",
    }
