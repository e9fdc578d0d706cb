"""ImageRetention proven on the private engine, through the real CLI, with a real registry.

Images are pulled from the harness's loopback registry (``127.0.0.1:5000``), whose access
log counts pulls: a pull is a manifest GET (dockerd HEADs the tag, then GETs the manifest by
digest). The disk gate is a real 64 MiB tmpfs filled to 90 %. When each image was last used
is set the way ccci itself keeps it: ``ccci.state.lastuse.write`` into the state dir's
``last-use-<host>.json`` (ccci's own state file, so this is setup, not a back door).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from ccci_cli import stamp
from enginekit import (
    DAY,
    NO_CHANGES,
    RETENTION,
    RetentionCli,
    change_list,
    eviction,
    has_image,
    image_id,
    image_ids,
    journalled,
    line_of,
    noops,
    now,
    publish,
    retention_policy,
    sleeper,
    tear_down,
    unique,
)

from ccci.quantities import format_percent, parse_time
from ccci.state import lastuse
from harness.disk import fill_to
from harness.engine import Engine
from harness.images import load_image, make_dangling_image
from harness.registry import Registry
from harness.swarm import deploy_stack

pytestmark = pytest.mark.engine

RUN_APP = "redi-3fa9c1_ci_example_org"
MIB = 1 << 20


Ccci = RetentionCli  # the workspace, by the name every test here gives it


@pytest.fixture
def ccci(clean_engine: Engine, gate_disk: str, tmp_path: Path) -> Ccci:
    """The real CLI against a freshly reset engine, no policy yet; the gate disk at 90 %."""
    cli = Ccci(clean_engine, tmp_path, gate_disk)
    cli.write_inventory()
    return cli


# ---- making and reading things on the engine -------------------------------------------------


def unique_sizes(engine: Engine) -> dict[str, int]:
    """What removing each image frees, as the engine reports it (size less shared layers)."""
    rows = engine.api("/system/df?type=image", timeout=60).get("Images") or []
    return {r["Id"]: max(int(r["Size"]) - max(int(r["SharedSize"]), 0), 0) for r in rows}


def disk_bytes(path: str) -> tuple[int, int]:
    """(used, used + available) as df computes Use% — what ccci measures."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used, used + st.f_bavail * st.f_frsize


# ---- 1. warming the cache: ensure_present -------------------------------------------------


def test_ensure_present_pulls_a_missing_image_from_the_registry(
    ccci: Ccci, registry: Registry
) -> None:
    engine = ccci.engine
    image = publish(engine, registry, unique("redis"))
    ccci.write_policy("retention", retention_policy(ensure_present=(image.ref,)))

    pending = ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(2,)).stdout
    plan = ccci.plan()

    assert f"+ image {image.ref} ({image.ref})" in pending
    assert "Plan: 1 to add, 0 to change, 0 to remove." in pending
    [pull] = change_list(plan)
    assert (pull["address"], pull["action"], pull["after"]) == (
        f"image:{image.ref}",
        "create",
        {"ref": image.ref},
    )
    before = registry.log_offset()

    applied = ccci.apply()

    assert "changed=1 failed=0 skipped=0" in applied.stdout
    assert has_image(engine, image.ref)
    assert registry.manifest_gets(image.repo, image.digest, since=before) == 1
    assert journalled(ccci.journal())[f"image:{image.ref}"]["status"] == "ok"
    # Warm now: the same plan finds it present and pulls nothing more.
    again = ccci.plan()
    assert change_list(again) == []
    short = image_id(engine, image.ref).removeprefix("sha256:")[:12]
    assert noops(again)[f"image:{image.ref}"] == f"present ({short})"
    assert registry.manifest_gets(image.repo, since=before) == 1
    ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(0,))


def test_ensure_present_pulls_even_while_eviction_waits_for_its_watermark(
    ccci: Ccci, registry: Registry
) -> None:
    engine = ccci.engine
    image = publish(engine, registry, unique("redis"))
    ccci.write_policy(
        "retention", retention_policy(ensure_present=(image.ref,), evict=eviction(ccci.disk))
    )
    fill_to(ccci.disk, 30)  # far below the 85 % that starts eviction: the normal day

    assert [c["address"] for c in change_list(ccci.plan())] == [f"image:{image.ref}"]
    ccci.apply()

    assert journalled(ccci.journal())[f"image:{image.ref}"]["status"] == "ok"
    assert has_image(engine, image.ref)


