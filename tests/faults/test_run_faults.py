"""Faults of the run itself, on the real engine: ccci SIGKILLed in the middle of reaping a
stack, a second apply while one runs, a deploy that starts between plan and apply.

The proxy (harness/faultproxy.py) is used here only to say *when*: it holds one request
back while the test acts (kills ccci, starts a second apply, deploys a stack) and then
forwards it unchanged. No answer is faked: every response comes from the real engine.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

import pytest
from ccci_cli import HOST, stamp
from enginekit import (
    DAY,
    NO_CHANGES,
    OLD,
    addresses,
    ahead,
    image_ids,
    journal_changes,
    now,
    on_engine,
    recaps,
    seed_run_app,
    sleeper,
)
from faultkit import Ccci

from harness.faultproxy import FaultProxy, Request
from harness.images import make_dangling_image
from harness.swarm import deploy_stack, remove_all_stacks

pytestmark = pytest.mark.engine

LIVE = "mari-5e6f70_ci_example_org"


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[str, str]:
    """Wait for a ccci this test started; kill it (by its own pid) if it hangs."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"ccci (pid {process.pid}) did not finish within {timeout:.0f}s")


# ---- ccci SIGKILLed mid-reap ---------------------------------------------------------------


def test_ccci_killed_mid_reap_leaves_a_partial_stack_the_next_run_finishes(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    seed_run_app(ccci, LIVE, volume=False, secrets=())
    live_before = on_engine(engine, LIVE)
    later = ahead()  # OLD and LIVE are both old by then, so LIVE gets a fresh deadline
    engine.docker(
        "service", "update", "--detach", "--label-add", f"ci.expires={9**10}", f"{LIVE}_app"
    )
    assert addresses(ccci.plan(later)) == {f"stack:{OLD}"}
    janitor = ccci.popen("janitor", "--now", stamp(later))
    killed: list[Request] = []

    def kill_ccci(request: Request) -> None:
        # The stack's service is gone and its tasks have stopped; its secrets are next.
        killed.append(request)
        janitor.send_signal(signal.SIGKILL)

    proxy.before("DELETE", r"/secrets/.+", kill_ccci)

    finish(janitor)

    assert killed, "ccci was never killed mid-reap"
    assert janitor.returncode == -signal.SIGKILL
    partial = on_engine(engine, OLD, env_file)
    assert ("service", f"{OLD}_app") not in partial
    assert ("volume", f"{OLD}_data") in partial and ("env file", str(env_file)) in partial
    assert journal_changes(ccci.whole_journal()) == []  # killed before it could journal the reap
    left = ccci.run("residual", OLD, expect=(1,))
    assert left.stdout.strip(), "residual found nothing of a half-reaped stack"

    again = ccci.run("janitor", "--now", stamp(later), expect=(0,))

    assert f"cc-ci: - stack {OLD} (partial" in again.stdout
    assert "cc-ci: converged" in again.stdout
    assert on_engine(engine, OLD, env_file) == set()
    assert ccci.run("residual", OLD, expect=(0,)).stdout.strip() == f"Nothing of {OLD} is left."
    assert on_engine(engine, LIVE) == live_before  # nothing of the other run-app was touched
    [line] = journal_changes(ccci.whole_journal())
    assert (line["address"], line["status"]) == (f"stack:{OLD}", "ok")


# ---- two applies at once -------------------------------------------------------------------


def test_an_apply_started_while_another_applies_exits_75_and_the_first_converges(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - (3 + n) * DAY) for n in range(3)]
    second: list[subprocess.CompletedProcess[str]] = []
    first_pids: list[int] = []

    def start_another(request: Request) -> None:
        # The first apply holds the lock and is about to make its first removal.
        second.append(ccci.run("reconcile", "--apply", "--yes", expect=(0, 1, 2, 75)))

    proxy.before("DELETE", r"/images/sha256:[0-9a-f]{64}", start_another)
    first = ccci.popen("reconcile", "--apply", "--yes")
    first_pids.append(first.pid)
    out, err = finish(first)

    assert second, "the second apply was never started"
    assert first.returncode == 0, f"{out}\n{err}"
    [busy] = second
    assert busy.returncode == 75, f"{busy.stdout}\n{busy.stderr}"
    assert f"another apply holds the lock (pid {first.pid} since " in busy.stderr
    assert busy.stdout == ""  # it gave up before it planned anything
    assert "cc-ci: converged" in out
    journal = ccci.whole_journal()
    assert sorted(c["address"] for c in journal_changes(journal)) == sorted(
        f"image:{i}" for i in images
    )
    assert {c["status"] for c in journal_changes(journal)} == {"ok"}
    [recap] = recaps(journal)
    assert recap["converged"] is True
    assert image_ids(engine).isdisjoint(images)
    assert ccci.run("reconcile", "--plan").stdout.splitlines()[0] == NO_CHANGES


