"""``ccci policy diff`` says what a change means, with its risk and why, for every field of
every kind; a change of form alone means nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from review_helpers import copy_base, edit

from ccci.review.diffrun import run_diff
from ccci.review.difftext import render_text
from ccci.review.meanings.base import Risk
from ccci.review.semantic_diff import SemanticDiff


@pytest.fixture
def sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``old`` and ``new``: two copies of the base policy repository, in the current folder."""
    copy_base(tmp_path / "old")
    copy_base(tmp_path / "new")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "new"


def meanings() -> list[tuple[str, str, str]]:
    """(subject, risk, text) of each change from old to new."""
    return [(c.subject, c.meaning.risk.value, c.meaning.text) for c in diff().changes]


def diff() -> SemanticDiff:
    return run_diff("old", "new").diff


def test_unchanged_policies_mean_nothing_new(sides: Path) -> None:
    assert diff().is_empty()
    assert render_text(diff()) == "No change in meaning: the policies do the same on every host."


def test_a_change_of_form_alone_is_no_change(sides: Path) -> None:
    edit(sides, "policies/prune.yaml", "older_than: 24h}", "older_than: 1d}")
    edit(sides, "policies/timers.yaml", "on_calendar: daily", "on_calendar: '*-*-* 00:00:00'")
    edit(sides, "policies/timers.yaml", "persistent: true", "persistent: yes")
    edit(
        sides,
        "policies/orphans.yaml",
        "run_apps: {selector: run-apps}",
        "run_apps: {selector: run-apps}  # the runs",
    )
    assert meanings() == []


PRUNE = "PrunePolicy ci-docker-prune"
ORPHANS = "OrphanStackPolicy reap-killed-runs"
TIMERS = "TimerPolicy schedules"
DAEMON = "DaemonPolicy daemon"
RETAIN = "ImageRetention recipe-base-images"

