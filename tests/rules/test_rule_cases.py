"""Rules as data: each ``<kind>/<case>.yaml`` holds a policy, a facts snapshot and ``now``
in, and the exact changes, noops and gates out.

A fixture is read strictly: its facts go through ``Facts.from_dict`` after every object's
keys have been checked against the real dataclass fields, so a misspelled field fails the
case instead of being quietly dropped. Its policy goes through ccci's own loader, as
``load_for_hosts`` runs it for one host: every document (a StackSelector and the policies
that name it may share the text) is rendered with the host's vars (the fixture's optional
``host_vars``), validated, built, and then finalized for that host, so selectors resolve and
``abra_server`` narrows the env files' folder. A fixture cannot hold a policy that ccci would
refuse.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccci.config.inventory import Host
from ccci.errors import InputError
from ccci.facts.model import Facts, FileFact
from ccci.plan.build import plan_host
from ccci.plan.model import Change, HostPlan, Plan
from ccci.policy import template
from ccci.policy.load import build, finalize, read
from ccci.policy.model import OrphanStackPolicy, Policy
from ccci.quantities import format_time, parse_time

CASES = Path(__file__).parent
HOST = "cc-ci"


def _fact_types() -> dict[str, type[Any]]:
    """Which dataclass each list (or object) in a fixture's ``facts`` holds, read from
    ``Facts`` itself, so a fact kind added there is checked here too."""
    found: dict[str, type[Any]] = {}
    for name, hint in typing.get_type_hints(Facts).items():
        held = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        if dataclasses.is_dataclass(held) and isinstance(held, type):
            found[name] = held
    return found


_FACT_TYPES = _fact_types()
_DEFAULT_DAEMON = {
    "name": HOST,
    "server_version": "26.1.5",
    "api_version": "1.45",
    "data_root": "/var/lib/docker",
    "storage_driver": "overlay2",
    "swarm_state": "active",
    "swarm_manager": True,
}
_CASE_KEYS = {"description", "now", "policy", "host_vars", "facts", "expect", "xfail"}
_EXPECT_KEYS = {"changes", "noops", "gates", "bytes_freed", "manual"}
_CHANGE_KEYS = {
    "address",
    "action",
    "reason",
    "label",
    "policy",
    "bytes_freed",
    "before",
    "after",
}
# Reasons that name where a policy was written show the fixture's policy text as this file.
POLICY_FILE = "policies.yaml"
_NOOP_KEYS = {"address", "reason", "label", "policy"}
_GATE_KEYS = {"policy", "kind", "open", "observed"}
_MANUAL_KEYS = {"address", "reason", "label", "how", "policy"}


class FixtureError(Exception):
    """A fixture that does not describe a real case (unknown field, missing section)."""


def _plain(value: Any) -> Any:
    """YAML reads unquoted timestamps as datetimes; facts want RFC 3339 strings."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return format_time(moment)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _only(keys: set[str], data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise FixtureError(f"{where}: expected a mapping")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise FixtureError(f"{where}: unknown field(s) {unknown} (allowed: {sorted(keys)})")


def _check_fact_fields(facts: dict[str, Any], where: str) -> None:
    """Every key of every object must be a real field of its dataclass."""
    _only({f.name for f in dataclasses.fields(Facts)}, facts, where)
    for key, cls in _FACT_TYPES.items():
        if key not in facts:
            continue
        allowed = {f.name for f in dataclasses.fields(cls)}
        items = [facts[key]] if key == "daemon" else facts[key]
        if not isinstance(items, list):
            raise FixtureError(f"{where}.{key}: expected a list")
        for i, item in enumerate(items):
            _only(allowed, item, f"{where}.{key}[{i}]")


def facts_from_fixture(raw: dict[str, Any] | None, now: datetime) -> Facts:
    """Decode a fixture's compact facts; host, gathered_at and daemon may be left out."""
    data = _plain(dict(raw or {}))
    _check_fact_fields(data, "facts")
    data.setdefault("host", HOST)
    data.setdefault("gathered_at", format_time(now))
    data.setdefault("daemon", dict(_DEFAULT_DAEMON))
    try:
        return Facts.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise FixtureError(f"facts: {exc}") from None


