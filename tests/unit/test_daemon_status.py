"""DaemonPolicy and ``ccci status`` as data: client configs parsed, rules run on hand-built
fact snapshots, manual actions through the plan's methods and the text render, and the
status screen built from hand-made facts, plan and journal. No engine, no clock.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ccci.config.yamlsrc import load_text
from ccci.errors import InputError, Location
from ccci.facts.clientconfig import parse_client_config, read_client_config
from ccci.facts.model import (
    ClientConfig,
    Daemon,
    DiskUsage,
    Facts,
    Image,
    RegistryAuth,
    Service,
    SwarmObject,
    Task,
    Unit,
    Volume,
)
from ccci.facts.refs import registry_host
from ccci.plan.build import plan_host
from ccci.plan.model import (
    Action,
    Change,
    GateResult,
    HostPlan,
    Manual,
    Noop,
    Operation,
    Plan,
    Work,
)
from ccci.plan.needs import client_config_paths
from ccci.policy.load import build
from ccci.policy.model import DEFAULT_CLIENT_CONFIG, DaemonPolicy, Gate, GateKind, Policy
from ccci.render import json as render_json
from ccci.render import status as render_status
from ccci.render import text as render_text
from ccci.render.style import Style
from ccci.rules import Context
from ccci.rules.daemon import plan_daemon
from ccci.views.status import HostStatus, host_status, last_run

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
PLAIN = Style(enabled=False)
HOST = "cc-ci"
REGISTRY = "registry.example.org"
CONFIG = "/root/.docker/config.json"
RUN_APPS = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"
STACK_LABEL = "com.docker.stack.namespace"
# A secret as long and random-looking as a registry token: it must never reach a fact.
SECRET = "dckr_pat_Zq8Xw3Lk9Vb2Nm7Rt5Yp1Hs4Jd6Fg0Ae"


def blob(user: str, secret: str = SECRET) -> str:
    """The ``auth`` value ``docker login`` writes: base64 of ``user:secret``."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def config_text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)


def daemon(**overrides: Any) -> Daemon:
    values: dict[str, Any] = {
        "name": "cc-ci",
        "server_version": "20.10.24",
        "api_version": "1.41",
        "data_root": "/var/lib/docker",
        "storage_driver": "overlay2",
        "swarm_state": "active",
        "swarm_manager": True,
    }
    values.update(overrides)
    return Daemon(**values)


def facts(**overrides: Any) -> Facts:
    values: dict[str, Any] = {"host": HOST, "gathered_at": NOW, "daemon": daemon()}
    values.update(overrides)
    return Facts(**values)


def policy_from(yaml_text: str, file: str = "policies/daemon.yaml") -> Policy:
    (doc,) = load_text(yaml_text, file)
    return build(doc)


def daemon_policy(spec: str, file: str = "policies/daemon.yaml") -> DaemonPolicy:
    """A DaemonPolicy from its ``spec:`` body (indented two spaces), as a file would hold it."""
    policy = policy_from(
        "apiVersion: ccci/v1\n"
        "kind: DaemonPolicy\n"
        "metadata: {name: daemon}\n"
        "hosts: ci\n"
        "spec:\n" + spec,
        file,
    )
    assert isinstance(policy, DaemonPolicy)
    return policy


def registry_policy(user: str | None = "ci-bot", config: str | None = None) -> DaemonPolicy:
    parts = [f"registry: {REGISTRY}"]
    if user is not None:
        parts.append(f"user: {user}")
    if config is not None:
        parts.append(f"config: {config}")
    return daemon_policy(f"  registry_auth: {{{', '.join(parts)}}}\n")


def outcomes(policy: DaemonPolicy, snapshot: Facts) -> list[Any]:
    return list(plan_daemon(policy, Context(facts=snapshot, now=NOW)))


def only(items: list[Any], kind: type) -> Any:
    found = [i for i in items if isinstance(i, kind)]
    assert len(found) == 1, items
    return found[0]


def with_config(config: ClientConfig) -> Facts:
    return facts(client_configs=(config,))


def parsed(data: dict[str, Any] | str, path: str = CONFIG) -> ClientConfig:
    text = data if isinstance(data, str) else config_text(data)
    return parse_client_config(path, text)


# ---- parse_client_config ------------------------------------------------------------------


def test_an_auth_blob_gives_the_user_and_drops_the_secret() -> None:
    config = parsed({"auths": {REGISTRY: {"auth": blob("ci-bot")}}})
    assert config == ClientConfig(
        path=CONFIG, found=True, auths=(RegistryAuth(REGISTRY, "ci-bot", "auths"),)
    )
    dumped = json.dumps(repr(config))
    assert SECRET not in dumped
    assert blob("ci-bot") not in dumped


def test_a_secret_with_colons_is_dropped_whole() -> None:
    config = parsed({"auths": {REGISTRY: {"auth": blob("ci-bot", "a:b:" + SECRET)}}})
    assert config.auths == (RegistryAuth(REGISTRY, "ci-bot", "auths"),)
    assert SECRET not in repr(config)


def test_an_explicit_username_wins_and_the_password_is_never_kept() -> None:
    config = parsed({"auths": {REGISTRY: {"username": "ci-bot", "password": SECRET}}})
    assert config.auths == (RegistryAuth(REGISTRY, "ci-bot", "auths"),)
    assert SECRET not in repr(config)