# One row per meaning; kept as a table, one case per few lines.
# fmt: off
CASES = [
    # PrunePolicy: thresholds, gates and selectors.
    ("prune.yaml", "at_least: 80%", "at_least: 70%",
     [(PRUNE, "riskier", "prune threshold 80% → 70% (prunes more often)")]),
    ("prune.yaml", "at_least: 80%", "at_least: 90%",
     [(PRUNE, "safer", "prune threshold 80% → 90% (prunes less often)")]),
    ("prune.yaml", "at_least: 80%", "at_least: 97%",
     [(PRUNE, "riskier", "prune threshold 80% → 97% (prunes less often)")]),
    ("prune.yaml", '{path: "{{ docker_data_root }}", at_least: 80%}',
     "{path: /srv/docker, at_least: 80%}",
     [(PRUNE, "neutral", "disk gate path /var/lib/docker → /srv/docker")]),
    ("prune.yaml", '    disk_usage: {path: "{{ docker_data_root }}", at_least: 80%}\n', "",
     [(PRUNE, "riskier", "disk gate removed: prunes whatever the disk usage")]),
    ("prune.yaml", "    no_live_stacks: {selector: run-apps}\n", "",
     [(PRUNE, "riskier", "live-stack gate removed: prunes while CI runs are deployed")]),
    ("prune.yaml", "    no_converging_services: true\n", "",
     [(PRUNE, "riskier",
       "converging gate removed: prunes while a deploy or a pull is in flight")]),
    ("prune.yaml", "    no_converging_services: true\n",
     "    no_converging_services: {stuck_after: 10m}\n",
     [(PRUNE, "riskier",
       "stuck_after 30m → 10m: a converging service holds the prune back for less time "
       "before it counts as stuck")]),
    ("prune.yaml", "no_live_stacks: {selector: run-apps}",
     "no_live_stacks: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}",
     [(PRUNE, "neutral",
       "live-stack gate selector run-apps → (inline) (the same pattern)")]),
    ("prune.yaml", "no_live_stacks: {selector: run-apps}", "no_live_stacks: {match: '_ci_'}",
     [(PRUNE, "safer",
       "live-stack gate '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → '_ci_' "
       "(now also matches e.g. '_ci_')")]),
    ("prune.yaml", "no_live_stacks: {selector: run-apps}",
     "no_live_stacks: {match: '^redi-[0-9a-f]{6}_ci_'}",
     [(PRUNE, "riskier",
       "live-stack gate '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → '^redi-[0-9a-f]{6}_ci_' "
       "(no longer matches e.g. 'a-aaaaaa_ci_')")]),
    ("prune.yaml", "dangling_images: {older_than: 24h}", "dangling_images: {older_than: 12h}",
     [(PRUNE, "riskier", "dangling images older than 24h → 12h (prunes younger ones)")]),
    ("prune.yaml", "stopped_containers: {older_than: 24h}",
     "stopped_containers: {older_than: 3d}",
     [(PRUNE, "safer", "stopped containers older than 24h → 3d (keeps them longer)")]),
    ("prune.yaml", "    stopped_containers: {older_than: 24h}\n",
     "    dangling_build_cache: {older_than: 48h}\n",
     [(PRUNE, "safer", "no longer prunes stopped containers"),
      (PRUNE, "riskier", "now prunes dangling build cache older than 48h")]),
    # OrphanStackPolicy: every field.
    ("orphans.yaml", "orphan_after: 3h", "orphan_after: 30m",
     [(ORPHANS, "riskier",
       "orphan_after 3h → 30m (a run longer than 30m would be reaped while alive)")]),
    ("orphans.yaml", "orphan_after: 3h", "orphan_after: 6h",
     [(ORPHANS, "safer", "orphan_after 3h → 6h (orphans stay up to 6h before they are reaped)")]),
    ("orphans.yaml", "run_apps: {selector: run-apps}", "run_apps: {match: '_ci_'}",
     [(ORPHANS, "riskier",
       "run_apps '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → '_ci_' (now also matches e.g. '_ci_')")]),
    ("orphans.yaml", "run_apps: {selector: run-apps}",
     "run_apps: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_example_org$'}",
     [(ORPHANS, "safer",
       "run_apps '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → "
       "'^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_example_org$' "
       "(no longer matches e.g. 'a-aaaaaa_ci_')")]),
    ("orphans.yaml", "  expires_label: ci.expires\n", "",
     [(ORPHANS, "safer",
       "expires_label ci.expires removed (deadlines are ignored; orphans wait orphan_after)")]),
    ("orphans.yaml", "expires_label: ci.expires", "expires_label: ci.deadline",
     [(ORPHANS, "neutral",
       "expires_label ci.expires → ci.deadline (runs must stamp ci.deadline; "
       "ci.expires no longer counts)")]),
    ("orphans.yaml", "keep: ['^demo-']", "keep: ['^demo-', '^redi-']",
     [(ORPHANS, "safer", "keep '^redi-' added (matching stacks are never reaped)")]),
    ("orphans.yaml", "keep: ['^demo-']", "keep: []",
     [(ORPHANS, "riskier", "keep '^demo-' removed (matching stacks may be reaped)")]),
    ("orphans.yaml", "keep: ['^demo-']", "keep: ['^demo-', '^prod_']",
     [(ORPHANS, "neutral", "keep '^prod_' added (it matches no run-app)")]),
    ("orphans.yaml", "reap: [services, secrets, configs, networks, volumes, env_file]",
     "reap: [services, secrets, configs, networks, env_file]",
     [(ORPHANS, "safer", "no longer reaps volumes (they are left behind)")]),
    ("orphans.yaml", "reap: [services, secrets, configs, networks, volumes, env_file]",
     "reap: [services, secrets, configs, networks, volumes, env_file]\n  wait: 2m",
     [(ORPHANS, "neutral", "wait 1m → 2m")]),
    ("orphans.yaml", "env_file: '{{ abra_dir }}/servers/{server}/{domain}.env'",
     "env_file: '/srv/abra/servers/{server}/{domain}.env'",
     [(ORPHANS, "neutral",
       "env_file /root/.abra/servers/{server}/{domain}.env → "
       "/srv/abra/servers/{server}/{domain}.env")]),
    # StackSelector: neutral itself; its users say what it does.
    ("selectors.yaml", "match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'", "match: '_ci_'",
     [(ORPHANS, "riskier",
       "run_apps '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → '_ci_' (now also matches e.g. '_ci_')"),
      (PRUNE, "safer",
       "live-stack gate '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → '_ci_' (now also matches e.g. '_ci_')"),
      ("StackSelector run-apps", "neutral",
       "selector run-apps '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' → '_ci_' "
       "(now also matches e.g. '_ci_')")]),
    # TimerPolicy: schedule, settings, hardening, present and absent.
    ("timers.yaml", "on_calendar: daily", "on_calendar: hourly",
     [(TIMERS, "neutral", "timer ccci-reconcile: daily → hourly (runs 24× as often)")]),
    ("timers.yaml", "on_calendar: daily", "on_calendar: weekly",
     [(TIMERS, "neutral", "timer ccci-reconcile: daily → weekly (runs 7× less often)")]),
    ("timers.yaml", "exec: /usr/local/bin/ccci reconcile --apply --yes",
     "exec: /usr/local/bin/ccci reconcile --plan",
     [(TIMERS, "neutral",
       "timer ccci-reconcile: exec /usr/local/bin/ccci reconcile --apply --yes → "
       "/usr/local/bin/ccci reconcile --plan")]),
    ("timers.yaml", "persistent: true", "persistent: false",
     [(TIMERS, "neutral", "timer ccci-reconcile: persistent true → false")]),
    ("timers.yaml", "randomized_delay: 15m", "randomized_delay: 1h",
     [(TIMERS, "neutral", "timer ccci-reconcile: randomized_delay 15m → 1h")]),
    ("timers.yaml", "      working_directory: /etc/ccci\n", "",
     [(TIMERS, "neutral", "timer ccci-reconcile: working_directory /etc/ccci → (unset)")]),
    ("timers.yaml", "success_exit_status: '75'", "success_exit_status: '0'",
     [(TIMERS, "neutral", "timer ccci-reconcile: success_exit_status 75 → 0")]),
    ("timers.yaml", "after: docker.service", "after: network-online.target",
     [(TIMERS, "neutral", "timer ccci-reconcile: after docker.service → network-online.target")]),
    ("timers.yaml", "after: docker.service",
     "after: docker.service\n      hardening: true\n      read_write_paths: [/var/lib/ccci]",
     [(TIMERS, "safer", "timer ccci-reconcile: hardening off → on")]),
    ("timers.yaml", "  present:", "  unit_dir: /run/systemd/system\n  present:",
     [(TIMERS, "neutral", "unit_dir /etc/systemd/system → /run/systemd/system")]),
    ("timers.yaml", "    - docker-prune.timer\n", "    - docker-prune.timer\n    - apt-daily\n",
     [(TIMERS, "neutral",
       "absent timer apt-daily.timer added (it will be stopped, disabled and masked)")]),
    ("timers.yaml", "  absent:\n    - docker-prune.timer\n", "",
     [(TIMERS, "riskier", "absent timer docker-prune.timer removed (it may come back)")]),
    ("timers.yaml", "  absent:",
     "    - {name: backup, on_calendar: '*-*-* 02:00', exec: /usr/local/bin/backup}\n  absent:",
     [(TIMERS, "neutral", "timer backup added: *-*-* 02:00, runs `/usr/local/bin/backup`")]),
    # DaemonPolicy: checks added, dropped, changed.
    ("daemon.yaml", "storage_driver: overlay2", "storage_driver: zfs",
     [(DAEMON, "neutral", "storage_driver overlay2 → zfs")]),
    ("daemon.yaml", "  storage_driver: overlay2\n", "",
     [(DAEMON, "riskier", "no longer checks storage_driver overlay2")]),
    ("daemon.yaml", "storage_driver: overlay2",
     "storage_driver: overlay2\n  min_api_version: '1.41'\n"
     "  registry_auth: {registry: registry.example.org, user: ci-bot}",
     [(DAEMON, "safer", "now checks registry auth for registry.example.org"),
      (DAEMON, "safer", "now checks registry auth user ci-bot"),
      (DAEMON, "safer", "now checks min_api_version 1.41")]),
    # ImageRetention: the cache.
    ("retention.yaml", "retain: ['redis:7-alpine']", "retain: ['redis:7-alpine', 'nginx:*']",
     [(RETAIN, "safer", "retains nginx:*")]),
    ("retention.yaml", "retain: ['redis:7-alpine']", "retain: ['nginx:*']",
     [(RETAIN, "safer", "retains nginx:*"),
      (RETAIN, "riskier", "no longer retains redis:7-alpine")]),
    ("retention.yaml", "retain: ['redis:7-alpine']",
     "retain: ['redis:7-alpine']\n  ensure_present: ['redis:7-alpine']",
     [(RETAIN, "neutral", "pulls redis:7-alpine when missing")]),
    ("retention.yaml", "retain: ['redis:7-alpine']",
     "retain: ['redis:7-alpine']\n  evict:\n"
     "    when: {disk_usage: {path: /var/lib/docker, at_least: 85%}}\n"
     "    down_to: 75%\n    unused_for: 14d",
     [(RETAIN, "riskier",
       "eviction added: from 85% of /var/lib/docker down to 75%, images unused for 14d")]),
]
# fmt: on


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [pytest.param(*case, id=f"{case[0]}:{case[1][:30]}→{case[2][:30]}") for case in CASES],
)
def test_each_change_is_said_by_its_meaning_with_its_risk(
    sides: Path, file: str, old: str, new: str, expected: list[tuple[str, str, str]]
) -> None:
    edit(sides, f"policies/{file}", old, new)
    assert meanings() == expected


