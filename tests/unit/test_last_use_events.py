"""Last use between nightlies: the engine's events and stack-only runs feed the record.

Events are recorded answers in the shape ``GET /events`` gives (Type, Action, Actor, time,
timeNano); the record logic is pure, so no engine is needed here. The same behaviour is
proven on the private engine in tests/engine/test_swarm_cache_engine.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ccci.facts.model import SCOPE_STACKS, Daemon, Facts, Image
from ccci.state import lastuse
from tests.unit.fakes import FakeConnector

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DIGEST = "sha256:" + "d4" * 32
CACHED = "sha256:" + "0c" * 32
TAGGED = "sha256:" + "7a" * 32
IDLE = "sha256:" + "1d" * 32
DAEMON = Daemon("cc-ci", "20.10.24", "1.41", "/var/lib/docker", "overlay2", "active", True)


def image(ident: str, tags: tuple[str, ...] = (), digests: tuple[str, ...] = ()) -> Image:
    return Image(ident, tags, digests, NOW - 90 * 24 * HOUR, 1000)


IMAGES = (
    image(CACHED, digests=(f"127.0.0.1:5000/recipe/app@{DIGEST}",)),
    image(TAGGED, tags=("redis:7-alpine",)),
    image(IDLE, tags=("ccci/idle:1",)),
)


def facts(images: tuple[Image, ...] = IMAGES, scope: str = "full") -> Facts:
    return Facts(host="cc-ci", gathered_at=NOW, daemon=DAEMON, images=images, scope=scope)


def event(kind: str, action: str, moment: datetime, **actor: Any) -> dict[str, Any]:
    attributes = actor.pop("attributes", {})
    return {
        "Type": kind,
        "Action": action,
        "Actor": {"ID": actor.get("ident", ""), "Attributes": attributes},
        "time": int(moment.timestamp()),
        "timeNano": int(moment.timestamp() * 1e9),
    }


def test_a_container_that_came_and_went_between_runs_counts_as_use_of_its_image() -> None:
    ran = NOW - 5 * HOUR
    events = [
        event(
            "container",
            "start",
            ran,
            ident="c0ffee",
            attributes={"image": f"127.0.0.1:5000/recipe/app:1@{DIGEST}", "name": "job"},
        ),
        event("container", "die", ran + HOUR, attributes={"image": "redis:7-alpine"}),
        event("container", "exec_start: sh -c true", ran, attributes={"image": "x:1"}),
        event("network", "connect", ran, attributes={"image": "ccci/idle:1"}),
    ]
    seen = lastuse.used_in_events(events)
    assert seen == {
        f"127.0.0.1:5000/recipe/app:1@{DIGEST}": ran,
        "redis:7-alpine": ran + HOUR,
        "x:1": ran,
    }
    previous = lastuse.Record(
        images={CACHED: NOW - 30 * 24 * HOUR, TAGGED: NOW - 30 * 24 * HOUR, IDLE: NOW - 40 * HOUR}
    )
    record = lastuse.advanced(previous, facts(), NOW, seen)
    assert record.images == {CACHED: ran, TAGGED: ran + HOUR, IDLE: NOW - 40 * HOUR}
    assert record.events_until == NOW


def test_an_image_pull_and_tag_count_as_use() -> None:
    pulled = NOW - 2 * HOUR
    events = [
        event("image", "pull", pulled, ident=f"127.0.0.1:5000/recipe/app@{DIGEST}"),
        event("image", "tag", pulled + HOUR, ident=TAGGED, attributes={"name": "redis:7"}),
        event("image", "delete", pulled + HOUR, ident=IDLE),
    ]
    record = lastuse.advanced(
        lastuse.Record(), facts(), NOW, lastuse.used_in_events(events)
    )
    assert record.images[CACHED] == NOW  # first seen now: a pull earlier than that is older
    seen = lastuse.used_in_events(events)
    assert seen == {f"127.0.0.1:5000/recipe/app@{DIGEST}": pulled, TAGGED: pulled + HOUR}


def test_a_stack_only_run_keeps_every_image_and_parks_what_events_named(tmp_path: Path) -> None:
    # The janitor lists no images: it must neither forget the record nor lose what it saw.
    previous = lastuse.Record(images={CACHED: NOW - 9 * 24 * HOUR, IDLE: NOW - 9 * 24 * HOUR})
    ref = f"127.0.0.1:5000/recipe/app:1@{DIGEST}"
    janitor = lastuse.advanced(previous, facts((), SCOPE_STACKS), NOW - HOUR, {ref: NOW - 2 * HOUR})
    assert janitor.images == previous.images
    assert janitor.refs == {ref: NOW - 2 * HOUR}
    path = tmp_path / "last-use-cc-ci.json"
    lastuse.write_record(path, janitor)

    nightly = lastuse.advanced(lastuse.read_record(path), facts(), NOW, {})

    assert nightly.images[CACHED] == NOW - 2 * HOUR  # resolved by its digest
    assert nightly.images[IDLE] == NOW - 9 * 24 * HOUR
    assert nightly.refs == {}


def test_events_are_read_from_the_last_run_on_and_not_on_the_first(tmp_path: Path) -> None:
    # The fake answers ``events`` from the recorded list and records each window asked for.
    source = FakeConnector(
        events_log=[event("container", "start", NOW - HOUR, attributes={"image": "redis:7-alpine"})]
    )
    path = tmp_path / "last-use-cc-ci.json"

    first = lastuse.observe(source, facts(), path, NOW - 2 * HOUR)
    assert source.reads == []  # nothing to read "since" yet
    # First seen: recorded as "now" on disk, but no evidence of use for the rules to read.
    assert TAGGED not in first.image_last_use
    assert lastuse.read(path)[TAGGED] == NOW - 2 * HOUR

    second = lastuse.observe(source, facts(), path, NOW)
    assert source.reads == [("events", NOW - 2 * HOUR, NOW)]
    assert second.image_last_use[TAGGED] == NOW - HOUR


def test_an_engine_that_cannot_list_events_still_records_what_the_facts_show(
    tmp_path: Path,
) -> None:
    broken = FakeConnector(raises={("events",): OSError("events endpoint unavailable")})
    path = tmp_path / "last-use-cc-ci.json"
    stale = lastuse.Record(images={TAGGED: NOW - 50 * HOUR}, events_until=NOW - HOUR)
    lastuse.write_record(path, stale)
    seen = lastuse.observe(broken, facts(), path, NOW)
    assert seen.image_last_use[TAGGED] == NOW - 50 * HOUR
    assert lastuse.read_record(path).events_until == NOW


def test_the_pending_references_stay_bounded() -> None:
    many = {f"ccci/job-{i}:1": NOW - i * timedelta(seconds=1) for i in range(3000)}
    record = lastuse.advanced(lastuse.Record(), facts((), SCOPE_STACKS), NOW, many)
    assert len(record.refs) == lastuse.MAX_PENDING_REFS
    assert "ccci/job-0:1" in record.refs and "ccci/job-2999:1" not in record.refs


def test_a_torn_record_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "last-use-cc-ci.json"
    path.write_text('{"format_version": 2, "images": {"sha256:ab": "2026-1', encoding="utf-8")
    assert lastuse.read_record(path) == lastuse.Record()
    path.write_text("[" * 100000, encoding="utf-8")
    assert lastuse.read_record(path) == lastuse.Record()
