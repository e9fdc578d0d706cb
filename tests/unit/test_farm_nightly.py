"""A farm's nightly: ``ccci systemd install --scope/--limit/--forks/-c`` render into the
unit's ExecStart and the NixOS module, checked like every other option; and what
``reconcile --scope node|cluster|all`` plans (from a snapshot, no engine)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ccci.cli.main import cli
from ccci.facts.model import Facts
from ccci.policy.workscope import kinds_for
from ccci.serde import to_jsonable
from harness.nix import parse as nix_parse
from tests.unit.nixkit import evaluate_module, require_nix_instantiate

FARM = """\
all:
  children:
    managers:
      hosts:
        localhost: {}
    workers:
      vars: {ansible_connection: ssh, ansible_user: root}
      hosts:
        ci-2: {ansible_host: 10.0.0.2}
        ci-3: {ansible_host: 10.0.0.3}
"""
ONE_HOST = "all:\n  hosts:\n    localhost: {}\n"


def install(where: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["systemd", "install", "--working-directory", str(where), *args])


def exec_line(printed: str) -> str:
    (line,) = [ln for ln in printed.splitlines() if ln.startswith("ExecStart=")]
    return line


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yaml").write_text(FARM, encoding="utf-8")
    return tmp_path


def test_the_default_nightly_reconciles_every_host_of_the_inventory_as_it_always_did(
    farm: Path,
) -> None:
    done = install(farm, "--print")
    assert done.exit_code == 0, done.output
    assert exec_line(done.stdout).endswith(" reconcile --apply --yes")
    # The operator is told which hosts one run reaches, and how.
    assert "note: the nightly reconciles localhost (local), ci-2 (ssh), ci-3 (ssh)" in done.stderr


def test_a_node_oneshot_passes_its_scope_on_to_reconcile(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text(ONE_HOST, encoding="utf-8")
    done = install(tmp_path, "--print", "--scope", "node")
    assert done.exit_code == 0, done.output
    assert exec_line(done.stdout).endswith(" reconcile --apply --yes --scope node")
    assert "the nightly reconciles" not in done.stderr  # one local host: nothing to tell


def test_one_manager_driving_the_farm_renders_limit_forks_and_connection(farm: Path) -> None:
    done = install(
        farm, "--print", "--limit", "all:!ci-3", "--forks", "10", "-c", "ssh",
        "--state-dir", "/srv/ccci",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert exec_line(done.stdout).endswith(
        " reconcile --apply --yes --limit all:!ci-3 --forks 10 --connection ssh "
        "--state-dir /srv/ccci"
    )
    assert "note: the nightly reconciles localhost (local), ci-2 (ssh)\n" in done.stderr


def test_reconciles_own_default_forks_are_not_written_into_the_unit(farm: Path) -> None:
    done = install(farm, "--print", "--forks", "5")
    assert "--forks" not in exec_line(done.stdout)


@pytest.mark.parametrize(
    "pattern",
    ["ci $HOME", "ci%n", "ci'", 'ci"x', "ci\\x", "-oProxyCommand=x", "ci;x y", "ci\nx"],
)
@pytest.mark.parametrize("fmt", ["unit", "nix"])
def test_a_limit_the_unit_would_not_pass_on_as_written_is_refused(
    farm: Path, pattern: str, fmt: str
) -> None:
    done = install(farm, "--print", "--format", fmt, "--limit", pattern)
    assert done.exit_code == 1
    assert done.stdout == ""  # nothing rendered
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("ccci: ccci systemd install: --limit: "), line


def test_a_limit_that_matches_no_host_is_refused_at_install_not_on_the_first_night(
    farm: Path,
) -> None:
    done = install(farm, "--print", "--limit", "ci-9")
    assert done.exit_code == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].endswith("--limit 'ci-9' matches no host")


def test_a_scope_that_reconcile_does_not_know_is_refused(farm: Path) -> None:
    done = install(farm, "--print", "--scope", "workers")
    assert done.exit_code == 2
    assert done.stdout == ""


def test_the_nix_module_carries_the_farm_options_and_openssh_when_hosts_are_remote(
    farm: Path, tmp_path: Path
) -> None:
    nix = install(farm, "--format", "nix", "--forks", "3").stdout
    assert 'ExecStart = "${cfg.package}/bin/ccci reconcile --apply --yes --forks 3";' in nix
    assert "path = [ pkgs.openssh ];" in nix
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "inventory.yaml").write_text(ONE_HOST, encoding="utf-8")
    local = install(alone, "--format", "nix", "--scope", "node").stdout
    assert 'ExecStart = "${cfg.package}/bin/ccci reconcile --apply --yes --scope node";' in local
    assert "openssh" not in local


@pytest.fixture(scope="module")
def nix() -> str:
    return require_nix_instantiate()


# A remote host puts OpenSSH on the unit's PATH: the stand-in pkgs gives it a store path.
STUB_OPENSSH = '{ openssh = "/nix/store/stub-openssh"; }'


def test_the_farm_nix_module_parses_and_evaluates_to_the_options_given(
    nix: str, farm: Path, tmp_path: Path
) -> None:
    module = install(farm, "--format", "nix", "--limit", "workers:!ci-3", "-f", "2").stdout
    assert nix_parse(nix, module).returncode == 0, module
    evaluated = evaluate_module(nix, module, tmp_path, pkgs=STUB_OPENSSH)
    service = evaluated["config"]["systemd"]["services"]["ccci-reconcile"]
    assert service["path"] == ["/nix/store/stub-openssh"]
    assert service["serviceConfig"]["ExecStart"] == (
        "/nix/store/stub-ccci/bin/ccci reconcile --apply --yes --limit workers:!ci-3 --forks 2"
    )


# ---- what each scope plans --------------------------------------------------------------

NOW = "2026-11-27T03:00:00Z"
STACK = "redi-3fa9c1_ci_example_org"
POLICIES = """\
apiVersion: ccci/v1
kind: StackSelector
metadata: {name: run-apps}
spec:
  match: '^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_'