def test_an_identity_token_entry_counts_without_a_user_and_the_token_is_never_kept() -> None:
    config = parsed({"auths": {REGISTRY: {"identitytoken": SECRET}}})
    assert config.auths == (RegistryAuth(REGISTRY, "", "auths"),)
    assert SECRET not in repr(config)


def test_an_identity_token_beside_a_user_only_blob_keeps_the_user() -> None:
    # docker login with a token stores "user:" (empty password) and the token apart.
    raw = base64.b64encode(b"ci-bot:").decode()
    config = parsed({"auths": {REGISTRY: {"auth": raw, "identitytoken": SECRET}}})
    assert config.auths == (RegistryAuth(REGISTRY, "ci-bot", "auths"),)
    assert SECRET not in repr(config)


@pytest.mark.parametrize("bad", ["!!not base64!!", "", "////", base64.b64encode(b"\xff\xfe:x")])
def test_an_undecodable_auth_blob_is_an_entry_without_a_user(bad: str | bytes) -> None:
    value = bad.decode() if isinstance(bad, bytes) else bad
    config = parsed({"auths": {REGISTRY: {"auth": value}}})
    assert config.auths == (RegistryAuth(REGISTRY, "", "auths"),)
    assert config.error == ""


def test_an_auth_blob_without_a_colon_never_becomes_the_user() -> None:
    raw = base64.b64encode(SECRET.encode()).decode()
    config = parsed({"auths": {REGISTRY: {"auth": raw}}})
    assert SECRET not in repr(config)
    assert config.auths == (RegistryAuth(REGISTRY, "", "auths"),)


def test_cred_helpers_count_as_entries_without_a_user() -> None:
    config = parsed(
        {
            "auths": {},
            "credHelpers": {REGISTRY: "pass", "https://other.example.org/v2/": "secretservice"},
        }
    )
    assert config.auths == (
        RegistryAuth(REGISTRY, "", "credential helper pass"),
        RegistryAuth("other.example.org", "", "credential helper secretservice"),
    )
    assert config.creds_store == ""


def test_a_creds_store_is_recorded_and_its_auths_entries_have_no_user() -> None:
    # With a credsStore, `docker login` leaves an empty object per registry in auths.
    config = parsed({"auths": {REGISTRY: {}}, "credsStore": "desktop"})
    assert config.creds_store == "desktop"
    assert config.auths == (RegistryAuth(REGISTRY, "", "auths"),)


def test_an_empty_object_is_a_config_without_entries() -> None:
    assert parsed({}) == ClientConfig(path=CONFIG, found=True)


def test_bad_json_is_an_error_fact_that_quotes_nothing_of_the_file() -> None:
    whole = config_text({"auths": {REGISTRY: {"auth": blob("ci-bot")}}})
    text = whole[: whole.index(blob("ci-bot")) + len(blob("ci-bot")) + 1]  # cut short
    config = parsed(text)
    assert config.found
    assert config.error.startswith("not JSON: ")
    assert config.auths == ()
    assert SECRET not in repr(config)
    assert blob("ci-bot") not in repr(config)


@pytest.mark.parametrize("text", ["[]", '"text"', "42", "null"])
def test_json_that_is_not_an_object_is_an_error_fact(text: str) -> None:
    assert parsed(text) == ClientConfig(path=CONFIG, found=True, error="not a JSON object")


@pytest.mark.parametrize(
    "data",
    [{"auths": ["registry.example.org"]}, {"auths": "x"}, {"credHelpers": ["pass"]}],
)
def test_auths_or_cred_helpers_that_are_not_objects_are_an_error_fact(
    data: dict[str, Any],
) -> None:
    config = parsed(data)
    assert config.found and config.error


def test_read_client_config_missing_unreadable_and_present(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert read_client_config(str(missing)) == ClientConfig(path=str(missing), found=False)

    folder = tmp_path / "dir.json"
    folder.mkdir()
    unreadable = read_client_config(str(folder))
    assert not unreadable.found
    assert unreadable.error  # "Is a directory": a fact, not a crash

    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe" + SECRET.encode())
    undecodable = read_client_config(str(binary))
    assert not undecodable.found and undecodable.error
    assert SECRET not in repr(undecodable)

    good = tmp_path / "config.json"
    good.write_text(config_text({"auths": {REGISTRY: {"auth": blob("ci-bot")}}}), "utf-8")
    assert read_client_config(str(good)).auths == (RegistryAuth(REGISTRY, "ci-bot", "auths"),)


# ---- registry_host ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("registry.example.org", "registry.example.org"),
        ("https://registry.example.org/v1/", "registry.example.org"),
        ("http://registry.example.org/v2/", "registry.example.org"),
        ("https://registry.example.org", "registry.example.org"),
        ("registry.example.org/some/path", "registry.example.org"),
        ("registry.example.org:5000", "registry.example.org:5000"),
        ("https://registry.example.org:5000/v2/", "registry.example.org:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("Registry.Example.ORG", "registry.example.org"),
        ("https://REGISTRY.example.org/v1/", "registry.example.org"),
        ("  registry.example.org  ", "registry.example.org"),
    ],
)
def test_registry_host_normalises_scheme_path_case_and_keeps_the_port(key: str, host: str) -> None:
    assert registry_host(key) == host


def test_config_keys_are_normalised_so_a_v1_url_key_matches_the_bare_host() -> None:
    config = parsed({"auths": {f"https://{REGISTRY.upper()}/v1/": {"auth": blob("ci-bot")}}})
    assert config.auths == (RegistryAuth(REGISTRY, "ci-bot", "auths"),)


