"""ImageRetention's parts on their own: which images a pattern names, the last-use record
(what it learns from the facts, how it is read back, written and survives damage), and how
apply acts on a retention plan (through a fake connector that records every call)."""

from __future__ import annotations

import json
import os
import resource
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ccci.apply.executor import Executor
from ccci.config.inventory import Host
from ccci.errors import CcciError, Location
from ccci.facts.model import Container, Daemon, DiskUsage, Facts, Image, Service, Task
from ccci.plan.build import plan_host
from ccci.plan.model import HostPlan
from ccci.plan.results import Status
from ccci.policy import template
from ccci.policy.load import build, finalize, read
from ccci.policy.model import ImageRetention, PolicyMeta, PrunePolicy
from ccci.rules.retention import pattern_matches, retained_images
from ccci.state import lastuse
from ccci.state.journal import Journal
from tests.unit.fakes import FakeConnector

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
DIGEST = "sha256:" + "d4" * 32
OTHER_DIGEST = "sha256:" + "e5" * 32


def image(
    tags: tuple[str, ...] = (),
    digests: tuple[str, ...] = (),
    ident: str = "sha256:" + "ab" * 32,
    created: datetime = NOW - 30 * DAY,
    size: int = 1_000_000,
) -> Image:
    return Image(id=ident, tags=tags, digests=digests, created=created, size=size)


def facts(
    images: tuple[Image, ...] = (),
    containers: tuple[Container, ...] = (),
    services: tuple[Service, ...] = (),
    tasks: tuple[Task, ...] = (),
    disks: tuple[DiskUsage, ...] = (),
    last_use: dict[str, datetime] | None = None,
    swarm_state: str = "inactive",
) -> Facts:
    daemon = Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", swarm_state, False)
    return Facts(
        host="cc-ci",
        gathered_at=NOW,
        daemon=daemon,
        disks=disks,
        images=images,
        containers=containers,
        services=services,
        tasks=tasks,
        image_last_use=last_use or {},
    )


def container(
    image_id: str, state: str, created: datetime, finished: datetime | None = None, name: str = ""
) -> Container:
    return Container(
        id=(name or state).ljust(64, "0")[:64],
        name=name or state,
        image="x",
        image_id=image_id,
        state=state,
        created=created,
        finished=finished,
    )


# ---- 1. patterns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "tags", "matches"),
    [
        # repo:tag globs, as `docker image ls` shows the tags
        ("postgres:1[5-7]*", ("postgres:16-alpine",), True),
        ("postgres:1[5-7]*", ("postgres:14",), False),
        ("nginx:*", ("nginx:1.25",), True),
        ("nginx:*", ("nginx-proxy:1",), False),
        ("redis:*", ("redis-cluster:7",), False),
        # a bare repo means :latest, and only :latest
        ("redis", ("redis:latest",), True),
        ("redis", ("redis:7",), False),
        ("redis:latest", ("redis:latest",), True),
        # library/ is Docker's implied namespace, on either side
        ("library/redis", ("redis:latest",), True),
        ("library/redis:7", ("redis:7",), True),
        ("redis:7", ("library/redis:7",), True),
        ("library/redis:7", ("bitnami/redis:7",), False),
        # a registry with a port: its colon is not a tag
        ("127.0.0.1:5000/recipe/app:*", ("127.0.0.1:5000/recipe/app:2",), True),
        ("127.0.0.1:5000/recipe/app", ("127.0.0.1:5000/recipe/app:latest",), True),
        ("127.0.0.1:5000/recipe/app", ("127.0.0.1:5000/recipe/app:2",), False),
        ("recipe/app:2", ("127.0.0.1:5000/recipe/app:2",), False),
        # any one tag of a multi-tag image is enough
        ("postgres:15", ("ccci/app:old", "postgres:15"), True),
        # a dangling image has no tag for a tag pattern to match
        ("redis:*", (), False),
    ],
)
def test_a_tag_pattern_matches_as_docker_names_images(
    pattern: str, tags: tuple[str, ...], matches: bool
) -> None:
    assert pattern_matches(pattern, image(tags=tags)) is matches


def test_an_id_pattern_matches_the_image_id_or_a_prefix_of_it() -> None:
    target = image(tags=("ccci/tool:1",), ident="sha256:" + "c3" * 32)
    assert pattern_matches("sha256:" + "c3" * 32, target)
    assert pattern_matches("sha256:c3c3c3c3c3c3", target)
    assert not pattern_matches("sha256:c3c3c3c3c3c4", target)