def test_a_pull_of_a_missing_repo_fails_that_change_with_the_registrys_message_alone(
    ccci: Ccci, registry: Registry
) -> None:
    engine = ccci.engine
    present = publish(engine, registry, unique("redis"))
    missing = registry.ref(f"recipe/{unique('nope')}:1")
    old_dangling = make_dangling_image(engine, now() - 3 * DAY)
    ccci.write_prune_policy()
    ccci.write_policy(
        "retention",
        retention_policy(ensure_present=(missing, present.ref)),
    )

    applied = ccci.apply(expect=(1,))

    entries = journalled(ccci.journal())
    failed = entries[f"image:{missing}"]
    assert failed["status"] == "failed"
    # The registry's own words (its MANIFEST_UNKNOWN error), as the engine relays them.
    assert failed["message"] == (
        f"manifest for {missing} not found: manifest unknown: manifest unknown"
    )
    assert failed["message"] in applied.stdout
    # Nothing else was held back by that failure.
    assert entries[f"image:{present.ref}"]["status"] == "ok"
    assert entries[f"image:{old_dangling}"]["status"] == "ok"
    assert has_image(engine, present.ref)
    assert old_dangling not in image_ids(engine)
    assert "changed=2 failed=1 skipped=0" in applied.stdout
    [recap] = [e for e in ccci.journal() if e["type"] == "recap"]
    assert recap["failed"] == 1 and recap["converged"] is False
    assert f"image:{missing}" in recap["remaining"]  # still wanted: the next run tries again


def test_a_redeploy_after_stack_rm_finds_the_image_local_and_pulls_nothing(
    ccci: Ccci, registry: Registry
) -> None:
    engine = ccci.engine
    image = publish(engine, registry, unique("redis"))
    retention = ccci.write_policy(
        "retention",
        retention_policy(
            retain=("127.0.0.1:5000/recipe/*:*",),
            ensure_present=(image.ref,),
            evict=eviction(ccci.disk),
        ),
    )
    ccci.write_prune_policy()
    ccci.apply()  # the nightly run warms the cache: one pull
    ident = image_id(engine, image.ref)
    # --resolve-image never (harness.swarm.deploy_stack): the deploy itself asks no registry.
    deploy_stack(engine, RUN_APP, sleeper(image.ref))
    tear_down(engine, RUN_APP)
    # The image has been idle for 60 days as far as ccci knows: only retention keeps it.
    ccci.record_last_use({ident: now() - 60 * DAY})
    after_teardown = registry.log_offset()

    plan = ccci.plan()

    eviction_gates = [g for g in plan["hosts"][0]["gates"] if g["policy"] == RETENTION]
    assert eviction_gates and all(g["open"] for g in eviction_gates)  # eviction did run
    pattern_line = line_of(retention, "127.0.0.1:5000/recipe/*:*")
    assert noops(plan)[f"image:{ident}"] == (
        f"retained by policy {RETENTION} ('127.0.0.1:5000/recipe/*:*', {retention}:{pattern_line})"
    )
    assert f"image:{ident}" not in {c["address"] for c in change_list(plan)}
    ccci.apply()
    assert has_image(engine, image.ref)

    deploy_stack(engine, RUN_APP, sleeper(image.ref))

    # Swarm only HEADs the tag to see that the local copy is current: no manifest GET, no pull.
    assert registry.manifest_gets(image.repo, since=after_teardown) == 0
    tasks = engine.docker("stack", "ps", RUN_APP, "--format", "{{.CurrentState}}").stdout
    assert tasks.startswith("Running"), tasks


# ---- 2. watermark eviction by least recent use ------------------------------------------


