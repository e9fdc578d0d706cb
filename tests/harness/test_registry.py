"""The loopback registry: it runs, serves the v2 API, takes pushes from the private engine,
logs each pull, restarts idempotently and only ever signals its own process.

These tests never reset the engine (another suite may be using it): they touch only images
with names of their own, and remove them when done.
"""

from __future__ import annotations

import http.client
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import procs
from harness.engine import Engine
from harness.images import load_image
from harness.registry import (
    ADDR,
    Registry,
    RegistryError,
    ensure_registry,
    push_image,
    registry_paths,
    stop_registry,
)


@pytest.fixture
def registry() -> Registry:
    return ensure_registry()


@pytest.fixture
def pushed(engine: Engine, registry: Registry) -> Iterator[tuple[str, str]]:
    """A unique image in the registry and absent from the engine: (repo, digest)."""
    repo = f"ccci-harness/{uuid.uuid4().hex[:10]}"
    local = f"{repo}:1"
    load_image(engine, local, datetime(2026, 1, 1, tzinfo=UTC), layer_bytes=4096)
    digest = push_image(engine, local, registry.ref(local))
    engine.docker("rmi", local, registry.ref(local))
    yield repo, digest
    engine.docker("rmi", registry.ref(local), check=False)


def _get(path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*ADDR.split(":"), timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_the_registry_serves_the_v2_api_on_loopback(registry: Registry) -> None:
    status, headers, body = _get("/v2/")

    assert (status, body.strip()) == (200, b"{}")
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    assert registry.addr == "127.0.0.1:5000"
    argv = procs.cmdline(registry.pid)
    assert os.path.basename(argv[0]) == "docker-registry"
    assert argv[1:] == ["serve", registry_paths().config]
    config = Path(registry_paths().config).read_text(encoding="utf-8")
    assert "addr: 127.0.0.1:5000" in config
    assert f"rootdirectory: {registry_paths().storage}" in config


def test_starting_it_again_finds_the_running_registry(registry: Registry) -> None:
    started = time.monotonic()
    again = ensure_registry()
    assert again == registry
    assert time.monotonic() - started < 1.0


def test_a_pushed_image_pulls_back_and_the_log_counts_one_pull(
    engine: Engine, registry: Registry, pushed: tuple[str, str]
) -> None:
    repo, digest = pushed
    before = registry.log_offset()

    engine.docker("pull", registry.ref(f"{repo}:1"))

    assert registry.manifest_gets(repo, since=before) == 1
    assert registry.manifest_gets(repo, digest, since=before) == 1  # the tag was HEADed
    assert registry.manifest_gets(repo, "1", since=before) == 0
    repo_digests = engine.docker(
        "image", "inspect", "--format", "{{json .RepoDigests}}", registry.ref(f"{repo}:1")
    ).stdout
    assert f"{registry.ref(repo)}@{digest}" in repo_digests


def test_push_refuses_any_registry_but_the_loopback_one(engine: Engine) -> None:
    with pytest.raises(RegistryError, match="only to the loopback registry"):
        push_image(engine, "ccci-test/busybox:1", "example.org/ccci/busybox:1")


def test_a_restart_keeps_the_store_and_ignores_a_pidfile_that_names_another_process(
    registry: Registry, pushed: tuple[str, str]
) -> None:
    repo, _ = pushed
    assert stop_registry() is True
    assert not procs.alive(registry.pid)
    # A stale pidfile naming a live process that is not the registry (this test's own):
    # it must be ignored, never signalled.
    with open(registry_paths().pidfile, "w") as fh:
        fh.write(f"{os.getpid()}\n")

    restarted = ensure_registry()

    assert restarted.pid != registry.pid and procs.alive(restarted.pid)
    status, _, body = _get(f"/v2/{repo}/tags/list")
    assert status == 200 and b'"1"' in body  # the filesystem store outlived the process


def test_stopping_twice_is_harmless() -> None:
    ensure_registry()
    assert stop_registry() is True
    assert stop_registry() is False
    assert ensure_registry().pid  # and it starts again for whoever needs it next
