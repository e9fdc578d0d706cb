"""A lean plan's slow facts (the build cache, unique image sizes: the engine's disk-usage
call) and the trial plan that decides on them: no trial where no policy could want them,
an early read's answer kept whatever the prune's other gates say, and fingerprints only on
a plan that may be saved."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ccci.plan.build
from ccci.config.inventory import Host
from ccci.facts.docker import gather
from ccci.facts.model import SCOPE_FULL, SCOPE_STACKS, Facts
from ccci.plan.build import plan_host
from ccci.plan.fingerprint import SWARM_KEY
from ccci.plan.model import HostPlan
from ccci.plan.needs import may_want_slow
from ccci.policy.load import HostPolicies
from ccci.policy.model import Policy
from ccci.run.gather import gather_with
from tests.rules.test_rule_cases import policies_from_text
from tests.unit.fakes import FakeConnector
from tests.unit.test_facts_parse import A1, NOW, recorded_connector
from tests.unit.test_gather_host_reads import ORPHANS

LATER = NOW + timedelta(days=2)
HOST = Host("cc-ci", {"inventory_hostname": "cc-ci"}, ("all",))


def _prune(gates: str) -> str:
    return f"""\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {{name: gated-prune}}
spec:
  gates: {gates}
  prune:
    dangling_build_cache: {{older_than: 24h}}
"""


def _retention(at_least: str) -> str:
    return f"""\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {{name: cache}}
spec:
  retain: ['redis:*']
  evict:
    when: {{disk_usage: {{path: /var/lib/docker, at_least: {at_least}}}}}
    down_to: 50%
    unused_for: 14d
    max_per_run: 5
"""


# The recorded host's disks are 85 % full.
OPEN_DISK = "{disk_usage: {path: /var/lib/docker, at_least: 80%}}"
CLOSED_DISK = "{disk_usage: {path: /var/lib/docker, at_least: 90%}}"
# The recorded host runs a run-app (redi-3fa9c1_ci_example_org): this gate is closed.
LIVE_RUN_APP = "{no_live_stacks: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}}"


def _target(text: str, tmp_path: Path) -> HostPolicies:
    return HostPolicies(HOST, tuple(policies_from_text(text, tmp_path)))


def _lean_facts(conn: FakeConnector, scope: str = SCOPE_FULL) -> Facts:
    """What a lean gather finds before the trial: everything but the build cache."""
    return gather(conn, ["/var/lib/docker"], now=NOW, scope=scope, build_cache=False)


def _df_reads(conn: FakeConnector) -> list[tuple[Any, ...]]:
    return [r for r in conn.reads if r[:2] == ("get_json", "/system/df")]


def _trials(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each plan_host call of gathering, by whether it was fingerprinted (a trial is not)."""
    made: list[bool] = []
    own = ccci.plan.build.plan_host

    def counted(
        host: str,
        policies: Iterable[Policy],
        facts: Facts,
        now: datetime,
        fingerprinted: bool = True,
    ) -> HostPlan:
        made.append(fingerprinted)
        return own(host, policies, facts, now, fingerprinted=fingerprinted)

    monkeypatch.setattr(ccci.plan.build, "plan_host", counted)
    return made


def test_the_janitors_policies_never_want_a_slow_fact(tmp_path: Path) -> None:
    conn = recorded_connector()
    target = _target(ORPHANS, tmp_path)
    assert not may_want_slow(target.policies, _lean_facts(conn, SCOPE_STACKS))


@pytest.mark.parametrize(
    ("policy", "wanted"),
    [
        (_prune(OPEN_DISK), True),
        (_prune(CLOSED_DISK), False),
        (_retention("80%"), True),
        (_retention("90%"), False),
    ],
    ids=["prune-open", "prune-closed", "eviction-open", "eviction-closed"],
)
def test_a_prune_or_an_eviction_may_want_a_slow_fact_only_with_its_disk_gate_open(
    tmp_path: Path, policy: str, wanted: bool
) -> None:
    conn = recorded_connector()
    target = _target(policy, tmp_path)
    assert may_want_slow(target.policies, _lean_facts(conn)) is wanted


def test_a_build_cache_already_gathered_is_not_wanted_again(tmp_path: Path) -> None:
    conn = recorded_connector()
    target = _target(_prune(OPEN_DISK), tmp_path)
    full = gather(conn, ["/var/lib/docker"], now=NOW)
    assert "build_cache" not in full.not_gathered
    assert not may_want_slow(target.policies, full)


def test_a_janitor_plan_gathers_without_a_trial_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _trials(monkeypatch)
    conn = recorded_connector()
    gather_with(conn, _target(ORPHANS, tmp_path), SCOPE_STACKS, plan_at=LATER)
    assert made == []
    assert _df_reads(conn) == []


def test_with_the_eviction_gate_closed_no_trial_plan_is_made_nor_sizes_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _trials(monkeypatch)
    conn = recorded_connector()
    facts = gather_with(conn, _target(_retention("90%"), tmp_path), SCOPE_FULL, plan_at=LATER)
    assert made == []
    assert _df_reads(conn) == []
    assert all(i.unique_size is None for i in facts.images)


