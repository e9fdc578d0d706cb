"""Masters kept between runs: which folder holds them and when it is refused, what names a
master (its key), and the variables that turn keeping off. No host is reached: the folder is
judged before ssh ever runs."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ccci.connectors.ssh import (
    CONTROL_DIR_ENV,
    PERSIST_ENV,
    SYSTEM_SSH_CONFIG,
    SshConnector,
    SshTarget,
    UnsafeControlFolder,
    kept_folder,
    master_key,
    ssh_config_files,
)
from ccci.errors import CcciError

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder under /tmp (pytest's own tmp_path is too deep for a socket's path)."""
    folder = Path(tempfile.mkdtemp(prefix="ccci-unit-", dir="/tmp"))
    try:
        yield folder
    finally:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        folder.rmdir()


def _refused(folder: Path) -> str:
    """What a connector says when its kept folder is ``folder``: before any ssh runs."""
    conn = SshConnector.for_host(
        "ci-1", {"ansible_host": "192.0.2.7", "ansible_user": "root", "ccci_ssh_persist": True}
    )
    with pytest.raises(UnsafeControlFolder) as caught:
        conn.run(["true"])
    return str(caught.value)


def test_a_missing_kept_folder_is_made_for_this_user_alone(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONTROL_DIR_ENV, str(short_tmp / "kept"))
    assert kept_folder() == str(short_tmp / "kept")
    st = os.stat(short_tmp / "kept")
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    assert kept_folder() == str(short_tmp / "kept")  # and used as it is the next time


def test_without_a_named_folder_the_runtime_dir_holds_them(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTROL_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_tmp))
    assert kept_folder() == str(short_tmp / "ccci-ssh")


def test_a_folder_another_user_owns_is_refused_in_one_line(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = short_tmp / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    monkeypatch.setenv(CONTROL_DIR_ENV, str(theirs))
    assert _refused(theirs) == (
        f"ci-1 (root@192.0.2.7): SSH control folder {theirs}: owned by uid {NOBODY}, not by "
        f"this user (uid {os.getuid()}); refusing to use it (remove it, name a folder of your "
        f"own in {CONTROL_DIR_ENV}, or set {PERSIST_ENV}=no)"
    )
    assert list(theirs.iterdir()) == []


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777])
def test_a_folder_its_group_or_others_can_write_to_is_refused(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    shared = short_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    monkeypatch.setenv(CONTROL_DIR_ENV, str(shared))
    said = _refused(shared)
    assert f"its group or others can write to it (mode {mode:04o}); refusing" in said
    assert "\n" not in said and list(shared.iterdir()) == []


def test_a_link_where_the_folder_should_be_is_refused_not_followed(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = short_tmp / "real"
    real.mkdir(mode=0o700)
    (short_tmp / "link").symlink_to(real)
    monkeypatch.setenv(CONTROL_DIR_ENV, str(short_tmp / "link"))
    assert "a symbolic link, not a folder; refusing" in _refused(short_tmp / "link")
    assert list(real.iterdir()) == []


TARGET = SshTarget(
    host="ci-1",
    address="10.0.0.7",
    port=2222,
    user="deploy",
    key_file="/keys/ci",
    common_args=("-o", "UserKnownHostsFile=/etc/ci_hosts"),
    extra_args=("-o", "ConnectTimeout=3"),
)


def test_a_masters_key_is_the_same_for_the_same_connection() -> None:
    key = master_key(TARGET, "/run/docker.sock")
    assert len(key) == 16 and int(key, 16) >= 0
    assert master_key(replace(TARGET, host="another-name"), "/run/docker.sock") == key


@pytest.mark.parametrize(
    "changed",
    [
        {"address": "10.0.0.8"},
        {"port": 22},
        {"user": "root"},
        {"key_file": "/keys/other"},
        {"common_args": ("-o", "UserKnownHostsFile=/tmp/other")},
        {"extra_args": ()},
        # The same words split between the two differently: another command line.
        {"common_args": (), "extra_args": ("-o", "UserKnownHostsFile=/etc/ci_hosts", "-o")},
    ],
)
def test_anything_that_decides_the_connection_gives_another_master(changed: dict[str, Any]) -> None:
    assert master_key(replace(TARGET, **changed), "/run/docker.sock") != master_key(
        TARGET, "/run/docker.sock"
    )


def test_the_forwarded_remote_socket_and_the_local_ssh_give_another_master(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = master_key(TARGET, "/run/docker.sock")
    assert master_key(TARGET, "/srv/other.sock") != key
    other = short_tmp / "bin"
    other.mkdir()
    (other / "ssh").write_text("#!/bin/sh\n")
    (other / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}:{os.environ['PATH']}")
    assert master_key(TARGET, "/run/docker.sock") != key


def test_editing_the_ssh_config_the_login_reads_gives_another_master(short_tmp: Path) -> None:
    # A User or HostName line changed since the master logged in: its connection is not the
    # one the config now describes, so it is never used.
    config = short_tmp / "ssh_config"
    config.write_text("Host ci-1\n  User deploy\n")
    target = replace(TARGET, common_args=("-F", str(config)))
    key = master_key(target, "/run/docker.sock")
    assert master_key(target, "/run/docker.sock") == key
    config.write_text("Host ci-1\n  User root\n")
    os.utime(config, ns=(1, 1))  # an edit within the same mtime tick still moves it
    assert master_key(target, "/run/docker.sock") != key


def test_the_config_files_are_the_f_file_else_the_users_and_the_systems() -> None:
    assert ssh_config_files(["-o", "BatchMode=yes", "-F", "/etc/ci/ssh"]) == ["/etc/ci/ssh"]
    assert ssh_config_files(["-F/etc/ci/ssh"]) == ["/etc/ci/ssh"]
    default = ssh_config_files(["-o", "BatchMode=yes"])
    assert default[-1] == SYSTEM_SSH_CONFIG
    assert default[0].endswith("/.ssh/config") and os.path.isabs(default[0])


def test_keeping_is_on_unless_the_env_or_the_host_var_says_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PERSIST_ENV, raising=False)
    assert SshTarget.from_vars("ci", {}).persist is True
    assert SshTarget.from_vars("ci", {"ccci_ssh_persist": False}).persist is False
    assert SshTarget.from_vars("ci", {"ccci_ssh_persist": "no"}).persist is False
    monkeypatch.setenv(PERSIST_ENV, "off")
    assert SshTarget.from_vars("ci", {}).persist is False
    # The host's own var beats the env, as an Ansible host var beats its configuration.
    assert SshTarget.from_vars("ci", {"ccci_ssh_persist": "yes"}).persist is True


def test_a_persistence_value_that_is_not_a_boolean_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PERSIST_ENV, raising=False)
    with pytest.raises(CcciError) as caught:
        SshTarget.from_vars("ci", {"ccci_ssh_persist": "sometimes"})
    assert str(caught.value) == "ci: ccci_ssh_persist: not true or false: 'sometimes'"
    monkeypatch.setenv(PERSIST_ENV, "2")
    with pytest.raises(CcciError, match=rf"^{PERSIST_ENV}: not true or false: '2'$"):
        SshTarget.from_vars("ci", {})
