"""A TimerPolicy cannot inject into the units it renders, nor name units it must not touch.

Every value that reaches a unit file, a ``systemctl`` command line or a Nix string is
checked when the policy loads; a bad one is one located error (file:line: field), and
nothing is rendered. The few characters that stay meaningful inside a field are escaped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ccci.cli.main import cli
from ccci.config.inventory import Host, Inventory
from ccci.errors import InputError
from ccci.policy.load import load_for_hosts
from ccci.policy.model import OrphanStackPolicy, TimerPolicy
from ccci.systemd.units import parse_unit, render_timer_units
from ccci.systemd.values import nix_string, unit_value

HOST = Host("cc-ci", {"inventory_hostname": "cc-ci"}, ("all",))


def nightly_item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": "ccci-reconcile",
        "description": "ccci: reconcile this Docker CI host",
        "on_calendar": "daily",
        "randomized_delay": "15m",
        "exec": "/usr/local/bin/ccci reconcile --apply --yes",
        "working_directory": "/etc/ccci",
        "success_exit_status": "75",
        "after": "docker.service",
        "hardening": True,
        "read_write_paths": ["/var/lib/ccci"],
    }
    item.update(changes)
    return item


def timer_doc(present: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = dict(spec)
    if present is not None:
        body["present"] = present
    return {
        "apiVersion": "ccci/v1",
        "kind": "TimerPolicy",
        "metadata": {"name": "schedules"},
        "spec": body,
    }


def load(tmp_path: Path, *docs: dict[str, Any]) -> list[Any]:
    path = tmp_path / "policies" / "timers.yaml"
    path.parent.mkdir(exist_ok=True)
    # One key per line, double-quoted strings: every value's line is known and escapes hold.
    path.write_text(
        yaml.safe_dump_all(docs, sort_keys=False, default_style=None, width=10_000),
        encoding="utf-8",
    )
    inventory = Inventory(hosts={HOST.name: HOST}, groups={"all": (HOST.name,)})
    (target,) = load_for_hosts([path], inventory, [HOST])
    return list(target.policies)


def load_error(tmp_path: Path, *docs: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as caught:
        load(tmp_path, *docs)
    return caught.value


def line_of(tmp_path: Path, needle: str) -> int:
    """The line of a present entry's key (after ``present:``; the file is ccci's reading)."""
    text = (tmp_path / "policies" / "timers.yaml").read_text(encoding="utf-8")
    lines = text.split("\n")
    start = lines.index("  present:")
    (line,) = [i for i, line in enumerate(lines, 1) if i > start and needle in line]
    return line


INJECTIONS = {
    "newline": "\nExecStartPre=/bin/sh -c 'touch /pwned'",
    "carriage return": "\rExecStartPre=/bin/sh -c 'touch /pwned'",
    "next line U+0085": "\x85ExecStartPre=/bin/sh",
    "line separator U+2028": "\u2028ExecStartPre=/bin/sh",
    "escape": "\x1b[2J",
}
TEXT_FIELDS = {
    "name": "ccci-reconcile",
    "description": "ccci nightly",
    "on_calendar": "daily",
    "exec": "/usr/local/bin/ccci reconcile",
    "success_exit_status": "75",
    "after": "docker.service",
    "working_directory": "/etc/ccci",
    "randomized_delay": "15m",
}


@pytest.mark.parametrize("injection", list(INJECTIONS), ids=list(INJECTIONS))
@pytest.mark.parametrize("field", list(TEXT_FIELDS))
def test_an_injected_line_break_in_any_unit_field_is_a_located_error(
    tmp_path: Path, field: str, injection: str
) -> None:
    item = nightly_item(**{field: TEXT_FIELDS[field] + INJECTIONS[injection]})
    error = load_error(tmp_path, timer_doc([item]))
    where = f"{tmp_path / 'policies' / 'timers.yaml'}:{line_of(tmp_path, f'{field}:')}"
    assert str(error).startswith(f"{where}: spec.present[0].{field}"), str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("injection", list(INJECTIONS), ids=list(INJECTIONS))
def test_an_injected_line_break_in_a_writable_path_is_a_located_error(
    tmp_path: Path, injection: str
) -> None:
    item = nightly_item(read_write_paths=["/var/lib/ccci", "/srv" + INJECTIONS[injection]])
    error = load_error(tmp_path, timer_doc([item]))
    assert ": spec.present[0].read_write_paths[1]" in str(error), str(error)


@pytest.mark.parametrize("injection", list(INJECTIONS), ids=list(INJECTIONS))
def test_an_injected_line_break_in_the_unit_dir_or_an_absent_name_is_a_located_error(
    tmp_path: Path, injection: str
) -> None:
    bad_dir = load_error(
        tmp_path, timer_doc([nightly_item()], unit_dir="/etc/systemd" + INJECTIONS[injection])
    )
    assert ": spec.unit_dir" in str(bad_dir), str(bad_dir)
    bad_absent = load_error(tmp_path, timer_doc(absent=["x.timer" + INJECTIONS[injection]]))
    assert ": spec.absent[0]" in str(bad_absent), str(bad_absent)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("name", "docker", "would replace docker.service, which runs the Docker engine"),
        ("name", "containerd", "would replace containerd.service"),
        ("name", "-H", "'-H'"),  # the schema's pattern already refuses these two
        ("name", "backup.service", "give the base name"),
        ("name", "a/b", "'a/b'"),
        ("exec", "+/bin/sh -c id", "a systemd prefix that changes how the command runs"),
        ("exec", "/bin/true \\", "ends in a backslash"),
        ("description", "nightly \\", "ends in a backslash"),
        ("after", "docker.service -x", "'-x' starts with '-'"),
        ("after", "docker", "is not a systemd unit name"),
        ("on_calendar", "daily; rm -rf /", "is not a systemd calendar spec"),
        ("success_exit_status", "75 256", "'256' is not an exit code"),
        ("success_exit_status", "75 $(id)", "is not an exit code"),
        ("working_directory", "/etc/my ccci", "holds whitespace"),
        ("working_directory", "/etc/../root", "has a . or .. component"),
    ],
)
def test_a_value_its_field_cannot_hold_is_a_located_error(
    tmp_path: Path, field: str, value: str, says: str
) -> None:
    error = load_error(tmp_path, timer_doc([nightly_item(**{field: value})]))
    assert f": spec.present[0].{field}: " in str(error), str(error)
    assert says in str(error)


def test_a_timer_named_docker_is_refused(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, timer_doc([{"name": "docker", "on_calendar": "daily", "exec": "/bin/true"}])
    )
    assert str(error).endswith(
        "spec.present[0].name: 'docker' would replace docker.service, which runs the Docker engine"
    )


@pytest.mark.parametrize("unit", ["docker.service", "docker.socket", "containerd.service", "ssh"])
def test_absent_masks_timers_only(tmp_path: Path, unit: str) -> None:
    if unit == "ssh":  # no suffix: ssh.timer is meant, which is a timer
        (policy,) = load(tmp_path, timer_doc(absent=[unit]))
        assert isinstance(policy, TimerPolicy)
        assert [name for name, _ in policy.absent] == ["ssh.timer"]
        return
    error = load_error(tmp_path, timer_doc(absent=[unit]))
    assert ": spec.absent[0]: " in str(error)
    assert "absent masks timers only" in str(error)


def test_an_absent_name_starting_with_a_dash_is_refused(tmp_path: Path) -> None:
    error = load_error(tmp_path, timer_doc(absent=["--now.timer"]))
    assert ": spec.absent[0]" in str(error)


def test_percent_is_doubled_where_systemd_would_expand_it(tmp_path: Path) -> None:
    item = nightly_item(
        description="100% sure %n",
        exec="/usr/bin/date +%Y-%m-%d",
        working_directory="/srv/%h",
        read_write_paths=["/srv/%i"],
    )
    (policy,) = load(tmp_path, timer_doc([item]))
    assert isinstance(policy, TimerPolicy)
    service = parse_unit(policy.present[0].service_unit)
    assert service[("Unit", "Description")] == ("100%% sure %%n",)
    assert service[("Service", "ExecStart")] == ("/usr/bin/date +%%Y-%%m-%%d",)
    assert service[("Service", "WorkingDirectory")] == ("/srv/%%h",)
    assert service[("Service", "ReadWritePaths")] == ("-/srv/%%i",)
    timer = parse_unit(policy.present[0].timer_unit)
    assert timer[("Unit", "Description")] == ("100%% sure %%n",)


def test_every_rendered_setting_is_the_one_the_policy_gave() -> None:
    """The rendered unit reads back as exactly the settings of the template: nothing more."""
    from ccci.policy.build import timer_values

    units = render_timer_units(timer_values(nightly_item(), "schedules"))
    assert set(parse_unit(units.service)) == {
        ("Unit", "Description"),
        ("Unit", "After"),
        ("Unit", "Wants"),
        ("Service", "Type"),
        ("Service", "ExecStart"),
        ("Service", "WorkingDirectory"),
        ("Service", "SuccessExitStatus"),
        *{
            ("Service", key)
            for key in (
                "PrivateTmp",
                "ProtectSystem",
                "ProtectHome",
                "ProtectKernelTunables",
                "ProtectKernelModules",
                "ProtectControlGroups",
                "NoNewPrivileges",
                "RestrictSUIDSGID",
                "LockPersonality",
                "ReadWritePaths",
            )
        },
    }


@pytest.mark.parametrize(
    ("text", "nix"),
    [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("${pkgs.evil}", '"\\${pkgs.evil}"'),
        ("$${x}", '"$\\${x}"'),
        ("\\${x}", '"\\\\\\${x}"'),
    ],
)
def test_nix_strings_escape_quotes_backslashes_and_interpolation(text: str, nix: str) -> None:
    assert nix_string(text) == nix


def test_unit_values_double_percent_and_nothing_else() -> None:
    assert unit_value("50% of %h and %%") == "50%% of %%h and %%%%"


# ---- the nightly's writable paths -------------------------------------------------------

ORPHANS: dict[str, Any] = {
    "apiVersion": "ccci/v1",
    "kind": "OrphanStackPolicy",
    "metadata": {"name": "reap-killed-runs"},
    "spec": {
        "run_apps": {"match": "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"},
        "orphan_after": "6h",
        "reap": ["services", "secrets", "configs", "networks", "volumes", "env_file"],
        "env_file": "/root/.abra/servers/{server}/{domain}.env",
    },
}


def test_a_timer_that_runs_ccci_may_write_where_its_policies_reap_env_files(
    tmp_path: Path,
) -> None:
    item = nightly_item(runs_ccci=True)
    policies = load(tmp_path, timer_doc([item], absent=["docker-prune.timer"]), ORPHANS)
    (timers,) = [p for p in policies if isinstance(p, TimerPolicy)]
    assert any(isinstance(p, OrphanStackPolicy) for p in policies)
    service = parse_unit(timers.present[0].service_unit)
    assert service[("Service", "ReadWritePaths")] == (
        "-/etc/systemd/system",
        "-/root/.abra/servers",
        "-/var/lib/ccci",
    )
    assert service[("Service", "ProtectHome")] == ("read-only",)


def test_a_timer_that_does_not_run_ccci_keeps_the_paths_it_lists(tmp_path: Path) -> None:
    policies = load(tmp_path, timer_doc([nightly_item()]), ORPHANS)
    (timers,) = [p for p in policies if isinstance(p, TimerPolicy)]
    service = parse_unit(timers.present[0].service_unit)
    assert service[("Service", "ReadWritePaths")] == ("-/var/lib/ccci",)


# ---- ccci systemd install ---------------------------------------------------------------


def install(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        cli,
        ["systemd", "install", "--working-directory", str(tmp_path), *args],
        catch_exceptions=False,
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--on-calendar", "daily\nExecStartPre=/bin/sh"),
        ("--on-calendar", "daily\r"),
        ("--randomized-delay", "15m\nUser=nobody"),
        ("--state-dir", "/var/lib/ccci\nExecStartPre=/bin/sh"),
        ("--unit-dir", "/etc/systemd/system\nX=1"),
    ],
)
@pytest.mark.parametrize("fmt", ["unit", "nix"])
def test_systemd_install_refuses_an_option_that_would_inject(
    tmp_path: Path, option: str, value: str, fmt: str
) -> None:
    result = install(tmp_path, "--print", "--format", fmt, option, value)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""  # nothing rendered
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("ccci: ccci systemd install: --"), line
    assert "holds a newline" in line or "holds a carriage return" in line, line


def test_systemd_install_refuses_a_working_directory_with_a_newline(tmp_path: Path) -> None:
    bad = tmp_path / "etc\nExecStartPre=x"
    bad.mkdir()
    result = CliRunner().invoke(
        cli, ["systemd", "install", "--print", "--working-directory", str(bad)]
    )
    assert result.exit_code == 1
    assert "--working-directory" in result.output
    assert "[Service]" not in result.output


def test_systemd_install_derives_writable_paths_from_the_working_directorys_policies(
    tmp_path: Path,
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "orphans.yaml").write_text(json.dumps(ORPHANS), encoding="utf-8")
    printed = install(tmp_path, "--print").output
    lines = printed.splitlines()
    assert [line for line in lines if line.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=-/etc/systemd/system",
        "ReadWritePaths=-/root/.abra/servers",
        "ReadWritePaths=-/var/lib/ccci",
    ]
    nix = install(tmp_path, "--format", "nix").output
    assert 'ReadWritePaths = [ "-/root/.abra/servers" "-/var/lib/ccci" ];' in nix
    assert "/etc/systemd/system" not in nix


def test_systemd_install_without_policies_says_what_it_cannot_know(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["systemd", "install", "--print", "--working-directory", str(tmp_path)]
    )
    assert result.exit_code == 0
    assert f"no policies at {tmp_path / 'policies'}" in result.stderr


def test_a_state_dir_that_is_not_the_default_is_the_one_the_nightly_uses(tmp_path: Path) -> None:
    printed = install(tmp_path, "--print", "--state-dir", "/srv/ccci-state").output
    (exec_line,) = [line for line in printed.splitlines() if line.startswith("ExecStart=")]
    assert exec_line.endswith("reconcile --apply --yes --state-dir /srv/ccci-state")
    assert "ReadWritePaths=-/srv/ccci-state" in printed.splitlines()


# ---- the NixOS module -------------------------------------------------------------------


def test_the_nix_module_is_written_as_nixos_modules_are(tmp_path: Path) -> None:
    nix = install(tmp_path, "--format", "nix").output
    for expected in (
        "{ config, lib, pkgs, ... }:",
        'options.services.ccci.package = lib.mkPackageOption pkgs "ccci" { };',
        "virtualisation.docker.autoPrune.enable = lib.mkForce false;",
        "restartIfChanged = false;",
        "unitConfig.X-StopOnRemoval = false;",
        'startAt = "daily";',
        "SuccessExitStatus = [ 75 ];",
        'ExecStart = "${cfg.package}/bin/ccci reconcile --apply --yes";',
        'systemd.timers."ccci-reconcile".timerConfig = {',
    ):
        assert expected in nix, expected
    assert "/usr/local/bin" not in nix


def test_a_policy_name_with_a_trailing_newline_cannot_reach_the_unit_header(
    tmp_path: Path,
) -> None:
    doc = timer_doc([nightly_item()])
    doc["metadata"]["name"] = "schedules\n"
    error = load_error(tmp_path, doc)
    assert ": metadata.name" in str(error), str(error)


@pytest.mark.parametrize(
    ("pattern", "folder"),
    [
        ("/root/.abra/servers/*/*.env", "/root/.abra/servers"),
        ("/root/.abra/servers/default/*.env", "/root/.abra/servers/default"),
        ("/srv/abra/servers/[[]x]/*.env", "/srv/abra/servers"),
        ("/srv//abra/./servers/*/*.env", "/srv/abra/servers"),
        ("/*/*.env", "/"),
    ],
)
def test_the_folder_above_every_env_file_is_the_patterns_fixed_part(
    pattern: str, folder: str
) -> None:
    from ccci.systemd.sandbox import fixed_folder

    assert fixed_folder(pattern) == folder


def test_env_files_anywhere_under_root_cannot_be_sandboxed(tmp_path: Path) -> None:
    orphans = {**ORPHANS, "spec": {**ORPHANS["spec"], "env_file": "/{server}/{domain}.env"}}
    error = load_error(tmp_path, timer_doc([nightly_item(runs_ccci=True)]), orphans)
    assert "env_file: the nightly's sandbox cannot hold it" in str(error), str(error)
    assert "would leave all of it writable" in str(error)


@pytest.mark.parametrize("kind", ["hand-written", "mask"])
def test_systemd_install_does_not_write_over_a_unit_ccci_did_not_write(
    tmp_path: Path, kind: str
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    theirs = units / "ccci-reconcile.service"
    if kind == "mask":
        theirs.symlink_to("/dev/null")
    else:
        theirs.write_text("[Service]\nExecStart=/usr/local/bin/their-own\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "systemd", "install", "--working-directory", str(tmp_path),
            "--unit-dir", str(units), "--state-dir", str(tmp_path / "state"),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ccci: {theirs} is "), line
    assert line.endswith("nothing was written"), line
    assert sorted(p.name for p in units.iterdir()) == ["ccci-reconcile.service"]
    assert not (tmp_path / "state").exists()
    if kind == "hand-written":
        assert "their-own" in theirs.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ('/bin/echo "', "an unclosed quote"),
        ("/bin/echo 'x'y", "a quote that does not end its word"),
        ('/bin/echo a"b"', "a quote inside a word"),
        ("/bin/echo ; /bin/rm -rf /srv", "a lone ';' (a second command)"),
        ("/bin/echo a\\nb", "a backslash"),
    ],
)
def test_an_exec_line_systemd_would_split_otherwise_is_refused(command: str, why: str) -> None:
    # Found by the systemd fuzz test: an unclosed quote made systemd drop the whole unit.
    from ccci.systemd.values import check_exec

    with pytest.raises(ValueError, match=re.escape(why)):
        check_exec(command)
    assert check_exec('/bin/echo "a b" ";" a;b') == '/bin/echo "a b" ";" a;b'
