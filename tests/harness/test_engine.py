"""Behaviour of the private engine harness against a real dockerd.

The dirty-restart test SIGKILLs the engine, so it is kept last in this file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import disk, mounts, procs, swarm
from harness import engine as engine_mod
from harness.engine import Engine, engine_paths, ensure_engine
from harness.images import BASE_TAG, ensure_busybox_image, load_image, make_dangling_image

REPO = Path(__file__).resolve().parents[2]


def _inspect(engine: Engine, fmt: str, ref: str) -> str:
    return engine.docker("image", "inspect", "--format", fmt, ref).stdout.strip()


def _dangling_ids(engine: Engine) -> set[str]:
    return set(engine.docker("images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split())


def _swarm_active_on_loopback(engine: Engine) -> None:
    info = engine.api("/info")["Swarm"]
    assert info["LocalNodeState"] == "active"
    assert info["ControlAvailable"] is True
    assert info["NodeAddr"] == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", 2477), timeout=5):
        pass


def test_start_is_idempotent(engine: Engine) -> None:
    again = ensure_engine()
    assert again.pid == engine.pid
    assert again == engine
    assert engine_mod.ping(engine.socket_path)


def test_engine_uses_only_its_own_socket_and_dirs(engine: Engine) -> None:
    paths = engine_paths()
    assert engine.docker_host == f"unix://{paths.state_dir}/docker.sock"
    argv = procs.cmdline(engine.pid)
    assert procs.flag_value(argv, "--host") == engine.docker_host
    assert procs.flag_value(argv, "--data-root") == engine.data_root
    no_host_networking = {"--iptables=false", "--ip-masq=false", "--ip-forward=false"}
    assert no_host_networking | {"--bridge=none"} <= set(argv)
    assert engine.env()["DOCKER_HOST"] == engine.docker_host


def test_swarm_active_on_loopback_2477(engine: Engine) -> None:
    _swarm_active_on_loopback(engine)


def test_cli_env_and_status() -> None:
    run = [sys.executable, "-m", "harness"]
    env_out = subprocess.run([*run, "env"], cwd=REPO, capture_output=True, text=True, check=True)
    assert env_out.stdout.strip() == f"export DOCKER_HOST=unix://{engine_paths().socket}"
    status = subprocess.run([*run, "status"], cwd=REPO, capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert '"swarm": "active"' in status.stdout


def test_busybox_image_runs_echo(engine: Engine) -> None:
    image = ensure_busybox_image(engine)
    assert image == ensure_busybox_image(engine)  # second call is a no-op
    out = engine.docker("run", "--rm", BASE_TAG, "echo", "hi")
    assert out.stdout == "hi\n"
    assert _inspect(engine, "{{json .Config.Cmd}}", BASE_TAG) == '["sleep","3600"]'


def test_load_image_has_requested_created_time_and_size(clean_engine: Engine) -> None:
    created = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    image = load_image(clean_engine, "ccci-test/old:1", created, layer_bytes=1 << 20, marker="a")
    assert _inspect(clean_engine, "{{.Id}}", "ccci-test/old:1") == image
    got = _inspect(clean_engine, "{{.Created}}", image)
    assert datetime.fromisoformat(got.replace("Z", "+00:00")) == created
    assert int(_inspect(clean_engine, "{{.Size}}", image)) >= 1 << 20
    out = clean_engine.docker("run", "--rm", "ccci-test/old:1", "cat", "/ccci-marker")
    assert out.stdout == "a"


def test_loaded_images_have_distinct_ids(clean_engine: Engine) -> None:
    created = datetime(2022, 1, 1, tzinfo=UTC)
    ids = {load_image(clean_engine, f"ccci-test/many:{i}", created) for i in range(3)}
    assert len(ids) == 3


def test_dangling_images_are_dangling(clean_engine: Engine) -> None:
    created = datetime(2019, 6, 1, tzinfo=UTC)
    image = make_dangling_image(clean_engine, created, size_bytes=4096)
    assert image in _dangling_ids(clean_engine)
    assert _inspect(clean_engine, "{{json .RepoTags}}", image) == "[]"
    assert _inspect(clean_engine, "{{.Created}}", image).startswith("2019-06-01T00:00:00")
    assert clean_engine.docker("run", "--rm", image, "true").returncode == 0


def test_retagging_leaves_previous_image_dangling(clean_engine: Engine) -> None:
    old = load_image(clean_engine, "ccci-test/moving:1", datetime(2020, 1, 1, tzinfo=UTC))
    new = load_image(clean_engine, "ccci-test/moving:1", datetime(2024, 1, 1, tzinfo=UTC))
    assert old != new
    assert old in _dangling_ids(clean_engine)
    assert new not in _dangling_ids(clean_engine)


def test_fill_to_reaches_requested_usage() -> None:
    path = disk.small_filesystem(disk.disk_path("test-fill"), 16)
    try:
        assert disk.small_filesystem(path, 16) == path  # idempotent
        for percent in (85, 40, 97):
            disk.fill_to(path, percent)
            st = os.statvfs(path)
            used = st.f_blocks - st.f_bfree
            assert 100 * used / st.f_blocks >= percent
            assert 100 * used / (used + st.f_bavail) >= percent
        disk.fill_to(path, 40)
        assert disk.usage_percent(path) < 50  # shrinking frees real pages
    finally:
        disk.unmount(path)
    assert not mounts.mounts_under(path)


def test_stack_deploy_and_reset(clean_engine: Engine) -> None:
    compose = f"""