def test_a_digest_pattern_matches_an_image_by_its_repo_digests_tagged_or_dangling() -> None:
    pinned = image(tags=("traefik:v2.11",), digests=(f"traefik@{DIGEST}",))
    dangling = image(digests=(f"traefik@{DIGEST}",))
    other = image(tags=("traefik:v2.11",), digests=(f"traefik@{OTHER_DIGEST}",))
    for pattern in (DIGEST, f"traefik@{DIGEST}", f"traefik:v2.11@{DIGEST}"):
        assert pattern_matches(pattern, pinned), pattern
        assert pattern_matches(pattern, dangling), pattern
        assert not pattern_matches(pattern, other), pattern


def _retention(name: str, *patterns: str, line: int = 7) -> ImageRetention:
    source = Location("policies/retention.yaml", 3)
    return ImageRetention(
        meta=PolicyMeta(name, "ImageRetention", "ci", source),
        retain=patterns,
        ensure_present=(),
        evict=None,
        sources={
            f"retain:{p}": Location("policies/retention.yaml", line + i)
            for i, p in enumerate(patterns)
        },
    )


def test_retained_images_names_the_first_rule_that_keeps_each_image() -> None:
    redis = image(tags=("redis:7-alpine",), ident="sha256:" + "01" * 32)
    nginx = image(tags=("nginx:1.25",), ident="sha256:" + "02" * 32)
    loose = image(tags=("ccci/loose:1",), ident="sha256:" + "03" * 32)
    prune = PrunePolicy(
        PolicyMeta("ci-docker-prune", "PrunePolicy", "ci", Location("p.yaml", 3)),
        (),
        timedelta(hours=24),
        None,
        None,
    )
    policies = (
        prune,
        _retention("base-images", "redis:7*", "nginx:*", line=7),
        _retention("more", "redis:7-alpine", line=20),
    )

    kept = retained_images(policies, facts(images=(redis, nginx, loose)))

    assert kept == {
        redis.id: "retained by policy base-images ('redis:7*', policies/retention.yaml:7)",
        nginx.id: "retained by policy base-images ('nginx:*', policies/retention.yaml:8)",
    }


# ---- 2. the last-use record: what the facts show --------------------------------------------

USED = "sha256:" + "01" * 32
IDLE = "sha256:" + "02" * 32
PINNED = "sha256:" + "03" * 32


def test_seen_in_use_is_now_for_an_active_container_else_when_it_finished_or_was_created() -> None:
    seen = lastuse.seen_in_use(
        facts(
            images=(image(ident=USED), image(ident=IDLE), image(ident=PINNED)),
            containers=(
                container(USED, "exited", NOW - 9 * DAY, NOW - 8 * DAY, name="job"),
                container(USED, "running", NOW - 5 * DAY, name="runner"),
                container(IDLE, "exited", NOW - 9 * DAY, NOW - 4 * DAY, name="job2"),
                container(PINNED, "created", NOW - 6 * DAY, name="never-started"),
            ),
        ),
        NOW,
    )
    assert seen == {USED: NOW, IDLE: NOW - 4 * DAY, PINNED: NOW - 6 * DAY}


@pytest.mark.parametrize("state", ["running", "paused", "restarting"])
def test_seen_in_use_counts_every_active_state_as_in_use_now(state: str) -> None:
    seen = lastuse.seen_in_use(
        facts(images=(image(ident=USED),), containers=(container(USED, state, NOW - 9 * DAY),)),
        NOW,
    )
    assert seen == {USED: NOW}


def test_seen_in_use_counts_a_task_meant_to_run_by_the_digest_swarm_pins() -> None:
    pinned = image(tags=("traefik:v2.11",), digests=(f"traefik@{DIGEST}",), ident=PINNED)
    old = image(digests=(f"traefik@{OTHER_DIGEST}",), ident=IDLE)
    tasks = (
        Task("t1", "svc", "running", "running", image=f"traefik:v2.11@{DIGEST}"),
        Task("t2", "svc", "shutdown", "shutdown", image=f"traefik:v2.10@{OTHER_DIGEST}"),
    )
    seen = lastuse.seen_in_use(facts(images=(pinned, old), tasks=tasks), NOW)
    assert seen == {PINNED: NOW}


def test_an_image_seen_for_the_first_time_starts_now_whatever_its_containers_say() -> None:
    # Conservative: an exited container of a never-recorded image does not back-date it, so
    # nothing is evicted before ccci has watched it for unused_for.
    new = facts(
        images=(image(ident=USED), image(ident=IDLE)),
        containers=(container(USED, "exited", NOW - 9 * DAY, NOW - 8 * DAY),),
    )
    assert lastuse.updated({}, new, NOW) == {USED: NOW, IDLE: NOW}


