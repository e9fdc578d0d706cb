"""ccci.facts.stacks, the one owner of "what belongs to stack X", and the connector's reading
of abra's env files (only DOMAIN and STACK_NAME, with a size cap)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ccci.connectors.local import LocalConnector
from ccci.facts.model import FileFact, SwarmObject
from ccci.facts.stacks import (
    ENV_READ_LIMIT,
    abra_stack_name,
    env_file_owner,
    parse_env_keys,
    run_app_secrets,
    secret_candidates,
    unsafe_name,
)

WHEN = datetime(2026, 11, 27, tzinfo=UTC)
ANCHORED = re.compile(r"^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_example_org$")
PREFIX = re.compile(r"^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_")


def secret(name: str) -> SwarmObject:
    return SwarmObject(id=f"id-{name}", name=name, labels={}, created=WHEN)


def test_abras_stack_name_turns_dots_into_underscores() -> None:
    assert abra_stack_name("redi-3fa9c1.ci.example.org") == "redi-3fa9c1_ci_example_org"


def test_abras_stack_name_is_cut_to_45_bytes() -> None:
    name = abra_stack_name("boar-5f5f5f.ci.a-rather-long-continuous-integration.example.org")
    assert name == "boar-5f5f5f_ci_a-rather-long-continuous-integ"
    assert len(name.encode()) == 45


def test_only_domain_and_stack_name_are_read_from_an_env_file() -> None:
    text = (
        "TYPE=notes\n"
        "# DOMAIN=commented.example.org\n"
        "DOMAIN=note-1a2b3c.ci.example.org  # the app\n"
        "export STACK_NAME='note-1a2b3c_custom'\n"
        "SECRET_DB_PASSWORD_VERSION=v1\n"
        "ADMIN_PASSWORD=hunter2\n"
    )
    assert parse_env_keys(text) == {
        "DOMAIN": "note-1a2b3c.ci.example.org",
        "STACK_NAME": "note-1a2b3c_custom",
    }


def test_the_last_assignment_of_a_key_wins_and_quotes_are_removed() -> None:
    text = 'DOMAIN=a.example.org\nDOMAIN="b.example.org"\n'
    assert parse_env_keys(text) == {"DOMAIN": "b.example.org"}


def test_an_env_files_own_stack_name_decides_its_stack() -> None:
    file = FileFact("/a/servers/default/x.example.org.env", True, stack_name="custom_stack")
    assert env_file_owner(file).stack == "custom_stack"


def test_without_stack_name_the_file_name_decides_as_abra_shortens_it() -> None:
    path = "/a/servers/default/boar-5f5f5f.ci.a-rather-long-continuous-integration.example.org.env"
    owner = env_file_owner(FileFact(path, True))
    assert owner.stack == "boar-5f5f5f_ci_a-rather-long-continuous-integ"


def test_a_domain_naming_another_app_than_the_file_makes_the_owner_undecidable() -> None:
    file = FileFact("/a/servers/default/x.example.org.env", True, domain="y.example.org")
    owner = env_file_owner(file)
    assert owner.stack == ""
    assert owner.why == "its DOMAIN='y.example.org' names another app than its file name " + (
        "'x.example.org'"
    )


def test_an_unread_env_file_has_no_owner() -> None:
    owner = env_file_owner(FileFact("/a/x.env", True, error="larger than 64 KiB"))
    assert (owner.stack, owner.why) == ("", "cannot read it (larger than 64 KiB)")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "it is empty"),
        ("a_/../../etc", "it holds a path separator"),
        ("a\\b", "it holds a path separator"),
        ("a_..", "it holds '..'"),
        ("a\x00b", "it holds a NUL"),
        ("a\nb", "it holds the control character U+000A"),
        ("a\u202eb", "it holds the control character U+202E"),
    ],
)
def test_a_stack_name_that_could_leave_a_folder_or_fake_output_is_unsafe(
    name: str, why: str
) -> None:
    assert unsafe_name(name) == why


def test_a_plain_stack_name_is_safe() -> None:
    assert unsafe_name("redi-3fa9c1_ci_example_org") == ""


def test_an_anchored_pattern_gives_a_secret_one_candidate_stack() -> None:
    found = secret_candidates("note-1a2b3c_ci_example_org_db_password_v1", ANCHORED)
    assert found == ("note-1a2b3c_ci_example_org",)


def test_a_prefix_pattern_gives_a_secret_every_prefix_that_leaves_a_name_and_version() -> None:
    found = secret_candidates("note-1a2b3c_ci_example_org_db_password_v1", PREFIX)
    assert found == (
        "note-1a2b3c_ci_example",
        "note-1a2b3c_ci_example_org",
        "note-1a2b3c_ci_example_org_db",
    )


def test_a_known_stack_settles_its_secrets_before_any_pattern_is_asked() -> None:
    learnt, ambiguous = run_app_secrets(
        [secret("note-1a2b3c_ci_example_org_db_password_v1")],
        {"note-1a2b3c_ci_example_org"},
        PREFIX,
    )
    assert (learnt, ambiguous) == (frozenset(), {})


def test_secrets_no_stack_owns_are_learnt_or_reported_ambiguous() -> None:
    learnt, ambiguous = run_app_secrets(
        [secret("note-1a2b3c_ci_example_org_db_password_v1"), secret("traefik_ssl_cert_v1")],
        set(),
        ANCHORED,
    )
    assert (learnt, ambiguous) == (frozenset({"note-1a2b3c_ci_example_org"}), {})
    _, ambiguous = run_app_secrets(
        [secret("note-1a2b3c_ci_example_org_db_password_v1")], [], PREFIX
    )
    assert list(ambiguous) == ["note-1a2b3c_ci_example_org_db_password_v1"]


# ---- the connector reads the two keys and nothing else ------------------------------------


def test_the_connector_keeps_only_domain_and_stack_name_of_an_env_file(tmp_path: Path) -> None:
    path = tmp_path / "note-1a2b3c.ci.example.org.env"
    path.write_text(
        "DOMAIN=note-1a2b3c.ci.example.org\nADMIN_PASSWORD=hunter2\nSTACK_NAME=n1\n",
        encoding="utf-8",
    )
    found = LocalConnector("cc-ci").stat_file(str(path))
    assert (found.exists, found.domain, found.stack_name, found.error) == (
        True,
        "note-1a2b3c.ci.example.org",
        "n1",
        "",
    )
    assert "hunter2" not in repr(found)


def test_the_connector_does_not_read_an_env_file_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.env"
    path.write_text("DOMAIN=big.example.org\n" + "#" * ENV_READ_LIMIT, encoding="utf-8")
    found = LocalConnector("cc-ci").stat_file(str(path))
    assert (found.domain, found.error) == ("", "larger than 64 KiB")


def test_the_connector_does_not_read_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.env"
    os.mkfifo(fifo)
    found = LocalConnector("cc-ci").stat_file(str(fifo))  # would block if it were opened
    assert (found.exists, found.error) == (True, "not a regular file")


def test_the_connector_says_when_an_env_file_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "bin.env"
    path.write_bytes(b"DOMAIN=\xff\xfe\n")
    assert LocalConnector("cc-ci").stat_file(str(path)).error == "not UTF-8 text"
