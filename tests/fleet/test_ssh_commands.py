"""The SSH connector's command construction, without a network: what reaches the remote
shell is exactly the arguments given (proven by running the command through a real local
``sh``, as sshd hands it to the user's shell), and ssh's options keep host key checking
the user's."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccci.connectors import ssh
from ccci.connectors.connection import connection_of, connector_for
from ccci.connectors.local import ConnectionFailed, LocalConnector
from ccci.connectors.ssh import (
    HostKeyMismatch,
    SshConnector,
    SshTarget,
    remote_command,
    sh_script,
    ssh_failure,
)
from ccci.errors import CcciError

HOSTILE = [
    "plain",
    "two words",
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "it's",
    'say "hi"',
    "line\nbreak",
    "*",
    "-rf",
    "$HOME",
    "back\\slash",
    "",
]


def _through_shell(argv: list[str], cwd: Path) -> list[str]:
    """What a POSIX shell makes of the command line, argument by argument."""
    line = remote_command(["printf", "%s\\0", *argv])
    done = subprocess.run(["sh", "-c", line], cwd=cwd, capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_every_argument_reaches_the_remote_shell_as_one_word_and_never_as_code(
    tmp_path: Path,
) -> None:
    assert _through_shell(HOSTILE, tmp_path) == HOSTILE
    assert not (tmp_path / "pwned").exists()


WORDS = st.lists(st.text(st.characters(blacklist_characters="\0", codec="utf-8")), min_size=1)


@settings(max_examples=60, deadline=None)
@given(WORDS)
def test_any_text_is_quoted_so_the_shell_returns_it_unchanged(words: list[str]) -> None:
    assert _through_shell(words, Path("/")) == words


def test_a_script_sees_its_values_as_data_and_a_glob_pattern_expands_whole(
    tmp_path: Path,
) -> None:
    (tmp_path / "a b.env").write_text("")
    (tmp_path / "$(touch pwned).env").write_text("")
    (tmp_path / "c.env").write_text("")
    line = remote_command(sh_script(ssh._GLOB, f"{tmp_path}/a b*.env"))
    done = subprocess.run(["sh", "-c", line], cwd=tmp_path, capture_output=True, check=True)
    assert done.stdout.split(b"\0")[:-1] == [f"{tmp_path}/a b.env".encode()]
    line = remote_command(sh_script(ssh._GLOB, f"{tmp_path}/*.env"))
    done = subprocess.run(["sh", "-c", line], cwd=tmp_path, capture_output=True, check=True)
    assert len(done.stdout.split(b"\0")[:-1]) == 3
    assert not (tmp_path / "pwned").exists()


def test_a_glob_that_matches_nothing_finds_nothing(tmp_path: Path) -> None:
    line = remote_command(sh_script(ssh._GLOB, f"{tmp_path}/*.env"))
    done = subprocess.run(["sh", "-c", line], capture_output=True, check=True)
    assert done.stdout == b""


def test_ansible_connection_variables_become_ssh_options() -> None:
    target = SshTarget.from_vars(
        "ci-2",
        {
            "ansible_host": "10.0.0.7",
            "ansible_port": "2202",
            "ansible_user": "deploy",
            "ansible_ssh_private_key_file": "~/.ssh/ci",
            "ansible_ssh_common_args": "-o ProxyJump=bastion -o 'UserKnownHostsFile=/etc/ci hosts'",
            "ansible_ssh_extra_args": "-o ConnectTimeout=3",
        },
    )
    opts = target.options("/run/x/control")
    assert target.address == "10.0.0.7"
    assert target.describe() == "deploy@10.0.0.7:2202"
    assert opts[:8] == [
        "-o", "ControlPath=/run/x/control", "-o", "ControlMaster=no",
        "-o", f"ControlPersist={ssh.CONTROL_PERSIST}", "-o", "BatchMode=yes",
    ]  # fmt: skip
    # The inventory's options come before ccci's defaults, and ssh keeps the first value.
    assert opts.index("UserKnownHostsFile=/etc/ci hosts") < opts.index("ConnectTimeout=3")
    assert opts.index("ConnectTimeout=3") < opts.index("ConnectTimeout=15")
    assert opts[-6:] == ["-i", str(Path.home() / ".ssh/ci"), "-p", "2202", "-l", "deploy"]
    assert target.options("/c", master=True)[3] == "ControlMaster=yes"


def test_host_key_checking_is_left_to_the_users_configuration() -> None:
    opts = SshTarget.from_vars("ci", {}).options("/c")
    assert not any("StrictHostKeyChecking" in o or "KnownHostsFile" in o for o in opts)
    assert "-F" not in opts
    assert SshTarget.from_vars("ci", {}).address == "ci"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ansible_port": "22x"}, "ansible_port"),
        ({"ansible_port": "70000"}, "ansible_port"),
        ({"ansible_host": "-oProxyCommand=touch pwned"}, "ansible_host"),
        ({"ansible_host": "ci host"}, "ansible_host"),
        ({"ansible_user": "root\nx"}, "ansible_user"),
        ({"ansible_ssh_common_args": "-o 'unbalanced"}, "ansible_ssh_common_args"),
    ],
)
def test_a_bad_connection_variable_is_one_line_naming_host_and_variable(
    variables: dict[str, str], named: str
) -> None:
    with pytest.raises(CcciError) as caught:
        SshTarget.from_vars("ci-3", variables)
    assert str(caught.value).startswith(f"ci-3: {named}: ")
    assert "\n" not in str(caught.value).replace("\\n", "")


def test_the_remote_engine_is_a_unix_socket_there_never_the_local_docker_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///local/only.sock")
    assert SshConnector.for_host("ci", {}).docker_host == "unix:///var/run/docker.sock"
    chosen = SshConnector.for_host("ci", {"docker_host": "unix:///srv/d.sock"})
    assert chosen.docker_host == "unix:///srv/d.sock"
    with pytest.raises(CcciError, match="unix:///path on the host"):
        SshConnector.for_host("ci", {"docker_host": "tcp://10.0.0.7:2375"})


# What only the Docker API may be used for by an inherited method; anything else of the
# machine (a file, a process, statvfs) would be the local machine's, not the remote host's.
_LOCAL_ONLY = ("os.", "open(", "subprocess", "glob", "read_client_config", "write_atomic")


def test_every_method_the_ssh_connector_inherits_talks_only_to_the_docker_api() -> None:
    inherited = [
        name
        for name, member in inspect.getmembers(LocalConnector, inspect.isfunction)
        if not name.startswith("__") and name not in vars(SshConnector)
    ]
    assert "remove_image" in inherited and "events" in inherited
    for name in inherited:
        source = inspect.getsource(getattr(LocalConnector, name))
        body = source.split('"""')[-1] if source.count('"""') >= 2 else source
        found = [word for word in _LOCAL_ONLY if word in body]
        assert not found, f"LocalConnector.{name} uses {found}: SshConnector must override it"


def test_a_changed_host_key_is_its_own_one_line_error() -> None:
    target = SshTarget.from_vars("ci-1", {"ansible_host": "10.213.77.11", "ansible_port": 2222})
    said = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
        "Host key for [10.213.77.11]:2222 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    error = ssh_failure(target, said)
    assert isinstance(error, HostKeyMismatch)
    assert str(error).startswith("ci-1 (10.213.77.11:2222): the SSH host key does not match")
    assert "\n" not in str(error)
    refused = ssh_failure(target, "ssh: connect to host 10.213.77.11 port 2222: Connection refused")
    assert not isinstance(refused, HostKeyMismatch) and isinstance(refused, ConnectionFailed)
    assert str(refused).endswith("cannot connect over SSH: ssh: connect to host "
                                 "10.213.77.11 port 2222: Connection refused")  # fmt: skip


def test_the_connection_is_the_override_then_ansible_connection_then_local() -> None:
    assert connection_of("ci", {}) == "local"
    assert connection_of("ci", {"ansible_connection": "ssh"}) == "ssh"
    assert connection_of("ci", {"ansible_connection": "ssh"}, override="local") == "local"
    assert connection_of("localhost", {}) == "local"
    assert isinstance(connector_for("ci", {"ansible_connection": "ssh"}), SshConnector)
    assert type(connector_for("ci", {})) is LocalConnector
    with pytest.raises(CcciError, match=r"^ci: ansible_connection: 'winrm' is not one of"):
        connection_of("ci", {"ansible_connection": "winrm"})
