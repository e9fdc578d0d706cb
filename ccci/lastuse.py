"""When each image was last in use: the memory that eviction by least recent use needs.

The engine keeps no such record (``until`` filters compare creation time), so ccci keeps a
small JSON file next to the journal, updated by every apply and written atomically.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ccci.atomic import write_atomic
from ccci.facts.model import Facts
from ccci.units import format_time, parse_time


def seen_in_use(facts: Facts, now: datetime) -> dict[str, datetime]:
    """Pure: when the facts show each image in use — now for a running container or a task
    meant to run, else when its container last finished (or was created)."""
    from ccci.rules.usage import resolve

    seen: dict[str, datetime] = {}

    def note(image_id: str, moment: datetime) -> None:
        if image_id and (image_id not in seen or seen[image_id] < moment):
            seen[image_id] = moment

    for container in facts.containers:
        moment = now if container.active else (container.finished or container.created)
        note(container.image_id, moment)
    for task in facts.tasks:
        if task.desired_state == "running" and task.image:
            for image in resolve(task.image, facts.images):
                note(image.id, now)
    return seen


def updated(previous: dict[str, datetime], facts: Facts, now: datetime) -> dict[str, datetime]:
    """Pure: the new record. An image seen for the first time starts at ``now``, so one that
    ccci never saw used is not evicted before it has been watched for ``unused_for``."""
    record = {i.id: previous.get(i.id, now) for i in facts.images}
    for image_id, moment in seen_in_use(facts, now).items():
        if image_id in record and record[image_id] < moment:
            record[image_id] = moment
    return record


def read(path: Path) -> dict[str, datetime]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A damaged record is started afresh: every image is then watched from now on,
        # which can only delay eviction, never hasten it.
        return {}
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        return {}
    record = {}
    for image_id, text in images.items():
        if not isinstance(text, str):
            continue
        try:
            record[image_id] = parse_time(text)
        except ValueError:
            continue
    return record


def write(path: Path, record: dict[str, datetime]) -> None:
    body = {"format_version": 1, "images": {k: format_time(v) for k, v in sorted(record.items())}}
    write_atomic(path, json.dumps(body, indent=1))
