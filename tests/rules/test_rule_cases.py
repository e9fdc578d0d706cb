"""Rules as data: each ``<kind>/<case>.yaml`` holds a policy, a facts snapshot and ``now``
in, and the exact changes, noops and gates out.

A fixture is read strictly: its facts go through ``Facts.from_dict`` after every object's
keys have been checked against the real dataclass fields, so a misspelled field fails the
case instead of being quietly dropped. Its policy goes through ccci's own loader and
builder, so a fixture cannot hold a policy that ccci would refuse.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccci.facts.model import (
    BuildCacheRecord,
    Container,
    Daemon,
    DiskUsage,
    Facts,
    Image,
    Network,
    Service,
    SwarmObject,
    Task,
    Volume,
)
from ccci.plan import HostPlan, Plan
from ccci.planner import plan_host
from ccci.policy.load import build, read
from ccci.policy.model import Policy
from ccci.units import format_time, parse_time

CASES = Path(__file__).parent
HOST = "cc-ci"

# Which dataclass each list (or object) in a fixture's ``facts`` holds.
_FACT_TYPES: dict[str, type[Any]] = {
    "daemon": Daemon,
    "disks": DiskUsage,
    "images": Image,
    "containers": Container,
    "build_cache": BuildCacheRecord,
    "services": Service,
    "tasks": Task,
    "volumes": Volume,
    "networks": Network,
    "secrets": SwarmObject,
    "configs": SwarmObject,
}
_DEFAULT_DAEMON = {
    "name": HOST,
    "server_version": "26.1.5",
    "api_version": "1.45",
    "data_root": "/var/lib/docker",
    "storage_driver": "overlay2",
    "swarm_state": "active",
    "swarm_manager": True,
}
_CASE_KEYS = {"description", "now", "policy", "facts", "expect", "xfail"}
_EXPECT_KEYS = {"changes", "noops", "gates", "bytes_freed"}
_CHANGE_KEYS = {"address", "action", "reason", "label", "policy", "bytes_freed"}
_NOOP_KEYS = {"address", "reason", "label", "policy"}
_GATE_KEYS = {"policy", "kind", "open", "observed"}


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


def policies_from_text(text: str, folder: Path) -> list[Policy]:
    """Parse policy YAML with ccci's own reader and builder (schema, units, line numbers)."""
    path = folder / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    return [build(doc) for doc in read([path])]


def load_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    _only(_CASE_KEYS, case, path.name)
    for required in ("description", "now", "policy", "expect"):
        if required not in case:
            raise FixtureError(f"{path.name}: missing {required!r}")
    expect = case["expect"]
    _only(_EXPECT_KEYS, expect, f"{path.name}: expect")
    for key, allowed in (("changes", _CHANGE_KEYS), ("noops", _NOOP_KEYS), ("gates", _GATE_KEYS)):
        if key not in expect:
            raise FixtureError(f"{path.name}: expect.{key} is required (use [] for none)")
        for i, entry in enumerate(expect[key]):
            _only(allowed, entry, f"{path.name}: expect.{key}[{i}]")
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
    policies = policies_from_text(case["policy"], tmp_path)
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


PRUNE_CASES = _case_params("prune", expected_failures=True)
PRUNE_PLANS = _case_params("prune", expected_failures=False)


@pytest.mark.parametrize("path", PRUNE_CASES)
def test_prune(path: Path, tmp_path: Path) -> None:
    case, plan, _ = plan_case(path, tmp_path)
    expect = case["expect"]

    changes = [
        {
            "address": c.address,
            "action": c.action.value,
            "reason": c.reason,
            "label": c.label,
            "policy": c.policy,
            "bytes_freed": c.bytes_freed,
        }
        for c in plan.changes
    ]
    noops = [
        {"address": n.address, "reason": n.reason, "label": n.label, "policy": n.policy}
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


@pytest.mark.parametrize("path", PRUNE_PLANS)
def test_prune_plan_round_trips_through_json(path: Path, tmp_path: Path) -> None:
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
    for param in PRUNE_CASES:
        for mark in param.marks:
            assert mark.kwargs["reason"].startswith("bug: "), param.id
