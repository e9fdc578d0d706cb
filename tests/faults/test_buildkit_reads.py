"""The build cache asked of BuildKit itself (``POST /grpc``, ccci.connectors.buildkit), and
``/system/df`` when the engine cannot be asked that way.

Every record and every gRPC answer here is the private engine's own, built by a real
BuildKit build. The fault proxy (harness/faultproxy.py) counts what reaches the engine and,
where a test says so, stands in for what a real engine cannot be made to do on demand: a
socket proxy that refuses ``POST /grpc`` (403, as a read-only docker socket proxy does), an
engine without the endpoint (404), one that drops the connection. One test puts a proxy of
its own in front of the engine that relays only the engine's side of an upgraded
connection, as a proxy that knows nothing of upgrades does.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from enginekit import DAY, addresses, noops, now, wait_until
from faultkit import BUILD_CACHE_PRUNE, Ccci

from ccci.connectors import buildkit
from ccci.connectors.local import LocalConnector
from harness.engine import Engine
from harness.faultproxy import FaultProxy
from harness.images import BASE_TAG, BUILDKIT_DOCKER, buildkit_build

pytestmark = pytest.mark.engine


def _engine_records(engine: Engine) -> dict[str, dict[str, Any]]:
    """The build cache as the engine's own ``/system/df`` has it, asked directly."""
    return {r["ID"]: r for r in engine.api("/system/df").get("BuildCache") or []}


