"""No value escapes its field: units and NixOS modules rendered from arbitrary strings, read back.

Each string either is refused when the policy loads (a FieldError naming its field) or lands
in exactly its own setting, escaped: the unit has the template's settings and no other, and
the Nix module evaluates back to the very string (``nix-instantiate`` from Debian's
``nix-bin``, which the harness installs when missing; the real systemd reading of the same
units is in tests/systemd/test_unit_fuzz_systemd.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccci.policy.build import timer_values
from ccci.systemd.install import nightly_values
from ccci.systemd.units import render_nixos_module, render_timer_units
from ccci.systemd.values import FieldError, check_timer, unit_value
from harness.nix import parse as nix_parse
from tests.unit.nixkit import evaluate_module, require_nix_instantiate

# Surrogates: not text that can be written out as UTF-8.
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
# Text with everything in it: line breaks of every kind, quotes, backslashes, %, ${.
ANY_TEXT = st.lists(
    st.one_of(
        st.characters(blacklist_categories=SURROGATES),
        st.sampled_from(["\n", "\r", "\\", '"', "'", "%", "$", "{", "}", "=", "[", "]", ";", "#"]),
        st.sampled_from(["${", "$${", "''", "%n", " \\", "\n[Service]\nExecStartPre=/x"]),
    ),
    max_size=30,
).map("".join)
FIELDS = ("description", "exec", "on_calendar", "after", "working_directory", "success_exit_status")
BASE = {
    "name": "ccci-fuzz",
    "description": "fuzz",
    "on_calendar": "daily",
    "exec": "/bin/true",
    "after": "docker.service",
    "working_directory": "/etc/ccci",
    "success_exit_status": "75",
    "randomized_delay": "15m",
    "hardening": True,
    "read_write_paths": ["/var/lib/ccci"],
}
# Which unit setting (of which file) each field becomes.
SETTING = {
    "description": ("service", "Unit", "Description"),
    "exec": ("service", "Service", "ExecStart"),
    "on_calendar": ("timer", "Timer", "OnCalendar"),
    "after": ("service", "Unit", "After"),
    "working_directory": ("service", "Service", "WorkingDirectory"),
    "success_exit_status": ("service", "Service", "SuccessExitStatus"),
}


def raw_settings(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting line, read as systemd does: lines split at
    newlines only, comments and blank lines skipped; anything else must be a setting."""
    found = []
    section = ""
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        assert not stripped.endswith("\\"), f"a continued line: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"a line that is not a setting: {line!r}"
        found.append((section, key, value))
    return found


BASELINE = render_timer_units(timer_values(BASE, "fuzz"))
BASE_KEYS = {
    "service": [(s, k) for s, k, _ in raw_settings(BASELINE.service)],
    "timer": [(s, k) for s, k, _ in raw_settings(BASELINE.timer)],
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), text=ANY_TEXT)
def test_any_string_in_a_unit_field_is_refused_or_stays_in_that_field(
    field: str, text: str
) -> None:
    assume(text != "")  # an empty optional value means the template's default
    item = {**BASE, field: text}
    try:
        check_timer(item)
    except FieldError as exc:
        assert exc.field == (field,)
        return
    units = render_timer_units(timer_values(item, "fuzz"))
    for which in ("service", "timer"):
        settings_ = raw_settings(getattr(units, which))
        assert [(s, k) for s, k, _ in settings_] == BASE_KEYS[which]
    which, section, key = SETTING[field]
    values = {(s, k): v for s, k, v in raw_settings(getattr(units, which))}
    expected = unit_value(text) if field in ("description", "exec", "working_directory") else text
    assert values[(section, key)] == expected


@settings(max_examples=100)
@given(path=ANY_TEXT)
def test_any_string_as_a_writable_path_is_refused_or_is_one_path(path: str) -> None:
    item = {**BASE, "read_write_paths": ["/" + path]}
    try:
        check_timer(item)
    except FieldError as exc:
        assert exc.field == ("read_write_paths", 0)
        return
    units = render_timer_units(timer_values(item, "fuzz"))
    paths = [v for s, k, v in raw_settings(units.service) if k == "ReadWritePaths"]
    assert paths == ["-" + unit_value("/" + path)]
    assert len(paths[0].split()) == 1  # systemd splits the list at whitespace


# ---- NixOS modules ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nix() -> str:
    return require_nix_instantiate()


def module_values(**changes: Any) -> dict[str, Any]:
    values = nightly_values(Path("/etc/ccci"), "daily", "15m", Path("/var/lib/ccci"))
    values.update(changes)
    return values


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    description=ANY_TEXT.filter(lambda t: "\x00" not in t),
    where=ANY_TEXT.filter(lambda t: "\x00" not in t),
    args=ANY_TEXT.filter(lambda t: "\x00" not in t),
    calendar=ANY_TEXT.filter(lambda t: "\x00" not in t),
)
def test_any_string_in_a_nix_module_evaluates_back_to_itself(
    nix: str, tmp_path: Path, description: str, where: str, args: str, calendar: str
) -> None:
    """Unchecked values on purpose: the Nix escaping alone keeps each in its string."""
    values = module_values(
        description=description,
        working_directory="/" + where,
        on_calendar=calendar,
        read_write_paths=["/" + where],
    )
    module = render_nixos_module(values, args)
    assert nix_parse(nix, module).returncode == 0, module
    config = evaluate_module(nix, module, tmp_path)["config"]
    service = config["systemd"]["services"]["ccci-reconcile"]
    assert service["description"] == unit_value(description)
    assert service["startAt"] == calendar
    assert service["serviceConfig"]["WorkingDirectory"] == unit_value("/" + where)
    assert service["serviceConfig"]["ExecStart"] == (
        "/nix/store/stub-ccci/bin/ccci " + unit_value(args)
    )
    assert service["serviceConfig"]["ReadWritePaths"] == [unit_value("-/" + where)]
    assert config["virtualisation"]["docker"]["autoPrune"]["enable"] == {"_forced": False}


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "nix"],
        ["--format", "nix", "--state-dir", "/srv/ccci"],
        ["--format", "nix", "--on-calendar", "*-*-* 03:00:00", "--randomized-delay", "1h"],
        ["--format", "nix", "--working-directory", "/etc/ccci"],
    ],
)
def test_every_generated_nix_module_parses_and_evaluates(
    nix: str, tmp_path: Path, args: list[str]
) -> None:
    from click.testing import CliRunner

    from ccci.cli.main import cli

    if "--working-directory" not in args:
        args = [*args, "--working-directory", str(tmp_path)]
    result = CliRunner().invoke(cli, ["systemd", "install", *args])
    assert result.exit_code == 0, result.output
    module = result.stdout
    parsed = nix_parse(nix, module)
    assert parsed.returncode == 0, parsed.stderr
    config = evaluate_module(nix, module, tmp_path)["config"]
    service = config["systemd"]["services"]["ccci-reconcile"]
    assert service["restartIfChanged"] is False
    assert service["unitConfig"] == {"X-StopOnRemoval": False}
    assert service["serviceConfig"]["SuccessExitStatus"] == [75]
    assert service["serviceConfig"]["ExecStart"].startswith("/nix/store/stub-ccci/bin/ccci ")
    assert config["systemd"]["timers"]["ccci-reconcile"]["timerConfig"]["Persistent"] is True
