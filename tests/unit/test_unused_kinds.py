"""A run that uses only some kinds (the janitor: OrphanStackPolicy, StackSelector) builds
only those, and what finalizing them reads, while the state directory's cache knows that
the host's documents, as rendered now, all built and finalized before; every document is
still checked, so any error stops it as it stops a run of every kind, with the same text
(ccci.policy.load, ccci.policy.validated's built.json).

The builders are counted by wrapping the entries of ``ccci.policy.build.BUILDERS`` (the
real builder still runs): whether a kind is built at all is the point.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccci.cli.janitor import JANITOR_KINDS
from ccci.config.inventory import Host, Inventory
from ccci.policy import build as build_mod
from ccci.policy import validated
from ccci.policy.load import HostPolicies, finalize, load_for_hosts, read
from ccci.policy.pipeline import (
    abra_server,
    build,
    kind_of,
    kinds_to_build,
    render_for,
    targets,
)
from ccci.policy.validated import ValidatedCache, built_file, document_key, host_key
from tests.unit.cachekit import clear, error_of, plant, python, state_dir

REPO = Path(__file__).resolve().parents[2]

SELECTORS = """\
apiVersion: ccci/v1
kind: StackSelector
metadata: {name: run-apps}
hosts: ci
spec:
  match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'
"""
ORPHANS = """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
hosts: ci
spec:
  run_apps: {selector: run-apps}
  orphan_after: 3h
  expires_label: ci.expires
  reap: [services, secrets, configs, networks, volumes, env_file]
  env_file: '{{ abra_dir }}/servers/{server}/{domain}.env'
"""
PRUNE = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
hosts: ci
spec:
  gates:
    no_live_stacks: {selector: run-apps}
    no_converging_services: true
  prune:
    dangling_images: {older_than: 24h}
"""
RETENTION = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
hosts: ci
spec:
  retain: ['redis:7-alpine', 'nginx:*']
  evict:
    when: {disk_usage: {path: "{{ docker_data_root }}", at_least: 85%}}
    down_to: 75%
    unused_for: 14d
"""
TIMERS = """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: schedules}
hosts: ci
spec:
  present:
    - name: ccci-reconcile
      on_calendar: daily
      randomized_delay: "{{ delay | default('15m') }}"
      exec: /usr/local/bin/ccci reconcile --apply --yes
      success_exit_status: '75'
      hardening: true
      read_write_paths: [/var/lib/ccci]
      runs_ccci: true
  absent:
    - docker-prune.timer
"""
DAEMON = """\
apiVersion: ccci/v1
kind: DaemonPolicy
metadata: {name: daemon}
hosts: ci
spec:
  storage_driver: overlay2
  min_api_version: '1.41'
"""
FILES = {
    "selectors.yaml": SELECTORS,
    "orphans.yaml": ORPHANS,
    "prune.yaml": PRUNE,
    "retention.yaml": RETENTION,
    "timers.yaml": TIMERS,
    "daemon.yaml": DAEMON,
}
KINDS = ("StackSelector", "OrphanStackPolicy", "PrunePolicy", "ImageRetention", "TimerPolicy")
ALL_KINDS = (*KINDS, "DaemonPolicy")
UNUSED = ("PrunePolicy", "ImageRetention", "TimerPolicy", "DaemonPolicy")


def inventory(tmp_path: Path, **per_host: dict[str, Any]) -> Inventory:
    """Hosts in group ``ci`` (by default one, cc-ci) with the vars the policies render."""
    common = {"docker_data_root": "/var/lib/docker", "abra_dir": str(tmp_path / "abra")}
    named = per_host or {"cc-ci": {}}
    hosts = {
        name: Host(name, {**common, "inventory_hostname": name, **own}, ("all", "ci"))
        for name, own in named.items()
    }
    groups = {"all": tuple(hosts), "ci": tuple(hosts)}
    return Inventory(hosts, groups, "inventory.yaml", common)


def write(folder: Path, **changed: str) -> Path:
    """The policy folder with every kind's file, ``changed`` (texts by file stem) written over."""
    folder.mkdir(exist_ok=True)
    for name, text in {**FILES, **{f"{k}.yaml": v for k, v in changed.items()}}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


