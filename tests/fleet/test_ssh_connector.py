"""The SSH connector against the three test hosts: facts, disk usage and files are each
host's own, read and written there and never on the machine running the tests."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fleetkit import CCCI, JANITOR, NO_LIVE_RUN_APPS, cli_env, prune_policy, workspace

from ccci.connectors import ssh as ssh_mod
from ccci.connectors.local import ConnectionFailed
from ccci.connectors.ssh import (
    CONTROL_DIR_ENV,
    PERSIST_ENV,
    HostKeyMismatch,
    NoFreeSession,
    SshConnector,
    end_kept_masters,
)
from ccci.facts.docker import gather
from ccci.facts.model import FileFact
from harness import fleet as fleet_mod
from harness import procs
from harness.fleet import Fleet, FleetNode
from harness.images import BASE_TAG, buildkit_build, load_image


@pytest.fixture(autouse=True)
def own_masters(monkeypatch: pytest.MonkeyPatch) -> None:
    """A master of each connector's own, ended by close(), unless a test keeps them
    (``ccci_ssh_persist``): persistence off is exactly the connector without it."""
    monkeypatch.setenv(PERSIST_ENV, "no")


def _connector(fleet: Fleet, node: FleetNode, **overrides: str) -> SshConnector:
    return SshConnector.for_host(node.name, {**fleet.host_vars(node), **overrides})


@pytest.fixture
def kept_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of the test's own for kept masters (short: a socket's path must fit), named
    to the connector by the env it reads; the masters in it ended after."""
    folder = Path(tempfile.mkdtemp(prefix="ccci-kept-", dir="/tmp"))
    monkeypatch.setenv(CONTROL_DIR_ENV, str(folder))
    try:
        yield folder
    finally:
        end_kept_masters(str(folder))
        shutil.rmtree(folder, ignore_errors=True)


def _kept(fleet: Fleet, node: FleetNode) -> SshConnector:
    return _connector(fleet, node, ccci_ssh_persist="true")


@pytest.fixture
def connectors(fleet: Fleet) -> Iterator[dict[str, SshConnector]]:
    made = {n.name: _connector(fleet, n) for n in fleet.nodes}
    yield made
    for conn in made.values():
        conn.close()


@pytest.fixture
def remote_files(fleet: Fleet) -> Iterator[str]:
    """A fresh folder at the same path on every node (each node's own tmpfs)."""
    folder = os.path.join(fleet.remote_dir, f"t-{os.getpid()}-{time.monotonic_ns()}")
    yield folder
    for node in fleet.nodes:
        conn = _connector(fleet, node)
        conn.run(["rm", "-rf", "--", folder])
        conn.close()


def _logins(node: FleetNode) -> int:
    with open(os.path.join(node.engine.state_dir, "sshd.log")) as fh:
        return sum("Accepted publickey" in line for line in fh)


def test_facts_gathered_over_ssh_are_each_nodes_own(
    clean_fleet: Fleet, connectors: dict[str, SshConnector]
) -> None:
    created = datetime.now(UTC) - timedelta(days=3)
    marked = {
        n.name: load_image(n.engine, f"fleet-own/{n.name}:1", created) for n in clean_fleet.nodes
    }
    for node in clean_fleet.nodes:
        facts = gather(connectors[node.name], disk_paths=[clean_fleet.remote_dir])
        assert facts.daemon.name == node.name
        assert facts.daemon.swarm_manager is (node.role == "manager")
        ids = {i.id for i in facts.images}
        assert marked[node.name] in ids
        assert not ids & {v for k, v in marked.items() if k != node.name}
        remote = next(d for d in facts.disks if d.path == clean_fleet.remote_dir)
        assert remote.total == node_mb(clean_fleet, node) * 1024 * 1024


def node_mb(fleet: Fleet, node: FleetNode) -> int:
    from harness.fleet import node_paths

    return next(p.remote_mb for p in node_paths(fleet.state_dir) if p.name == node.name)


