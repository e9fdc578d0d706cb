"""The inventory reads Ansible's YAML format and answers Ansible's host patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccci.config.inventory import Host, Inventory, load
from ccci.errors import InputError

INVENTORY = """\
all:
  vars:
    docker_data_root: /var/lib/docker
    level: all
    region: nowhere
    colour: grey
  hosts:
    bastion:
  children:
    ci:
      vars:
        level: ci
        colour: red
        ci_only: true
      children:
        eu:
          vars:
            level: eu
            region: eu
          hosts:
            cc-ci:
              level: host
              docker_host: unix:///run/ccci/docker.sock
            cc-ci-2:
        us:
          vars: {region: us}
          hosts:
            cc-us:
    staging:
      vars:
        colour: blue
        region: staging
      hosts:
        cc-ci-2:
        stage-1:
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return load(path)


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


def test_hosts_are_listed_in_the_order_they_first_appear(inventory: Inventory) -> None:
    assert list(inventory.hosts) == ["bastion", "cc-ci", "cc-ci-2", "cc-us", "stage-1"]


def test_host_vars_beat_child_group_vars_beat_parent_vars_beat_all(inventory: Inventory) -> None:
    assert inventory.hosts["cc-ci"].vars["level"] == "host"
    assert inventory.hosts["cc-ci-2"].vars["level"] == "eu"
    assert inventory.hosts["cc-us"].vars["level"] == "ci"
    assert inventory.hosts["bastion"].vars["level"] == "all"


def test_vars_are_inherited_from_every_ancestor(inventory: Inventory) -> None:
    cc_ci = inventory.hosts["cc-ci"].vars
    assert cc_ci["docker_data_root"] == "/var/lib/docker"
    assert cc_ci["ci_only"] is True
    assert cc_ci["region"] == "eu"
    assert cc_ci["docker_host"] == "unix:///run/ccci/docker.sock"
    assert "ci_only" not in inventory.hosts["bastion"].vars
    assert inventory.hosts["cc-us"].vars["region"] == "us"


def test_a_deeper_group_beats_a_shallower_one_whatever_the_file_order(
    inventory: Inventory,
) -> None:
    # cc-ci-2 is in eu (all > ci > eu, depth 2) and in staging (depth 1).
    assert inventory.hosts["cc-ci-2"].vars["region"] == "eu"


def test_groups_at_the_same_depth_merge_by_name(inventory: Inventory) -> None:
    # ci and staging are both depth 1; Ansible merges them alphabetically, so staging wins.
    assert inventory.hosts["cc-ci-2"].vars["colour"] == "blue"
    assert inventory.hosts["cc-ci"].vars["colour"] == "red"


def test_every_host_knows_its_inventory_hostname(inventory: Inventory) -> None:
    assert {h.name: h.vars["inventory_hostname"] for h in inventory.hosts.values()} == {
        n: n for n in inventory.hosts
    }


def test_a_host_belongs_to_its_group_and_every_ancestor(inventory: Inventory) -> None:
    assert set(inventory.hosts["cc-ci"].groups) == {"all", "ci", "eu"}
    assert set(inventory.hosts["cc-ci-2"].groups) == {"all", "ci", "eu", "staging"}
    assert set(inventory.hosts["bastion"].groups) == {"all"}
    assert inventory.groups["ci"] == ("cc-ci", "cc-ci-2", "cc-us")
    assert set(inventory.groups["all"]) == set(inventory.hosts)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", ["bastion", "cc-ci", "cc-ci-2", "cc-us", "stage-1"]),
        ("ci", ["cc-ci", "cc-ci-2", "cc-us"]),
        ("eu", ["cc-ci", "cc-ci-2"]),
        ("cc-us", ["cc-us"]),
        ("cc-*", ["cc-ci", "cc-ci-2", "cc-us"]),
        ("*-1", ["stage-1"]),
        ("eu:us", ["cc-ci", "cc-ci-2", "cc-us"]),
        ("eu:staging", ["cc-ci", "cc-ci-2", "stage-1"]),
        ("bastion,stage-1", ["bastion", "stage-1"]),
        ("all:!staging", ["bastion", "cc-ci", "cc-us"]),
        ("all:!ci:!bastion", ["stage-1"]),
        ("ci:&eu", ["cc-ci", "cc-ci-2"]),
        ("ci:&staging", ["cc-ci-2"]),
        ("ci:&staging:!cc-ci-2", []),
        ("~^cc-ci", ["cc-ci", "cc-ci-2"]),
        ("~us$", ["cc-us"]),
        ("nope", []),
    ],
)
def test_patterns_select_hosts_in_inventory_order(
    inventory: Inventory, pattern: str, expected: list[str]
) -> None:
    assert names(inventory.match(pattern)) == expected


def test_limit_without_a_pattern_is_every_host(inventory: Inventory) -> None:
    assert names(inventory.limit(None)) == list(inventory.hosts)


def test_limit_with_a_pattern_narrows(inventory: Inventory) -> None:
    assert names(inventory.limit("ci:!eu")) == ["cc-us"]


def test_a_limit_that_matches_nothing_is_an_error_not_a_quiet_noop(
    inventory: Inventory, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as caught:
        inventory.limit("cc-ci-3")
    assert str(caught.value) == f"{tmp_path / 'inventory.yaml'}: --limit 'cc-ci-3' matches no host"


def test_a_missing_inventory_file_means_localhost(tmp_path: Path) -> None:
    inventory = load(tmp_path / "no-such-inventory.yaml")
    assert list(inventory.hosts) == ["localhost"]
    assert inventory.hosts["localhost"].groups == ("all",)
    assert names(inventory.limit("all")) == ["localhost"]
    assert names(inventory.limit(None)) == ["localhost"]


def test_an_empty_inventory_file_means_localhost(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert list(load(path).hosts) == ["localhost"]


def test_an_unknown_group_key_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("all:\n  children:\n    ci:\n      host:\n        cc-ci:\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}:4: all.children.ci.host: unknown field (allowed: children, hosts, vars)"
    )


def test_an_inventory_must_start_at_all(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("ci:\n  hosts:\n    cc-ci:\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load(path)
    assert str(caught.value) == f"{path}:1: an inventory has one top-level key: all"


def test_the_shipped_inventory_puts_cc_ci_in_ci() -> None:
    inventory = load(Path(__file__).resolve().parents[2] / "inventory.yaml")
    assert names(inventory.match("ci")) == ["cc-ci"]
    assert inventory.hosts["cc-ci"].vars["docker_data_root"] == "/var/lib/docker"


# Ansible's own example ("Grouping groups"): east is defined with its hosts under all, and
# prod lists east as a child without repeating the hosts.
NESTED_BY_REFERENCE = """\
all:
  children:
    east:
      vars: {region: east}
      hosts:
        foo.example.com:
        one.example.com:
    west:
      hosts:
        bar.example.com:
    prod:
      vars: {env: prod, region: everywhere}
      children:
        east:
"""


def test_a_group_referenced_as_a_child_elsewhere_joins_that_parent(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(NESTED_BY_REFERENCE, encoding="utf-8")
    inventory = load(path)
    assert names(inventory.match("prod")) == ["foo.example.com", "one.example.com"]
    assert inventory.hosts["one.example.com"].vars["env"] == "prod"
    # east is deeper than prod (all > prod > east), so its region wins.
    assert inventory.hosts["one.example.com"].vars["region"] == "east"
