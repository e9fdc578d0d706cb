"""``ccci images``: every image with why it stays — retained, in use, last used, size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from ccci.facts.model import Facts
from ccci.lastuse import seen_in_use
from ccci.policy.model import Policy
from ccci.rules.retention import retained_images
from ccci.rules.usage import image_users
from ccci.serde import to_jsonable
from ccci.units import format_bytes, format_duration


@dataclass(frozen=True)
class ImageRow:
    id: str
    tags: tuple[str, ...]
    size: int
    unique_size: int | None
    created: datetime
    last_used: datetime | None
    retained: str
    used_by: tuple[str, ...]


def image_rows(facts: Facts, policies: tuple[Policy, ...], now: datetime) -> list[ImageRow]:
    """Pure: one row per image, most recently used first; last use as recorded, or as seen
    now when the record is older."""
    kept = retained_images(policies, facts)
    users = image_users(facts)
    seen = seen_in_use(facts, now)
    recorded = facts.image_last_use

    def last(image_id: str) -> datetime | None:
        moments = [m for m in (recorded.get(image_id), seen.get(image_id)) if m is not None]
        return max(moments) if moments else None

    rows = [
        ImageRow(
            id=i.id,
            tags=i.tags,
            size=i.size,
            unique_size=i.unique_size,
            created=i.created,
            last_used=last(i.id),
            retained=kept.get(i.id, ""),
            used_by=tuple(users.get(i.id, ())),
        )
        for i in facts.images
    ]
    epoch = datetime.min.replace(tzinfo=facts.gathered_at.tzinfo)
    return sorted(rows, key=lambda r: (r.last_used or epoch, r.created), reverse=True)


def render_text(host: str, rows: list[ImageRow], now: datetime) -> str:
    lines = [f"{host}: {len(rows)} images"]
    for row in rows:
        name = ", ".join(row.tags) if row.tags else "<none>:<none>"
        used = (
            f"last used {format_duration(now - row.last_used)} ago"
            if row.last_used
            else "never seen in use"
        )
        why = []
        if row.retained:
            why.append(row.retained)
        if row.used_by:
            why.append("in use by " + ", ".join(row.used_by))
        age = format_duration(timedelta(seconds=(now - row.created).total_seconds()))
        lines.append(
            f"  {row.id.removeprefix('sha256:')[:12]}  {format_bytes(row.size):>10}  {name}  "
            f"({used}; created {age} ago)" + (f"  [{'; '.join(why)}]" if why else "")
        )
    return "\n".join(lines)


def render_json(by_host: dict[str, list[ImageRow]]) -> str:
    return json.dumps(
        {"format_version": 1, "hosts": {h: to_jsonable(r) for h, r in by_host.items()}},
        indent=2,
        sort_keys=True,
    )