def test_a_recorded_use_moves_forward_to_a_later_use_and_never_back() -> None:
    previous = {USED: NOW - 30 * DAY, IDLE: NOW - 2 * DAY, PINNED: NOW - 30 * DAY}
    current = facts(
        images=(image(ident=USED), image(ident=IDLE), image(ident=PINNED)),
        containers=(
            # finished after the record: the record moves forward to it
            container(USED, "exited", NOW - 10 * DAY, NOW - 3 * DAY, name="job"),
            # finished before the record: the record stays
            container(IDLE, "exited", NOW - 10 * DAY, NOW - 9 * DAY, name="job2"),
            container(PINNED, "running", NOW - 40 * DAY, name="runner"),
        ),
    )
    assert lastuse.updated(previous, current, NOW) == {
        USED: NOW - 3 * DAY,
        IDLE: NOW - 2 * DAY,
        PINNED: NOW,
    }


def test_the_record_forgets_images_that_are_gone() -> None:
    previous = {USED: NOW - 3 * DAY, "sha256:" + "99" * 32: NOW - 90 * DAY}
    assert lastuse.updated(previous, facts(images=(image(ident=USED),)), NOW) == {
        USED: NOW - 3 * DAY
    }


# ---- 3. the last-use record: on disk -------------------------------------------------------


def test_the_record_round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "last-use-cc-ci.json"  # the state dir may not exist yet
    record = {USED: NOW - 3 * DAY, IDLE: datetime(2026, 11, 1, 12, 30, 15, 250000, tzinfo=UTC)}

    lastuse.write(path, record)

    assert lastuse.read(path) == record
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body == {
        "format_version": 2,
        "images": {USED: "2026-11-24T03:00:00Z", IDLE: "2026-11-01T12:30:15.250000Z"},
        "refs": {},
    }
    assert list(body["images"]) == sorted(body["images"])


def test_a_missing_record_reads_as_empty(tmp_path: Path) -> None:
    assert lastuse.read(tmp_path / "last-use-cc-ci.json") == {}


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    lastuse.write(path, {USED: NOW - 9 * DAY, IDLE: NOW})
    before = os.stat(path).st_ino

    lastuse.write(path, {USED: NOW})

    assert lastuse.read(path) == {USED: NOW}
    assert os.stat(path).st_ino != before  # a rename over the old file, never a rewrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"format_version": 1, "images": {"sha256:01',  # torn by a crash mid-write
        "\x00\x00\x00\x00",
    ],
    ids=["empty", "unclosed", "torn", "zeros"],
)
def test_a_record_that_is_not_json_is_started_afresh(tmp_path: Path, text: str) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    path.write_text(text, encoding="utf-8")
    assert lastuse.read(path) == {}


def test_a_record_that_is_not_text_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    path.write_bytes(b"\xff\xfe\x80garbage")
    assert lastuse.read(path) == {}


def test_entries_with_unreadable_times_are_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    path.write_text(
        json.dumps(
            {
                "format_version": 1,
                "images": {USED: "2026-11-24T03:00:00Z", IDLE: "yesterday", PINNED: "2026-13-01"},
            }
        ),
        encoding="utf-8",
    )
    assert lastuse.read(path) == {USED: NOW - 3 * DAY}


@pytest.mark.parametrize(
    "body",
    [
        [],
        None,
        "images",
        {"format_version": 1, "images": ["sha256:01"]},
        {"format_version": 1, "images": {USED: 1764212400}},
        {"format_version": 1, "images": {USED: None}},
    ],
    ids=["list", "null", "string", "images-list", "epoch-number", "null-time"],
)
def test_a_record_of_the_wrong_shape_is_started_afresh(tmp_path: Path, body: Any) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    assert lastuse.read(path) == {}


def test_a_record_path_that_is_a_directory_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    path.mkdir()
    assert lastuse.read(path) == {}


def test_a_failed_write_keeps_the_old_record_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    lastuse.write(path, {USED: NOW - 9 * DAY})
    many = {f"sha256:{i:064x}": NOW for i in range(50)}

    # A real write failure, as on a full disk: a file-size limit makes the kernel refuse
    # (EFBIG) any write past 64 bytes. SIGXFSZ would kill the process, so it is ignored.
    previous_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))
    try:
        with pytest.raises(OSError):
            lastuse.write(path, many)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_signal)

    assert lastuse.read(path) == {USED: NOW - 9 * DAY}  # atomic: the old record is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# ---- 4. apply, on a retention plan --------------------------------------------------------


def plan_for(policy_text: str, current: Facts, tmp_path: Path) -> HostPlan:
    path = tmp_path / "policies.yaml"
    path.write_text(policy_text, encoding="utf-8")
    host = Host("cc-ci", {"inventory_hostname": "cc-ci"}, ("all", "ci"))
    built = tuple(build(template.render(d, host.vars, host.name)) for d in read([path]))
    return plan_host("cc-ci", finalize(built, host), current, NOW)


