"""Which images are in use, and by what: built explicitly, before any candidate is ordered."""

from __future__ import annotations

from collections.abc import Iterable

from ccci.facts.model import Facts, Image
from ccci.refs import digest_of, parse_ref


def resolve(ref: str, images: Iterable[Image]) -> list[Image]:
    """Local images a reference names: by digest when it has one, else by ``repo:tag``."""
    wanted = parse_ref(ref)
    if wanted.digest:
        return [i for i in images if any(digest_of(d) == wanted.digest for d in i.digests)]
    if wanted.repo.startswith("sha256:") or ref.startswith("sha256:"):
        return [i for i in images if i.id == ref or i.id.startswith(ref)]
    return [i for i in images if any(parse_ref(t).name == wanted.name for t in i.tags)]


def image_users(facts: Facts, ignoring: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Image id → what uses it: any container in any state, any service spec, any task
    meant to run. ``ignoring`` holds ids of containers the plan already removes."""
    users: dict[str, list[str]] = {}
    for container in facts.containers:
        if container.id not in ignoring:
            users.setdefault(container.image_id, []).append(
                f"container {container.name} ({container.state})"
            )
    named: list[tuple[str, str]] = [(s.image, f"service {s.name}") for s in facts.services]
    by_service = {s.id: s.name for s in facts.services}
    named += [
        (t.image, f"task of service {by_service.get(t.service_id, t.service_id)}")
        for t in facts.tasks
        if t.desired_state == "running" and t.image
    ]
    for ref, user in named:
        for image in resolve(ref, facts.images):
            if user not in users.get(image.id, []):
                users.setdefault(image.id, []).append(user)
    return users


def parents(facts: Facts) -> set[str]:
    """Images that other images are built on: the engine refuses to remove them."""
    return {i.parent for i in facts.images if i.parent}