class Builds:
    """How many documents of each kind the real builders built."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def of(self, *kinds: str) -> dict[str, int]:
        return {k: self.calls.get(k, 0) for k in kinds}

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    counted = Builds()
    for kind, real in list(build_mod.BUILDERS.items()):

        def counting(doc: Any, kind: str = kind, real: Callable[[Any], Any] = real) -> Any:
            counted.calls[kind] = counted.calls.get(kind, 0) + 1
            return real(doc)

        monkeypatch.setitem(build_mod.BUILDERS, kind, counting)
    return counted


@pytest.fixture(autouse=True)
def _fresh_identity() -> Iterator[None]:
    clear(validated.environment, validated._schema_digest, validated._build_identity)
    yield
    clear(validated.environment, validated._schema_digest, validated._build_identity)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return state_dir(tmp_path)


def janitor(
    policies: Path,
    state: Path,
    inv: Inventory,
    limit: str | None = None,
    kinds: frozenset[str] | None = JANITOR_KINDS,
) -> list[HostPolicies]:
    """The load a janitor run makes (its kinds, its state directory's cache)."""
    return load_for_hosts([policies], inv, inv.limit(limit), ValidatedCache(state), None, kinds)


def uncached(policies: Path, inv: Inventory, limit: str | None = None) -> list[HostPolicies]:
    """The load of a run of every kind without any cache: what every error must read as."""
    return load_for_hosts([policies], inv, inv.limit(limit))


def kinds_of(loaded: list[HostPolicies]) -> list[list[str]]:
    return [[p.meta.kind for p in hp.policies] for hp in loaded]


# -- (a) what is not built --------------------------------------------------------------------


def test_a_janitor_run_whose_policies_passed_before_builds_only_the_kinds_it_uses(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    first = janitor(policies, state, inv)
    assert builds.of(*ALL_KINDS) == dict.fromkeys(ALL_KINDS, 1)
    builds.reset()
    second = janitor(policies, state, inv)
    assert builds.of(*ALL_KINDS) == {**dict.fromkeys(JANITOR_KINDS, 1), **dict.fromkeys(UNUSED, 0)}
    assert second == first
    assert kinds_of(second) == [["OrphanStackPolicy", "StackSelector"]]


def test_the_janitor_gets_the_policies_a_run_of_every_kind_makes_of_its_kinds(
    tmp_path: Path, state: Path
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)
    (every,) = uncached(policies, inv)
    (fast,) = janitor(policies, state, inv)
    assert fast.policies == tuple(p for p in every.policies if p.meta.kind in JANITOR_KINDS)


def test_a_reconcile_run_records_the_pass_that_the_next_janitor_run_uses(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv, kinds=None)
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of(*UNUSED) == dict.fromkeys(UNUSED, 0)


def test_a_run_of_every_kind_builds_every_document_each_time(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv, kinds=None)
    janitor(policies, state, inv, kinds=None)
    assert builds.of(*ALL_KINDS) == dict.fromkeys(ALL_KINDS, 2)


def test_a_run_of_every_kind_whose_policies_did_not_change_writes_no_cache_file(
    tmp_path: Path, state: Path
) -> None:
    # The nightly reconcile must not rewrite (and fsync) the caches on every run.
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv, kinds=None)
    files = sorted((state / "cache").iterdir())
    assert built_file(state) in files
    before = {f: f.stat().st_mtime_ns for f in files}
    for f in files:
        os.utime(f, ns=(1, 1))  # any write from here on moves the mtime
    janitor(policies, state, inv, kinds=None)
    janitor(policies, state, inv)
    assert {f: f.stat().st_mtime_ns for f in files} == dict.fromkeys(before, 1)
    assert sorted((state / "cache").iterdir()) == files


def test_a_fresh_janitor_load_of_known_policies_imports_no_timer_retention_or_daemon_code(
    tmp_path: Path, state: Path
) -> None:
    """What a second process imported: the TimerPolicy builder's unit modules, the
    ImageRetention builder's reference grammar
    nor the sandbox that finalizes a timer are imported when those documents are known
    (nothing else in the load needs them), nor jsonschema."""
    policies = write(tmp_path / "policies")
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from ccci.cli.janitor import JANITOR_KINDS
        from ccci.config.inventory import Host, Inventory
        from ccci.policy.load import load_for_hosts
        from ccci.policy.validated import ValidatedCache
        vars = {{"docker_data_root": "/var/lib/docker", "abra_dir": {str(tmp_path / "abra")!r}}}
        host = Host("cc-ci", {{**vars, "inventory_hostname": "cc-ci"}}, ("all", "ci"))
        inv = Inventory({{"cc-ci": host}}, {{"all": ("cc-ci",), "ci": ("cc-ci",)}}, "i", vars)
        passed = ValidatedCache(Path({str(state)!r}))
        load_for_hosts([Path({str(policies)!r})], inv, [host], passed, None, JANITOR_KINDS)
        heavy = ("ccci.systemd.units", "ccci.systemd.values", "ccci.systemd.sandbox",
                 "ccci.facts.refs", "jsonschema")
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    assert python(script) != ""  # the first run builds (and validates) them all
    assert python(script) == ""


def test_hosts_outside_limit_whose_policies_passed_before_are_not_built_again(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies = write(tmp_path / "policies")
    # Another delay: the other host's timer document is another document.
    inv = inventory(tmp_path, **{"cc-ci": {}, "cc-ci-2": {"delay": "20m"}})
    janitor(policies, state, inv, limit="cc-ci")
    # Each document for the other host once (checked, then finalized from the same build).
    assert builds.of("TimerPolicy", "StackSelector") == {"TimerPolicy": 2, "StackSelector": 2}
    builds.reset()
    janitor(policies, state, inv, limit="cc-ci")
    assert builds.of(*ALL_KINDS) == {**dict.fromkeys(JANITOR_KINDS, 1), **dict.fromkeys(UNUSED, 0)}


def test_a_host_whose_documents_render_as_a_known_hosts_do_is_known_too(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    """The key is what the documents render to (and the host var finalize reads), not the
    host's name: a farm's identical hosts share one entry."""
    policies = write(tmp_path / "policies")
    janitor(policies, state, inventory(tmp_path, **{"cc-ci": {}}))
    builds.reset()
    janitor(policies, state, inventory(tmp_path, **{"cc-ci": {}, "cc-ci-2": {}}), limit="cc-ci")
    assert builds.of(*UNUSED) == dict.fromkeys(UNUSED, 0)


def test_a_document_that_targets_no_host_is_built_once_while_it_passes(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    nobody = TIMERS.replace("hosts: ci", "hosts: staging")
    policies, inv = write(tmp_path / "policies", staging=nobody), inventory(tmp_path)
    janitor(policies, state, inv)
    assert builds.of("TimerPolicy") == {"TimerPolicy": 2}
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of("TimerPolicy") == {"TimerPolicy": 0}


# -- (b) every error, as a run of every kind reports it ----------------------------------------


# Each breaks a document the janitor does not use, or what finalizing it reads (file stem:
# new text). Every one is an error a run of every kind stops on.
BROKEN: dict[str, dict[str, str]] = {
    "timer_schema_typo": {"timers": TIMERS.replace("on_calendar", "on_calender")},
    "timer_builder_refuses_a_name": {"timers": TIMERS.replace("ccci-reconcile", "docker")},
    "retention_pattern": {"retention": RETENTION.replace("'nginx:*'", "'nginx:['")},
    "retention_watermarks": {"retention": RETENTION.replace("75%", "95%")},
    "prune_unknown_selector": {"prune": PRUNE.replace("selector: run-apps", "selector: runapps")},
    "prune_zero_age": {"prune": PRUNE.replace("24h", "0s")},
    "daemon_api_version": {"daemon": DAEMON.replace("'1.41'", "'one'")},
    "duplicate_timer_name": {"more_timers": TIMERS},
    # The nightly's sandbox would have to leave / writable for env files anywhere.
    "sandbox_cannot_hold_env_files": {
        "orphans": ORPHANS.replace("{{ abra_dir }}/servers/{server}/", "/")
    },
    "untargeted_document": {
        "staging": TIMERS.replace("hosts: ci", "hosts: staging").replace("ccci-reconcile", "docker")
    },
    "control_character": {"daemon": DAEMON.replace("overlay2", '"overlay\\u001b2"')},
}


@pytest.mark.parametrize("breakage", list(BROKEN), ids=list(BROKEN))
def test_a_broken_document_of_an_unused_kind_fails_the_janitor_as_it_fails_every_run(
    tmp_path: Path, state: Path, breakage: str
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)  # the good set is known
    janitor(policies, state, inv)
    write(policies, **BROKEN[breakage])
    expected = error_of(lambda: uncached(policies, inv))
    assert error_of(lambda: janitor(policies, state, inv)) == expected
    assert error_of(lambda: janitor(policies, state, inv)) == expected
    # And on a host whose cache never knew the good set.
    (tmp_path / "cold").mkdir()
    cold = state_dir(tmp_path / "cold")
    assert error_of(lambda: janitor(policies, cold, inv)) == expected
    assert error_of(lambda: janitor(policies, cold, inv)) == expected


def test_a_host_var_that_breaks_the_nightlys_sandbox_fails_the_janitor_though_no_file_changed(
    tmp_path: Path, state: Path
) -> None:
    """``finalize`` reads abra_server of the host: a folder with a space cannot be one of the
    nightly's ReadWritePaths=, so the same documents stop passing."""
    policies = write(tmp_path / "policies")
    janitor(policies, state, inventory(tmp_path, **{"cc-ci": {"abra_server": "ci"}}))
    broken = inventory(tmp_path, **{"cc-ci": {"abra_server": "c i"}})
    expected = error_of(lambda: uncached(policies, broken))
    assert "sandbox cannot hold it" in expected
    assert error_of(lambda: janitor(policies, state, broken)) == expected


def test_a_document_broken_only_for_a_host_outside_limit_still_fails_the_janitor(
    tmp_path: Path, state: Path
) -> None:
    policies = write(tmp_path / "policies")
    good = inventory(tmp_path, **{"cc-ci": {}, "cc-ci-2": {}})
    janitor(policies, state, good, limit="cc-ci")
    broken = inventory(tmp_path, **{"cc-ci": {}, "cc-ci-2": {"delay": "soon"}})
    expected = error_of(lambda: uncached(policies, broken, limit="cc-ci"))
    assert error_of(lambda: janitor(policies, state, broken, limit="cc-ci")) == expected
    assert error_of(lambda: janitor(policies, state, broken, limit="cc-ci")) == expected


def test_with_two_errors_the_janitor_reports_the_one_a_run_of_every_kind_reports_first(
    tmp_path: Path, state: Path
) -> None:
    """Documents are rendered ahead to find the host's key; a render error later in the set
    must not come before a build error earlier in it."""
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)
    write(
        policies,
        # retention.yaml sorts before timers.yaml: its build error is the first one.
        retention=RETENTION.replace("'nginx:*'", "'nginx:['"),
        timers=TIMERS.replace("{{ delay | default('15m') }}", "{{ undefined_var }}"),
    )
    expected = error_of(lambda: uncached(policies, inv))
    assert "retention.yaml" in expected
    assert error_of(lambda: janitor(policies, state, inv)) == expected


def _cli(folder: Path, command: str) -> subprocess.CompletedProcess[str]:
    """``ccci <command> --plan`` in a fresh interpreter; its engine is a socket nothing
    listens on, so a run that loads its policies ends on the engine, never acting."""
    args = [sys.executable, "-m", "ccci", command, "--plan", "-p", "policies"]
    args += ["-i", "inventory.yaml", "--state-dir", "state"]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    return subprocess.run(args, capture_output=True, text=True, cwd=folder, env=env)


def test_the_janitor_command_stops_on_a_broken_timer_with_reconciles_error_and_exit(
    tmp_path: Path,
) -> None:
    policies = write(tmp_path / "policies")
    (tmp_path / "state").mkdir()
    (tmp_path / "inventory.yaml").write_text(
        textwrap.dedent(
            f"""\
            all:
              vars: {{docker_data_root: /var/lib/docker, abra_dir: {tmp_path / "abra"}}}
              children:
                ci:
                  hosts:
                    cc-ci: {{docker_host: "unix://{tmp_path / "x.sock"}"}}
            """
        ),
        encoding="utf-8",
    )
    for _ in range(2):
        good = _cli(tmp_path, "janitor")
        assert "cannot reach the Docker engine" in good.stderr
    assert built_file(tmp_path / "state").is_file()
    write(policies, timers=TIMERS.replace("on_calendar", "on_calender"))
    reconcile = _cli(tmp_path, "reconcile")
    assert reconcile.returncode == 1
    assert reconcile.stderr.startswith("ccci: policies/timers.yaml:")
    assert "on_calender: unknown field" in reconcile.stderr
    for _ in range(2):
        done = _cli(tmp_path, "janitor")
        assert (done.returncode, done.stdout, done.stderr) == (1, "", reconcile.stderr)


# -- (c) an edited document is built again ----------------------------------------------------


def test_an_edited_document_of_an_unused_kind_is_built_again_and_then_known_again(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)
    write(policies, timers=TIMERS.replace("daily", "weekly"))
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of("TimerPolicy") == {"TimerPolicy": 1}
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of("TimerPolicy") == {"TimerPolicy": 0}


def test_an_edit_that_breaks_a_known_document_shows_its_error_on_every_run(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)
    write(policies, timers=TIMERS.replace("name: ccci-reconcile", "name: docker"))
    expected = error_of(lambda: uncached(policies, inv))
    builds.reset()
    for run in range(1, 3):
        assert error_of(lambda: janitor(policies, state, inv)) == expected
        assert builds.of("TimerPolicy") == {"TimerPolicy": run}
    assert "docker.service" in expected


def test_a_var_a_document_renders_is_part_of_what_the_cache_knows(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    """The key is the rendered document: another value of a var it renders is another
    document, built (and checked) again."""
    policies = write(tmp_path / "policies")
    janitor(policies, state, inventory(tmp_path, **{"cc-ci": {"delay": "15m"}}))
    builds.reset()
    janitor(policies, state, inventory(tmp_path, **{"cc-ci": {"delay": "20m"}}))
    assert builds.of("TimerPolicy") == {"TimerPolicy": 1}


# -- (d) what else invalidates ----------------------------------------------------------------


def _new_ccci_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = validated.build_environment()
    monkeypatch.setattr(validated, "__version__", "99.0.0")
    validated.environment.cache_clear()
    assert validated.build_environment() != before


def _builder_code_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    # What an edited builder does to the identity (path, size, mtime): see the test below.
    monkeypatch.setattr(validated, "_build_identity", lambda: "build.py edited")


def _another_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod, "default_abra_dir", lambda: "/home/other/.abra")
    validated._build_identity.cache_clear()


@pytest.mark.parametrize(
    "change",
    [_new_ccci_version, _builder_code_changed, _another_home],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_change_in_what_decides_a_build_builds_every_kind_again(
    tmp_path: Path,
    state: Path,
    builds: Builds,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[pytest.MonkeyPatch], None],
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)
    change(monkeypatch)
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of(*UNUSED) == dict.fromkeys(UNUSED, 1)
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of(*UNUSED) == dict.fromkeys(UNUSED, 0)


def test_the_build_identity_names_every_build_module_by_path_size_and_mtime() -> None:
    identity = validated._build_identity()
    package = Path(validated.__file__).parent.parent
    for module in validated.BUILD_MODULES:
        found = (package / module).stat()
        assert f"{package}/{module} {found.st_size} {found.st_mtime_ns}" in identity


def test_building_and_finalizing_every_kind_imports_only_modules_the_identity_names(
    tmp_path: Path,
) -> None:
    """In a fresh interpreter, after every document is read and rendered: whatever ccci code
    building and finalizing them imports must be in BUILD_MODULES, or an edit to it would
    leave stale passes in the cache."""
    policies = write(tmp_path / "policies")
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from ccci.config.inventory import Host
        from ccci.policy import validated
        from ccci.policy.pipeline import build, finalize, render_for
        from ccci.policy.files import read
        vars = {{"docker_data_root": "/var/lib/docker", "abra_dir": "/tmp/abra"}}
        host = Host("cc-ci", {{**vars, "inventory_hostname": "cc-ci"}}, ("all", "ci"))
        rendered = [render_for(d, host) for d in read([Path({str(policies)!r})])]
        before = set(sys.modules)
        finalize(tuple(build(d) for d in rendered), host)
        new = sorted(m for m in set(sys.modules) - before if m.startswith("ccci."))
        named = {{m.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
                  for m in validated.BUILD_MODULES}}
        top = [m for m in ("ccci.policy.build", "ccci.policy.pipeline", "ccci.policy.model")
               if m.removeprefix("ccci.") not in named]
        print(" ".join(m for m in new if m.removeprefix("ccci.") not in named) + " ".join(top))
        """
    )
    assert python(script) == ""


# -- a cache that cannot be trusted -----------------------------------------------------------


def test_a_built_cache_others_may_write_is_not_trusted(
    tmp_path: Path, state: Path, builds: Builds
) -> None:
    policies, inv = write(tmp_path / "policies"), inventory(tmp_path)
    janitor(policies, state, inv)
    built_file(state).chmod(0o622)
    builds.reset()
    janitor(policies, state, inv)
    assert builds.of("TimerPolicy") == {"TimerPolicy": 1}


def _host_key(policies: Path, host: Host) -> str:
    keys = [document_key(kind_of(d), render_for(d, host).data) for d in read([policies])]
    assert all(k is not None for k in keys)
    return host_key(abra_server(host), [k for k in keys if k is not None])


def test_a_forged_pass_still_refuses_a_control_character_in_any_document(
    tmp_path: Path, state: Path
) -> None:
    """A cache entry skips builds, never the control-character check: a value that could end
    a unit file's line early is refused even in a document the run does not use."""
    bad = TIMERS.replace("/var/lib/ccci", '"/var/lib/\\tccci"')
    policies, inv = write(tmp_path / "policies", timers=bad), inventory(tmp_path)
    forged = json.dumps({"format": 1, "digests": [_host_key(policies, inv.hosts["cc-ci"])]})
    plant(built_file(state), forged.encode())
    assert "control character U+0009" in error_of(lambda: janitor(policies, state, inv))


def test_a_failed_load_records_no_pass_for_the_host_that_failed(
    tmp_path: Path, state: Path
) -> None:
    policies = write(tmp_path / "policies", timers=TIMERS.replace("ccci-reconcile", "docker"))
    inv = inventory(tmp_path)
    error_of(lambda: janitor(policies, state, inv))
    assert (
        not built_file(state).exists()
        or _host_key(policies, inv.hosts["cc-ci"])
        not in (json.loads(built_file(state).read_text(encoding="utf-8"))["digests"])
    )


# -- what finalizing a kind reads ---------------------------------------------------------


def test_finalizing_only_the_kinds_to_build_gives_each_kind_what_finalizing_all_gives_it(
    tmp_path: Path,
) -> None:
    """For every set of kinds a run may use: building ``kinds_to_build`` of them and
    finalizing those makes, of the used kinds, exactly what finalizing every policy makes
    (selectors resolved, the nightly's sandbox widened by the env-file folders)."""
    inv = inventory(tmp_path, **{"cc-ci": {"abra_server": "ci"}})
    host = inv.hosts["cc-ci"]
    docs = read([write(tmp_path / "policies")])
    assert all(targets(d, inv) == [host] for d in docs)
    built = tuple(build(render_for(d, host)) for d in docs)
    every = finalize(built, host)
    for size in range(1, len(ALL_KINDS) + 1):
        for used in map(frozenset, itertools.combinations(ALL_KINDS, size)):
            wanted = kinds_to_build(used)
            assert wanted is not None and used <= wanted
            some = finalize(tuple(p for p in built if p.meta.kind in wanted), host)
            assert [p for p in some if p.meta.kind in used] == [
                p for p in every if p.meta.kind in used
            ], sorted(used)
