"""Which images are in use, and by what: built explicitly, before any candidate is ordered."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ccci.facts.model import Facts, Image
from ccci.facts.refs import digest_of, image_names, is_image_id, names_image, try_ref
from ccci.facts.swarm import may_schedule, node_of

# Tasks the orchestrator means to run, or is getting ready to run (``ready``: held back by a
# restart delay or a rolling update). Their image is in use even while no container exists:
# the node pulls it for them.
TASK_DESIRED_USING = frozenset({"running", "ready"})


def resolve(ref: str, images: Iterable[Image]) -> list[Image]:
    """Local images a reference names (see :func:`ccci.facts.refs.names_image`, the one owner of
    "does this reference name this image")."""
    return [i for i in images if names_image(ref, i)]


def resolver(images: tuple[Image, ...]) -> Callable[[str], list[Image]]:
    """:func:`resolve` over ``images`` for many references: each is looked up by its
    canonical name or digest instead of being compared with every image (services x
    images on a busy swarm). The candidates found still pass :func:`names_image`, the one
    owner of the decision, and keep the images' order; an id (or id prefix) is compared
    with every image, as before."""
    by_key: dict[str, list[int]] = {}
    for at, image in enumerate(images):
        keys = image_names(image) | {digest_of(d) for d in image.digests}
        for key in keys:
            by_key.setdefault(key, []).append(at)

    def find(ref: str) -> list[Image]:
        if is_image_id(ref):
            return resolve(ref, images)
        parsed = try_ref(ref)
        if parsed is None:
            return []
        found = by_key.get(parsed.digest or parsed.name, [])
        return [images[at] for at in found if names_image(ref, images[at])]

    return find


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
    for image_id, user in _spec_users(facts):
        if user not in users.get(image_id, []):
            users.setdefault(image_id, []).append(user)
    return users


def _spec_users(facts: Facts) -> tuple[tuple[str, str], ...]:
    """(image id, user) for each service and task that uses an image on this node, in the
    order :func:`image_users` adds them. Resolved once per facts (``Facts.derived``): the
    prune asks with and without the containers it removes, and eviction asks again, and
    only the containers differ between them."""
    return facts.derived((_spec_users,), lambda: tuple(_resolve_spec_users(facts)))


def _resolve_spec_users(facts: Facts) -> Iterator[tuple[str, str]]:
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
    find = resolver(facts.images)
    for ref, user in dict.fromkeys(named):
        for image in find(ref):
            yield image.id, user


def parents(facts: Facts) -> set[str]:
    """Images that other images are built on: the engine refuses to remove them."""
    return {i.parent for i in facts.images if i.parent}
