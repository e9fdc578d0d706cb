"""The unit tests' fake host is a Connector, and answers as the engine it stands in for.

``make lint`` runs mypy on this file and tests/unit/fakes.py (``mypy
--explicit-package-bases tests/unit/fakes.py tests/unit/test_fakes.py``): the assignment
below is the proof that FakeConnector offers everything ccci calls on a host.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccci.connectors.base import Connector
from ccci.facts.model import STACK_LABEL, Daemon, Facts, FileFact, Volume
from tests.unit.fakes import FakeConnector

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
IMAGE = "sha256:" + "0a" * 32
DIGEST = "sha256:" + "d4" * 32


def test_the_fake_is_a_connector() -> None:
    conn: Connector = FakeConnector()
    assert conn.host == "cc-ci"
    assert conn.docker_host.startswith("fake://")


def test_untagging_the_last_tag_of_a_repository_takes_its_digests_and_then_the_image() -> None:
    raw = {
        "Id": IMAGE,
        "RepoTags": ["ccci/app:1", "other/app:1"],
        "RepoDigests": [f"ccci/app@{DIGEST}", f"other/app@{DIGEST}"],
    }
    conn = FakeConnector(images={IMAGE: raw})

    conn.untag_image("ccci/app:1")
    assert conn.inspect_image(f"ccci/app@{DIGEST}") is None
    assert conn.inspect_image(f"other/app@{DIGEST}") is not None

    conn.untag_image("other/app:1")
    assert conn.inspect_image(IMAGE) is None
    assert conn.calls == [("untag_image", "ccci/app:1"), ("untag_image", "other/app:1")]


def test_disk_usage_is_limited_to_the_type_asked_for() -> None:
    conn = FakeConnector(system_df={"BuildCache": [{"ID": "rec1", "Size": 7}], "Images": []})

    assert conn.get_json("/system/df", {"type": "build-cache"}) == {
        "BuildCache": [{"ID": "rec1", "Size": 7}]
    }
    assert conn.remove_build_cache("rec1") == 7
    assert conn.get_json("/system/df") == {"BuildCache": [], "Images": []}


def test_a_removed_object_or_file_is_gone_from_the_snapshot_the_fake_answers_from() -> None:
    stack = "redi-3fa9c1_ci_example_org"
    env = "/abra/servers/cc-ci/redi-3fa9c1.ci.example.org.env"
    facts = Facts(
        host="cc-ci",
        gathered_at=NOW,
        daemon=Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True),
        volumes=(Volume(f"{stack}_data", "local", {STACK_LABEL: stack}, NOW),),
        files=(FileFact(env, True),),
    )
    conn = FakeConnector(facts=facts)

    conn.remove_object("volumes", f"{stack}_data")
    conn.remove_file(env)

    assert conn.current().volumes == ()
    assert conn.stat_file(env) == FileFact(env, False)
    assert conn.glob("/abra/servers/cc-ci/*.env") == []


def test_a_call_the_test_says_raises_is_recorded_then_raises() -> None:
    conn = FakeConnector(raises={("systemctl", "mask"): OSError("read-only file system")})

    conn.systemctl("daemon-reload")
    with pytest.raises(OSError, match="read-only"):
        conn.systemctl("mask", "docker-prune.timer")
    assert conn.calls == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "mask", "docker-prune.timer"),
    ]


def test_written_files_read_back_as_unit_files_and_env_files() -> None:
    conn = FakeConnector()

    conn.write_file("/etc/systemd/system/x.timer", "# managed by ccci\n")
    conn.write_file("/abra/a.env", "DOMAIN=redi-3fa9c1.ci.example.org\n")

    assert conn.unit_file("/etc/systemd/system/x.timer").content == "# managed by ccci\n"
    assert conn.stat_file("/abra/a.env").domain == "redi-3fa9c1.ci.example.org"
    assert conn.units(["x.timer"]) == ("", ())  # no snapshot: systemd's state is unknown
