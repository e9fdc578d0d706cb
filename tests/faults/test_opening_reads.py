"""A live plan's first reads start while its policies load (ccci.run.opening), and change
nothing but when they are made.

Every request reaches the private engine through the fault proxy (harness/faultproxy.py),
which here only records what it forwards: no rule of these tests answers instead of the
engine, so every answer is the real engine's. What the proxy shows: the early answers are
the ones the plan uses (each listing is asked for once), one answer serves one call (the
next asks the engine again), an early read the engine refuses raises the SDK's error when
asked, and a policy error ends the run with only reads made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker.errors
import pytest
from ccci_cli import HOST
from enginekit import image_ids
from faultkit import Ccci, one_line_error

from ccci.connectors.local import LocalConnector
from harness.engine import Engine
from harness.faultproxy import FaultProxy
from harness.images import make_dangling_image


def _engine_reads(proxy: FaultProxy) -> object:
    """The local connector's reads, through the proxy, as a run makes them."""
    return LocalConnector(host=HOST, docker_host=proxy.docker_host).api


def _asked(proxy: FaultProxy, method: str, path: str) -> int:
    return sum(1 for r in proxy.seen if r.method == method and r.path == path)


def test_a_plan_asks_the_engine_for_each_listing_once(ccci: Ccci, proxy: FaultProxy) -> None:
    # The early reads are the plan's own reads, started sooner: not a second set of them.
    ccci.plan()
    assert _asked(proxy, "GET", "/images/json") == 1
    assert _asked(proxy, "GET", "/containers/json") == 1
    assert _asked(proxy, "GET", "/info") == 1
    assert {r.method for r in proxy.seen} == {"GET"}


def test_the_janitor_asks_for_each_stack_listing_once(ccci: Ccci, proxy: FaultProxy) -> None:
    ccci.janitor_plan()
    for path in ("/services", "/secrets", "/configs", "/volumes", "/networks", "/containers/json"):
        assert _asked(proxy, "GET", path) == 1, path
    assert _asked(proxy, "GET", "/images/json") == 0  # not the janitor's scope
    assert {r.method for r in proxy.seen} == {"GET"}


def test_a_policy_error_ends_the_run_with_only_reads_made(
    ccci: Ccci, proxy: FaultProxy, clean_engine: Engine
) -> None:
    # What the gated prune would remove, were the policies good.
    old = make_dangling_image(clean_engine, datetime.now(UTC) - timedelta(days=3))
    bad = ccci.write_policy(
        "zz-bad", "apiVersion: ccci/v1\nkind: PrunePolicy\nmetadata: {name: typo}\nspce: {}\n"
    )
    for args in (("reconcile", "--plan"), ("reconcile", "--apply", "--yes")):
        done = ccci.run(*args, expect=(1,))
        error = one_line_error(done.stderr)
        assert f"{bad.name}:4: spce: unknown field" in error, error
    # The first reads ran while the policies loaded; nothing else reached the engine.
    assert _asked(proxy, "GET", "/info") >= 1
    assert {r.method for r in proxy.seen} == {"GET"}
    assert old in image_ids(clean_engine)
    assert not ccci.journal_path.exists()


def test_an_early_answer_serves_one_call_and_the_next_asks_the_engine(
    proxy: FaultProxy, engine: Engine
) -> None:
    reads = _engine_reads(proxy)
    reads.prefetch([lambda api: api.containers(all=True)])  # type: ignore[attr-defined]
    first = reads.containers(all=True)  # type: ignore[attr-defined]
    assert _asked(proxy, "GET", "/containers/json") == 1
    second = reads.containers(all=True)  # type: ignore[attr-defined]
    assert _asked(proxy, "GET", "/containers/json") == 2
    assert {c["Id"] for c in first} == {c["Id"] for c in second}  # nothing changed between
    # Another call than the one started early is its own request.
    reads.containers(all=True, filters={"label": "ccci.test=none"})  # type: ignore[attr-defined]
    assert _asked(proxy, "GET", "/containers/json") == 3


def test_an_early_read_the_engine_refuses_raises_when_asked_as_a_direct_read_does(
    proxy: FaultProxy,
) -> None:
    missing = "0" * 64
    reads = _engine_reads(proxy)
    with pytest.raises(docker.errors.NotFound) as direct:
        reads.inspect_container(missing)  # type: ignore[attr-defined]
    reads.prefetch([lambda api: api.inspect_container(missing)])  # type: ignore[attr-defined]
    with pytest.raises(docker.errors.NotFound) as early:
        reads.inspect_container(missing)  # type: ignore[attr-defined]
    assert str(early.value) == str(direct.value)
    assert _asked(proxy, "GET", f"/containers/{missing}/json") == 2


def test_an_engine_that_is_not_there_is_the_one_line_error_it_always_was(
    tmp_path: Path, ccci: Ccci
) -> None:
    gone = tmp_path / "gone.sock"
    ccci.inventory.write_text(
        f"all:\n  hosts:\n    {HOST}:\n      docker_host: 'unix://{gone}'\n", encoding="utf-8"
    )
    done = ccci.run("reconcile", "--plan", expect=(1,))
    assert one_line_error(done.stderr) == (
        f"ccci: {HOST}: cannot reach the Docker engine at unix://{gone}: No such file or directory"
    )


def test_of_two_hosts_the_one_whose_engine_is_gone_is_unreachable_once(
    tmp_path: Path, ccci: Ccci, proxy: FaultProxy
) -> None:
    gone = tmp_path / "gone.sock"
    ccci.write_inventory(hosts=(HOST, "ci-2"))
    text = ccci.inventory.read_text(encoding="utf-8")
    head, _ = text.split("        ci-2:\n")
    ccci.inventory.write_text(
        head + f"        ci-2:\n          docker_host: 'unix://{gone}'\n", encoding="utf-8"
    )
    done = ccci.run("reconcile", "--plan", expect=(1,))
    said = done.stdout + done.stderr
    assert said.count("cannot reach the Docker engine") == 1, said
    assert f"unix://{gone}: No such file or directory" in said