def test_remote_disk_usage_is_the_remotes_filesystem_not_the_local_one(
    fleet: Fleet, connectors: dict[str, SshConnector], remote_files: str
) -> None:
    first = fleet.nodes[0]
    conn = connectors[first.name]
    conn.write_file(f"{remote_files}/fill", "x" * (4 * 1024 * 1024))
    usage = conn.disk_usage(fleet.remote_dir)
    local = os.statvfs(fleet.remote_dir)
    assert usage.total == node_mb(fleet, first) * 1024 * 1024 != local.f_blocks * local.f_frsize
    assert usage.used >= 4 * 1024 * 1024
    other = connectors[fleet.nodes[1].name].disk_usage(fleet.remote_dir)
    assert other.used < usage.used


def test_files_are_written_read_and_removed_on_the_remote_and_never_locally(
    fleet: Fleet, connectors: dict[str, SshConnector], remote_files: str
) -> None:
    first, second = fleet.nodes[:2]
    # A name a shell would run if it were ever unquoted.
    path = f"{remote_files}/servers/ci.example.org/redi-3fa9c1 $(touch pwned); x.env"
    conn = connectors[first.name]
    text = "DOMAIN=redi-3fa9c1.ci.example.org\nSTACK_NAME=redi_x\nSECRET=1\n"
    conn.write_file(path, text)
    found = conn.stat_file(path)
    assert found.exists and found.domain == "redi-3fa9c1.ci.example.org"
    assert found.stack_name == "redi_x" and found.size == len(text)
    assert conn.glob(f"{remote_files}/servers/*/*.env") == [path]
    assert conn.unit_file(path).content.startswith("DOMAIN=")
    assert not os.path.exists(path) and not os.path.exists(remote_files)
    assert not connectors[second.name].stat_file(path).exists
    assert connectors[second.name].glob(f"{remote_files}/servers/*/*.env") == []
    assert conn.run(["sh", "-c", "ls -A ~ /var/tmp | grep -cx pwned"]).stdout.strip() == b"0"
    conn.remove_file(path)
    assert not conn.stat_file(path).exists
    conn.remove_file(path)  # already gone is fine


def test_a_remote_write_replaces_the_file_whole_and_leaves_no_temporary_file(
    fleet: Fleet, connectors: dict[str, SshConnector], remote_files: str
) -> None:
    conn = connectors[fleet.nodes[2].name]
    unit = f"{remote_files}/units/ci-docker-prune.timer"
    conn.write_file(unit, "[Timer]\nOnCalendar=daily\n")
    conn.write_file(unit, "[Timer]\nOnCalendar=weekly\n")
    seen = conn.unit_file(unit)
    assert seen.exists and seen.dir_writable and seen.content == "[Timer]\nOnCalendar=weekly\n"
    assert conn.glob(f"{remote_files}/units/.*") == []
    assert conn.run(["stat", "-c", "%a", unit]).stdout.strip() == b"644"


def test_one_ssh_connection_per_host_carries_every_command_and_the_docker_api(
    fleet: Fleet, remote_files: str
) -> None:
    node = fleet.nodes[1]
    before = _logins(node)
    conn = _connector(fleet, node)
    try:
        for i in range(5):
            conn.write_file(f"{remote_files}/{i}", str(i))
            conn.stat_file(f"{remote_files}/{i}")
        conn.api.version()
        conn.get_json("/info")
        folder = os.path.dirname(conn.control_path)
        assert os.stat(folder).st_mode & 0o777 == 0o700
    finally:
        conn.close()
    assert _logins(node) == before + 1
    assert not os.path.exists(folder)


def test_the_engines_events_stream_through_the_forwarded_socket(
    clean_fleet: Fleet, connectors: dict[str, SshConnector]
) -> None:
    node = clean_fleet.workers[-1]
    since = datetime.now(UTC) - timedelta(seconds=2)
    node.engine.docker("create", "--name", "fleet-event", "ccci-test/busybox:1")
    node.engine.docker("rm", "fleet-event")
    until = datetime.now(UTC) + timedelta(seconds=2)
    events = connectors[node.name].events(since, until)
    names = {
        (e.get("Action"), e.get("Actor", {}).get("Attributes", {}).get("name")) for e in events
    }
    assert {("create", "fleet-event"), ("destroy", "fleet-event")} <= names