---
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {name: reap-killed-runs}
spec:
  run_apps: {selector: run-apps}
  orphan_after: 3h
  reap: [services, volumes]
---
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: ci-docker-prune}
spec:
  gates:
    disk_usage: {path: /var/lib/docker, at_least: 80%}
  prune:
    dangling_images: {older_than: 24h}
"""
LEFTOVER = "sha256:" + "a1" * 32


def snapshot() -> dict[str, Any]:
    """A manager with a killed run's stack (cluster work) and a leftover image (node work)."""
    stack = {"com.docker.stack.namespace": STACK}
    facts = Facts.from_dict(
        {
            "host": "localhost",
            "gathered_at": NOW,
            "daemon": {
                "name": "localhost", "server_version": "26.1.5", "api_version": "1.45",
                "data_root": "/var/lib/docker", "storage_driver": "overlay2",
                "swarm_state": "active", "swarm_manager": True,
            },
            "disks": [{"path": "/var/lib/docker", "total": 100, "used": 85, "available": 15}],
            "images": [
                {"id": LEFTOVER, "tags": [], "digests": [], "created": "2026-11-24T03:00:00Z",
                 "size": 41000000},
            ],
            "services": [
                {"id": "aaaa00000000000000000001", "name": f"{STACK}_app",
                 "image": "redis:7-alpine", "labels": stack,
                 "created": "2026-11-26T20:00:00Z", "updated": "2026-11-26T20:00:00Z"},
            ],
            "volumes": [
                {"name": f"{STACK}_data", "driver": "local", "labels": stack,
                 "created": "2026-11-26T20:00:00Z"},
            ],
        }
    )  # fmt: skip
    return {"format_version": 1, "hosts": {"localhost": to_jsonable(facts)}}


def planned(tmp_path: Path, *args: str) -> list[str]:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "ci.yaml").write_text(POLICIES, encoding="utf-8")
    (tmp_path / "snap.json").write_text(json.dumps(snapshot()), encoding="utf-8")
    with contextlib.chdir(tmp_path):
        done = CliRunner().invoke(
            cli,
            ["reconcile", "--plan", "--facts", "snap.json", "--now", NOW, "-o", "json", *args],
            catch_exceptions=False,
        )
    assert done.exit_code == 0, done.output
    (host,) = json.loads(done.stdout)["hosts"]
    return sorted(c["address"] for c in host["changes"])


def test_a_run_of_every_scope_reaps_the_orphan_and_prunes_the_leftover(tmp_path: Path) -> None:
    assert planned(tmp_path) == [f"image:{LEFTOVER}", f"stack:{STACK}"]
    assert planned(tmp_path, "--scope", "all") == planned(tmp_path)


def test_a_node_scoped_run_never_plans_a_cluster_object(tmp_path: Path) -> None:
    assert planned(tmp_path, "--scope", "node") == [f"image:{LEFTOVER}"]


def test_a_cluster_scoped_run_plans_the_orphan_stack_alone(tmp_path: Path) -> None:
    assert planned(tmp_path, "--scope", "cluster") == [f"stack:{STACK}"]


def test_the_scopes_split_the_policy_kinds_with_the_selector_on_both_sides() -> None:
    from ccci.policy.build import BUILDERS

    node, cluster = kinds_for("node"), kinds_for("cluster")
    assert kinds_for("all") is None
    assert node is not None and cluster is not None
    assert node | cluster == frozenset(BUILDERS)
    assert node & cluster == {"StackSelector"}
    assert "OrphanStackPolicy" not in node