version: "3.8"
services:
  app:
    image: {BASE_TAG}
    volumes: [data:/data]
    networks: [backend]
networks:
  backend:
    driver: overlay
volumes:
  data: {{}}
"""
    swarm.deploy_stack(clean_engine, "demo", compose)
    services = clean_engine.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}").stdout
    assert services == "demo_app 1/1\n"
    clean_engine.docker("secret", "create", "s1", "-", input="x")
    load_image(clean_engine, "ccci-test/extra:1", datetime(2020, 1, 1, tzinfo=UTC))

    swarm.reset(clean_engine)

    def listing(*args: str) -> list[str]:
        return clean_engine.docker(*args).stdout.split()

    assert listing("service", "ls", "-q") == []
    # Only the systemd test host outlives a reset (it takes seconds to boot).
    hosts = listing("ps", "-q", "--filter", swarm.SYSTEMD_HOST_FILTER)
    assert [c for c in listing("ps", "-aq") if c not in hosts] == []
    assert listing("volume", "ls", "-q") == []
    assert listing("secret", "ls", "-q") == []
    assert set(listing("network", "ls", "--format", "{{.Name}}")) <= swarm.BUILTIN_NETWORKS
    images = listing("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    assert set(images) - {swarm.SYSTEMD_IMAGE} == {BASE_TAG}


def test_mis_addressed_swarm_in_kept_data_root_is_reinitialised(engine: Engine) -> None:
    paths = engine_paths()
    engine_mod.stop_engine()
    state_file = Path(paths.data_root, "swarm", "docker-state.json")
    state = json.loads(state_file.read_text())
    state["ListenAddr"] = "127.0.0.1:2378"  # as if initialised by something else
    state_file.write_text(json.dumps(state))

    back = ensure_engine()
    _swarm_active_on_loopback(back)
    assert json.loads(state_file.read_text())["ListenAddr"] == "127.0.0.1:2477"


def test_stale_pidfile_naming_a_foreign_process_is_ignored(engine: Engine) -> None:
    paths = engine_paths()
    _sigkill_engine(paths)
    # pid reuse: the pidfile now names some unrelated live process
    foreign = subprocess.Popen(["sleep", "60"])
    try:
        Path(paths.pidfile).write_text(f"{foreign.pid}\n")
        back = ensure_engine()
        assert back.pid != foreign.pid
        assert foreign.poll() is None  # never signalled
        _swarm_active_on_loopback(back)
    finally:
        foreign.kill()
        foreign.wait()


def _sigkill_engine(paths: engine_mod.Paths) -> list[int]:
    dockerd = engine_mod.our_dockerd_pid(paths)
    assert dockerd is not None
    victims = [dockerd, *engine_mod.our_containerd_pids(paths)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        assert procs.wait_dead(pid, 10)
    return victims


def test_dirty_restart_after_sigkill(engine: Engine) -> None:
    ensure_busybox_image(engine)
    # A running container leaves overlay, shm and netns mounts behind on SIGKILL.
    engine.docker("run", "-d", "--name", "survivor", BASE_TAG)
    paths = engine_paths()
    old_pid = engine.pid

    _sigkill_engine(paths)
    assert os.path.exists(paths.pidfile) and os.path.exists(paths.socket)  # stale leftovers
    assert mounts.mounts_under(paths.state_dir)  # leftover mounts to clean up

    started = time.monotonic()
    back = ensure_engine()
    assert back.pid != old_pid
    assert procs.alive(back.pid)
    assert time.monotonic() - started < 90
    _swarm_active_on_loopback(back)
    assert back.docker("run", "--rm", BASE_TAG, "echo", "back").stdout == "back\n"
    back.docker("rm", "-f", "survivor", check=False)
    assert ensure_engine().pid == back.pid