# ---- a deploy starts between plan and apply --------------------------------------------------


def read_until(fd: int, marker: bytes, timeout: float = 120) -> bytes:
    """Read ``fd`` until ``marker`` has been seen (bounded)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {marker!r} within {timeout:.0f}s; got {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"the stream ended before {marker!r}; got {seen[-2000:]!r}")
            seen += chunk
    return seen


def test_a_deploy_while_the_operator_reads_the_plan_stops_the_prune_at_its_recheck(
    ccci: Ccci,
) -> None:
    # An operator runs `ccci reconcile --apply` on a terminal and reads the plan; meanwhile
    # a CI run deploys its app. Only then does the operator answer yes.
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - (3 + n) * DAY) for n in range(2)]
    master, slave = pty.openpty()
    stderr_r, stderr_w = os.pipe()
    try:
        apply = ccci.popen("reconcile", "--apply", stdin=slave, stderr=stderr_w)
        os.close(stderr_w)
        read_until(stderr_r, b"[y/N]")
        assert addresses(ccci.plan()) == {f"image:{i}" for i in images}  # as it was planned
        deploy_stack(engine, OLD, sleeper())  # a run-app: the prune's no_live_stacks closes
        os.write(master, b"y\n")
        out, _ = finish(apply)
    finally:
        os.close(master)
        os.close(slave)
        os.close(stderr_r)

    assert apply.returncode == 0, out
    why = f"gate no_live_stacks closed: 1 live run-app stack: {OLD}"
    lines = journal_changes(ccci.whole_journal())
    assert sorted(c["address"] for c in lines) == sorted(f"image:{i}" for i in images)
    assert {(c["status"], c["message"]) for c in lines} == {("skipped", why)}
    assert f"{HOST} : ok=0 changed=0 failed=0 skipped=2" in out
    assert set(images) <= image_ids(engine)

    # The run ends and tears its app down; the next nightly prunes.
    remove_all_stacks(engine)
    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))
    assert "cc-ci: converged" in again.stdout
    assert image_ids(engine).isdisjoint(images)


def test_a_deploy_that_starts_during_the_prune_stops_it_at_the_next_recheck(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    # The apply is under way: the first removal has passed its re-check when a CI run
    # deploys. That removal goes ahead (its gates held when it was checked); every change
    # after it re-checks the live gates and is skipped.
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - (3 + n) * DAY) for n in range(3)]
    deployed: list[Request] = []

    def deploy(request: Request) -> None:
        deployed.append(request)
        deploy_stack(engine, OLD, sleeper())

    proxy.before("DELETE", r"/images/sha256:[0-9a-f]{64}", deploy)

    applied = ccci.run("reconcile", "--apply", "--yes", expect=(0,))

    assert len(deployed) == 1, "the deploy never started mid-apply"
    first = deployed[0].path.removeprefix("/images/")
    lines = journal_changes(ccci.whole_journal())
    assert lines[0]["address"] == f"image:{first}"
    why = f"gate no_live_stacks closed: 1 live run-app stack: {OLD}"
    assert [(c["status"], c["message"]) for c in lines] == [
        ("ok", "done"),
        ("skipped", why),
        ("skipped", why),
    ]
    assert f"{HOST} : ok=1 changed=1 failed=0 skipped=2" in applied.stdout
    assert image_ids(engine) & set(images) == set(images) - {first}

    remove_all_stacks(engine)
    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))
    assert "cc-ci: converged" in again.stdout
    assert image_ids(engine).isdisjoint(images)
