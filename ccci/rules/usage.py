"""Which images are in use, and by what: built explicitly, before any candidate is ordered."""

from __future__ import annotations

from collections.abc import Iterable

from ccci.facts.model import Facts, Image
from ccci.facts.refs import names_image
from ccci.facts.swarm import may_schedule, node_of

# Tasks the orchestrator means to run, or is getting ready to run (``ready``: held back by a
# restart delay or a rolling update). Their image is in use even while no container exists:
# the node pulls it for them.
TASK_DESIRED_USING = frozenset({"running", "ready"})


def resolve(ref: str, images: Iterable[Image]) -> list[Image]:
    """Local images a reference names (see :func:`ccci.facts.refs.names_image`, the one owner of
    "does this reference name this image")."""
    return [i for i in images if names_image(ref, i)]


def image_users(facts: Facts, ignoring: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Image id → what uses it on this node: any container in any state, a task meant to
    run here, and the spec of any service that may schedule a task here (see
    ``ccci.facts.swarm``: only its own placement can prove it never will). ``ignoring``
    holds ids of containers the plan already removes."""
    users: dict[str, list[str]] = {}
    for container in facts.containers:
        if container.id not in ignoring:
            users.setdefault(container.image_id, []).append(
                f"container {container.name} ({container.state})"
            )
    node = node_of(facts)
    here = facts.daemon.node_id
    named: list[tuple[str, str]] = [
        (s.image, f"service {s.name}") for s in facts.services if may_schedule(s, node)
    ]
    by_service = {s.id: s.name for s in facts.services}
    named += [
        (t.image, f"task of service {by_service.get(t.service_id, t.service_id)}")
        for t in facts.tasks
        if t.desired_state in TASK_DESIRED_USING
        and t.image
        # A task of another node uses the image there; one with no node (not yet
        # assigned, or an older snapshot) may land here.
        and (not here or not t.node_id or t.node_id == here)
    ]
    for ref, user in dict.fromkeys(named):
        for image in resolve(ref, facts.images):
            if user not in users.get(image.id, []):
                users.setdefault(image.id, []).append(user)
    return users


def parents(facts: Facts) -> set[str]:
    """Images that other images are built on: the engine refuses to remove them."""
    return {i.parent for i in facts.images if i.parent}
