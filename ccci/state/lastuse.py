"""When each image was last in use: the memory that eviction by least recent use needs.

The engine keeps no such record (``until`` filters compare creation time), so ccci keeps a
small JSON file next to the journal. CI runs start and end between two nightlies, so the
nightly alone would see a daily-used image as idle: every ccci run that lists containers
(the janitor before each deploy, status, plans, applies) updates the record, and each run
also reads the engine's events since the previous one (container create/start/die, image
pull/tag), so a run that came and went in between counts as use. The engine keeps only its
most recent events in memory, and none across a restart: frequent runs (the janitor runs
before every deploy) keep the gaps short. The record is written atomically and stays
bounded; a torn or missing one means "first seen now", which can only delay eviction.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccci.facts.model import SCOPE_FULL, Facts, Image
from ccci.quantities import format_time, parse_time
from ccci.state.atomic import write_atomic

if TYPE_CHECKING:
    from ccci.connectors.base import Connector

RECORD_FORMAT = 2
# References seen in events whose image was not listed in that run (the janitor lists no
# images): kept until a full run resolves them, at most this many, the newest first.
MAX_PENDING_REFS = 2000
# Events are read back at most this far: an engine keeps only recent ones anyway.
MAX_EVENT_WINDOW = timedelta(days=7)
CONTAINER_USE_ACTIONS = frozenset({"create", "start", "die", "restart", "exec_start"})
IMAGE_USE_ACTIONS = frozenset({"pull", "tag"})


@dataclass(frozen=True)
class Record:
    """Image id → last use; refs seen in events but not yet resolved to an id; and up to
    when the engine's events have been read."""

    images: dict[str, datetime] = field(default_factory=dict)
    refs: dict[str, datetime] = field(default_factory=dict)
    events_until: datetime | None = None


def seen_in_use(facts: Facts, now: datetime) -> dict[str, datetime]:
    """Pure: when the facts show each image in use — now for a running container or a task
    meant to run, else when its container last finished (or was created)."""
    seen: dict[str, datetime] = {}

    def note(image_id: str, moment: datetime) -> None:
        if image_id and (image_id not in seen or seen[image_id] < moment):
            seen[image_id] = moment

    for container in facts.containers:
        moment = now if container.active else (container.finished or container.created)
        note(container.image_id, moment)
    if not facts.images:
        return seen  # a task's image is found among the images (the janitor lists none)
    from ccci.rules.usage import TASK_DESIRED_USING, resolve

    for task in facts.tasks:
        if task.desired_state in TASK_DESIRED_USING and task.image:
            for image in resolve(task.image, facts.images):
                note(image.id, now)
    return seen