def test_watermark_eviction_removes_the_least_recently_used_down_to_the_low_watermark(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    seeded = now()
    layer = 4 * MIB  # 64 MiB tmpfs: each image is ~6 % of it

    def make(name: str, created_days: int = 200) -> str:
        return load_image(engine, f"ccci-evict/{name}:1", seeded - created_days * DAY, layer)

    keep, used = make("keep", 400), make("used", 300)
    names = ("a", "b", "c", "d", "e")
    lru = [make(name) for name in names]
    recent, unseen = make("recent"), make("unseen", 900)
    engine.docker("run", "--name", "evict-old-job", "ccci-evict/used:1", "true")
    ccci.record_last_use(
        {
            keep: seeded - 90 * DAY,
            used: seeded - 80 * DAY,
            **{ident: seeded - (60 - 10 * i) * DAY for i, ident in enumerate(lru)},
            recent: seeded - 3 * DAY,
        }
    )
    retention = ccci.write_policy(
        "retention", retention_policy(retain=("ccci-evict/keep:*",), evict=eviction(ccci.disk))
    )
    # What ccci should plan, worked out independently: least recently used first, each one
    # lowering the projected usage by its unique size, until the projection is ≤ 75 %.
    sizes = unique_sizes(engine)
    used_bytes, total = disk_bytes(ccci.disk)
    expected: list[str] = []
    projections: list[str] = []
    projected = used_bytes
    for ident in lru:
        if projected / total <= 0.75:
            break
        expected.append(ident)
        before = format_percent(projected / total)
        projected -= sizes[ident]
        projections.append(f"projected disk {before} → {format_percent(projected / total)}")
    assert expected == lru[:3], "the fixture means three evictions: 90 % less 3 × ~6 %"

    plan = ccci.plan()

    planned = change_list(plan)
    assert [c["address"] for c in planned] == [f"image:{i}" for i in expected]
    for change, ident, projection in zip(planned, expected, projections, strict=True):
        assert change["action"] == "delete"
        assert change["bytes_freed"] == sizes[ident]
        assert change["before"]["tags"] == [f"ccci-evict/{names[lru.index(ident)]}:1"]
        days = 60 - 10 * lru.index(ident)
        assert change["reason"] == (
            f"unretained, last used {stamp(seeded - days * DAY)} ({days} days ago ≥ 14d); "
            + projection
        )
    assert plan["summary"]["bytes_freed"] == sum(sizes[i] for i in expected)
    left = noops(plan)
    keep_line = line_of(retention, "ccci-evict/keep:*")
    assert left[f"image:{keep}"] == (
        f"retained by policy {RETENTION} ('ccci-evict/keep:*', {retention}:{keep_line})"
    )
    assert left[f"image:{used}"] == "in use by container evict-old-job (exited)"
    for ident in lru[3:]:
        assert left[f"image:{ident}"].startswith("projected usage ")
        assert left[f"image:{ident}"].endswith(" already at or below 75%")
    assert left[f"image:{recent}"] == "last used 3 days ago < 14d"
    assert left[f"image:{unseen}"] == "never seen before: its use is tracked from now on"

    applied = ccci.apply()

    assert "changed=3 failed=0 skipped=0" in applied.stdout
    entries = journalled(ccci.journal())
    assert {a: e["status"] for a, e in entries.items()} == {f"image:{i}": "ok" for i in expected}
    now_present = image_ids(engine)
    assert now_present.isdisjoint(expected)
    assert {keep, used, *lru[3:], recent, unseen} <= now_present

    # The tmpfs that the gate measures does not hold the engine's images, so its usage cannot
    # drop by itself: lower the fill to the projection, as on the real host the data-root's
    # would. The disk is then under the high watermark again and nothing more is evicted
    # (the gap between the watermarks is what keeps eviction from flapping).
    fill_to(ccci.disk, 100 * projected / total)
    again = ccci.plan()

    assert change_list(again) == []
    assert noops(again)[f"policy:{RETENTION}"].startswith(
        "eviction waits: gate disk_usage closed: disk "
    )
    text = ccci.run("reconcile", "--plan", "--detailed-exitcode", expect=(0,)).stdout
    assert text.splitlines()[0] == NO_CHANGES


def test_ccci_images_lists_retained_in_use_last_used_and_size_for_each_image(ccci: Ccci) -> None:
    engine = ccci.engine
    seeded = now()
    keep = load_image(engine, "ccci-list/keep:1", seeded - 100 * DAY, MIB)
    busy = load_image(engine, "ccci-list/busy:1", seeded - 100 * DAY, MIB)
    idle = load_image(engine, "ccci-list/idle:1", seeded - 100 * DAY, 2 * MIB)
    unseen = load_image(engine, "ccci-list/unseen:1", seeded - 100 * DAY, MIB)
    engine.docker("run", "--detach", "--name", "list-runner", "ccci-list/busy:1")
    ccci.record_last_use({keep: seeded - 20 * DAY, idle: seeded - 30 * DAY})
    retention = ccci.write_policy(
        "retention", retention_policy(retain=("ccci-list/keep:1",), evict=eviction(ccci.disk))
    )
    sizes = unique_sizes(engine)

    rows = ccci.images()

    keep_line = line_of(retention, "ccci-list/keep:1")
    assert rows[keep]["retained"] == (
        f"retained by policy {RETENTION} ('ccci-list/keep:1', {retention}:{keep_line})"
    )
    assert rows[keep]["last_used"] == stamp(seeded - 20 * DAY)
    assert rows[busy]["used_by"] == ["container list-runner (running)"]
    assert rows[busy]["retained"] == ""
    busy_seen = datetime.fromisoformat(rows[busy]["last_used"].replace("Z", "+00:00"))
    assert busy_seen >= seeded  # a running container: in use now
    assert (rows[idle]["last_used"], rows[idle]["used_by"]) == (stamp(seeded - 30 * DAY), [])
    assert (rows[unseen]["last_used"], rows[unseen]["retained"]) == (None, "")
    for ident, tag in ((keep, "keep"), (busy, "busy"), (idle, "idle"), (unseen, "unseen")):
        assert rows[ident]["tags"] == [f"ccci-list/{tag}:1"]
        assert rows[ident]["size"] > rows[ident]["unique_size"] == sizes[ident] >= MIB
    # Most recently used first; never-seen images last.
    order = [i for i in rows if i in {keep, busy, idle, unseen}]
    assert order == [busy, keep, idle, unseen]


# ---- 3. retention binds every policy --------------------------------------------------------


def test_a_retained_dangling_image_survives_the_prune_by_its_digest(
    ccci: Ccci, registry: Registry
) -> None:
    engine = ccci.engine
    name = unique("pinned")
    first = publish(engine, registry, name, created=now() - 5 * DAY)
    engine.docker("pull", first.ref)
    pinned = image_id(engine, first.ref)
    # A newer build of the same tag is pulled: the pinned one is left dangling, known only by
    # its RepoDigest (registry/repo@sha256:…).
    second = publish(engine, registry, name, created=now() - 4 * DAY)
    engine.docker("pull", second.ref)
    assert image_id(engine, second.ref) != pinned
    unpinned = make_dangling_image(engine, now() - 5 * DAY)
    pin = f"{registry.ref(first.repo)}@{first.digest}"
    retention = ccci.write_policy("retention", retention_policy(retain=(pin,)))
    ccci.write_prune_policy()

    plan = ccci.plan()

    assert [c["address"] for c in change_list(plan)] == [f"image:{unpinned}"]
    assert noops(plan)[f"image:{pinned}"] == (
        f"retained by policy {RETENTION} ('{pin}', {retention}:{line_of(retention, pin)})"
    )
    ccci.apply()
    assert pinned in image_ids(engine)
    assert unpinned not in image_ids(engine)


# ---- 4. the last-use record, as applies keep it ---------------------------------------------


def test_every_apply_records_use_and_an_image_first_seen_starts_now(ccci: Ccci) -> None:
    engine = ccci.engine
    seeded = now()
    running = load_image(engine, "ccci-use/running:1", seeded - 100 * DAY)
    idle = load_image(engine, "ccci-use/idle:1", seeded - 100 * DAY)
    first_seen = load_image(engine, "ccci-use/new:1", seeded - 100 * DAY)
    engine.docker("run", "--detach", "--name", "use-runner", "ccci-use/running:1")
    ccci.record_last_use({running: seeded - 40 * DAY, idle: seeded - 40 * DAY})
    ccci.write_policy("retention", retention_policy(retain=("ccci-use/none",)))

    ccci.apply()  # nothing to change: the nightly run still records what it saw in use

    record = lastuse.read(ccci.last_use_path)
    assert record[running] >= seeded  # a running container: in use now
    assert record[idle] == seeded - 40 * DAY  # unused since: the record stands
    assert record[first_seen] >= seeded  # never seen before: watched from now on
    assert not list(ccci.state_dir.glob(".*"))  # written atomically: no temporary file left


def test_the_last_use_of_an_exited_containers_image_is_when_the_container_finished(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    seeded = now()
    job_image = load_image(engine, "ccci-use/job:1", seeded - 100 * DAY)
    engine.docker("run", "--name", "use-job", "ccci-use/job:1", "sleep", "3")
    finished = parse_time(
        engine.docker("inspect", "--format", "{{.State.FinishedAt}}", "use-job").stdout
    )
    assert (finished - seeded).total_seconds() >= 3  # it ran for 3 s after it was made
    ccci.record_last_use({job_image: seeded - 40 * DAY})
    ccci.write_policy("retention", retention_policy(retain=("ccci-use/none",)))

    ccci.apply()

    assert lastuse.read(ccci.last_use_path)[job_image] >= finished.replace(microsecond=0)
