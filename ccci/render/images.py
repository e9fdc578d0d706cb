"""``ccci images``: every image with what it is and why it stays — tagged, pulled by digest
(the swarm's untagged cache) or a leftover; retained, in use, last used, size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from ccci.facts.model import Facts, Image, ImageKind
from ccci.policy.model import Policy
from ccci.quantities import format_bytes, format_duration
from ccci.render.escape import terminal
from ccci.rules.retention import retained_images
from ccci.rules.usage import image_users
from ccci.serde import to_jsonable
from ccci.state.lastuse import seen_in_use


@dataclass(frozen=True)
class ImageRow:
    """One image as ``ccci images`` lists it: what it is to the cache, and every reason it stays
    (retained by a policy, in use, last used)."""

    id: str
    tags: tuple[str, ...]
    kind: str
    digests: tuple[str, ...]
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
            kind=i.kind.value,
            digests=i.digests,
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


def kind_note(row: ImageRow) -> str:
    """What the image is to the cache, in words: the reason an untagged image stays or not."""
    if row.kind == ImageKind.DIGEST.value:
        repos = ", ".join(sorted({_repo(d) for d in row.digests}))
        return f"pulled by digest from {repos}: cache, never pruned, evicted only by last use"
    if row.kind == ImageKind.LEFTOVER.value:
        return "leftover (no tag, no digest): the prune's to remove once old enough"
    return ""


def _repo(repo_digest: str) -> str:
    from ccci.facts.refs import familiar_repo, repo_of

    return familiar_repo(repo_of(repo_digest))


def _name(row: ImageRow) -> str:
    if row.tags:
        return ", ".join(row.tags)
    probe = Image(row.id, (), row.digests, row.created, row.size)
    from ccci.rules.prune import untagged_label

    return untagged_label(probe)


def render_text(host: str, rows: list[ImageRow], now: datetime) -> str:
    """The listing for a person; every engine-given name is escaped, so a recipe's tag cannot print
    as a line of its own."""
    lines = [terminal(f"{host}: {len(rows)} images")]
    for row in rows:
        name = _name(row)
        used = (
            f"last used {format_duration(now - row.last_used)} ago"
            if row.last_used
            else "never seen in use"
        )
        why = [kind_note(row)] if kind_note(row) else []
        if row.retained:
            why.append(row.retained)
        if row.used_by:
            why.append("in use by " + ", ".join(row.used_by))
        age = format_duration(timedelta(seconds=(now - row.created).total_seconds()))
        # Tags, digests and the names in "in use by" are the engine's (chosen by recipes):
        # escaped, so none can print as a line of its own.
        lines.append(
            terminal(
                f"  {row.id.removeprefix('sha256:')[:12]}  {format_bytes(row.size):>10}  {name}  "
                f"({used}; created {age} ago)" + (f"  [{'; '.join(why)}]" if why else "")
            )
        )
    return "\n".join(lines)


def render_json(by_host: dict[str, list[ImageRow]]) -> str:
    """Every host's rows as one versioned document (``format_version``) that scripts may rely on."""
    return json.dumps(
        {"format_version": 1, "hosts": {h: to_jsonable(r) for h, r in by_host.items()}},
        indent=2,
        sort_keys=True,
    )