def test_a_host_key_mismatch_is_refused_with_one_line_and_nothing_is_left_behind(
    fleet: Fleet, tmp_path: Path
) -> None:
    first, second = fleet.nodes[:2]
    with open(fleet.known_hosts) as fh:
        key = next(line for line in fh if line.startswith(f"[{second.address}]"))
    wrong = tmp_path / "known_hosts"
    wrong.write_text(key.replace(second.address, first.address, 1))
    args = fleet.host_vars(first)["ansible_ssh_common_args"].replace(fleet.known_hosts, str(wrong))
    conn = _connector(fleet, first, ansible_ssh_common_args=args)
    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(HostKeyMismatch) as caught:
        conn.disk_usage("/")
    assert str(caught.value) == (
        f"{first.name} (root@{first.address}:{first.ssh_port}): the SSH host key does not "
        "match known_hosts; refusing to connect (check the host, then fix known_hosts)"
    )
    assert set(os.listdir(tempfile.gettempdir())) == before
    with pytest.raises(HostKeyMismatch, match="not in known_hosts"):
        empty = tmp_path / "empty"
        empty.write_text("")
        unknown = args.replace(str(wrong), str(empty))
        _connector(fleet, first, ansible_ssh_common_args=unknown).glob("/*")


def test_a_host_nobody_answers_for_is_a_one_line_connection_failure(fleet: Fleet) -> None:
    node = fleet.nodes[0]
    conn = _connector(fleet, node, ansible_port="2223")
    with pytest.raises(ConnectionFailed) as caught:
        conn.stat_file("/etc/hostname")
    assert str(caught.value).startswith(f"{node.name} (root@{node.address}:2223): cannot connect")
    assert "Connection refused" in str(caught.value) and "\n" not in str(caught.value)