def fixture_host(host_vars: dict[str, Any] | None = None) -> Host:
    """The host a fixture plans for, with its vars as the inventory would merge them."""
    variables: dict[str, Any] = {"inventory_hostname": HOST}
    variables.update(host_vars or {})
    return Host(HOST, variables, ("all", "ci"))


def policies_from_text(text: str, folder: Path, host: Host | None = None) -> list[Policy]:
    """Load every document of the policy YAML as ``load_for_hosts`` does for one host:
    render with the host's vars, validate and build each, then finalize them together."""
    target = host or fixture_host()
    path = folder / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    built = tuple(build(template.render(doc, target.vars, target.name)) for doc in read([path]))
    return list(finalize(built, target))


def load_case(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    _only(_CASE_KEYS, case, path.name)
    for required in ("description", "now", "policy", "expect"):
        if required not in case:
            raise FixtureError(f"{path.name}: missing {required!r}")
    if not isinstance(case.get("host_vars", {}), dict):
        raise FixtureError(f"{path.name}: host_vars: expected a mapping")
    expect = case["expect"]
    _only(_EXPECT_KEYS, expect, f"{path.name}: expect")
    for key, allowed in (("changes", _CHANGE_KEYS), ("noops", _NOOP_KEYS), ("gates", _GATE_KEYS)):
        if key not in expect:
            raise FixtureError(f"{path.name}: expect.{key} is required (use [] for none)")
        for i, entry in enumerate(expect[key]):
            _only(allowed, entry, f"{path.name}: expect.{key}[{i}]")
    for i, entry in enumerate(expect.get("manual", [])):
        _only(_MANUAL_KEYS, entry, f"{path.name}: expect.manual[{i}]")
    return case


def _now(case: dict[str, Any]) -> datetime:
    value = case["now"]
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_time(str(value))


def plan_case(path: Path, tmp_path: Path) -> tuple[dict[str, Any], HostPlan, datetime]:
    case = load_case(path)
    now = _now(case)
    facts = facts_from_fixture(case.get("facts"), now)
    host = fixture_host(case.get("host_vars"))
    policies = policies_from_text(case["policy"], tmp_path, host)
    return case, plan_host(HOST, policies, facts, now), now


def _project(actual: list[dict[str, Any]], expected: list[dict[str, Any]], base: set[str]) -> Any:
    """Compare on the keys each expected entry names (``base`` always), in order."""
    if len(actual) != len(expected):
        return [{k: a[k] for k in sorted(base)} for a in actual]
    return [{k: a[k] for k in sorted(base | set(e))} for a, e in zip(actual, expected, strict=True)]


def _case_params(kind: str, expected_failures: bool) -> list[Any]:
    """One param per fixture; a fixture's ``xfail: "bug: …"`` marks only its outcome test."""
    params = []
    for path in sorted((CASES / kind).glob("*.yaml")):
        marks = []
        reason = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("xfail")
        if reason and expected_failures:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


KINDS = ("prune", "orphans", "retention", "timers")
CASES_BY_KIND = {kind: _case_params(kind, expected_failures=True) for kind in KINDS}
PLANS = [p for kind in KINDS for p in _case_params(kind, expected_failures=False)]


def _change_view(change: Change) -> dict[str, Any]:
    return {
        "address": change.address,
        "action": change.action.value,
        "reason": change.reason,
        "label": change.label,
        "policy": change.policy,
        "bytes_freed": change.bytes_freed,
        "before": change.before,
        "after": change.after,
    }


def _relative(reason: str, tmp_path: Path) -> str:
    """A reason naming the policy file as ``policies.yaml:LINE``, whatever the temp dir."""
    return reason.replace(str(tmp_path / POLICY_FILE), POLICY_FILE)


def check_case(path: Path, tmp_path: Path) -> None:
    case, plan, _ = plan_case(path, tmp_path)
    expect = case["expect"]

    changes = [
        {**view, "reason": _relative(view["reason"], tmp_path)}
        for view in map(_change_view, plan.changes)
    ]
    noops = [
        {
            "address": n.address,
            "reason": _relative(n.reason, tmp_path),
            "label": n.label,
            "policy": n.policy,
        }
        for n in plan.noops
    ]
    gates = [
        {"policy": g.policy, "kind": g.gate.kind.value, "open": g.open, "observed": g.observed}
        for g in plan.gates
    ]
    assert (
        _project(changes, expect["changes"], {"address", "action", "reason"}) == expect["changes"]
    )
    assert _project(noops, expect["noops"], {"address", "reason"}) == expect["noops"]
    assert _project(gates, expect["gates"], {"kind", "open", "observed"}) == expect["gates"]
    if "bytes_freed" in expect:
        assert plan.bytes_freed() == expect["bytes_freed"]
    # Optional: what the plan leaves to an operator (it keeps the host unconverged).
    manual = [
        {
            "address": m.address,
            "reason": _relative(m.reason, tmp_path),
            "label": m.label,
            "how": m.how,
            "policy": m.policy,
        }
        for m in plan.manual
    ]
    if "manual" in expect:
        assert _project(manual, expect["manual"], {"address", "reason"}) == expect["manual"]


@pytest.mark.parametrize("path", CASES_BY_KIND["prune"])
def test_prune(path: Path, tmp_path: Path) -> None:
    check_case(path, tmp_path)


@pytest.mark.parametrize("path", CASES_BY_KIND["orphans"])
def test_orphans(path: Path, tmp_path: Path) -> None:
    check_case(path, tmp_path)


@pytest.mark.parametrize("path", CASES_BY_KIND["retention"])
def test_retention(path: Path, tmp_path: Path) -> None:
    check_case(path, tmp_path)


@pytest.mark.parametrize("path", CASES_BY_KIND["timers"])
def test_timers(path: Path, tmp_path: Path) -> None:
    check_case(path, tmp_path)


@pytest.mark.parametrize("path", PLANS)
def test_plan_round_trips_through_json(path: Path, tmp_path: Path) -> None:
    _, host_plan, now = plan_case(path, tmp_path)
    plan = Plan(now=now, hosts=(host_plan,))

    again = Plan.from_dict(json.loads(plan.to_json()))

    assert again == plan
    assert again.to_json() == plan.to_json()


def test_fixture_with_a_misspelled_fact_field_is_refused() -> None:
    facts = {
        "containers": [
            {
                "id": "c" * 64,
                "name": "x",
                "image": "busybox",
                "image_id": "sha256:" + "a" * 64,
                "state": "exited",
                "created": "2026-11-20T00:00:00Z",
                "finshed": "2026-11-21T00:00:00Z",
            }
        ]
    }
    with pytest.raises(FixtureError, match=r"containers\[0\].*'finshed'"):
        facts_from_fixture(facts, datetime(2026, 11, 27, 3, tzinfo=UTC))


def test_fixture_missing_a_required_fact_field_is_refused() -> None:
    facts = {"images": [{"id": "sha256:" + "a" * 64, "tags": [], "digests": [], "size": 1}]}
    with pytest.raises(FixtureError, match="missing field 'created'"):
        facts_from_fixture(facts, datetime(2026, 11, 27, 3, tzinfo=UTC))


def test_an_xfail_fixture_names_the_bug() -> None:
    for kind in KINDS:
        for param in CASES_BY_KIND[kind]:
            for mark in param.marks:
                assert mark.kwargs["reason"].startswith("bug: "), f"{kind}/{param.id}"


_SELECTOR_AND_ORPHANS = """\
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
  reap: [services, env_file]
  env_file: '{{ abra_dir }}/servers/{server}/{domain}.env'
"""


def test_a_fixture_policy_is_rendered_built_and_finalized_for_the_host(tmp_path: Path) -> None:
    host = fixture_host({"abra_dir": "/root/.abra", "abra_server": "ci.example.org"})

    policies = policies_from_text(_SELECTOR_AND_ORPHANS, tmp_path, host)

    assert [p.meta.kind for p in policies] == ["StackSelector", "OrphanStackPolicy"]
    orphans = policies[1]
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.run_apps == "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
    assert orphans.env_file_glob == "/root/.abra/servers/ci.example.org/*.env"


def test_a_fixture_without_abra_server_looks_in_every_server_folder(tmp_path: Path) -> None:
    policies = policies_from_text(
        _SELECTOR_AND_ORPHANS, tmp_path, fixture_host({"abra_dir": "/root/.abra"})
    )
    orphans = policies[1]
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.env_file_glob == "/root/.abra/servers/*/*.env"


def test_a_fixture_policy_naming_an_unknown_selector_is_refused(tmp_path: Path) -> None:
    text = _SELECTOR_AND_ORPHANS.replace("{selector: run-apps}", "{selector: run-app}")
    with pytest.raises(InputError, match="unknown StackSelector 'run-app' \\(known: run-apps\\)"):
        policies_from_text(text, tmp_path, fixture_host({"abra_dir": "/root/.abra"}))


def test_a_fixture_with_a_misspelled_file_fact_field_is_refused() -> None:
    facts = {"files": [{"path": "/root/.abra/servers/cc-ci/x.env", "exist": True}]}
    with pytest.raises(FixtureError, match=r"files\[0\].*'exist'"):
        facts_from_fixture(facts, datetime(2026, 11, 27, 3, tzinfo=UTC))


def test_a_fixture_file_fact_is_decoded() -> None:
    facts = {"files": [{"path": "/root/.abra/servers/cc-ci/x.env", "exists": True, "size": 9}]}
    decoded = facts_from_fixture(facts, datetime(2026, 11, 27, 3, tzinfo=UTC))
    assert decoded.file("/root/.abra/servers/cc-ci/x.env") == FileFact(
        "/root/.abra/servers/cc-ci/x.env", True, 9
    )


def _write_case(tmp_path: Path, **overrides: Any) -> Path:
    case: dict[str, Any] = {
        "description": "x",
        "now": "2026-11-27T03:00:00Z",
        "policy": _SELECTOR_AND_ORPHANS,
        "expect": {"changes": [], "noops": [], "gates": []},
    }
    case.update(overrides)
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    return path


def test_a_fixture_with_host_vars_that_are_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="host_vars: expected a mapping"):
        load_case(_write_case(tmp_path, host_vars=["abra_server"]))