def used_in_events(events: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    """Pure: reference or image id → the latest event that shows it in use.

    A container event names the image the container was made from (``from``, as the
    container was created: a reference, maybe digest-pinned, or an id); an image pull names
    the reference pulled, a tag the image id.
    """
    seen: dict[str, datetime] = {}
    for event in events:
        kind, action = event.get("Type"), str(event.get("Action") or "").partition(":")[0]
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        if kind == "container" and action in CONTAINER_USE_ACTIONS:
            name = attributes.get("image") or event.get("from") or ""
        elif kind == "image" and action in IMAGE_USE_ACTIONS:
            name = actor.get("ID") or event.get("id") or ""
        else:
            continue
        moment = _event_time(event)
        if name and moment is not None and (name not in seen or seen[name] < moment):
            seen[str(name)] = moment
    return seen


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    try:
        if event.get("timeNano"):
            return datetime.fromtimestamp(int(event["timeNano"]) / 1e9, tz=UTC)
        return datetime.fromtimestamp(int(event["time"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def _resolve(name: str, images: tuple[Image, ...]) -> list[Image]:
    from ccci.facts.refs import is_image_id
    from ccci.rules.usage import resolve

    if is_image_id(name):
        return [i for i in images if i.id == name or i.id == f"sha256:{name}"]
    return resolve(name, images)


def updated(previous: dict[str, datetime], facts: Facts, now: datetime) -> dict[str, datetime]:
    """Pure: image id → last use after these facts (see :func:`advanced`)."""
    return advanced(Record(images=previous), facts, now).images


def advanced(
    previous: Record,
    facts: Facts,
    now: datetime,
    events: Mapping[str, datetime] | None = None,
) -> Record:
    """Pure: the new record. An image seen for the first time starts at ``now``, so one that
    ccci never saw used is not evicted before it has been watched for ``unused_for``.

    Facts without images (the janitor's stack-only facts) keep every image entry and only
    add what the events named, as references to resolve on a later full run.
    """
    pending = dict(previous.refs)
    for name, moment in (events or {}).items():
        if pending.get(name, moment) <= moment:
            pending[name] = moment
    full = facts.scope == SCOPE_FULL and (bool(facts.images) or not previous.images)
    if full:
        record = {i.id: previous.images.get(i.id, now) for i in facts.images}
    else:
        record = dict(previous.images)

    def raise_to(image_id: str, moment: datetime) -> None:
        if image_id in record and record[image_id] < moment:
            record[image_id] = moment

    for image_id, moment in seen_in_use(facts, now).items():
        raise_to(image_id, moment)
    left: dict[str, datetime] = {}
    for name, moment in pending.items():
        found = _resolve(name, facts.images) if full else []
        for image in found:
            raise_to(image.id, min(moment, now))
        if not found and not full:
            left[name] = moment
    newest = sorted(left.items(), key=lambda kv: kv[1], reverse=True)[:MAX_PENDING_REFS]
    until = now if events is not None else previous.events_until
    return Record(images=record, refs=dict(newest), events_until=until)


def events_since(source: Connector, record: Record, now: datetime) -> dict[str, datetime]:
    """What the engine's events since the last run show in use; nothing on the first run
    (there is no "since"), nothing when the engine cannot say (its events are a bonus: the
    container list is the primary evidence)."""
    since = record.events_until
    if since is None or since >= now:
        return {}
    since = max(since, now - MAX_EVENT_WINDOW)
    # A plan made with --now ahead of the clock must not wait for the engine to stream
    # events until then: the read ends at the real present at the latest.
    until = min(now, datetime.now(UTC))
    if since >= until:
        return {}
    try:
        return used_in_events(source.events(since, until))
    except Exception:  # an engine that cannot list events is no reason to fail the run
        return {}


def observe(source: Connector, facts: Facts, path: Path, now: datetime) -> Facts:
    """Fold this run's evidence of use into the record on disk and return the facts with
    the record's view (``image_last_use``). A state directory ccci cannot write (a plan
    run by another user) leaves the record as it was."""
    previous = read_record(path)
    record = advanced(previous, facts, now, events_since(source, previous, now))
    with contextlib.suppress(OSError):
        write_record(path, record)
    if facts.scope != SCOPE_FULL:
        return facts
    # An image this run sees for the first time, with no evidence of use, is recorded as
    # "first seen now" on disk but stays out of the rules' view, so the plan can say it is
    # watched from now on rather than that it was used a moment ago.
    known = {
        image_id: moment
        for image_id, moment in record.images.items()
        if image_id in previous.images or moment != now
    }
    return replace(facts, image_last_use=known)


def _times(raw: Any) -> dict[str, datetime]:
    if not isinstance(raw, dict):
        return {}
    found = {}
    for key, text in raw.items():
        if not isinstance(key, str) or not isinstance(text, str):
            continue
        try:
            found[key] = parse_time(text)
        except ValueError:
            continue
    return found


def read_record(path: Path) -> Record:
    """The record as last written; a damaged or missing file reads as empty (every image first seen
    now, which can only delay eviction), and pending refs keep only the newest."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        # A damaged or missing record is started afresh: every image is then watched from
        # now on, which can only delay eviction, never hasten it.
        return Record()
    if not isinstance(data, dict):
        return Record()
    until = data.get("events_until")
    try:
        events_until = parse_time(until) if isinstance(until, str) else None
    except ValueError:
        events_until = None
    refs = _times(data.get("refs"))
    newest = sorted(refs.items(), key=lambda kv: kv[1], reverse=True)[:MAX_PENDING_REFS]
    return Record(images=_times(data.get("images")), refs=dict(newest), events_until=events_until)


def read(path: Path) -> dict[str, datetime]:
    """Image id → last use, as the rules read it."""
    return read_record(path).images


def write_record(path: Path, record: Record) -> None:
    """Written atomically, sorted: a run killed mid-write leaves the previous record whole."""
    body: dict[str, Any] = {
        "format_version": RECORD_FORMAT,
        "images": {k: format_time(v) for k, v in sorted(record.images.items())},
        "refs": {k: format_time(v) for k, v in sorted(record.refs.items())},
    }
    if record.events_until is not None:
        body["events_until"] = format_time(record.events_until)
    write_atomic(path, json.dumps(body, indent=1))


def write(path: Path, record: dict[str, datetime] | Record) -> None:
    """Write the record; a plain mapping is image id → last use (as tests seed it)."""
    write_record(path, record if isinstance(record, Record) else Record(images=dict(record)))