def apply_plan(plan: HostPlan, current: Facts, conn: FakeConnector, tmp_path: Path) -> Any:
    journal = Journal(tmp_path / "journal.jsonl")
    try:
        executor = Executor(
            conn, journal, "run1", clock=lambda: NOW, refresh=lambda scope, plan_at=None: current
        )
        return executor.run(plan, current)
    finally:
        journal.close()


WARM_AND_EVICT = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
spec:
  ensure_present: ['127.0.0.1:5000/recipe/redis:7']
  evict:
    when: {disk_usage: {path: /var/lib/docker, at_least: 85%}}
    down_to: 75%
    unused_for: 14d
"""
WARM_ONLY = WARM_AND_EVICT.split("  evict:")[0]
CALM_DISK = DiskUsage("/var/lib/docker", 100, 40, 60)


def test_a_pull_failure_fails_that_change_with_the_registrys_message(tmp_path: Path) -> None:
    current = facts(disks=(CALM_DISK,))
    plan = plan_for(WARM_ONLY, current, tmp_path)
    refused = CcciError("pull 127.0.0.1:5000/recipe/redis:7: manifest unknown: manifest unknown")
    conn = FakeConnector(raises={("pull",): refused})

    report = apply_plan(plan, current, conn, tmp_path)

    assert conn.calls == [("pull", "127.0.0.1:5000/recipe/redis:7")]
    [result] = report.results
    assert result.status is Status.FAILED
    assert (
        result.message == "pull 127.0.0.1:5000/recipe/redis:7: manifest unknown: manifest unknown"
    )


def test_an_ensure_present_pull_does_not_wait_for_the_eviction_watermark(tmp_path: Path) -> None:
    current = facts(disks=(CALM_DISK,))  # 40 %: far below the 85 % that starts eviction
    plan = plan_for(WARM_AND_EVICT, current, tmp_path)
    assert [c.address for c in plan.changes] == ["image:127.0.0.1:5000/recipe/redis:7"]
    conn = FakeConnector()

    report = apply_plan(plan, current, conn, tmp_path)

    assert [(r.status, r.message) for r in report.results] == [(Status.OK, "done")]
    assert conn.calls == [("pull", "127.0.0.1:5000/recipe/redis:7")]


EVICT_ONLY = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
spec:
  evict:
    when: {disk_usage: {path: /var/lib/docker, at_least: 85%}}
    down_to: 50%
    unused_for: 14d
"""
FULL_DISK = DiskUsage("/var/lib/docker", 100, 90, 10)
OLD_APP = "sha256:" + "0a" * 32
NEW_APP = "sha256:" + "0b" * 32


def _raw(ident: str, tags: list[str]) -> dict[str, Any]:
    return {"Id": ident, "RepoTags": tags, "Created": "2026-01-01T00:00:00Z", "Size": 10}


def test_eviction_untags_each_tag_of_the_planned_image(tmp_path: Path) -> None:
    idle = image(tags=("ccci/app:1", "ccci/app:stable"), ident=OLD_APP, size=10)
    current = facts(images=(idle,), disks=(FULL_DISK,), last_use={OLD_APP: NOW - 60 * DAY})
    plan = plan_for(EVICT_ONLY, current, tmp_path)
    assert [c.address for c in plan.changes] == [f"image:{OLD_APP}"]
    conn = FakeConnector(images={OLD_APP: _raw(OLD_APP, ["ccci/app:1", "ccci/app:stable"])})

    report = apply_plan(plan, current, conn, tmp_path)

    assert [r.status for r in report.results] == [Status.OK]
    assert conn.calls == [("untag_image", "ccci/app:1"), ("untag_image", "ccci/app:stable")]
    assert OLD_APP not in conn.images  # the last untag deleted it


def test_eviction_never_untags_a_tag_that_now_names_another_image(tmp_path: Path) -> None:
    idle = image(tags=("ccci/app:1",), ident=OLD_APP, size=10)
    current = facts(images=(idle,), disks=(FULL_DISK,), last_use={OLD_APP: NOW - 60 * DAY})
    plan = plan_for(EVICT_ONLY, current, tmp_path)
    assert [c.address for c in plan.changes] == [f"image:{OLD_APP}"]
    # Between plan and apply a CI run pulls ccci/app:1 afresh: the tag moves to the new
    # image, and the planned one is left dangling (the prune's to judge, later).
    conn = FakeConnector(
        images={OLD_APP: _raw(OLD_APP, []), NEW_APP: _raw(NEW_APP, ["ccci/app:1"])}
    )

    report = apply_plan(plan, current, conn, tmp_path)

    assert ("untag_image", "ccci/app:1") not in conn.calls
    assert conn.images[NEW_APP]["RepoTags"] == ["ccci/app:1"]  # the new image is untouched
    [result] = report.results
    assert result.status is not Status.OK
    assert "tags changed since the plan" in result.message