def test_eviction_watermarks_age_and_batch_are_each_classified(sides: Path) -> None:
    evict = (
        "retain: ['redis:7-alpine']\n  evict:\n"
        "    when: {disk_usage: {path: /var/lib/docker, at_least: 85%}}\n"
        "    down_to: 75%\n    unused_for: 14d\n    max_per_run: 50\n"
    )
    edit(sides.parent / "old", "policies/retention.yaml", "retain: ['redis:7-alpine']\n", evict)
    changed = (
        evict.replace("85%", "80%").replace("75%", "60%").replace("14d", "7d").replace("50", "100")
    )
    edit(sides, "policies/retention.yaml", "retain: ['redis:7-alpine']\n", changed)
    assert meanings() == [
        (RETAIN, "riskier", "eviction starts at 85% → 80% (evicts more often)"),
        (RETAIN, "riskier", "eviction frees down to 75% → 60% (evicts more each time)"),
        (RETAIN, "riskier", "evicts images unused for 14d → 7d"),
        (RETAIN, "riskier", "evicts at most 50 → 100 images per run"),
    ]


def test_a_policy_added_or_removed_says_what_it_does(sides: Path) -> None:
    (sides / "policies" / "orphans.yaml").unlink()
    (sides / "policies" / "more.yaml").write_text(
        "apiVersion: ccci/v1\nkind: PrunePolicy\nmetadata: {name: build-cache}\nhosts: ci\n"
        "spec:\n  gates: {}\n  prune: {dangling_build_cache: {older_than: 3d}}\n",
        encoding="utf-8",
    )
    assert meanings() == [
        (
            "PrunePolicy build-cache",
            "riskier",
            "policy build-cache added: prunes dangling build cache older than 3d",
        ),
        (
            ORPHANS,
            "safer",
            "policy reap-killed-runs removed: it reaps services, secrets, configs, networks, "
            "volumes, env file of stacks matching '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_' after 3h",
        ),
    ]