def test_a_master_that_expired_while_idle_is_started_again_for_commands_and_the_api(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccci.connectors import ssh

    monkeypatch.setattr(ssh, "CONTROL_PERSIST", "1s")
    node = fleet.nodes[2]
    conn = _connector(fleet, node)
    try:
        assert conn.api.version()["Version"]
        forwarded = conn.forwarded_socket
        conn.api.close()  # no channel open: the master may now expire
        deadline = time.monotonic() + 30
        while os.path.exists(conn.control_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not os.path.exists(conn.control_path)
        assert conn.api.info()["Name"] == node.name
        assert conn.forwarded_socket == forwarded
        assert conn.run(["hostname"]).stdout.decode().strip() == node.name
    finally:
        conn.close()


# A plan's whole run in one process, then the docker SDK's modules it imported (none: the
# reads go by plain HTTP on the forwarded socket, as a local plan's do on the engine's).
_PLAN_AND_LIST_SDK = """\
import sys
from ccci.cli.main import main
sys.argv = ["ccci", *sys.argv[1:]]
try:
    main()
finally:
    sdk = sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "requests", "urllib3"))
    print("sdk modules:", sdk, file=sys.stderr)
"""

PRUNE_ALL_KINDS = prune_policy(
    "disk_usage: {path: /, at_least: 1%}",
    NO_LIVE_RUN_APPS,
    "no_converging_services: true",
    kinds=["dangling_images", "stopped_containers", "dangling_build_cache"],
)


def test_a_plan_over_ssh_reads_the_remote_engine_without_importing_the_docker_sdk(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = clean_fleet
    node = fleet.manager
    node.engine.docker("run", "--name", "sdk-free", BASE_TAG, "true")
    root = workspace(fleet, tmp_path, PRUNE_ALL_KINDS, JANITOR)
    # An hour on: the exited container is past the policy's 1s without a wait.
    now = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = subprocess.run(
        [sys.executable, "-c", _PLAN_AND_LIST_SDK, "reconcile", "--plan", "--limit", node.name,
         "--now", now, "--state-dir", str(root / "state")],
        cwd=root, env=cli_env(root), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(sdk-free ({BASE_TAG}))" in done.stdout, done.stdout
    assert "sdk modules: []" in done.stderr.splitlines(), done.stderr


def test_a_remote_engine_that_does_not_answer_is_named_in_one_line(fleet: Fleet) -> None:
    node = fleet.nodes[1]
    conn = _connector(fleet, node, docker_host="unix:///run/no-such-engine.sock")
    try:
        with pytest.raises(ConnectionFailed) as caught:
            conn.api.info()
        assert str(caught.value).startswith(
            f"{node.name}: cannot reach the Docker engine at unix:///run/no-such-engine.sock "
            f"on root@{node.address}:{node.ssh_port} (over SSH): "
        )
        assert "\n" not in str(caught.value)
        with pytest.raises(ConnectionFailed, match=r"\(over SSH\)"):
            conn.get_json("/system/df", {"type": "build-cache"})
    finally:
        conn.close()


def test_env_files_that_cannot_say_whose_they_are_say_why_as_locally(
    fleet: Fleet, connectors: dict[str, SshConnector], remote_files: str
) -> None:
    from ccci.facts.stacks import ENV_READ_LIMIT

    conn = connectors[fleet.nodes[0].name]
    conn.write_file(f"{remote_files}/big.env", "A=" + "x" * ENV_READ_LIMIT + "\n")
    conn.run(["mkdir", "-p", "--", f"{remote_files}/dir.env"])
    conn.run(["sh", "-c", 'printf "DOMAIN=\\377\\n" > "$1"', "sh", f"{remote_files}/bin.env"])
    assert conn.stat_file(f"{remote_files}/big.env").error == "larger than 64 KiB"
    assert conn.stat_file(f"{remote_files}/dir.env").error == "not a regular file"
    assert conn.stat_file(f"{remote_files}/bin.env").error == "not UTF-8 text"
    assert conn.stat_file(f"{remote_files}/none.env") == FileFact(
        path=f"{remote_files}/none.env", exists=False
    )
    missing = conn.unit_file(f"{remote_files}/units/absent.timer")
    assert not missing.exists and missing.content == "" and missing.dir_writable is False


def test_systemd_is_asked_on_the_host_and_a_host_without_it_has_units_unknown(
    fleet: Fleet, connectors: dict[str, SshConnector]
) -> None:
    state, units = connectors[fleet.nodes[1].name].units(["docker.service"])
    asked = fleet_ssh(fleet, fleet.nodes[1], "systemctl is-system-running || true")
    assert state == (asked.strip() or "unknown")
    assert units == ()


def fleet_ssh(fleet: Fleet, node: FleetNode, command: str) -> str:
    return subprocess.run(
        fleet.ssh_argv(node, command), capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_the_private_key_file_the_inventory_names_is_the_one_offered(
    fleet: Fleet, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    node = fleet.nodes[0]
    conn = _connector(fleet, node, ansible_ssh_private_key_file=str(stranger))
    with pytest.raises(ConnectionFailed, match=r"cannot connect over SSH: .*Permission denied"):
        conn.glob("/*")
    conn = _connector(fleet, node)
    try:
        assert "/var" in conn.glob("/*")
    finally:
        conn.close()


def test_an_inventory_of_ssh_hosts_gives_each_host_a_connector_that_reaches_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    from ccci.config import inventory
    from ccci.connectors.connection import connector_for
    from harness.fleet import inventory_yaml

    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_yaml(fleet))
    hosts = inventory.load(path).limit("fleet:!ccci-fleet-2")
    assert [h.name for h in hosts] == ["ccci-fleet-1", "ccci-fleet-3"]
    for host in hosts:
        conn = connector_for(host.name, host.vars)
        try:
            assert isinstance(conn, SshConnector)
            assert conn.get_json("/info")["Name"] == host.name
        finally:
            conn.close()


def test_a_connector_never_closed_ends_its_master_when_it_is_collected(fleet: Fleet) -> None:
    import gc

    conn = _connector(fleet, fleet.nodes[0])
    conn.run(["true"])
    folder = os.path.dirname(conn.control_path)
    assert os.path.exists(os.path.join(folder, "control"))
    del conn
    gc.collect()
    assert not os.path.exists(folder)


# ---- masters kept between runs ---------------------------------------------------------


def _master_pid(control: str) -> int:
    """The pid a master says it runs as (``ssh -O check``)."""
    said = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", f"ControlPath={control}", "-O", "check", "x"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stderr  # fmt: skip
    return int(said.split("pid=", 1)[1].split(")", 1)[0])


def _plan(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CCCI, "reconcile", "--plan", *args, "--state-dir", str(root / "state")],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finished(run: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = run.communicate(timeout=300)
    return run.returncode, out + err


def test_later_runs_connect_to_the_master_the_first_run_kept_and_log_in_no_more(
    clean_fleet: Fleet, kept_dir: Path, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = workspace(fleet, tmp_path, PRUNE_ALL_KINDS, JANITOR)
    env = {**cli_env(root), CONTROL_DIR_ENV: str(kept_dir)}
    before = {n.name: _logins(n) for n in fleet.nodes}
    first = _finished(_plan(root, env))
    assert first[0] == 0, first[1]
    controls = sorted(kept_dir.glob("*.control"))
    assert len(controls) == len(fleet.nodes)
    assert {n.name: _logins(n) for n in fleet.nodes} == {k: v + 1 for k, v in before.items()}
    pids = {_master_pid(str(c)) for c in controls}
    # A plan again, a janitor run, status: every host reached through the kept master.
    again = _finished(_plan(root, env))
    assert again[0] == 0, again[1]
    for command in (["janitor", "--plan"], ["status"]):
        done = subprocess.run(
            [CCCI, *command, "--state-dir", str(root / "state")],
            cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    assert {n.name: _logins(n) for n in fleet.nodes} == {k: v + 1 for k, v in before.items()}
    assert {_master_pid(str(c)) for c in sorted(kept_dir.glob("*.control"))} == pids
    assert stat.S_IMODE(os.stat(kept_dir).st_mode) == 0o700


def test_two_runs_at_once_start_one_master_per_host(
    clean_fleet: Fleet, kept_dir: Path, tmp_path: Path
) -> None:
    fleet = clean_fleet
    root = workspace(fleet, tmp_path, PRUNE_ALL_KINDS)
    env = {**cli_env(root), CONTROL_DIR_ENV: str(kept_dir)}
    before = {n.name: _logins(n) for n in fleet.nodes}
    runs = [_plan(root, env), _plan(root, env)]
    for code, said in map(_finished, runs):
        assert code == 0, said
    assert {n.name: _logins(n) for n in fleet.nodes} == {k: v + 1 for k, v in before.items()}


def test_with_persistence_off_a_run_keeps_no_master(
    fleet: Fleet, kept_dir: Path, tmp_path: Path
) -> None:
    off = fleet_mod.inventory_yaml(fleet).replace(
        '"ansible_connection": "ssh",', '"ansible_connection": "ssh", "ccci_ssh_persist": false,'
    )
    root = workspace(fleet, tmp_path, PRUNE_ALL_KINDS, inventory=off)
    temp = Path(tempfile.mkdtemp(prefix="ccci-off-", dir="/tmp"))
    env = {**cli_env(root), CONTROL_DIR_ENV: str(kept_dir), "TMPDIR": str(temp)}
    try:
        code, said = _finished(_plan(root, env))
        assert code == 0, said
        # Each master was ended (no ssh of the run's left) and its folder removed.
        assert list(temp.iterdir()) == [], "a run's own SSH folders were left behind"
        assert procs.find(lambda argv: any(str(temp) in a for a in argv)) == []
        assert list(kept_dir.iterdir()) == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def test_a_killed_masters_stale_sockets_are_replaced_by_a_new_master(
    fleet: Fleet, kept_dir: Path
) -> None:
    node = fleet.workers[0]
    first = _kept(fleet, node)
    assert first.api.info()["Name"] == node.name
    control, forwarded = first.control_path, first.forwarded_socket
    first.close()
    pid = _master_pid(control)
    os.kill(pid, signal.SIGKILL)  # the master this test's connector started, by its pid
    assert procs.wait_dead(pid, 10)
    assert os.path.exists(control) and os.path.exists(forwarded)  # stale, left behind
    before = _logins(node)
    second = _kept(fleet, node)
    try:
        assert second.api.info()["Name"] == node.name
        assert second.run(["hostname"]).stdout.decode().strip() == node.name
        assert (second.control_path, second.forwarded_socket) == (control, forwarded)
    finally:
        second.close()
    assert _logins(node) == before + 1
    assert _master_pid(control) != pid


def test_a_kept_folder_others_can_write_to_is_refused_in_one_line_and_nothing_runs(
    fleet: Fleet, kept_dir: Path, tmp_path: Path
) -> None:
    node = fleet.nodes[0]
    os.chmod(kept_dir, 0o770)
    root = workspace(fleet, tmp_path, PRUNE_ALL_KINDS)
    env = {**cli_env(root), CONTROL_DIR_ENV: str(kept_dir)}
    before = _logins(node)
    code, said = _finished(_plan(root, env, "--limit", node.name))
    assert code == 1
    assert said.strip() == (
        f"ccci: {node.name} (root@{node.address}:{node.ssh_port}): SSH control folder "
        f"{kept_dir}: its group or others can write to it (mode 0770); refusing to use it "
        f"(remove it, name a folder of your own in {CONTROL_DIR_ENV}, or set {PERSIST_ENV}=no)"
    )
    assert list(kept_dir.iterdir()) == [] and _logins(node) == before


# ---- a kept master whose sessions others hold ------------------------------------------


def _hold_every_session(conn: SshConnector) -> list[subprocess.Popen[bytes]]:
    """Sessions on the connector's master, as another ccci process would hold them, opened
    one by one until the host's sshd refuses the next (its MaxSessions, whatever the
    harness set): each holds its session until its stdin is closed."""
    holders: list[subprocess.Popen[bytes]] = []
    argv = ["ssh", *conn.target.options(conn.control_path), "--", conn.target.address]
    for _ in range(200):
        held = subprocess.Popen(
            [*argv, "echo held; read -r _"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert held.stdout is not None
        if held.stdout.readline() == b"held\n":
            holders.append(held)
            continue
        _, err = held.communicate(timeout=60)
        assert held.returncode == 255 and ssh_mod.SESSION_REFUSED in err.decode(), err
        return holders
    _release(holders)
    raise AssertionError("the host's sshd never refused a session on one connection")


def _release(holders: list[subprocess.Popen[bytes]]) -> None:
    """Each holder's command reads its line and ends, freeing its session."""
    for held in holders:
        held.communicate(b"\n", timeout=60)


def test_a_command_waits_for_a_session_other_processes_hold_and_then_runs(
    fleet: Fleet, kept_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = fleet.nodes[0]
    conn = _kept(fleet, node)
    conn.run(["true"])  # the kept master, up
    logins = _logins(node)
    holders = _hold_every_session(conn)
    paused: list[float] = []

    def sessions_freed_while_waiting(seconds: float) -> None:
        # The real refusal made the command wait: now the other process ends its commands.
        if not paused:
            _release(holders)
        paused.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(ssh_mod, "_pause", sessions_freed_while_waiting)
    try:
        done = conn.run(["hostname"])
        assert done.returncode == 0 and done.stdout.decode().strip() == node.name
        assert paused, "the command never found the master's sessions all in use"
    finally:
        _release([h for h in holders if h.returncode is None])
        conn.close()
    # Every session, the refused ones too, went through the one kept master: no fallback login.
    assert _logins(node) == logins


def test_sessions_held_past_the_wait_fail_the_command_in_one_line_and_it_never_runs(
    fleet: Fleet, kept_dir: Path, remote_files: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssh_mod, "SESSION_WAIT", 1.0)
    node = fleet.nodes[1]
    conn = _kept(fleet, node)
    mark = f"{remote_files}/ran"
    conn.run(["mkdir", "-p", "--", remote_files])
    logins = _logins(node)
    holders = _hold_every_session(conn)
    try:
        with pytest.raises(NoFreeSession) as caught:
            conn.run(["touch", "--", mark])
    finally:
        _release(holders)
    try:
        assert str(caught.value) == (
            f"{node.name} (root@{node.address}:{node.ssh_port}): the SSH connection has no free "
            "session: every session the host's sshd allows on one connection (MaxSessions) "
            "stayed in use for 1s, so touch was not run (raise MaxSessions in the host's "
            "sshd_config, or run fewer ccci at once)"
        )
        assert isinstance(caught.value, ConnectionFailed)  # the other hosts carry on
        # The refused command ran neither through the master nor by a login of its own.
        assert conn.run(["test", "-e", mark]).returncode == 1
        assert _logins(node) == logins
    finally:
        conn.close()


def test_a_commands_ssh_cannot_log_in_by_itself_unless_the_inventory_names_a_jump_host(
    tmp_path: Path,
) -> None:
    def resolved(common_args: str) -> subprocess.CompletedProcess[str]:
        target = SshConnector.for_host(
            "ci", {"ansible_host": "ci.invalid", "ansible_ssh_common_args": common_args}
        ).target
        argv = ["ssh", "-G", *target.options(str(tmp_path / "c")), "--", target.address]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    # ssh -G prints the configuration it would use, connecting nowhere.
    plain = resolved("-F /dev/null -o ProxyJump=bastion")
    assert plain.returncode == 0, plain.stderr
    assert "proxycommand false" in plain.stdout.splitlines()
    for jump in ("-F /dev/null -J bastion", "-F /dev/null -qJbastion"):
        jumped = resolved(jump)
        assert jumped.returncode == 0, jumped.stderr  # ssh refuses -J after a ProxyCommand
        assert "proxyjump bastion" in jumped.stdout.splitlines()
    # A J inside a value is no jump host.
    keyed = resolved("-F /dev/null -i /keys/J -oUser=J")
    assert "proxycommand false" in keyed.stdout.splitlines()


def test_a_command_after_its_kept_master_was_killed_starts_a_new_master_and_runs_once(
    fleet: Fleet, kept_dir: Path, remote_files: str
) -> None:
    node = fleet.workers[1]
    conn = _kept(fleet, node)
    try:
        conn.run(["mkdir", "-p", "--", remote_files])
        pid = _master_pid(conn.control_path)
        os.kill(pid, signal.SIGKILL)  # the master this test's connector started, by its pid
        assert procs.wait_dead(pid, 10)
        assert os.path.exists(conn.control_path)  # stale, left behind
        logins = _logins(node)
        # A command's ssh cannot log in by itself: the connector starts the master again.
        conn.run(["sh", "-c", 'echo x >> "$1"', "sh", f"{remote_files}/ran"])
        assert conn.run(["cat", "--", f"{remote_files}/ran"]).stdout == b"x\n"
        assert _logins(node) == logins + 1
        assert _master_pid(conn.control_path) != pid
    finally:
        conn.close()


def test_buildkits_own_records_over_ssh_are_the_remote_engines_disk_usage_records(
    clean_fleet: Fleet, tmp_path: Path
) -> None:
    # BuildKit's call (POST /grpc, an upgraded connection) through the master's forwarded
    # socket, after a real BuildKit build on the remote engine.
    node = clean_fleet.manager
    buildkit_build(node.engine, tmp_path / "context", "fleet-bk/built:1")
    engines = {r["ID"]: r for r in node.engine.api("/system/df").get("BuildCache") or []}
    conn = _connector(clean_fleet, node)
    try:
        asked = conn.build_cache_records()
    finally:
        conn.close()
    assert engines, "the build left no build cache"
    assert asked is not None, "BuildKit's call was not answered over SSH"
    assert {r["ID"]: r for r in asked} == engines