def test_an_expected_change_may_name_before_but_not_an_unknown_key(tmp_path: Path) -> None:
    change = {"address": "stack:x", "action": "delete", "reason": "r", "before": {}}
    assert load_case(_write_case(tmp_path, expect={"changes": [change], "noops": [], "gates": []}))
    change["afterwards"] = {}
    with pytest.raises(
        FixtureError, match=r"expect\.changes\[0\]: unknown field\(s\) \['afterwards'\]"
    ):
        load_case(_write_case(tmp_path, expect={"changes": [change], "noops": [], "gates": []}))


def test_the_runner_compares_before_when_a_fixture_names_it(tmp_path: Path) -> None:
    # A wrong ``before`` must fail the case: the comparison is not decorative.
    source = CASES / "orphans" / "orphans_reap_only_the_kinds_the_policy_names.yaml"
    case = yaml.safe_load(source.read_text(encoding="utf-8"))
    case["expect"]["changes"][0]["before"]["volumes"] = ["redi-3fa9c1_ci_example_org_data"]
    path = tmp_path / "wrong_before.yaml"
    path.write_text(yaml.safe_dump(case, allow_unicode=True), encoding="utf-8")
    with pytest.raises(AssertionError):
        check_case(path, tmp_path)
    check_case(source, tmp_path)