def test_the_policy_registry_is_normalised_too() -> None:
    policy = daemon_policy("  registry_auth: {registry: 'https://Registry.Example.org/v2/'}\n")
    assert policy.registry == REGISTRY
    assert policy.client_config == DEFAULT_CLIENT_CONFIG
    assert policy.registry_user == ""


def test_only_policies_with_a_registry_ask_for_a_client_config() -> None:
    plain = daemon_policy("  data_root: /var/lib/docker\n")
    custom = registry_policy(config="/home/ci/.docker/config.json")
    assert client_config_paths([plain]) == []
    assert client_config_paths([plain, custom, registry_policy()]) == [
        "/home/ci/.docker/config.json",
        CONFIG,
    ]


# ---- the schema and the builder ----------------------------------------------------------


def test_the_builder_reads_every_field() -> None:
    policy = daemon_policy(
        "  registry_auth: {registry: registry.example.org, user: ci-bot, config: /etc/c.json}\n"
        "  data_root: /var/lib/docker\n"
        "  storage_driver: overlay2\n"
        "  min_api_version: '1.41'\n"
    )
    assert (policy.registry, policy.registry_user, policy.client_config) == (
        REGISTRY,
        "ci-bot",
        "/etc/c.json",
    )
    assert policy.data_root == "/var/lib/docker"
    assert policy.storage_driver == "overlay2"
    assert policy.min_api_version == (1, 41)
    assert policy.meta.name == "daemon"
    assert policy.meta.source.file == "policies/daemon.yaml"
    assert policy.meta.source.line == 3


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("  min_api_version: 1.41\n", "min_api_version"),  # a YAML float, not text
        ("  min_api_version: '1'\n", "min_api_version"),
        ("  min_api_version: 'v1.41'\n", "min_api_version"),
        ("  data_root: var/lib/docker\n", "data_root"),
        ("  registry_auth: {user: ci-bot}\n", "registry_auth"),
        ("  registry_auth: {registry: registry.example.org, config: config.json}\n", "config"),
        ("  registry_auth: {registry: registry.example.org, password: x}\n", "password"),
        ("  storage_driver: ''\n", "storage_driver"),
        ("  {}\n", "spec"),
    ],
)
def test_the_schema_rejects_what_the_rule_cannot_compare(spec: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        daemon_policy(spec)
    message = str(caught.value)
    assert message.startswith("policies/daemon.yaml:")
    assert field in message


# ---- the rule: registry auth -------------------------------------------------------------


def test_an_auth_entry_for_the_user_is_a_noop_naming_the_user() -> None:
    config = parsed({"auths": {REGISTRY: {"auth": blob("ci-bot")}}})
    (noop,) = outcomes(registry_policy(), with_config(config))
    assert noop == Noop(
        f"daemon:registry_auth:{REGISTRY}",
        f"registry auth for {REGISTRY}",
        "auth entry present (user ci-bot)",
        "daemon",
        noop.source,
    )
    assert noop.source.file == "policies/daemon.yaml"


def test_an_entry_without_a_user_is_a_noop_naming_where_it_is_held() -> None:
    config = parsed({"credHelpers": {REGISTRY: "pass"}})
    (noop,) = outcomes(registry_policy(), with_config(config))
    assert isinstance(noop, Noop)
    assert noop.reason == "auth entry present (credential helper pass)"


def test_a_missing_entry_is_a_manual_action_with_the_docker_login_to_run() -> None:
    config = parsed({"auths": {"other.example.org": {"auth": blob("ci-bot")}}})
    (manual,) = outcomes(registry_policy(), with_config(config))
    assert isinstance(manual, Manual)
    assert manual.address == f"daemon:registry_auth:{REGISTRY}"
    assert manual.label == f"registry auth for {REGISTRY}"
    assert manual.reason == f"no auth entry for {REGISTRY} in {CONFIG}"
    assert manual.how == (
        f"run `docker login -u ci-bot {REGISTRY}` as the user whose config is {CONFIG}"
    )
    assert manual.policy == "daemon"


def test_without_a_user_the_login_names_none() -> None:
    (manual,) = outcomes(registry_policy(user=None), with_config(parsed({})))
    assert isinstance(manual, Manual)
    assert manual.how == f"run `docker login {REGISTRY}` as the user whose config is {CONFIG}"


def test_an_entry_for_another_user_is_a_manual_action() -> None:
    config = parsed({"auths": {REGISTRY: {"auth": blob("someone")}}})
    (manual,) = outcomes(registry_policy(), with_config(config))
    assert isinstance(manual, Manual)
    assert manual.reason == f"auth entry for {REGISTRY} is for user someone, expected ci-bot"
    assert SECRET not in repr(manual)


def test_with_no_user_asked_any_users_entry_counts() -> None:
    config = parsed({"auths": {REGISTRY: {"auth": blob("someone")}}})
    (noop,) = outcomes(registry_policy(user=None), with_config(config))
    assert isinstance(noop, Noop) and noop.reason == "auth entry present (user someone)"


def test_an_entry_on_another_port_is_another_registry() -> None:
    config = parsed({"auths": {f"{REGISTRY}:5000": {"auth": blob("ci-bot")}}})
    (manual,) = outcomes(registry_policy(), with_config(config))
    assert isinstance(manual, Manual)


def test_a_missing_config_is_a_manual_action() -> None:
    (manual,) = outcomes(registry_policy(), with_config(ClientConfig(CONFIG, found=False)))
    assert isinstance(manual, Manual)
    assert manual.reason == f"{CONFIG} does not exist"
    assert "docker login -u ci-bot" in manual.how


def test_an_unreadable_config_is_a_manual_action_with_the_error() -> None:
    config = ClientConfig(CONFIG, found=False, error="Permission denied")
    (manual,) = outcomes(registry_policy(), with_config(config))
    assert isinstance(manual, Manual) and manual.reason == f"{CONFIG} Permission denied"


def test_a_config_that_is_not_json_is_a_manual_action() -> None:
    (manual,) = outcomes(registry_policy(), with_config(parsed("{nope")))
    assert isinstance(manual, Manual)
    assert manual.reason.startswith(f"{CONFIG} not JSON: ")


def test_a_config_not_gathered_is_a_manual_action_not_a_crash() -> None:
    (manual,) = outcomes(registry_policy(), facts())
    assert isinstance(manual, Manual) and manual.reason == f"{CONFIG} was not read"


def test_the_policy_reads_its_own_config_path() -> None:
    path = "/home/ci/.docker/config.json"
    good = parsed({"auths": {REGISTRY: {"auth": blob("ci-bot")}}}, path=path)
    empty = parsed({}, path=CONFIG)
    snapshot = facts(client_configs=(empty, good))
    assert isinstance(only(outcomes(registry_policy(config=path), snapshot), Noop), Noop)
    assert isinstance(only(outcomes(registry_policy(), snapshot), Manual), Manual)


def test_a_creds_store_is_named_when_no_entry_is_found() -> None:
    config = parsed({"credsStore": "desktop"})
    (manual,) = outcomes(registry_policy(), with_config(config))
    assert isinstance(manual, Manual)
    assert manual.reason == (
        f"no auth entry for {REGISTRY} in {CONFIG} "
        "(credsStore desktop may hold it; ccci does not ask helpers)"
    )


# ---- the rule: engine settings -----------------------------------------------------------


def test_a_data_root_mismatch_has_the_exact_message_and_the_how() -> None:
    policy = daemon_policy("  data_root: /var/lib/docker\n")
    (manual,) = outcomes(policy, facts(daemon=daemon(data_root="/srv/docker")))
    assert isinstance(manual, Manual)
    assert manual.address == "daemon:data_root"
    assert manual.label == "data-root"
    assert manual.reason == "data-root is /srv/docker, expected /var/lib/docker"
    assert manual.how == (
        'set "data-root": "/var/lib/docker" in /etc/docker/daemon.json '
        "(NixOS: virtualisation.docker.daemon.settings.data-root) and restart dockerd"
    )


def test_a_matching_data_root_is_a_noop() -> None:
    (noop,) = outcomes(daemon_policy("  data_root: /var/lib/docker\n"), facts())
    assert isinstance(noop, Noop) and noop.reason == "data-root is /var/lib/docker"


def test_a_storage_driver_mismatch_is_a_manual_action() -> None:
    policy = daemon_policy("  storage_driver: overlay2\n")
    (manual,) = outcomes(policy, facts(daemon=daemon(storage_driver="vfs")))
    assert isinstance(manual, Manual)
    assert manual.address == "daemon:storage_driver"
    assert manual.reason == "storage driver is vfs, expected overlay2"
    assert "storage-driver" in manual.how and "restart dockerd" in manual.how
    (noop,) = outcomes(policy, facts())
    assert isinstance(noop, Noop) and noop.reason == "storage driver is overlay2"


@pytest.mark.parametrize(
    ("have", "wanted", "ok"),
    [
        ("1.41", "1.41", True),
        ("1.43", "1.41", True),
        ("2.0", "1.41", True),
        ("1.9", "1.41", False),  # as text "1.9" > "1.41"; as numbers 9 < 41
        ("1.41", "1.9", True),
        ("1.40", "1.41", False),
        ("1.41", "1.100", False),
        ("0.99", "1.0", False),
    ],
)
def test_api_versions_compare_as_numbers(have: str, wanted: str, ok: bool) -> None:
    policy = daemon_policy(f"  min_api_version: '{wanted}'\n")
    (outcome,) = outcomes(policy, facts(daemon=daemon(api_version=have)))
    assert isinstance(outcome, Noop if ok else Manual)
    assert outcome.address == "daemon:api_version"
    if ok:
        assert outcome.reason == f"engine API {have} ≥ {wanted}"
    else:
        assert outcome.reason == f"engine API {have} < {wanted}"
        assert isinstance(outcome, Manual)
        assert outcome.how == f"upgrade the Docker engine to one that speaks API {wanted} or later"


@pytest.mark.parametrize("have", ["", "unknown", "v1.41", "x.y"])
def test_an_unknown_api_version_is_a_manual_action(have: str) -> None:
    policy = daemon_policy("  min_api_version: '1.41'\n")
    (manual,) = outcomes(policy, facts(daemon=daemon(api_version=have)))
    assert isinstance(manual, Manual)
    assert manual.reason == f"engine API {have or 'unknown'} < 1.41"


def test_every_check_is_reported_and_unset_fields_are_not_checked() -> None:
    policy = daemon_policy(
        "  registry_auth: {registry: registry.example.org, user: ci-bot}\n"
        "  data_root: /var/lib/docker\n"
        "  storage_driver: overlay2\n"
        "  min_api_version: '1.41'\n"
    )
    good = with_config(parsed({"auths": {REGISTRY: {"auth": blob("ci-bot")}}}))
    results = outcomes(policy, good)
    assert all(isinstance(r, Noop) for r in results)
    assert [r.address for r in results] == [
        f"daemon:registry_auth:{REGISTRY}",
        "daemon:data_root",
        "daemon:storage_driver",
        "daemon:api_version",
    ]
    only_root = daemon_policy("  data_root: /var/lib/docker\n")
    assert [r.address for r in outcomes(only_root, good)] == ["daemon:data_root"]


# ---- manual actions in the plan ----------------------------------------------------------

MANUAL = Manual(
    "daemon:data_root",
    "data-root",
    "data-root is /srv/docker, expected /var/lib/docker",
    'set "data-root": "/var/lib/docker" in /etc/docker/daemon.json and restart dockerd',
    "daemon",
    Location("policies/daemon.yaml", 5, "metadata.name"),
)
DISK_GATE = Gate(
    GateKind.DISK_USAGE, Location("policies/prune.yaml", 10), path="/var/lib/docker", at_least=0.8
)


def image_change() -> Change:
    return Change(
        address="image:sha256:" + "ab12" * 16,
        action=Action.DELETE,
        label="redis:<none>",
        reason="dangling, created 3 days ago ≥ 24h",
        policy="ci-docker-prune",
        source=Location("policies/prune.yaml", 15),
        bytes_freed=1 << 20,
        work=Work(Operation.REMOVE_IMAGE),
    )


def test_manual_actions_alone_make_the_host_plan_not_empty_but_not_applicable() -> None:
    host = HostPlan(HOST, manual=(MANUAL,))
    assert not host.is_empty()
    plan = Plan(now=NOW, hosts=(host,))
    assert not plan.is_empty()
    assert not plan.can_apply()
    assert plan.manual_count() == 1
    assert plan.counts() == {a: 0 for a in Action}


def test_manual_actions_beside_changes_leave_the_plan_applicable() -> None:
    plan = Plan(now=NOW, hosts=(HostPlan(HOST, changes=(image_change(),), manual=(MANUAL,)),))
    assert plan.can_apply() and not plan.is_empty()


def test_a_plan_without_manual_actions_or_changes_is_empty() -> None:
    plan = Plan(now=NOW, hosts=(HostPlan(HOST, noops=()),))
    assert plan.is_empty() and not plan.can_apply() and plan.manual_count() == 0


def test_the_text_plan_has_a_to_do_by_hand_section_and_counts_it() -> None:
    plan = Plan(now=NOW, hosts=(HostPlan(HOST, manual=(MANUAL,)),))
    lines = render_text.render_plan(plan, PLAIN).splitlines()
    assert "No changes. Host matches policy." not in lines
    assert lines[0] == "To do by hand (ccci does not change these):"
    assert lines[1] == (
        "! daemon data_root (data-root): data-root is /srv/docker, expected /var/lib/docker"
    )
    assert lines[2] == (
        '  # do: set "data-root": "/var/lib/docker" in /etc/docker/daemon.json and restart '
        "dockerd; policy daemon policies/daemon.yaml:5"
    )
    assert lines[-1] == "Plan: 0 to add, 0 to change, 0 to remove, 1 to do by hand."


def test_the_text_plan_puts_manual_actions_after_the_changes() -> None:
    plan = Plan(now=NOW, hosts=(HostPlan(HOST, changes=(image_change(),), manual=(MANUAL,)),))
    lines = render_text.render_plan(plan, PLAIN).splitlines()
    by_hand = lines.index("To do by hand (ccci does not change these):")
    assert lines[0].startswith("- image sha256:ab12")
    assert lines[by_hand - 1] == ""
    summary = [line for line in lines if line.startswith("Plan:")]
    assert summary == [
        "Plan: 0 to add, 0 to change, 1 to remove, 1 to do by hand. About 1.0 MiB to free."
    ]


def test_the_many_host_total_counts_manual_actions() -> None:
    plan = Plan(
        now=NOW,
        hosts=(HostPlan("a", manual=(MANUAL,)), HostPlan("b", manual=(MANUAL, MANUAL))),
    )
    text = render_text.render_plan(plan, PLAIN)
    assert text.splitlines()[-1] == "Total: 0 to add, 0 to change, 0 to remove, 3 to do by hand."


def test_a_json_plan_carries_the_manual_actions_and_is_not_empty() -> None:
    plan = Plan(now=NOW, hosts=(HostPlan(HOST, manual=(MANUAL,)),))
    document = json.loads(render_json.render_plan(plan))
    assert document["summary"]["empty"] is False
    (item,) = document["hosts"][0]["manual"]
    assert item["reason"] == "data-root is /srv/docker, expected /var/lib/docker"
    assert item["how"].startswith('set "data-root"')
    assert Plan.from_dict(document) == plan


def test_the_planner_files_daemon_drift_as_manual_not_as_changes() -> None:
    policy = daemon_policy(
        "  registry_auth: {registry: registry.example.org, user: ci-bot}\n"
        "  data_root: /var/lib/docker\n"
    )
    snapshot = facts(daemon=daemon(data_root="/srv/docker"), client_configs=(parsed({}),))
    host = plan_host(HOST, (policy,), snapshot, NOW)
    assert host.changes == ()
    assert [m.address for m in host.manual] == [
        f"daemon:registry_auth:{REGISTRY}",
        "daemon:data_root",
    ]
    assert not host.is_empty()
    assert not Plan(now=NOW, hosts=(host,)).can_apply()


# ---- ccci status ---------------------------------------------------------------------------

PRUNE_YAML = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
hosts: ci
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: 80%}
    no_live_stacks: {match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'}
    no_converging_services: true
  prune:
    dangling_images: {older_than: 24h}
"""
RETENTION_YAML = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
hosts: ci
spec:
  retain: ['redis:7-alpine']
  ensure_present: ['redis:7-alpine']
  evict:
    when: {disk_usage: {path: /var/lib/docker, at_least: 85%}}
    down_to: 75%
    unused_for: 14d
"""
TIMERS_YAML = """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: schedules}
hosts: ci
spec:
  present:
    - name: ccci-reconcile
      on_calendar: daily
      exec: /usr/local/bin/ccci reconcile --apply --yes
  absent:
    - docker-prune.timer
"""
GiB = 1 << 30
RUN_APP = "redi-3fa9c1_ci_example_org"
PENDING_APP = "post-8d2e4f_ci_example_org"
ORPHAN = "nope-0a1b2c_ci_example_org"


def status_policies() -> tuple[Policy, ...]:
    return (
        policy_from(PRUNE_YAML, "policies/prune.yaml"),
        policy_from(RETENTION_YAML, "policies/retention.yaml"),
        policy_from(TIMERS_YAML, "policies/timers.yaml"),
        daemon_policy("  data_root: /var/lib/docker\n"),
    )


def service(
    ident: str, name: str, stack: str, created: datetime, updated: datetime, update_state: str = ""
) -> Service:
    return Service(
        ident,
        name,
        "busybox:ccci",
        {STACK_LABEL: stack},
        created,
        updated,
        update_state=update_state,
    )


def status_facts(systemd: str = "running", units: tuple[Unit, ...] | None = None) -> Facts:
    """A host under disk pressure with three live stacks (one updating, one with a
    pending task), and an orphan's leftovers (a volume and a secret, no service)."""
    if units is None:
        units = (
            Unit(
                "ccci-reconcile.timer",
                "loaded",
                "active",
                "enabled",
                next_elapse=NOW + timedelta(hours=21),
                last_trigger=NOW - timedelta(hours=3),
            ),
            Unit("ccci-reconcile.service", "loaded", "inactive", "static"),
            Unit("docker-prune.timer", "not-found"),
        )
    return facts(
        daemon=daemon(data_root="/srv/docker"),
        disks=(
            DiskUsage("/var/lib/docker", 100 * GiB, 90 * GiB, 10 * GiB),
            DiskUsage("/srv/other", 100 * GiB, 10 * GiB, 90 * GiB),
        ),
        services=(
            service(
                "s1", "traefik_app", "traefik", NOW - timedelta(days=3), NOW - timedelta(hours=2)
            ),
            service(
                "s2",
                f"{RUN_APP}_app",
                RUN_APP,
                NOW - timedelta(minutes=30),
                NOW - timedelta(minutes=5),
                update_state="updating",
            ),
            service(
                "s3",
                f"{PENDING_APP}_app",
                PENDING_APP,
                NOW - timedelta(minutes=2),
                NOW - timedelta(minutes=2),
            ),
        ),
        tasks=(
            Task("t1", "s1", "running", "running"),
            Task("t2", "s2", "running", "running"),
            Task("t3", "s3", "preparing", "running"),
        ),
        volumes=(Volume(f"{ORPHAN}_data", "local", {STACK_LABEL: ORPHAN}),),
        secrets=(SwarmObject("x1", f"{ORPHAN}_db_password_v1", {}, NOW - timedelta(days=2)),),
        systemd=systemd,
        units=units,
        images=(
            Image("sha256:" + "cd" * 32, ("busybox:ccci",), (), NOW - timedelta(days=9), 1 << 20),
        ),
    )


def status_plan(gates: tuple[GateResult, ...] = ()) -> HostPlan:
    orphan = Change(
        address=f"stack:{ORPHAN}",
        action=Action.DELETE,
        label="1 secret, 1 volume",
        reason="leftovers of a run",
        policy="reap-killed-runs",
        source=Location("policies/orphans.yaml", 5),
        before={"secrets": [f"{ORPHAN}_db_password_v1"], "volumes": [f"{ORPHAN}_data"]},
        work=Work(Operation.REAP_STACK, reap=("secrets", "volumes"), wait_seconds=60.0),
    )
    pull = Change(
        address="image:redis:7-alpine",
        action=Action.CREATE,
        label="redis:7-alpine",
        reason="missing from the cache: pull it before a run needs it",
        policy="recipe-base-images",
        source=Location("policies/retention.yaml", 7),
        after={"ref": "redis:7-alpine"},
        gated=False,
        work=Work(Operation.PULL_IMAGE, refs=("redis:7-alpine",)),
    )
    return HostPlan(HOST, changes=(orphan, pull, image_change()), gates=gates, manual=(MANUAL,))


def recap(host: str, time: str, run: str, **fields: Any) -> dict[str, Any]:
    entry = {
        "type": "recap",
        "time": time,
        "run": run,
        "host": host,
        "ok": 3,
        "changed": 3,
        "failed": 0,
        "skipped": 0,
        "converged": True,
        "remaining": [],
        "bytes_freed": 1 << 20,
    }
    entry.update(fields)
    return entry


JOURNAL = [
    recap(HOST, "2026-11-25T03:00:00Z", "run-old", changed=7),
    {"type": "change", "time": "2026-11-26T03:00:01Z", "run": "run-new", "host": HOST},
    recap(
        HOST,
        "2026-11-26T03:00:02Z",
        "run-new",
        changed=4,
        failed=1,
        skipped=2,
        converged=False,
        bytes_freed=14 << 20,
    ),
    recap("other-host", "2026-11-27T02:00:00Z", "run-other", changed=9),
]


def status_of(
    snapshot: Facts | None = None,
    plan: HostPlan | None = None,
    journal: list[dict[str, Any]] | None = None,
    policies: tuple[Policy, ...] | None = None,
) -> HostStatus:
    return host_status(
        status_policies() if policies is None else policies,
        status_facts() if snapshot is None else snapshot,
        status_plan() if plan is None else plan,
        JOURNAL if journal is None else journal,
        NOW,
    )


def test_disks_carry_every_threshold_of_prune_and_eviction() -> None:
    status = status_of()
    by_path = {d.path: d for d in status.disks}
    assert by_path["/var/lib/docker"].ratio == pytest.approx(0.9)
    # In policy order: the prune's gate, then the eviction's high watermark.
    assert by_path["/var/lib/docker"].thresholds == (
        ("ci-docker-prune", 0.8),
        ("recipe-base-images", 0.85),
    )
    assert by_path["/srv/other"].thresholds == ()


PRUNE_DISK_OPEN = GateResult(
    "ci-docker-prune", DISK_GATE, True, "disk 90% on /var/lib/docker ≥ 80%"
)


def test_gates_are_the_plans_with_their_observed_values() -> None:
    gates = (PRUNE_DISK_OPEN,)
    status = status_of(plan=status_plan(gates))
    assert status.gates == gates


def test_live_stacks_have_their_age_and_converging_reason() -> None:
    status = status_of()
    stacks = {s.name: s for s in status.live_stacks}
    # The orphan's leftovers (no service) are not live.
    assert set(stacks) == {"traefik", RUN_APP, PENDING_APP}
    assert stacks["traefik"].services == 1
    assert stacks["traefik"].age_seconds == pytest.approx(2 * 3600)  # since its last update
    assert stacks["traefik"].converging == ""
    assert stacks[RUN_APP].age_seconds == pytest.approx(5 * 60)
    assert stacks[RUN_APP].converging == "update updating"
    assert stacks[PENDING_APP].converging == "1 task preparing, desired running"


def test_orphans_pending_missing_and_manual_come_from_the_plan() -> None:
    status = status_of()
    assert status.orphans == (ORPHAN,)
    assert status.pending == 3
    assert status.missing_images == ("redis:7-alpine",)
    assert status.manual == (MANUAL,)


def test_the_last_run_is_the_newest_recap_for_this_host() -> None:
    run = status_of().last_run
    assert run is not None
    assert (run.time, run.run) == ("2026-11-26T03:00:02Z", "run-new")
    assert (run.changed, run.failed, run.skipped) == (4, 1, 2)
    assert run.converged is False
    assert run.bytes_freed == 14 << 20


def test_no_recap_for_the_host_is_no_last_run() -> None:
    assert last_run([recap("other-host", "t", "r")], HOST) is None
    assert last_run([], HOST) is None
    assert status_of(journal=[]).last_run is None


def test_timers_have_their_wanted_state_and_next_and_last_run() -> None:
    timers = {t.name: t for t in status_of().timers}
    assert set(timers) == {"ccci-reconcile.timer", "docker-prune.timer"}
    reconcile = timers["ccci-reconcile.timer"]
    assert reconcile.wanted == "present"
    assert reconcile.state == "enabled, active"
    assert reconcile.next_run == NOW + timedelta(hours=21)
    assert reconcile.last_run == NOW - timedelta(hours=3)
    prune = timers["docker-prune.timer"]
    assert (prune.wanted, prune.state, prune.next_run, prune.last_run) == (
        "absent",
        "does not exist",
        None,
        None,
    )


def test_timers_are_unknown_and_say_why_without_a_running_systemd() -> None:
    status = status_of(snapshot=status_facts(systemd="offline", units=()))
    assert {t.state for t in status.timers} == {"unknown (systemd offline)"}
    assert all(t.next_run is None and t.last_run is None for t in status.timers)


def test_problems_name_each_reason_and_healthy_is_their_absence() -> None:
    status = status_of()
    assert set(status.problems) == {
        "disk 90% on /var/lib/docker is over recipe-base-images's 85%",
        "disk 90% on /var/lib/docker is over ci-docker-prune's 80%",
        "1 orphaned stack to reap",
        "1 image to keep warm missing from the cache",
        "1 thing to do by hand",
        "the last run had 1 failed change",
    }
    assert not status.healthy


def test_a_host_in_order_is_healthy_even_with_pending_prunes() -> None:
    snapshot = replace(
        status_facts(),
        disks=(DiskUsage("/var/lib/docker", 100 * GiB, 40 * GiB, 60 * GiB),),
    )
    plan = HostPlan(HOST, changes=(image_change(),))
    journal = [recap(HOST, "2026-11-26T03:00:02Z", "r")]
    status = status_of(snapshot=snapshot, plan=plan, journal=journal)
    assert status.problems == ()
    assert status.healthy
    assert status.pending == 1


def test_the_engine_line_names_version_driver_data_root_and_swarm() -> None:
    assert status_of().engine == (
        "Docker 20.10.24 (API 1.41), overlay2, data-root /srv/docker, swarm active"
    )


def test_status_from_a_real_plan_agrees_with_the_planner() -> None:
    """The status of what plan_host makes (not a hand-made plan): the data-root drift is
    the one manual action, the gates are the prune's and eviction's."""
    policies = status_policies()
    snapshot = status_facts()
    plan = plan_host(HOST, policies, snapshot, NOW)
    status = host_status(policies, snapshot, plan, JOURNAL, NOW)
    assert [m.reason for m in status.manual] == [
        "data-root is /srv/docker, expected /var/lib/docker"
    ]
    assert status.missing_images == ("redis:7-alpine",)
    assert {(g.policy, g.gate.kind) for g in status.gates} >= {
        ("ci-docker-prune", GateKind.DISK_USAGE),
        ("ci-docker-prune", GateKind.NO_LIVE_STACKS),
        ("ci-docker-prune", GateKind.NO_CONVERGING_SERVICES),
        ("recipe-base-images", GateKind.DISK_USAGE),
    }
    prune_disk = next(
        g
        for g in status.gates
        if g.policy == "ci-docker-prune" and g.gate.kind is GateKind.DISK_USAGE
    )
    assert prune_disk.open and prune_disk.observed == "disk 90% on /var/lib/docker ≥ 80%"
    live = next(
        g
        for g in status.gates
        if g.policy == "ci-docker-prune" and g.gate.kind is GateKind.NO_LIVE_STACKS
    )
    assert not live.open and RUN_APP in live.observed


def test_the_text_status_shows_every_section() -> None:
    text = render_status.render_text(status_of(plan=status_plan((PRUNE_DISK_OPEN,))), PLAIN)
    lines = text.splitlines()
    assert lines[0] == "cc-ci: needs attention"
    assert lines[1] == (
        "  engine   Docker 20.10.24 (API 1.41), overlay2, data-root /srv/docker, swarm active"
    )
    assert "  !  1 thing to do by hand" in lines
    disk = next(line for line in lines if line.startswith("  disk     90% on /var/lib/docker"))
    assert "ci-docker-prune at 80%" in disk and "recipe-base-images at 85%" in disk
    assert "  disk     10% on /srv/other" in lines
    assert (
        "  gate     ci-docker-prune disk_usage: open   disk 90% on /var/lib/docker ≥ 80%" in lines
    )
    assert "  stack    traefik (1 service, 2 hours old)" in lines
    assert f"  stack    {RUN_APP} (1 service, 5 minutes old, converging: update updating)" in lines
    assert f"  orphans  {ORPHAN}" in lines
    assert (
        "  timer    ccci-reconcile.timer (wanted present): enabled, active; "
        "next 2026-11-28T00:00:00Z, last 2026-11-27T00:00:00Z" in lines
    )
    assert "  timer    docker-prune.timer (wanted absent): does not exist" in lines
    assert "  missing  redis:7-alpine (to keep warm; not in the cache)" in lines
    assert (
        "  by hand  data-root: data-root is /srv/docker, expected /var/lib/docker — " + MANUAL.how
        in lines
    )
    assert "  pending  3 changes (ccci reconcile --plan shows them)" in lines
    assert lines[-1] == (
        "  last run 2026-11-26T03:00:02Z: not converged, changed=4 failed=1 skipped=2, "
        "freed 14.0 MiB"
    )


def test_the_text_status_of_a_quiet_host() -> None:
    snapshot = facts(disks=(DiskUsage("/var/lib/docker", 100, 10, 90),))
    status = host_status((), snapshot, HostPlan(HOST), [], NOW)
    assert render_status.render_text(status, PLAIN).splitlines() == [
        "cc-ci: healthy",
        "  engine   Docker 20.10.24 (API 1.41), overlay2, data-root /var/lib/docker, swarm active",
        "  disk     10% on /var/lib/docker",
        "  stacks   none live",
        "  orphans  none",
        "  pending  0 changes (ccci reconcile --plan shows them)",
        "  last run none in the journal",
    ]


def test_the_json_status_has_every_section_and_healthy() -> None:
    document = json.loads(render_status.render_json([status_of()]))
    assert document["format_version"] == 1
    (host,) = document["hosts"]
    assert host["host"] == HOST
    assert host["healthy"] is False
    assert len(host["problems"]) == 6
    assert {d["path"] for d in host["disks"]} == {"/var/lib/docker", "/srv/other"}
    assert {s["name"] for s in host["live_stacks"]} == {"traefik", RUN_APP, PENDING_APP}
    assert host["orphans"] == [ORPHAN]
    assert host["pending"] == 3
    assert host["manual"][0]["reason"] == MANUAL.reason
    assert host["last_run"]["changed"] == 4
    assert host["last_run"]["converged"] is False
    assert host["missing_images"] == ["redis:7-alpine"]
    assert {t["name"] for t in host["timers"]} == {"ccci-reconcile.timer", "docker-prune.timer"}
    assert host["now"].startswith("2026-11-27T03:00:00")


def test_a_docker_io_policy_matches_the_hub_key_docker_login_writes() -> None:
    # `docker login` (no registry) keys Docker Hub as https://index.docker.io/v1/; a policy
    # says docker.io. Both are Docker Hub: the entry is found, no manual action.
    policy = daemon_policy("  registry_auth: {registry: docker.io, user: ci-bot}\n")
    config = parsed({"auths": {"https://index.docker.io/v1/": {"auth": blob("ci-bot")}}})
    (noop,) = outcomes(policy, with_config(config))
    assert isinstance(noop, Noop)
    assert noop.reason == "auth entry present (user ci-bot)"
