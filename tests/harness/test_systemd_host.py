"""The systemd test host: a real systemd booted on the private engine.

These tests prove the host is fit for ccci's timer tests: systemd is up,
timers are listed and introspectable, unit files can be installed and run, and
the docker socket inside it answers from the private engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.systemd import Bind, SystemdHost, _parse_show, systemd_host_or_fail

REPO = str(Path(__file__).resolve().parents[2])

# Talks to the engine socket with nothing but the container's stdlib python3.
PING = """
import http.client, json, socket
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect("/var/run/docker.sock")
out = {}
for path in ("/_ping", "/info"):
    c = C("localhost", timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    out[path] = [r.status, r.read().decode()]
print(json.dumps(out))
"""


MOUNTS = (Bind(REPO, "/src"),)


@pytest.fixture(scope="module")
def booted() -> SystemdHost:
    """One boot for the module; fails under CI if the host cannot boot."""
    return systemd_host_or_fail(mounts=MOUNTS)


@pytest.fixture
def host(booted: SystemdHost) -> SystemdHost:
    """The module's host, re-ensured per test (milliseconds when warm): other
    sessions share the engine, and their swarm.reset() removes every container."""
    return systemd_host_or_fail(mounts=MOUNTS)


def test_system_is_running(host: SystemdHost) -> None:
    state = host.systemctl("is-system-running", check=False).stdout.strip()
    failed = host.systemctl("list-units", "--failed", "--plain", "--no-legend").stdout
    assert state in ("running", "degraded"), failed
    assert host.exec("cat", "/proc/1/comm").stdout.strip() == "systemd"


def test_stock_timer_is_listed_and_introspectable(host: SystemdHost) -> None:
    listing = host.systemctl("list-timers", "--all", "--no-pager").stdout
    assert "systemd-tmpfiles-clean.timer" in listing
    props = host.show(
        "systemd-tmpfiles-clean.timer", "ActiveState", "NextElapseUSecMonotonic", "TimersMonotonic"
    )
    assert props["ActiveState"] == "active"
    assert "OnBootUSec=15min" in props["TimersMonotonic"]  # OnUnitActive joins after 1st run
    assert props["NextElapseUSecMonotonic"] not in ("", "infinity")


def test_calendar_timer_properties(host: SystemdHost) -> None:
    """A calendar timer (ccci's kind) exposes TimersCalendar / NextElapseUSecRealtime."""
    host.write_file(
        "/etc/systemd/system/ccci-probe.timer",
        "[Timer]\nOnCalendar=*-*-* 03:00:00\n\n[Install]\nWantedBy=timers.target\n",
    )
    host.write_file(
        "/etc/systemd/system/ccci-probe.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    host.systemctl("daemon-reload")
    host.systemctl("start", "ccci-probe.timer")
    props = host.show("ccci-probe.timer", "TimersCalendar", "NextElapseUSecRealtime", "Unit")
    assert "03:00:00" in props["TimersCalendar"]
    assert props["NextElapseUSecRealtime"] not in ("", "n/a")
    assert props["Unit"] == "ccci-probe.service"
    assert "ccci-probe.timer" in host.systemctl("list-timers", "--all").stdout


def test_oneshot_unit_runs(host: SystemdHost) -> None:
    host.exec("rm", "-f", "/var/tmp/ccci-oneshot.out")
    host.write_file(
        "/etc/systemd/system/ccci-oneshot.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo ran >/var/tmp/ccci-oneshot.out'\n",
    )
    host.systemctl("daemon-reload")
    host.systemctl("start", "ccci-oneshot.service")  # oneshot: returns when it finished
    assert host.exec("cat", "/var/tmp/ccci-oneshot.out").stdout == "ran\n"
    assert host.show("ccci-oneshot.service", "Result")["Result"] == "success"


def test_docker_socket_is_the_private_engine(host: SystemdHost) -> None:
    replies = json.loads(host.exec("python3", "-c", PING).stdout)
    assert replies["/_ping"] == [200, "OK"]
    info = json.loads(replies["/info"][1])
    ours = host.engine.api("/info")
    assert info["ID"] == ours["ID"]
    assert info["DockerRootDir"] == host.engine.data_root


def test_repo_is_mounted_read_only(host: SystemdHost) -> None:
    assert host.exec("test", "-f", "/src/harness/systemd.py").returncode == 0
    assert host.exec("touch", "/src/.ccci-ro-probe", check=False).returncode != 0


def test_start_is_idempotent(host: SystemdHost) -> None:
    again = systemd_host_or_fail(mounts=MOUNTS)
    assert again.container_id == host.container_id


def test_parse_show() -> None:
    out = "TimersCalendar={ OnCalendar=*-*-* 03:00:00 ; next_elapse=n/a }\nUnit=a.service\n\n"
    assert _parse_show(out) == {
        "TimersCalendar": "{ OnCalendar=*-*-* 03:00:00 ; next_elapse=n/a }",
        "Unit": "a.service",
    }


def _unbootable(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import pytest_support, systemd
    from harness.engine import EngineError

    def boom(*_a: object, **_k: object) -> SystemdHost:
        raise EngineError("not booted after 120s")

    monkeypatch.setattr(pytest_support, "engine_or_fail", lambda: None)
    monkeypatch.setattr(systemd, "start_systemd_host", boom)
    monkeypatch.setattr(systemd, "_start_errors", {})


def test_unbootable_host_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    _unbootable(monkeypatch)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not booted"):
        systemd_host_or_fail()
    with pytest.raises(pytest.fail.Exception):  # remembered, not retried
        systemd_host_or_fail()


def test_unbootable_host_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    _unbootable(monkeypatch)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not booted"):
        systemd_host_or_fail()


def test_rootfs_half_made_dir_is_redone_then_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from harness import rootfs

    target = tmp_path / "rootfs"
    (target / "junk").mkdir(parents=True)  # a killed debootstrap's leftovers, no stamp
    runs: list[list[str]] = []

    def fake_debootstrap(cmd: list[str], what: str) -> None:
        runs.append(cmd)
        (target / "etc").mkdir(parents=True)
        (target / "etc/shadow").write_text("root:*:19000:0:99999:7:::\nnobody:*:1::::::\n")

    monkeypatch.setenv("CCCI_ROOTFS_DIR", str(target))
    monkeypatch.setenv("CCCI_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    monkeypatch.setattr(rootfs, "_run", fake_debootstrap)
    monkeypatch.setattr(rootfs, "_ensure_debootstrap", lambda: "debootstrap")
    assert rootfs.ensure_rootfs() == str(target)
    assert rootfs.ensure_rootfs() == str(target)  # stamped: not rebuilt
    assert len(runs) == 1 and runs[0][-3:] == [
        "bookworm",
        str(target),
        "http://mirror.invalid/debian",
    ]
    assert not (target / "junk").exists()
    assert (target / "etc/shadow").read_text().startswith("root::19000:")
    assert os.readlink(target / "etc/systemd/system/systemd-udevd.service") == "/dev/null"


def test_mirror_parsing() -> None:
    from harness import rootfs

    deb822 = (
        "Types: deb\nURIs: http://a.invalid/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n"
    )
    assert list(rootfs._deb822_uris(deb822)) == [
        ("http://a.invalid/debian", ["bookworm", "bookworm-updates"])
    ]
    one_line = "# c\ndeb [arch=amd64] http://b.invalid/debian bookworm main\ndeb-src x y z\n"
    assert list(rootfs._one_line_uris(one_line)) == [("http://b.invalid/debian", ["bookworm"])]