def test_with_the_eviction_gate_open_a_trial_plan_decides_and_the_sizes_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _trials(monkeypatch)
    conn = recorded_connector()
    conn.system_df = {**conn.system_df, "Images": [{"Id": A1, "Size": 100, "SharedSize": 40}]}
    facts = gather_with(conn, _target(_retention("80%"), tmp_path), SCOPE_FULL, plan_at=LATER)
    assert made == [False]
    assert [r[2] for r in _df_reads(conn)] == [{"type": "image"}]
    assert {i.id: i.unique_size for i in facts.images}[A1] == 60


def test_an_early_build_cache_read_is_kept_although_another_gate_of_the_prune_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No disk gate: the read starts beside the others. The live run-app closes the prune.
    made = _trials(monkeypatch)
    conn = recorded_connector()
    target = _target(_prune(LIVE_RUN_APP), tmp_path)
    facts = gather_with(conn, target, SCOPE_FULL, plan_at=LATER)
    assert [r[2] for r in _df_reads(conn)] == [{"type": "build-cache"}]
    assert len(facts.build_cache) == 2
    assert "build_cache" not in facts.not_gathered
    assert made == []
    plan = plan_host("cc-ci", target.policies, facts, LATER)
    assert plan.changes == ()
    assert [g.open for g in plan.gates] == [False]


def test_only_a_plan_that_may_be_saved_carries_fingerprints(tmp_path: Path) -> None:
    facts = gather(recorded_connector(), ["/var/lib/docker"], now=NOW)
    images = "prune:\n    dangling_images: {older_than: 24h}\n"
    target = _target(_prune(OPEN_DISK).replace("prune:\n", images), tmp_path)
    month = NOW + timedelta(days=30)
    saved = plan_host("cc-ci", target.policies, facts, month)
    shown = plan_host("cc-ci", target.policies, facts, month, fingerprinted=False)
    assert saved.changes and shown.changes == saved.changes
    assert SWARM_KEY in saved.fingerprints
    assert all(c.address in saved.fingerprints for c in saved.changes)
    assert shown.fingerprints == {}


def _buildkit_reads(conn: FakeConnector) -> list[tuple[Any, ...]]:
    return [r for r in conn.reads if r[0] == "build_cache_records"]


def test_where_buildkit_answers_itself_the_build_cache_costs_no_disk_usage_call(
    tmp_path: Path,
) -> None:
    conn = recorded_connector()
    conn.buildkit = True
    facts = gather_with(conn, _target(_prune(LIVE_RUN_APP), tmp_path), SCOPE_FULL, plan_at=LATER)
    assert _buildkit_reads(conn) == [("build_cache_records",)]
    assert _df_reads(conn) == []
    recorded = conn.system_df["BuildCache"]
    assert [r.id for r in facts.build_cache] == sorted(r["ID"] for r in recorded)
    assert "build_cache" not in facts.not_gathered


def test_with_an_evictions_disk_gate_open_too_the_early_read_is_disk_usage_for_both(
    tmp_path: Path,
) -> None:
    # Before API 1.42 one /system/df answer holds the build cache and the images' sizes, read
    # beside the other facts; BuildKit's answer has no sizes, so it is not asked. (The fake
    # limits the answer by type, as API 1.42 does: the sizes take a second call there.)
    conn = recorded_connector()
    conn.buildkit = True
    conn.system_df = {**conn.system_df, "Images": [{"Id": A1, "Size": 100, "SharedSize": 40}]}
    policies = _prune(OPEN_DISK) + "---\n" + _retention("80%")
    facts = gather_with(conn, _target(policies, tmp_path), SCOPE_FULL, plan_at=LATER)
    assert _buildkit_reads(conn) == []
    assert [r[2] for r in _df_reads(conn)] == [{"type": "build-cache"}, {"type": "image"}]
    assert {i.id: i.unique_size for i in facts.images}[A1] == 60
    assert len(facts.build_cache) == 2


def test_with_the_evictions_disk_gate_closed_buildkit_alone_gives_the_build_cache(
    tmp_path: Path,
) -> None:
    conn = recorded_connector()
    conn.buildkit = True
    policies = _prune(OPEN_DISK) + "---\n" + _retention("90%")
    facts = gather_with(conn, _target(policies, tmp_path), SCOPE_FULL, plan_at=LATER)
    assert _buildkit_reads(conn) == [("build_cache_records",)]
    assert _df_reads(conn) == []
    assert len(facts.build_cache) == 2
    assert all(i.unique_size is None for i in facts.images)


def test_where_buildkit_cannot_be_asked_the_build_cache_comes_from_disk_usage(
    tmp_path: Path,
) -> None:
    conn = recorded_connector()  # buildkit=False: the engine does not answer BuildKit's call
    facts = gather_with(conn, _target(_prune(LIVE_RUN_APP), tmp_path), SCOPE_FULL, plan_at=LATER)
    assert _buildkit_reads(conn) == [("build_cache_records",)]
    assert [r[2] for r in _df_reads(conn)] == [{"type": "build-cache"}]
    assert len(facts.build_cache) == 2
