"""OrphanStackPolicy and StackSelector: loading errors read ``file:line: field: problem``,
and ``finalize`` resolves selectors and fills ``{server}`` for each host.

VALID is the shipped trio (a StackSelector, the OrphanStackPolicy and the PrunePolicy that
both name it) in one file; each error case edits one line, so the expected line is the
edited one.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ccci.config.inventory import Host, Inventory
from ccci.errors import InputError
from ccci.policy.load import HostPolicies, build, finalize, load_for_hosts, read
from ccci.policy.model import (
    GateKind,
    OrphanStackPolicy,
    Policy,
    PrunePolicy,
)

RUN_APPS = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"

VALID = """\
apiVersion: ccci/v1
kind: StackSelector
metadata:
  name: run-apps
spec:
  match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'
---
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata:
  name: reap-killed-runs
spec:
  run_apps: {selector: run-apps}
  orphan_after: 3h
  expires_label: ci.expires
  keep: ['^demo-']
  reap: [services, secrets, configs, networks, volumes, env_file]
  env_file: /root/.abra/servers/{server}/{domain}.env
  wait: 90s
---
apiVersion: ccci/v1
kind: PrunePolicy
metadata:
  name: ci-docker-prune
spec:
  gates:
    no_live_stacks: {selector: run-apps}
  prune:
    dangling_images: {older_than: 24h}
