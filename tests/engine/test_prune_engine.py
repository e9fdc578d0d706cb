"""The gated, surgical prune proven on the private engine, through the real CLI.

Ages: images are loaded with an old ``created`` time; containers and build cache cannot be
backdated, so tests that need them old plan and apply with ``--now`` two days ahead (an
explicit CLI option: rules take ``now`` as a parameter and never read the clock).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccci_cli import CliWorkspace, stamp
from enginekit import (
    DAY,
    NO_CHANGES,
    PRUNE,
    RUN_APP_MATCH,
    addresses,
    change,
    containers,
    gates,
    image_ids,
    journalled_once,
    noops,
    now,
    prune_policy,
    recaps,
    sleeper,
    tasks_of,
    wait_until,
)

from ccci.apply.lock import hold
from harness.disk import fill_to, small_filesystem, unmount
from harness.engine import Engine, EngineError
from harness.images import BASE_TAG, buildkit_build, load_image, make_dangling_image
from harness.swarm import deploy_stack, reset

pytestmark = pytest.mark.engine

RUN_APP = "redi-3fa9c1_ci_example_org"


# ---- the CLI, as a user runs it -----------------------------------------------------------


@dataclass
class Ccci(CliWorkspace):
    """The CLI, pointed at the private engine with a policy and state under ``root``."""

    disk: str

    def write_prune_policy(
        self,
        images: str = "24h",
        containers: str = "24h",
        build_cache: str = "24h",
        at_least: str = "80%",
    ) -> None:
        """The gated prune of all three kinds, each older than its age."""
        ages = (
            ("dangling_images", images),
            ("stopped_containers", containers),
            ("dangling_build_cache", build_cache),
        )
        live = f"{{match: '{RUN_APP_MATCH}'}}"
        self.write_policy(
            "prune",
            prune_policy(self.disk, at_least=f"'{at_least}'", live_stacks=live, older_than=ages),
        )


@pytest.fixture
def ccci(clean_engine: Engine, gate_disk: str, tmp_path: Path) -> Ccci:
    """The real CLI against a freshly reset engine, with the default policy (gates open)."""
    cli = Ccci(clean_engine, tmp_path, gate_disk)
    cli.write_inventory()
    cli.write_prune_policy()
    return cli


# ---- reading the engine (independently of ccci) ------------------------------------------


def build_cache(engine: Engine) -> dict[str, dict[str, Any]]:
    return {r["ID"]: r for r in engine.api("/system/df").get("BuildCache") or []}


def wait_for_pending_task(engine: Engine, service: str) -> None:
    """Until the scheduler has a task of ``service`` it cannot place: pending, desired running."""

    def pending() -> bool:
        return any(
            t["Status"]["State"] == "pending" and t["DesiredState"] == "running"
            for t in tasks_of(engine, service)
        )

    wait_until(f"a pending task of {service}", pending)


# ---- making things on the engine ---------------------------------------------------------


def run_exited(engine: Engine, name: str, image: str) -> str:
    """A container that ran ``true`` and exited; returns its id."""
    engine.docker("run", "--name", name, image, "true")
    return str(containers(engine)[name]["Id"])


def run_detached(engine: Engine, name: str, image: str) -> str:
    """A running container (the image's CMD is ``sleep 3600``); returns its id."""
    return engine.docker("run", "--detach", "--name", name, image).stdout.strip()


def many_dangling(engine: Engine, count: int, created: datetime) -> set[str]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return set(pool.map(lambda _: make_dangling_image(engine, created), range(count)))


# ---- reading the disk ---------------------------------------------------------------------


def df_percent(path: str) -> float:
    """Use% as df computes it: used / (used + available to users)."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return 100 * used / (used + st.f_bavail * st.f_frsize)


# ---- 1. the disk gate --------------------------------------------------------------------


def test_closed_disk_gate_plans_nothing_and_names_the_observed_usage(ccci: Ccci) -> None:
    engine = ccci.engine
    old = make_dangling_image(engine, now() - 3 * DAY)
    fill_to(ccci.disk, 30)
    assert abs(df_percent(ccci.disk) - 30) < 0.05
    observed = f"disk 30% < 80% on {ccci.disk}"

    plan = ccci.plan()

    assert addresses(plan) == set()
    assert plan["summary"]["empty"] is True
    disk_gate = gates(plan)["disk_usage"]
    assert (disk_gate["open"], disk_gate["observed"]) == (False, observed)
    assert noops(plan) == {f"policy:{PRUNE}": f"gate disk_usage closed: {observed}"}
    text = ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(0,)).stdout
    assert text.splitlines()[0] == NO_CHANGES
    assert f"Policy {PRUNE} does nothing: gate disk_usage closed: {observed}." in text
    assert old in image_ids(engine)

    # The same host under real pressure: the gate was all that held the prune back.
    fill_to(ccci.disk, 90)
    pending = ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(2,)).stdout
    assert f"- image {old[:19]} (<none>:<none>)" in pending


# ---- 2. what an open gate prunes, and what it keeps ---------------------------------------


def test_open_gates_prune_exactly_the_old_unused_dangling_objects(
    ccci: Ccci, tmp_path: Path
) -> None:
    engine = ccci.engine
    seeded = now()
    later = seeded + 2 * DAY  # containers and build cache made now are two days old by then
    ccci.write_prune_policy(images="72h")  # images: as of `later`, 3 days counts as old

    old_images = {make_dangling_image(engine, seeded - d * DAY) for d in (3, 6)}
    young = make_dangling_image(engine, seeded - 12 * timedelta(hours=1))  # 60 h < 72 h
    tagged = load_image(engine, "ccci/keep:1", seeded - 30 * DAY)
    # In use by a running container.
    running_image = make_dangling_image(engine, seeded - 4 * DAY)
    runner = run_detached(engine, "runner", running_image)
    # Used only by an old exited container: both go, the container first.
    job_image = make_dangling_image(engine, seeded - 4 * DAY)
    job = run_exited(engine, "old-job", job_image)
    tagged_job = run_exited(engine, "old-tagged-job", BASE_TAG)
    never_started = engine.docker("create", "--name", "never-started", BASE_TAG).stdout.strip()
    # Named by a service spec by id, but no container runs it (0 replicas).
    by_id = make_dangling_image(engine, seeded - 4 * DAY)
    # A service deployed by tag, then the tag moves away: its image dangles, its task runs it.
    moved_from = load_image(engine, "ccci/moving:1", seeded - 4 * DAY)
    deploy_stack(
        engine,
        "cache",
        'version: "3.8"\n'
        "services:\n"
        "  byid:\n"
        f"    image: {by_id}\n"
        "    stop_grace_period: 1s\n"
        "    deploy: {replicas: 0}\n"
        "  moving:\n"
        "    image: ccci/moving:1\n"
        "    stop_grace_period: 1s\n",
    )
    moved_to = load_image(engine, "ccci/moving:1", seeded - 1 * DAY)
    assert moved_from in image_ids(engine) and moved_from != moved_to
    built = buildkit_build(engine, tmp_path / "context", "ccci/built:1")
    cache = build_cache(engine)
    dangling_cache = {i for i, r in cache.items() if not r["Shared"] and not r["InUse"]}
    shared_cache = {i for i, r in cache.items() if r["Shared"]}
    assert dangling_cache and shared_cache, cache  # BuildKit made both kinds

    plan = ccci.plan(later)

    expected = (
        {f"image:{i}" for i in (*old_images, job_image)}
        | {f"container:{c}" for c in (job, tagged_job, never_started)}
        | {f"build_cache:{r}" for r in dangling_cache}
    )
    assert addresses(plan) == expected
    assert "(once container old-job " in change(plan, f"image:{job_image}")["reason"]
    left_alone = noops(plan)
    assert left_alone[f"image:{young}"].startswith("dangling, created ")
    assert left_alone[f"image:{young}"].endswith(" ago < 3d")  # 72h, in policy syntax
    assert (
        left_alone[f"image:{running_image}"] == "dangling, but used by container runner (running)"
    )
    assert "service cache_byid" in left_alone[f"image:{by_id}"]
    assert "container cache_moving.1." in left_alone[f"image:{moved_from}"]
    for record in shared_cache:
        assert left_alone[f"build_cache:{record}"] == "build cache shared with an image"
    assert f"container:{runner}" not in addresses(plan)

    applied = ccci.run("reconcile", "--apply", "--yes", "--now", stamp(later))

    assert f"changed={len(expected)} failed=0 skipped=0" in applied.stdout
    images_now = image_ids(engine)
    assert images_now.isdisjoint({*old_images, job_image})
    assert {young, tagged, running_image, by_id, moved_from, moved_to, built} <= images_now
    names = containers(engine)
    assert {"old-job", "old-tagged-job", "never-started"}.isdisjoint(names)
    assert names["runner"]["State"] == "running"
    cache_now = set(build_cache(engine))
    assert cache_now.isdisjoint(dangling_cache)
    assert shared_cache <= cache_now
    # Exactly the planned records went (BuildKit keeps internal and frontend records unless
    # the prune says `all`): the next plan has no build cache left to remove.
    again = ccci.plan(later)
    assert not {a for a in addresses(again) if a.startswith("build_cache:")}, again


def test_a_young_exited_container_is_kept_and_so_is_its_dangling_image(ccci: Ccci) -> None:
    engine = ccci.engine
    used = make_dangling_image(engine, now() - 4 * DAY)
    job = run_exited(engine, "young-job", used)
    old = make_dangling_image(engine, now() - 3 * DAY)

    plan = ccci.plan()  # the real clock: the job exited seconds ago

    assert addresses(plan) == {f"image:{old}"}
    left_alone = noops(plan)
    # Created seconds ago, so it cannot have exited 24h ago: ccci does not even inspect it.
    assert left_alone[f"container:{job}"].startswith("exited")
    assert left_alone[f"container:{job}"].endswith(" ago < 24h")
    assert left_alone[f"image:{used}"] == "dangling, but used by container young-job (exited)"


# ---- 3. and 4. the swarm gates -----------------------------------------------------------


def test_a_converging_service_blocks_the_prune(ccci: Ccci) -> None:
    engine = ccci.engine
    old = make_dangling_image(engine, now() - 3 * DAY)
    # No node has this label: the task stays pending while its desired state is running.
    unplaceable = "{placement: {constraints: ['node.labels.nope==1']}}"
    deploy_stack(engine, "stuck", sleeper(deploy=unplaceable), wait=False)
    wait_for_pending_task(engine, "stuck_app")

    plan = ccci.plan()

    assert addresses(plan) == set()
    observed = "service stuck_app converging (1 task pending, desired running)"
    gate = gates(plan)["no_converging_services"]
    assert (gate["open"], gate["observed"]) == (False, observed)
    assert noops(plan)[f"policy:{PRUNE}"] == f"gate no_converging_services closed: {observed}"

    engine.docker("service", "rm", "stuck_app")
    assert addresses(ccci.plan()) == {f"image:{old}"}


def test_a_live_run_app_stack_blocks_the_prune_but_another_stack_does_not(ccci: Ccci) -> None:
    engine = ccci.engine
    old = make_dangling_image(engine, now() - 3 * DAY)
    deploy_stack(engine, "traefik", sleeper())

    with_proxy = ccci.plan()

    gate = gates(with_proxy)["no_live_stacks"]
    assert (gate["open"], gate["observed"]) == (True, f"no live stack matches {RUN_APP_MATCH!r}")
    assert addresses(with_proxy) == {f"image:{old}"}

    deploy_stack(engine, RUN_APP, sleeper() + "    volumes: [data:/data]\nvolumes:\n  data:\n")
    with_run_app = ccci.plan()

    observed = f"1 live run-app stack: {RUN_APP}"
    gate = gates(with_run_app)["no_live_stacks"]
    assert (gate["open"], gate["observed"]) == (False, observed)
    assert addresses(with_run_app) == set()
    assert noops(with_run_app)[f"policy:{PRUNE}"] == f"gate no_live_stacks closed: {observed}"

    # The CI run tears its app down; `docker stack rm` leaves the named volume behind, and a
    # stack that is only leftovers is not live.
    engine.docker("stack", "rm", RUN_APP)
    wait_until(
        "the run-app's services to go",
        lambda: not engine.docker("stack", "ls", "--format", "{{.Name}}").stdout.count(RUN_APP),
    )
    torn_down = ccci.plan()

    assert gates(torn_down)["no_live_stacks"]["open"] is True
    assert addresses(torn_down) == {f"image:{old}"}
    assert f"{RUN_APP}_data" in engine.docker("volume", "ls", "--quiet").stdout.split()


# ---- 5. apply, then plan again -----------------------------------------------------------


def test_a_second_plan_after_apply_plans_nothing(ccci: Ccci, tmp_path: Path) -> None:
    engine = ccci.engine
    later = now() + 2 * DAY
    make_dangling_image(engine, now() - 3 * DAY)
    run_exited(engine, "old-job", make_dangling_image(engine, now() - 4 * DAY))
    buildkit_build(engine, tmp_path / "context", "ccci/built:1")
    reconcile = ("reconcile", "--now", stamp(later))

    ccci.run(*reconcile, "--plan", "--detailed-exitcode", expect=(2,))
    applied = ccci.run(
        *reconcile, "--apply", "--yes", "--detailed-exitcode", "--output", "json", expect=(0,)
    )
    again = ccci.run(*reconcile, "--plan", "--detailed-exitcode", expect=(0,))

    assert again.stdout.splitlines()[0] == NO_CHANGES
    # With --output json, stdout stays pure JSON (the plan) and the progress goes to stderr.
    assert json.loads(applied.stdout)["summary"]["remove"] >= 3
    assert "cc-ci: converged" in applied.stderr


def test_apply_claims_convergence_only_when_a_second_plan_is_empty(
    ccci: Ccci, tmp_path: Path
) -> None:
    engine = ccci.engine
    later = now() + 2 * DAY
    built = buildkit_build(engine, tmp_path / "context", None)  # untagged: a dangling image
    shared = {i for i, r in build_cache(engine).items() if r["Shared"]}
    assert shared
    reconcile = ("reconcile", "--now", stamp(later))

    applied = ccci.run(*reconcile, "--apply", "--yes", "--detailed-exitcode", expect=(0, 2))
    assert built not in image_ids(engine)
    again = ccci.run(*reconcile, "--plan", "--output", "json")

    left = addresses(json.loads(again.stdout))
    # Either apply says it did not converge, or there is really nothing left to do.
    assert applied.returncode == 2 or not left, (
        f"apply exited 0 (converged) but the next plan still has {sorted(left)}"
    )


# ---- 6. parity with the engine's own prune -----------------------------------------------

PARITY_DANGLING = {
    "old-3d": 3 * DAY,
    "old-5d": 5 * DAY,
    "old-9d": 9 * DAY,
    "young-2h": timedelta(hours=2),
    "young-20h": timedelta(hours=20),
}


def seed_parity(engine: Engine, moment: datetime) -> dict[str, str]:
    """The same state every time: fixed markers and times, no random filler, so the image
    ids (content addresses) are identical across seedings."""
    ids = {
        name: make_dangling_image(engine, moment - age, marker=f"ccci-parity-{name}")
        for name, age in PARITY_DANGLING.items()
    }
    ids["tagged"] = load_image(engine, "ccci/parity:1", moment - 30 * DAY, marker="ccci-parity-t")
    for name, run in (("used-exited", run_exited), ("used-running", run_detached)):
        ids[name] = make_dangling_image(engine, moment - 4 * DAY, marker=f"ccci-parity-{name}")
        run(engine, f"parity-{name}", ids[name])
    return ids


def test_leftover_images_ccci_removes_are_those_docker_image_prune_removes(ccci: Ccci) -> None:
    """On images with neither tag nor digest, ccci and ``docker image prune`` agree. Where a
    swarm pulled by digest they do not: see test_swarm_cache_engine, where Docker's prune
    takes the cache ccci keeps."""
    engine = ccci.engine
    moment = now()
    ids = seed_parity(engine, moment)
    before = image_ids(engine)

    plan = ccci.plan(moment)
    assert all(a.startswith("image:") for a in addresses(plan))  # the containers are young
    planned = {a.removeprefix("image:") for a in addresses(plan)}
    ccci.run("reconcile", "--apply", "--yes", "--now", stamp(moment))
    removed_by_ccci = before - image_ids(engine)

    reset(engine)
    assert seed_parity(engine, moment) == ids
    before = image_ids(engine)
    engine.docker("image", "prune", "--force", "--filter", f"until={stamp(moment - DAY)}")
    removed_by_docker = before - image_ids(engine)

    assert planned == removed_by_ccci == removed_by_docker
    assert removed_by_docker == {ids["old-3d"], ids["old-5d"], ids["old-9d"]}


def test_a_dangling_image_a_service_names_is_kept_though_docker_prune_would_remove_it(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    moment = now()
    named = make_dangling_image(engine, moment - 4 * DAY)
    unnamed = make_dangling_image(engine, moment - 4 * DAY)
    deploy_stack(engine, "idle", sleeper(image=named, deploy="{replicas: 0}"))
    assert all(c["ImageID"] != named for c in containers(engine).values())  # nothing runs it

    plan = ccci.plan(moment)

    assert addresses(plan) == {f"image:{unnamed}"}
    assert noops(plan)[f"image:{named}"] == "dangling, but used by service idle_app"

    engine.docker("image", "prune", "--force", "--filter", f"until={stamp(moment - DAY)}")
    assert image_ids(engine).isdisjoint({named, unnamed})  # docker's prune took both


def test_removing_a_dangling_child_image_keeps_the_parent_a_service_names(ccci: Ccci) -> None:
    engine = ccci.engine
    later = now() + 2 * DAY
    parent = make_dangling_image(engine, now() - 5 * DAY)
    run_exited(engine, "base-job", parent)
    child = engine.docker("commit", "base-job").stdout.strip()  # its parent image is `parent`
    engine.docker("rm", "base-job")
    deploy_stack(engine, "idle", sleeper(image=parent, deploy="{replicas: 0}"))

    plan = ccci.plan(later)

    assert addresses(plan) == {f"image:{child}"}
    ccci.run("reconcile", "--apply", "--yes", "--now", stamp(later))
    assert child not in image_ids(engine)
    assert parent in image_ids(engine), "removed though not planned, and a service names it"


# ---- 7. saved plans ----------------------------------------------------------------------


@pytest.mark.parametrize("move", ["tag", "remove", "deploy"])
def test_a_stale_saved_plan_is_refused_and_removes_nothing(ccci: Ccci, move: str) -> None:
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - d * DAY) for d in (3, 4, 5)]
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    saved = json.loads((ccci.root / "plan.json").read_text(encoding="utf-8"))
    assert addresses(saved) == {f"image:{i}" for i in images}

    if move == "tag":
        engine.docker("tag", images[0], "ccci/late-tag:1")
    elif move == "remove":
        engine.docker("image", "rm", images[0])
    else:  # a CI run deploys its app after the plan was made
        deploy_stack(engine, RUN_APP, sleeper())
    before = image_ids(engine)

    refused = ccci.run("apply", "plan.json", "--yes", expect=(1,))

    assert "saved plan is stale" in refused.stderr
    moved = "cc-ci: swarm)" if move == "deploy" else f"cc-ci: image:{images[0]})"
    assert moved in refused.stderr
    assert image_ids(engine) == before
    assert ccci.journal() == []


def test_an_unchanged_saved_plan_applies_exactly_and_journals_each_change(ccci: Ccci) -> None:
    # A saved plan is planned again at the clock's time when applied (so it is made at the
    # clock's time here: containers cannot be backdated, so none is in it).
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - d * DAY) for d in (3, 4)]
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    planned = addresses(json.loads((ccci.root / "plan.json").read_text(encoding="utf-8")))
    assert planned == {f"image:{i}" for i in images}
    appeared = make_dangling_image(engine, now() - 3 * DAY)  # not in the plan, so not applied

    ccci.run("apply", "plan.json", "--yes", expect=(0,))

    journal = ccci.journal()
    changes = journalled_once(journal)
    assert set(changes) == planned
    assert {(c["status"], c["message"]) for c in changes.values()} == {("ok", "done")}
    assert len({c["run"] for c in journal}) == 1
    [recap] = recaps(journal)
    assert (recap["changed"], recap["failed"], recap["skipped"]) == (2, 0, 0)
    # The image that appeared is the policies' work still to do: the host has not converged.
    assert (recap["converged"], recap["remaining"]) == (False, [f"image:{appeared}"])
    assert image_ids(engine).isdisjoint(images)
    assert appeared in image_ids(engine)


# ---- 8. one apply at a time --------------------------------------------------------------


def test_apply_exits_75_naming_the_holder_while_the_lock_is_held(ccci: Ccci) -> None:
    engine = ccci.engine
    old = make_dangling_image(engine, now() - 3 * DAY)

    with hold(ccci.lock_path):  # a real flock, held by this (the test's) process
        busy = ccci.run("reconcile", "--apply", "--yes", expect=(75,))

    assert f"another apply holds the lock (pid {os.getpid()} since " in busy.stderr
    assert old in image_ids(engine)
    assert ccci.journal() == []
    ccci.run("reconcile", "--apply", "--yes", expect=(0,))  # released: the same run goes ahead
    assert old not in image_ids(engine)


def finish(process: subprocess.Popen[str]) -> None:
    """Wait for a ccci subprocess this test started; kill it (by its own pid) if it hangs."""
    try:
        process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def lock_holder_pid(lock: Path) -> int | None:
    try:
        return int(json.loads(lock.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError):
        return None


def lock_is_held(lock: Path) -> bool:
    """Probe with a non-blocking flock of our own (only safe once the holder has it)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_second_saved_plan_apply_exits_75_while_the_first_is_applying(ccci: Ccci) -> None:
    # A real race between two `ccci apply` processes is not deterministic on its own, so
    # the first is frozen (SIGSTOP) the moment it has written itself into the lock file,
    # i.e. while it holds the flock in the middle of its 40 removals; the second is then
    # started, and must give up with 75 naming the first; the first is thawed and finishes.
    engine = ccci.engine
    images = many_dangling(engine, 40, now() - 3 * DAY)
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    with open(ccci.root / "first.out", "w") as out:
        first = ccci.popen("apply", "plan.json", "--yes", stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(
            "the first apply to take the lock",
            lambda: lock_holder_pid(ccci.lock_path) == first.pid or first.poll() is not None,
            timeout=120,
            interval=0.002,
        )
        assert first.poll() is None, "the first apply finished before it could be frozen"
        first.send_signal(signal.SIGSTOP)
        assert lock_is_held(ccci.lock_path)

        second = ccci.run("apply", "plan.json", "--yes", expect=(75,))

        assert f"another apply holds the lock (pid {first.pid} since " in second.stderr
    finally:
        first.send_signal(signal.SIGCONT)
        finish(first)
    assert first.returncode == 0, (ccci.root / "first.out").read_text(encoding="utf-8")
    journal = ccci.journal()
    assert len(journalled_once(journal)) == 40
    assert {c["status"] for c in journalled_once(journal).values()} == {"ok"}
    assert len(recaps(journal)) == 1
    assert image_ids(engine).isdisjoint(images)


def test_two_saved_plan_applies_started_together_act_only_once(ccci: Ccci) -> None:
    # Started back to back, they normally overlap: one holds the lock for its 40 removals and
    # the other exits 75. Should the second reach the lock only after the first has finished,
    # it is not applied twice either: its subjects are gone, so the saved plan is stale (1).
    # Either way exactly one apply acts. The staleness check alone would also keep a second
    # saved-plan apply from acting, so the lock itself is pinned down by the two tests above.
    engine = ccci.engine
    images = many_dangling(engine, 40, now() - 3 * DAY)
    ccci.run("reconcile", "--plan", "--out", "plan.json")

    racers = [
        ccci.popen("apply", "plan.json", "--yes", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        outputs = [racer.communicate(timeout=300) for racer in racers]
    finally:
        for racer in racers:
            finish(racer)

    codes = sorted(racer.returncode for racer in racers)
    assert codes in ([0, 75], [0, 1]), outputs
    loser_stderr = next(err for (_, err), r in zip(outputs, racers, strict=True) if r.returncode)
    assert ("another apply holds the lock" if codes == [0, 75] else "saved plan is stale") in (
        loser_stderr
    )
    journal = ccci.journal()
    assert len(journalled_once(journal)) == 40
    assert {c["status"] for c in journalled_once(journal).values()} == {"ok"}
    assert len(recaps(journal)) == 1
    assert image_ids(engine).isdisjoint(images)


def test_planning_survives_a_concurrent_disk_usage_query(ccci: Ccci) -> None:
    # Seen first as two `ccci reconcile --apply` started together: instead of 0 and 75, the
    # second often exits 1, because both gather facts (before the lock) at the same moment.
    # Made deterministic here: a volume holding 20,000 files (on a tmpfs, so quick to make)
    # makes each /system/df take a while, readers keep one in flight for a few seconds, and
    # the inventory has several hosts on this engine, so the plan asks several times.
    engine = ccci.engine
    ccci.write_inventory(hosts=tuple(f"cc-ci-{n}" for n in range(8)))
    make_dangling_image(engine, now() - 3 * DAY)
    engine.docker("volume", "create", "disk-usage-load")
    mountpoint = engine.docker(
        "volume", "inspect", "--format", "{{.Mountpoint}}", "disk-usage-load"
    ).stdout.strip()
    tree = small_filesystem(os.path.join(mountpoint, "tree"), 32)
    try:
        for n in range(20_000):
            Path(tree, f"{n // 500}").mkdir(exist_ok=True)
            Path(tree, f"{n // 500}", f"{n}").touch()
        plan = plan_while_disk_usage_is_read(ccci)
    finally:
        unmount(tree)

    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.count("- image sha256:") == 8


def plan_while_disk_usage_is_read(ccci: Ccci) -> subprocess.CompletedProcess[str]:
    busy_until = time.monotonic() + 5
    planned = threading.Event()
    seen_busy = threading.Event()

    def read_disk_usage() -> None:
        while not planned.is_set() and time.monotonic() < busy_until:
            try:
                ccci.engine.api("/system/df", timeout=60)
            except EngineError as exc:  # another reader has one in flight
                if "a disk usage operation is already running" in str(exc):
                    seen_busy.set()

    readers = [threading.Thread(target=read_disk_usage) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        assert seen_busy.wait(timeout=5), "the readers never overlapped"
        return ccci.run("reconcile", "--plan", expect=(0, 1))
    finally:
        planned.set()
        for reader in readers:
            reader.join()


# ---- 9. a saved plan is planned again: what moved since refuses it whole ----------------
# (Between that fresh plan and each act, apply still re-checks gates and preconditions; the
# staged-fault tests in tests/faults/ race a deploy against that re-check.)


def test_a_saved_plan_is_refused_once_a_container_uses_a_planned_image(ccci: Ccci) -> None:
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - d * DAY) for d in (3, 4, 5)]
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    # A new container does not change the image's record, so the plan is not stale; but the
    # policies no longer remove an image in use.
    run_detached(engine, "late-user", images[1])

    refused = ccci.run("apply", "plan.json", "--yes", expect=(1,))

    [line] = refused.stderr.splitlines()
    assert line.startswith(
        f"ccci: saved plan refused: cc-ci: image:{images[1]}: the policies would not do this now"
    )
    assert "late-user" in line
    assert set(images) <= image_ids(engine)
    assert ccci.journal() == []


def test_a_saved_plan_is_refused_once_a_service_starts_converging(ccci: Ccci) -> None:
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - d * DAY) for d in (3, 4)]
    deploy_stack(engine, "web", sleeper(deploy="{placement: {max_replicas_per_node: 1}}"))
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    # Scaling is no new deploy (same service, same image, no rolling update), so the plan is
    # not stale; but the second replica has no node to go to and stays pending.
    engine.docker("service", "scale", "--detach", "web_app=2")
    wait_for_pending_task(engine, "web_app")

    refused = ccci.run("apply", "plan.json", "--yes", expect=(1,))

    [line] = refused.stderr.splitlines()
    assert f"policy {PRUNE} holds it now: gate no_converging_services closed (" in line
    assert "service web_app converging" in line
    assert set(images) <= image_ids(engine)
    assert ccci.journal() == []


def test_a_saved_plan_is_refused_once_the_disk_gate_has_closed(ccci: Ccci) -> None:
    engine = ccci.engine
    images = [make_dangling_image(engine, now() - d * DAY) for d in (3, 4)]
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    fill_to(ccci.disk, 0)  # the pressure is gone by the time the apply runs

    refused = ccci.run("apply", "plan.json", "--yes", expect=(1,))

    [line] = refused.stderr.splitlines()
    assert (
        f"policy {PRUNE} holds it now: gate disk_usage closed (disk 0% < 80% on {ccci.disk})"
    ) in line
    assert set(images) <= image_ids(engine)
    assert ccci.journal() == []


# ---- 10. a failed change -----------------------------------------------------------------


def test_a_failed_change_does_not_stop_the_others_and_exits_1(ccci: Ccci) -> None:
    # A real engine failure, not a fake: an immutable file in the container's directory under
    # the engine's data-root (as a host tool or a stuck mount can leave) makes dockerd's own
    # removal fail with "unable to remove filesystem … operation not permitted".
    engine = ccci.engine
    later = now() + 2 * DAY
    doomed_image = make_dangling_image(engine, now() - 4 * DAY)
    doomed = run_exited(engine, "doomed", doomed_image)
    bystander = run_exited(engine, "bystander", BASE_TAG)
    old = make_dangling_image(engine, now() - 3 * DAY)
    pinned = Path(engine.data_root) / "containers" / doomed / "hostname"
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(pinned)]).returncode != 0:
        pytest.skip("chattr +i is not available here: no real way to make a removal fail")
    try:
        applied = ccci.run("reconcile", "--apply", "--yes", "--now", stamp(later), expect=(1,))
    finally:
        subprocess.run([chattr, "-i", str(pinned)], check=True)

    journal = ccci.journal()
    changes = journalled_once(journal)
    assert set(changes) == {
        f"container:{bystander}",
        f"container:{doomed}",
        f"image:{old}",
        f"image:{doomed_image}",
    }
    # Containers are applied before the images they free, and a failure stops nothing.
    order = [e["address"].partition(":")[0] for e in journal if e["type"] == "change"]
    assert order == ["container", "container", "image", "image"]
    failed = changes[f"container:{doomed}"]
    assert failed["status"] == "failed"
    assert "unable to remove filesystem" in failed["message"]
    assert "operation not permitted" in failed["message"]
    assert changes[f"container:{bystander}"]["status"] == "ok"
    assert changes[f"image:{old}"]["status"] == "ok"
    # Its image was planned "once doomed is removed"; doomed is still there, so it stays.
    freed_later = changes[f"image:{doomed_image}"]
    assert (freed_later["status"], freed_later["message"]) == ("skipped", "now used by doomed")
    [recap] = recaps(journal)
    assert (recap["changed"], recap["failed"], recap["skipped"]) == (2, 1, 1)
    assert recap["converged"] is False
    assert "changed=2 failed=1 skipped=1" in applied.stdout
    assert "bystander" not in containers(engine)
    assert old not in image_ids(engine)
    assert doomed_image in image_ids(engine)