def test_a_new_host_in_the_inventory_gets_the_policies_of_its_group(sides: Path) -> None:
    edit(sides, "inventory.yaml", "        cc-ci: {}\n", "        cc-ci: {}\n        cc-ci2: {}\n")
    changes = diff().changes
    assert {c.meaning.text for c in changes} == {
        "now also applies to these hosts (hosts: 'ci')",
        "host cc-ci2 added",
    }
    moved = [c for c in changes if c.kind != "inventory"]
    assert len(moved) == 6
    assert {c.hosts for c in moved} == {("cc-ci2",)}
    assert "riskier" in {c.meaning.risk.value for c in moved}


def test_a_var_change_shows_itself_and_what_it_changes(sides: Path) -> None:
    edit(
        sides,
        "inventory.yaml",
        "docker_data_root: /var/lib/docker",
        "docker_data_root: /srv/docker",
    )
    assert meanings() == [
        (DAEMON, "neutral", "data_root /var/lib/docker → /srv/docker"),
        (PRUNE, "neutral", "disk gate path /var/lib/docker → /srv/docker"),
        ("inventory", "neutral", "var docker_data_root '/var/lib/docker' → '/srv/docker'"),
    ]


def test_a_change_on_some_hosts_only_names_them(sides: Path) -> None:
    for side in (sides.parent / "old", sides):
        edit(
            side, "inventory.yaml", "        cc-ci: {}\n", "        cc-ci: {}\n        cc-ci2: {}\n"
        )
    edit(sides, "inventory.yaml", "        cc-ci2: {}", "        cc-ci2: {docker_data_root: /srv}")
    text = render_text(diff())
    assert "  neutral  disk gate path /var/lib/docker → /srv (for host cc-ci2)" in text
    assert "  neutral  var docker_data_root '/var/lib/docker' → '/srv' (for host cc-ci2)" in text


