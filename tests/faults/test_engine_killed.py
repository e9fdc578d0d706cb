"""The private engine SIGKILLed in the middle of an apply, then started again.

The proxy only says *when*: it kills the real engine (dockerd and containerd, as a crash or
the OOM killer would) just before forwarding ccci's second removal, so that the kill falls
between two changes of one apply. What ccci then sees is real: the engine's socket stops
answering. Nothing the policies do not name may be lost, the apply must end with a one-line
error and a journal of whole lines, and the first run after the restart must converge.
"""

from __future__ import annotations

import pytest
from ccci_cli import stamp
from enginekit import (
    DAY,
    NO_CHANGES,
    OLD,
    addresses,
    ahead,
    container_names,
    image_ids,
    journal_changes,
    now,
    on_engine,
    recaps,
    seed_run_app,
)
from faultkit import Ccci, kill_engine, one_line_error, restart_engine

from harness.faultproxy import FaultProxy, Request
from harness.images import BASE_TAG, load_image, make_dangling_image

pytestmark = pytest.mark.engine


def test_an_engine_killed_mid_apply_loses_nothing_and_the_next_run_converges(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    engine = ccci.engine
    leftovers = [make_dangling_image(engine, now() - (3 + n) * DAY) for n in range(4)]
    kept_image = load_image(engine, "ccci-test/kept:1", now() - 30 * DAY)
    engine.docker("run", "--name", "finished-job", BASE_TAG, "true")
    engine.docker("volume", "create", "cache-data")
    assert addresses(ccci.plan()) == {f"image:{i}" for i in leftovers}
    removals: list[Request] = []

    def kill_before_the_second(request: Request) -> None:
        removals.append(request)
        if len(removals) == 2:
            kill_engine()

    proxy.before("DELETE", r"/images/sha256:[0-9a-f]{64}", kill_before_the_second, times=2)

    try:
        crashed = ccci.run("reconcile", "--apply", "--yes", expect=(1,))
    finally:
        back = restart_engine()  # whatever happened, later tests find an engine

    assert len(removals) == 2, "the engine was never killed mid-apply"
    error = one_line_error(crashed.stderr)
    assert "cannot reach the Docker engine" in error, error
    journal = ccci.whole_journal()
    statuses = [c["status"] for c in journal_changes(journal)]
    assert statuses[0] == "ok"
    assert set(statuses[1:]) == {"failed"}
    # The host could not be verified: the recap says so rather than leave the last run's.
    [recap] = recaps(journal)
    assert (recap["changed"], recap["failed"], recap["converged"]) == (1, 3, False)
    assert sorted(recap["remaining"]) == sorted(f"image:{i}" for i in leftovers)

    assert back.docker_host == engine.docker_host
    # Nothing the policies do not name was lost, and one removal was done before the kill.
    left = image_ids(back)
    assert kept_image in left
    assert "finished-job" in container_names(back)
    assert "cache-data" in back.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert len(set(leftovers) & left) == 3

    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))

    assert "cc-ci: converged" in again.stdout
    assert image_ids(back).isdisjoint(leftovers)
    assert kept_image in image_ids(back)
    assert recaps(ccci.whole_journal())[-1]["converged"] is True
    assert ccci.run("reconcile", "--plan").stdout.splitlines()[0] == NO_CHANGES


def test_an_engine_killed_mid_reap_leaves_a_stack_the_next_janitor_finishes(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    later = ahead()
    killed: list[Request] = []

    def kill_at_the_secrets(request: Request) -> None:
        # The stack's service is removed and its task containers are gone.
        killed.append(request)
        kill_engine()

    proxy.before("DELETE", r"/secrets/.+", kill_at_the_secrets)
    try:
        crashed = ccci.run("janitor", "--now", stamp(later), expect=(1,))
    finally:
        back = restart_engine()

    assert killed, "the engine was never killed mid-reap"
    assert "cannot reach the Docker engine" in one_line_error(crashed.stderr)
    [line] = journal_changes(ccci.whole_journal())
    assert (line["address"], line["status"]) == (f"stack:{OLD}", "failed")
    assert "cannot reach the Docker engine" in line["message"]
    [recap] = recaps(ccci.whole_journal())
    assert (recap["converged"], recap["remaining"]) == (False, [f"stack:{OLD}"])
    partial = on_engine(back, OLD, env_file)
    assert ("service", f"{OLD}_app") not in partial
    assert ("volume", f"{OLD}_data") in partial

    again = ccci.run("janitor", "--now", stamp(later), expect=(0,))

    assert "cc-ci: converged" in again.stdout
    assert on_engine(back, OLD, env_file) == set()
    assert ccci.run("residual", OLD, expect=(0,)).stdout.strip() == f"Nothing of {OLD} is left."
