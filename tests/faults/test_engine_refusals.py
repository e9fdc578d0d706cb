"""One engine call refused during an apply: that change fails with the engine's message,
the others go on, the apply exits 1 and journals it, and the next run converges.

The 500 is a fake (harness/faultproxy.py answers it instead of the engine): a real engine
cannot be made to fail one chosen call on demand. The 409 is real: the proxy only holds
the removal back while a container is created from the image, so the engine itself
refuses it, exactly as when a CI job starts between ccci's last re-check and its act.
The dropped connection and the unanswered call are fakes too (the proxy closes the
connection, or holds the answer back past the client's timeout), for an engine that dies
or wedges in the middle of one call.
"""

from __future__ import annotations

import time

import pytest
from enginekit import (
    DAY,
    NO_CHANGES,
    PRUNE,
    addresses,
    container_names,
    image_ids,
    journal_changes,
    now,
    recaps,
)
from faultkit import Ccci, one_line_error

from ccci.connectors.local import ConnectionFailed, LocalConnector
from harness.engine import Engine
from harness.faultproxy import FaultProxy, Request
from harness.images import make_dangling_image

pytestmark = pytest.mark.engine


def old_leftovers(ccci: Ccci, count: int) -> list[str]:
    """Leftover images (no tag, no digest) older than the prune's 24h, oldest first."""
    return [make_dangling_image(ccci.engine, now() - (3 + n) * DAY) for n in range(count)]


def test_a_500_on_one_removal_fails_that_change_alone_and_the_next_run_converges(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    engine = ccci.engine
    images = old_leftovers(ccci, 3)
    doomed = images[1]
    message = "driver overlay2 failed to remove root filesystem: injected by the fault proxy"
    fault = proxy.answer("DELETE", f"/images/{doomed}", 500, message)
    assert addresses(ccci.plan()) == {f"image:{i}" for i in images}

    failed = ccci.run("reconcile", "--apply", "--yes", expect=(1,))

    assert len(fault.fired) == 1, "the staged 500 never fired"
    by_address = {c["address"]: c for c in journal_changes(ccci.whole_journal())}
    assert (by_address[f"image:{doomed}"]["status"], by_address[f"image:{doomed}"]["message"]) == (
        "failed",
        message,
    )
    assert {by_address[f"image:{i}"]["status"] for i in images if i != doomed} == {"ok"}
    [recap] = recaps(ccci.whole_journal())
    assert (recap["changed"], recap["failed"], recap["converged"]) == (2, 1, False)
    assert f"image:{doomed}" in recap["remaining"]
    assert "cc-ci : ok=2 changed=2 failed=1 skipped=0" in failed.stdout
    assert f": failed ({message})" in failed.stdout
    assert image_ids(engine) & set(images) == {doomed}

    # The fault is spent: the next run removes what is left and says so.
    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))

    assert "cc-ci: converged" in again.stdout
    assert image_ids(engine).isdisjoint(images)
    assert ccci.run("reconcile", "--plan").stdout.splitlines()[0] == NO_CHANGES


def test_a_container_created_between_the_recheck_and_the_removal_is_the_engines_409(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    engine = ccci.engine
    images = old_leftovers(ccci, 3)
    raced = images[0]

    def start_a_job(request: Request) -> None:
        # ccci has re-checked that nothing uses the image; now a CI job creates a container
        # from it, before the engine sees the removal.
        engine.docker("create", "--name", "late-job", raced)

    race = proxy.before("DELETE", f"/images/{raced}", start_a_job)

    failed = ccci.run("reconcile", "--apply", "--yes", expect=(1,))

    assert len(race.fired) == 1, "the staged race never fired"
    journal = ccci.whole_journal()
    by_address = {c["address"]: c for c in journal_changes(journal)}
    refused = by_address[f"image:{raced}"]
    assert refused["status"] == "failed"
    assert refused["message"].startswith("conflict: unable to delete "), refused["message"]
    assert "image is being used by stopped container" in refused["message"]
    assert {by_address[f"image:{i}"]["status"] for i in images[1:]} == {"ok"}
    assert "changed=2 failed=1 skipped=0" in failed.stdout
    # Nothing lost: the image and the job's container are both still there.
    assert raced in image_ids(engine)
    assert "late-job" in container_names(engine)

    # The next run sees the job's container and leaves its image alone: nothing to do.
    plan = ccci.plan()
    assert addresses(plan) == set()
    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))
    assert "cc-ci: converged" in again.stdout
    assert raced in image_ids(engine)
    assert recaps(ccci.whole_journal())[-1]["converged"] is True
    assert PRUNE in {c["policy"] for c in journal_changes(ccci.whole_journal())}


def test_a_connection_the_engine_drops_while_planning_is_one_line_and_plans_nothing(
    ccci: Ccci, proxy: FaultProxy
) -> None:
    old_leftovers(ccci, 1)
    dropped = proxy.drop("GET", "/info")

    failed = ccci.run("reconcile", "--apply", "--yes", expect=(1,))

    assert len(dropped.fired) == 1
    error = one_line_error(failed.stderr)
    assert error == (
        f"ccci: cc-ci: cannot reach the Docker engine at {proxy.docker_host}: "
        "Remote end closed connection without response"
    )
    assert ccci.whole_journal() == []
    ccci.run("reconcile", "--apply", "--yes", expect=(0,))


def test_an_engine_call_left_unanswered_past_the_timeout_is_one_line_naming_the_call(
    engine: Engine, proxy: FaultProxy
) -> None:
    # A hung call (a wedged engine) cannot be made on demand either: the proxy holds the
    # answer back for longer than the connector's timeout, then forwards the request.
    proxy.before("GET", "/info", lambda request: time.sleep(3))
    conn = LocalConnector("cc-ci", proxy.docker_host, timeout=1)
    try:
        with pytest.raises(ConnectionFailed) as caught:
            conn.api.info()
    finally:
        conn.close()
    assert str(caught.value) == (
        f"cc-ci: the Docker engine at {proxy.docker_host} did not answer GET /info "
        "within 1s (timed out)"
    )