def test_the_text_output_groups_meanings_by_policy_with_the_reason(sides: Path) -> None:
    edit(sides, "policies/prune.yaml", "at_least: 80%", "at_least: 70%")
    edit(sides, "policies/orphans.yaml", "orphan_after: 3h", "orphan_after: 30m")
    assert render_text(diff()) == "\n".join(
        [
            "OrphanStackPolicy reap-killed-runs  (policies/orphans.yaml:3)",
            "  riskier  orphan_after 3h → 30m (a run longer than 30m would be reaped while alive)",
            "           # it reaps younger stacks",
            "PrunePolicy ci-docker-prune  (policies/prune.yaml:3)",
            "  riskier  prune threshold 80% → 70% (prunes more often)",
            "           # it starts pruning with more of the disk still free",
            "",
            "2 changes in meaning: 2 riskier, 0 neutral, 0 safer.",
        ]
    )
    assert diff().risk() is Risk.RISKIER


def test_turning_hardening_off_or_opening_paths_is_riskier(sides: Path) -> None:
    hardened = (
        "after: docker.service\n      hardening: true\n      read_write_paths: [/var/lib/ccci]"
    )
    edit(sides.parent / "old", "policies/timers.yaml", "after: docker.service", hardened)
    edit(sides, "policies/timers.yaml", "after: docker.service", hardened.replace("]", ", /srv]"))
    assert meanings() == [(TIMERS, "riskier", "timer ccci-reconcile: may now write /srv")]
    edit(sides, "policies/timers.yaml", "hardening: true", "hardening: false")
    assert meanings() == [(TIMERS, "riskier", "timer ccci-reconcile: hardening on → off")]


def test_dropping_exit_status_75_says_a_busy_lock_would_fail_the_job(sides: Path) -> None:
    edit(sides, "policies/timers.yaml", "      success_exit_status: '75'\n", "")
    (change,) = diff().changes
    assert change.meaning.text == "timer ccci-reconcile: success_exit_status 75 → (unset)"
    assert change.meaning.why == "a busy ccci lock (exit 75) would now count as a failure"