"""

# The lines the cases edit, checked once so a change to VALID cannot shift them silently.
SELECTOR_MATCH, RUN_APPS_LINE, ORPHAN_AFTER, REAP, ENV_FILE, WAIT, GATE = 6, 13, 14, 17, 18, 19, 27


def test_the_edited_lines_are_the_ones_the_cases_name() -> None:
    lines = VALID.splitlines()
    assert lines[SELECTOR_MATCH - 1].startswith("  match:")
    assert lines[RUN_APPS_LINE - 1].startswith("  run_apps:")
    assert lines[ORPHAN_AFTER - 1].startswith("  orphan_after:")
    assert lines[REAP - 1].startswith("  reap:")
    assert lines[ENV_FILE - 1].startswith("  env_file:")
    assert lines[WAIT - 1].startswith("  wait:")
    assert lines[GATE - 1].startswith("    no_live_stacks:")


def edit(line: int, text: str | None, source: str = VALID) -> str:
    """``source`` with 1-based ``line`` replaced by ``text`` (deleted when None)."""
    lines = source.splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    return "\n".join(lines) + "\n"


def _inventory(hosts: dict[str, dict[str, object]] | None = None) -> Inventory:
    spec = hosts if hosts is not None else {"cc-ci": {}}
    made = {
        name: Host(name, {"inventory_hostname": name, **host_vars}, ("all", "ci"))
        for name, host_vars in spec.items()
    }
    names = tuple(made)
    return Inventory(made, {"all": names, "ci": names}, "inventory.yaml", {})


def load(
    files: dict[str, str], inventory: Inventory | None = None, limit: str | None = None
) -> list[HostPolicies]:
    """Write ``files`` into the current directory and load them as the CLI would."""
    inv = inventory or _inventory()
    for name, text in files.items():
        Path(name).write_text(text, encoding="utf-8")
    return load_for_hosts([Path(n) for n in files], inv, inv.limit(limit))


def error_of(
    files: dict[str, str], inventory: Inventory | None = None, limit: str | None = None
) -> str:
    with pytest.raises(InputError) as caught:
        load(files, inventory, limit)
    return str(caught.value)


def one(policies: tuple[Policy, ...], kind: type[Policy]) -> Policy:
    (found,) = [p for p in policies if isinstance(p, kind)]
    return found


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# What a valid file loads into.


def test_the_valid_trio_loads_with_the_selector_resolved_in_both_policies() -> None:
    (hp,) = load({"policy.yaml": VALID})
    orphans = one(hp.policies, OrphanStackPolicy)
    prune = one(hp.policies, PrunePolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert isinstance(prune, PrunePolicy)
    assert orphans.run_apps == RUN_APPS
    assert orphans.run_apps_selector == "run-apps"
    assert orphans.run_apps_pattern.search("redi-3fa9c1_ci_example_org")
    assert not orphans.run_apps_pattern.search("traefik")
    assert orphans.orphan_after == timedelta(hours=3)
    assert orphans.wait == timedelta(seconds=90)
    assert orphans.expires_label == "ci.expires"
    assert orphans.keep == ("^demo-",)
    (gate,) = prune.gates
    assert gate.kind is GateKind.NO_LIVE_STACKS
    assert (gate.selector, gate.match) == ("run-apps", RUN_APPS)
    assert str(orphans.meta.source) == "policy.yaml:11: metadata.name"
    assert str(orphans.run_apps_source) == "policy.yaml:13: spec.run_apps.selector"


def test_reap_kinds_are_put_in_reap_order_whatever_order_they_are_written() -> None:
    text = edit(REAP, "  reap: [env_file, volumes, services, networks]")
    (hp,) = load({"policy.yaml": text})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.reap == ("services", "networks", "volumes", "env_file")


def test_wait_defaults_to_sixty_seconds() -> None:
    (hp,) = load({"policy.yaml": edit(WAIT, None)})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.wait == timedelta(seconds=60)


def test_an_inline_match_needs_no_selector() -> None:
    text = edit(RUN_APPS_LINE, "  run_apps: {match: '^x-'}")
    (hp,) = load({"policy.yaml": text})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert (orphans.run_apps, orphans.run_apps_selector) == ("^x-", "")


def test_a_selector_may_be_defined_in_another_file() -> None:
    selector, rest = VALID.split("---\n", 1)
    (hp,) = load({"a-policies.yaml": rest, "b-selectors.yaml": selector})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.run_apps == RUN_APPS


# Errors: one line, naming file, line and field.

REAP_KINDS = "services, secrets, configs, networks, volumes, env_file"

BAD_INPUTS = [
    pytest.param(
        edit(RUN_APPS_LINE, "  run_apps: {selector: run-app}"),
        "policy.yaml:13: spec.run_apps.selector: unknown StackSelector 'run-app' (known: run-apps)",
        id="unknown_selector_in_the_orphan_policy",
    ),
    pytest.param(
        edit(GATE, "    no_live_stacks: {selector: runapps}"),
        "policy.yaml:27: spec.gates.no_live_stacks.selector: unknown StackSelector 'runapps' "
        "(known: run-apps)",
        id="unknown_selector_in_the_prune_gate",
    ),
    pytest.param(
        edit(RUN_APPS_LINE, "  run_apps: {selector: run-apps, match: '^x-'}"),
        "policy.yaml:13: spec.run_apps: write exactly one of: match, selector",
        id="both_match_and_selector",
    ),
    pytest.param(
        edit(RUN_APPS_LINE, "  run_apps: {}"),
        "policy.yaml:13: spec.run_apps: write exactly one of: match, selector",
        id="neither_match_nor_selector",
    ),
    pytest.param(
        edit(GATE, "    no_live_stacks: {selector: run-apps, match: '^x-'}"),
        "policy.yaml:27: spec.gates.no_live_stacks: write exactly one of: match, selector",
        id="both_match_and_selector_in_the_prune_gate",
    ),
    pytest.param(
        edit(REAP, "  reap: [volumes, all]"),
        f"policy.yaml:17: spec.reap[1]: 'all': must be one of {REAP_KINDS}",
        id="reap_all",
    ),
    pytest.param(
        edit(REAP, "  reap: [services, images]"),
        f"policy.yaml:17: spec.reap[1]: 'images': must be one of {REAP_KINDS}",
        id="reap_images",
    ),
    pytest.param(
        edit(ENV_FILE, "  env_file: /root/.abra/servers/{domain}/app.env"),
        "policy.yaml:18: spec.env_file: must name {domain} once, in the file name",
        id="env_file_template_without_the_domain_in_its_file_name",
    ),
    pytest.param(
        edit(ENV_FILE, "  env_file: /root/.abra/servers/*/{domain}.env"),
        "policy.yaml:18: spec.env_file: '/root/.abra/servers/*/{domain}.env' "
        "is not an env file template",
        id="env_file_template_with_a_glob",
    ),
    pytest.param(
        edit(ENV_FILE, "  env_file: /root/.abra/../../etc/{domain}.env"),
        "policy.yaml:18: spec.env_file: must not hold '.' or '..' folders",
        id="env_file_template_leaving_its_folder",
    ),
    pytest.param(
        edit(ENV_FILE, "  env_file: '{domain}.env'\n  abra_dir: srv/abra"),
        "policy.yaml:18: spec.env_file: '{domain}.env' is not an env file template",
        id="env_file_template_neither_absolute_nor_under_abra_dir",
    ),
    pytest.param(
        edit(ORPHAN_AFTER, "  orphan_after: 3h\n  max_lifetime: 1h"),
        "policy.yaml:15: spec.max_lifetime: must be at least orphan_after (3h)",
        id="max_lifetime_shorter_than_orphan_after",
    ),
    pytest.param(
        edit(ENV_FILE, "  env_file: .abra/servers/{server}/{domain}.env"),
        "policy.yaml:18: spec.env_file: '.abra/servers/{server}/{domain}.env' "
        "is not an env file template",
        id="relative_env_file_template",
    ),
    pytest.param(
        edit(ORPHAN_AFTER, "  orphan_after: 3 hours"),
        "policy.yaml:14: spec.orphan_after: '3 hours' is not a duration",
        id="orphan_after_with_a_space",
    ),
    pytest.param(
        edit(ORPHAN_AFTER, "  orphan_after: 3"),
        "policy.yaml:14: spec.orphan_after: 3 is not a duration",
        id="orphan_after_without_a_unit",
    ),
    pytest.param(
        edit(ORPHAN_AFTER, None),
        "policy.yaml:12: spec: missing required field 'orphan_after'",
        id="orphan_after_missing",
    ),
    pytest.param(
        edit(WAIT, "  wait: 1 minute"),
        "policy.yaml:19: spec.wait: '1 minute' is not a duration",
        id="wait_not_a_duration",
    ),
    pytest.param(
        edit(WAIT, "  reap_after: 3h"),
        "policy.yaml:19: spec.reap_after: unknown field (allowed: abra_dir, env_file, "
        "expires_label, keep, max_lifetime, orphan_after, reap, run_apps, wait)",
        id="unknown_field_in_the_orphan_spec",
    ),
    pytest.param(
        edit(SELECTOR_MATCH, "  pattern: '^x-'"),
        "policy.yaml:6: spec.pattern: unknown field (allowed: match)",
        id="selector_with_pattern_for_match",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_INPUTS)
def test_a_bad_orphan_policy_is_one_line_naming_file_line_and_field(
    text: str, expected: str
) -> None:
    assert error_of({"policy.yaml": text}) == expected


def test_an_unknown_selector_lists_every_known_one_sorted() -> None:
    extra = (
        "---\napiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: demo-apps}\n"
        "spec: {match: '^demo-'}\n"
    )
    text = edit(RUN_APPS_LINE, "  run_apps: {selector: run-app}") + extra
    assert error_of({"policy.yaml": text}) == (
        "policy.yaml:13: spec.run_apps.selector: unknown StackSelector 'run-app' "
        "(known: demo-apps, run-apps)"
    )


def test_with_no_selector_at_all_the_error_says_none_is_defined() -> None:
    _, rest = VALID.split("---\n", 1)
    # Line 13 of VALID is line 6 without the 7-line selector document.
    assert error_of({"policy.yaml": rest}) == (
        "policy.yaml:6: spec.run_apps.selector: "
        "unknown StackSelector 'run-apps' (known: none defined)"
    )


def test_a_selector_for_other_hosts_is_unknown_to_this_one() -> None:
    text = VALID.replace("kind: StackSelector\n", "kind: StackSelector\nhosts: staging\n", 1)
    assert error_of({"policy.yaml": text}) == (
        "policy.yaml:14: spec.run_apps.selector: "
        "unknown StackSelector 'run-apps' (known: none defined)"
    )


def test_a_bad_selector_regex_names_its_line() -> None:
    error = error_of({"policy.yaml": edit(SELECTOR_MATCH, "  match: '(['")})
    assert error.startswith("policy.yaml:6: spec.match: '([' is not a regular expression: ")


def test_two_selectors_with_one_name_point_at_both() -> None:
    selector = VALID.split("---\n", 1)[0]
    assert error_of({"a.yaml": VALID, "b.yaml": selector}) == (
        "b.yaml:4: metadata.name: duplicate StackSelector name 'run-apps' "
        "(first at a.yaml:4: metadata.name)"
    )


BLOCK = VALID.replace(
    "  run_apps: {selector: run-apps}\n", "  run_apps:\n    selector: run-app\n"
).replace(
    "    no_live_stacks: {selector: run-apps}\n", "    no_live_stacks:\n      selector: runapps\n"
)


def test_an_unknown_selector_in_block_style_is_an_error_at_the_selector_line() -> None:
    # Line and message only: whether the field then reads spec.run_apps or
    # spec.run_apps.selector is the fixer's choice.
    assert BLOCK.splitlines()[13] == "    selector: run-app"
    with pytest.raises(InputError) as caught:
        load({"policy.yaml": BLOCK})
    where = caught.value.location
    assert (where.file, where.line) == ("policy.yaml", 14)
    assert caught.value.message == "unknown StackSelector 'run-app' (known: run-apps)"


def test_an_unknown_gate_selector_in_block_style_is_an_error_at_the_selector_line() -> None:
    text = BLOCK.replace("    selector: run-app\n", "    selector: run-apps\n")
    assert text.splitlines()[28] == "      selector: runapps"
    with pytest.raises(InputError) as caught:
        load({"policy.yaml": text})
    where = caught.value.location
    assert (where.file, where.line) == ("policy.yaml", 29)
    assert caught.value.message == "unknown StackSelector 'runapps' (known: run-apps)"


def test_an_unknown_selector_in_block_style_is_still_refused() -> None:
    # The contrast to the xfail above: refused, only at the enclosing key's line.
    with pytest.raises(InputError) as caught:
        load({"policy.yaml": BLOCK})
    assert caught.value.location.line in (13, 14)
    assert caught.value.message == "unknown StackSelector 'run-app' (known: run-apps)"


def test_an_unknown_selector_for_a_host_outside_limit_is_refused_too() -> None:
    inventory = _inventory({"cc-ci": {}, "cc-ci2": {}})
    text = edit(RUN_APPS_LINE, "  run_apps: {selector: run-app}").replace(
        "kind: OrphanStackPolicy\n", "kind: OrphanStackPolicy\nhosts: cc-ci2\n"
    )
    assert error_of({"policy.yaml": text}, inventory, limit="cc-ci") == (
        "policy.yaml:14: spec.run_apps.selector: unknown StackSelector 'run-app' (known: run-apps)"
    )


def test_the_same_unknown_selector_is_refused_when_its_host_is_selected() -> None:
    # The contrast to the xfail above: the check exists, for the hosts a run plans.
    inventory = _inventory({"cc-ci": {}, "cc-ci2": {}})
    text = edit(RUN_APPS_LINE, "  run_apps: {selector: run-app}").replace(
        "kind: OrphanStackPolicy\n", "kind: OrphanStackPolicy\nhosts: cc-ci2\n"
    )
    assert error_of({"policy.yaml": text}, inventory, limit="cc-ci2") == (
        "policy.yaml:14: spec.run_apps.selector: unknown StackSelector 'run-app' (known: run-apps)"
    )


# finalize: abra_server from the host var (any server folder without it); the env files'
# pattern has {abra_dir} filled, {server} narrowed by abra_server and {domain} any app.


def _built() -> tuple[Policy, ...]:
    """The valid selector and orphan policy built but not finalized (what finalize gets)."""
    Path("policy.yaml").write_text(VALID, encoding="utf-8")
    return tuple(build(doc) for doc in read([Path("policy.yaml")]))[:2]


def _finalized_orphans(host: Host) -> OrphanStackPolicy:
    policy = one(finalize(_built(), host), OrphanStackPolicy)
    assert isinstance(policy, OrphanStackPolicy)
    return policy


def test_finalize_narrows_the_server_folder_to_the_abra_server_var() -> None:
    policy = _finalized_orphans(Host("cc-ci", {"abra_server": "ci.example.org"}, ("all",)))
    assert policy.abra_server == "ci.example.org"
    assert policy.env_file_glob == "/root/.abra/servers/ci.example.org/*.env"
    assert policy.owns_env_file("/root/.abra/servers/ci.example.org/redi-3fa9c1.ci.example.org.env")
    assert not policy.owns_env_file("/root/.abra/servers/default/redi-3fa9c1.ci.example.org.env")


def test_finalize_without_abra_server_looks_in_every_server_folder() -> None:
    policy = _finalized_orphans(Host("cc-ci", {}, ("all",)))
    assert policy.env_file_glob == "/root/.abra/servers/*/*.env"
    # abra's local server's folder is "default", whatever ccci's inventory calls the host.
    assert policy.owns_env_file("/root/.abra/servers/default/word-0b1c2d.ci.example.org.env")


def test_an_env_file_is_the_policys_only_folder_by_folder() -> None:
    policy = _finalized_orphans(Host("cc-ci", {}, ("all",)))
    assert not policy.owns_env_file("/root/.abra/servers/a/b/x.env")  # * never spans a /
    assert not policy.owns_env_file("/root/.abra/servers/../x.env")
    assert not policy.owns_env_file("/root/.abra/servers/default/x.conf")


def test_a_built_policy_still_holds_the_placeholders_finalize_fills() -> None:
    _, orphans = _built()
    assert isinstance(orphans, OrphanStackPolicy)
    assert (orphans.run_apps, orphans.run_apps_selector) == ("", "run-apps")
    assert orphans.env_file == "/root/.abra/servers/{server}/{domain}.env"


def test_finalize_resolves_the_selector_into_the_run_apps_pattern() -> None:
    policy = _finalized_orphans(Host("cc-ci", {}, ("all",)))
    assert policy.run_apps == RUN_APPS
    assert policy.run_apps_pattern.pattern == RUN_APPS


def test_finalize_with_an_unknown_selector_raises_at_the_policys_run_apps() -> None:
    selector, orphans = _built()
    assert isinstance(orphans, OrphanStackPolicy)
    renamed = replace(orphans, run_apps_selector="nope")
    with pytest.raises(InputError) as caught:
        finalize((selector, renamed), Host("cc-ci", {}, ("all",)))
    assert str(caught.value) == (
        "policy.yaml:13: spec.run_apps.selector: unknown StackSelector 'nope' (known: run-apps)"
    )


def test_load_narrows_the_server_folder_per_host_from_the_inventory() -> None:
    inventory = _inventory({"cc-ci": {"abra_server": "ci.example.org"}, "cc-ci2": {}})
    loaded = {
        hp.host.name: one(hp.policies, OrphanStackPolicy)
        for hp in load({"policy.yaml": VALID}, inventory)
    }
    assert {
        name: p.env_file_glob for name, p in loaded.items() if isinstance(p, OrphanStackPolicy)
    } == {
        "cc-ci": "/root/.abra/servers/ci.example.org/*.env",
        "cc-ci2": "/root/.abra/servers/*/*.env",
    }


def test_a_policy_that_never_mentions_env_files_reads_none() -> None:
    text = edit(ENV_FILE, None).replace(", env_file]", "]")
    (hp,) = load({"policy.yaml": text})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert (orphans.env_file, orphans.env_file_glob) == ("", "")


def test_reaping_env_files_without_a_template_uses_abras_layout_under_abra_dir() -> None:
    text = edit(ENV_FILE, "  abra_dir: /srv/abra")
    (hp,) = load({"policy.yaml": text})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.env_file_glob == "/srv/abra/servers/*/*.env"


def test_abra_dir_defaults_to_abras_folder_of_the_user_ccci_runs_as() -> None:
    import pwd

    text = edit(ENV_FILE, None)
    (hp,) = load({"policy.yaml": text})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    home = pwd.getpwuid(os.getuid()).pw_dir.rstrip("/")
    assert orphans.env_file_glob == f"{home}/.abra/servers/*/*.env"


def test_max_lifetime_defaults_to_a_day() -> None:
    (hp,) = load({"policy.yaml": VALID})
    orphans = one(hp.policies, OrphanStackPolicy)
    assert isinstance(orphans, OrphanStackPolicy)
    assert orphans.max_lifetime == timedelta(hours=24)


def test_a_host_var_abra_server_that_is_not_a_folder_name_is_refused() -> None:
    inventory = _inventory({"cc-ci": {"abra_server": "../../etc"}})
    with pytest.raises(InputError) as caught:
        load({"policy.yaml": VALID}, inventory)
    assert str(caught.value).endswith("host var abra_server '../../etc' is not a folder name")