def _built(engine: Engine, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """A BuildKit build of a tagged image: dangling and shared records, as the engine has them."""
    buildkit_build(engine, tmp_path / "context", "ccci-bk/built:1")
    records = _engine_records(engine)
    assert any(r["Shared"] for r in records.values()), records
    assert any(not r["Shared"] and not r["InUse"] for r in records.values()), records
    return records


def _plan(ccci: Ccci) -> dict[str, Any]:
    for old in ccci.policies.glob("*.yaml"):
        old.unlink()
    ccci.write_policy("prune", BUILD_CACHE_PRUNE)  # no image size wanted
    # Records made now are two days old by then.
    return ccci.plan(now() + 2 * DAY)


def _build_cache_plan(plan: dict[str, Any]) -> tuple[set[str], dict[str, str]]:
    kept = {a: why for a, why in noops(plan).items() if a.startswith("build_cache:")}
    return {a for a in addresses(plan) if a.startswith("build_cache:")}, kept


def _dangling(records: dict[str, dict[str, Any]]) -> set[str]:
    return {f"build_cache:{i}" for i, r in records.items() if not r["Shared"] and not r["InUse"]}


def _disk_usage_calls(proxy: FaultProxy) -> list[str]:
    return [r.query for r in proxy.seen if r.method == "GET" and r.path == "/system/df"]


def test_buildkits_own_records_are_the_engines_disk_usage_records_field_for_field(
    clean_engine: Engine, tmp_path: Path
) -> None:
    records = _built(clean_engine, tmp_path)
    conn = LocalConnector(host="ci", docker_host=clean_engine.docker_host)

    asked = conn.build_cache_records()

    assert asked is not None, "the engine did not answer BuildKit's own call"
    assert {r["ID"]: r for r in asked} == records


def test_a_plan_reads_the_build_cache_from_buildkit_and_never_sizes_the_whole_engine(
    ccci: Ccci, proxy: FaultProxy, clean_engine: Engine, tmp_path: Path
) -> None:
    records = _built(clean_engine, tmp_path)

    removed, kept = _build_cache_plan(_plan(ccci))

    assert removed == _dangling(records)
    shared = {f"build_cache:{i}" for i, r in records.items() if r["Shared"]}
    assert set(kept) == shared
    assert _disk_usage_calls(proxy) == []
    assert [(r.method, r.path) for r in proxy.seen if r.method != "GET"] == [("POST", "/grpc")]


def test_a_build_running_while_the_plan_is_made_keeps_every_record_it_uses(
    ccci: Ccci, proxy: FaultProxy, clean_engine: Engine, tmp_path: Path
) -> None:
    # A CI run's build between two nightlies, caught mid-RUN: BuildKit says its records are
    # in use, and the plan, two days on, keeps them all.
    context = tmp_path / "slow"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nRUN sleep 20 && echo {uuid.uuid4().hex} > /built\n", encoding="utf-8"
    )
    build = subprocess.Popen(
        [BUILDKIT_DOCKER, "build", "--network", "none", "--quiet", str(context)],
        env={**clean_engine.env(), "DOCKER_BUILDKIT": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            "the build's RUN step",
            lambda: any(r["InUse"] for r in _engine_records(clean_engine).values()),
        )
        in_use = {
            f"build_cache:{i}" for i, r in _engine_records(clean_engine).items() if r["InUse"]
        }
        removed, kept = _build_cache_plan(_plan(ccci))
        still_building = build.poll() is None
    finally:
        _, err = build.communicate(timeout=120)
    assert build.returncode == 0, err
    assert still_building, "the build ended before the plan was made: nothing was in use"
    assert in_use and not in_use & removed
    assert {a: kept.get(a) for a in in_use} == {a: "build cache in use" for a in in_use}
    assert _disk_usage_calls(proxy) == []


@pytest.mark.parametrize(
    "fault",
    ["403 (a socket proxy that allows no POST)", "404 (no /grpc endpoint)", "dropped"],
)
def test_when_buildkit_cannot_be_asked_the_plan_reads_the_same_records_from_disk_usage(
    fault: str, ccci: Ccci, proxy: FaultProxy, clean_engine: Engine, tmp_path: Path
) -> None:
    records = _built(clean_engine, tmp_path)
    if fault == "dropped":
        proxy.drop("POST", "^/grpc$", times=10)
    else:
        proxy.answer("POST", "^/grpc$", int(fault[:3]), "injected: no BuildKit here", times=10)

    removed, kept = _build_cache_plan(_plan(ccci))

    assert removed == _dangling(records)
    assert set(kept) == {f"build_cache:{i}" for i, r in records.items() if r["Shared"]}
    assert len(_disk_usage_calls(proxy)) == 1
    assert [r.path for r in proxy.seen if r.method == "POST"] == ["/grpc"]


def test_a_grpc_error_from_buildkit_is_no_answer_rather_than_a_failure(
    clean_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A method BuildKit does not have: the real engine answers gRPC status 12 (unimplemented).
    monkeypatch.setattr(buildkit, "_METHOD", "/moby.buildkit.v1.Control/NoSuchCall")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(clean_engine.docker_host.removeprefix("unix://"))
    try:
        with pytest.raises(buildkit.Unavailable, match="gRPC status 12"):
            buildkit.disk_usage(sock, 30)
    finally:
        sock.close()
    conn = LocalConnector(host="ci", docker_host=clean_engine.docker_host)
    assert conn.build_cache_records() is None


@contextlib.contextmanager
def _one_way_proxy(upstream: str, folder: Path) -> Iterator[str]:
    """A proxy that forwards each connection's first bytes and then relays only what the
    engine sends: an upgraded connection never carries the client's side on."""
    path = str(folder / "one-way.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    held: list[socket.socket] = []

    def relay(client: socket.socket) -> None:
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        held.extend((client, engine))
        with contextlib.suppress(OSError):
            engine.connect(upstream)
            engine.sendall(client.recv(65536))
            while chunk := engine.recv(65536):
                client.sendall(chunk)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"unix://{path}"
    finally:
        listener.close()
        for sock in held:
            sock.close()


def test_a_proxy_that_does_not_pass_an_upgraded_connection_on_is_no_answer_within_the_handshake(
    clean_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buildkit, "HANDSHAKE_SECONDS", 1.0)
    upstream = clean_engine.docker_host.removeprefix("unix://")
    with _one_way_proxy(upstream, tmp_path) as docker_host:
        # Waiting for the answer would end in the read timeout, the connector's error.
        conn = LocalConnector(host="ci", docker_host=docker_host, timeout=20)
        assert conn.build_cache_records() is None
