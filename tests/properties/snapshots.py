"""Hypothesis strategies for random fact snapshots of a swarm CI host.

Values are drawn from small pools on purpose, so that what makes ccci's decisions hard keeps
happening: a service spec and an image tag spelled differently but naming the same image
(``redis:7-alpine`` and ``docker.io/library/redis:7-alpine``), a service pinned by digest to
an untagged image a swarm pulled, abra secrets whose stack name is a prefix of another
stack's (``…_example_org`` and ``…_example_org_uk``), ages on both sides of every threshold
the policies below can name, stacks of which only a volume, a secret or an env file is left,
and fact kinds that were not gathered (then empty, as a real gathering leaves them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hypothesis import strategies as st

from ccci.facts.model import (
    STACK_LABEL,
    BuildCacheRecord,
    Container,
    Daemon,
    DiskUsage,
    FactGap,
    Facts,
    FileFact,
    GapCause,
    Image,
    Network,
    Service,
    SwarmObject,
    Task,
    Volume,
)

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HOST = "cc-ci"
EXPIRES_LABEL = "ci.expires"
ABRA_DIR = "/root/.abra"

# Just under, at and over every duration the policy strategies use (1m, 30m, 2h, 3h, 24h,
# 3d, 14d), and a moment in the future (a clock that is ahead).
AGES = st.sampled_from(
    [
        timedelta(minutes=-5),
        timedelta(0),
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=29),
        timedelta(minutes=31),
        timedelta(hours=2, minutes=1),
        timedelta(hours=3),
        timedelta(hours=23),
        timedelta(hours=25),
        timedelta(days=3, hours=1),
        timedelta(days=15),
        timedelta(days=400),
    ]
)

# Run-apps whose names extend each other, a run-app that a keep pattern may name, a stack
# name that is a prefix of run-app names but is none itself, and stacks that are no run-apps.
STACKS = (
    "redi-3fa9c1_ci_example_org",
    "redi-3fa9c1_ci_example_org_uk",
    "redi-3fa9c1_ci",
    "post-8d2e4f_ci_example_org",
    "demo-000001_ci_example_org",
    "traefik",
)
# One repository in several spellings, a loopback registry with a port, a user repository.
REPOS = (
    "redis",
    "docker.io/library/redis",
    "index.docker.io/library/redis",
    "127.0.0.1:5001/recipe/app",
    "nginx",
    "foo/bar",
    "ghcr.io/acme/web",
    "127.0.0.1:5001/ci/job",
)
TAGS = ("7-alpine", "latest", "1")
CONTAINER_STATES = ("created", "running", "restarting", "paused", "removing", "exited", "dead")
TASK_STATES = (
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
)
TASK_DESIRED = ("running", "ready", "ready", "shutdown", "remove", "accepted")
# Tasks of a host where nothing is in flight: running as meant, or ended and shut down.
SETTLED = st.sampled_from(
    [("running", "running"), ("complete", "shutdown"), ("shutdown", "shutdown")]
)
UPDATE_STATES = (
    "",
    "updating",
    "paused",
    "completed",
    "rollback_started",
    "rollback_paused",
    "rollback_completed",
)
TASK_ERRORS = (
    "",
    "no suitable node (scheduling constraints)",
    "No such image",
    "non-zero exit (1)",
)
# Kinds a gathering can miss, as Facts.gaps records them.
GAP_KINDS = (
    "images",
    "containers",
    "build_cache",
    "services",
    "tasks",
    "volumes",
    "networks",
    "secrets",
    "configs",
)
DISK_PATHS = ("/var/lib/docker", "/")
DISK_TOTAL = 100 * 2**30
T = TypeVar("T")


def hex64(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def image_id(i: int) -> str:
    return f"sha256:{hex64(f'image-{i}')}"


def digest(i: int) -> str:
    """The manifest digest image ``i`` was pulled by: not its id, as on a real engine."""
    return f"sha256:{hex64(f'manifest-{i}')}"


def _unix(moment: datetime) -> str:
    return str(int(moment.timestamp()))


# A deadline label: past, ahead, not a unix time, and digits that are not ASCII.
DEADLINES = st.sampled_from(
    [
        _unix(NOW - timedelta(hours=1)),
        _unix(NOW + timedelta(hours=1)),
        _unix(NOW + timedelta(days=30)),
        "tomorrow",
        "１２３",
    ]
)


@st.composite
def _stack_labels(draw: st.DrawFn, stack: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    if stack is not None:
        labels[STACK_LABEL] = stack
    if draw(st.integers(0, 4)) == 0:
        labels[EXPIRES_LABEL] = draw(DEADLINES)
    return labels


def _stack_or_none() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(STACKS))


@st.composite
def images(draw: st.DrawFn, count: int) -> list[Image]:
    found: list[Image] = []
    for i in range(count):
        kind = draw(st.sampled_from(("tagged", "digest", "leftover")))
        tags: tuple[str, ...] = ()
        digests: tuple[str, ...] = ()
        if kind == "tagged":
            tags = tuple(
                draw(
                    st.lists(
                        st.builds(
                            lambda r, t: f"{r}:{t}", st.sampled_from(REPOS), st.sampled_from(TAGS)
                        ),
                        min_size=1,
                        max_size=2,
                        unique=True,
                    )
                )
            )
        if kind == "digest" or (kind == "tagged" and draw(st.booleans())):
            repos = draw(st.lists(st.sampled_from(REPOS), min_size=1, max_size=2, unique=True))
            digests = tuple(f"{r}@{digest(i)}" for r in repos)
        others = [image_id(j) for j in range(count) if j != i]
        # Mostly none: an image with children is never removed, so children are kept rare.
        parent = draw(st.sampled_from([""] * 8 + [image_id(99), *others]))
        size = draw(st.sampled_from([0, 1, 10**6, 10**9, 5 * 10**9]))
        unique = draw(st.one_of(st.none(), st.sampled_from([0, size // 2, size])))
        found.append(
            Image(
                id=image_id(i),
                tags=tags,
                digests=digests,
                created=NOW - draw(AGES),
                size=size,
                parent=parent,
                unique_size=unique,
            )
        )
    return found


def references(found: list[Image]) -> st.SearchStrategy[str]:
    """What a container, a service or a task may name: a tag as written or in another
    spelling, ``repo:tag@digest`` as ``docker stack deploy`` pins it, ``repo@digest``, an
    image id, and references that name nothing here."""
    pool = [f"{r}:{t}" for r in REPOS for t in TAGS]
    pool += [f"redis:7-alpine@{digest(98)}", "busybox:latest", f"sha256:{hex64('gone')}"]
    own: list[str] = []
    for n, image in enumerate(found):
        own.append(image.id)
        own += list(image.tags)
        for d in image.digests:
            repo, _, dig = d.partition("@")
            own.append(d)
            own.append(f"{repo}:{TAGS[n % len(TAGS)]}@{dig}")
    anything = st.sampled_from(sorted(set(pool + own)))
    # A third of the time one of these images' own names, so that what uses an image is
    # common, yet most images stay unused and can be judged for removal.
    return st.one_of(st.sampled_from(sorted(set(own))), anything, anything) if own else anything


@st.composite
def containers(draw: st.DrawFn, found: list[Image], count: int) -> list[Container]:
    ids = [i.id for i in found] + [image_id(97)]
    made = []
    for i in range(count):
        state = draw(st.sampled_from(CONTAINER_STATES))
        finished = None
        if state in ("exited", "dead") and draw(st.booleans()):
            finished = NOW - draw(AGES)
        made.append(
            Container(
                id=hex64(f"container-{i}"),
                name=f"job-{i}",
                image=draw(references(found)),
                image_id=draw(st.sampled_from(ids)),
                state=state,
                created=NOW - draw(AGES),
                finished=finished,
                labels=draw(_stack_labels(draw(_stack_or_none()))),
            )
        )
    return made


@st.composite
def services(
    draw: st.DrawFn, found: list[Image], count: int, calm: bool, quiet: bool = False
) -> list[Service]:
    made = []
    for i in range(count):
        # On a calm host most services belong to no run-app (a live run-app closes the
        # prune's and the eviction's stack gates).
        stack = draw(
            st.sampled_from([None, "traefik"])
            if quiet
            else st.sampled_from([None] * 6 + ["traefik", *STACKS])
            if calm
            else _stack_or_none()
        )
        created = NOW - draw(AGES)
        updated = max(created, NOW - draw(AGES))
        update_state = draw(st.sampled_from(("", "completed") if calm else UPDATE_STATES))
        started = NOW - draw(AGES) if update_state and draw(st.booleans()) else None
        made.append(
            Service(
                id=f"service{i:019d}",
                name=f"{stack or 'svc'}_app{i}",
                image=draw(references(found)),
                labels=draw(_stack_labels(stack)),
                created=created,
                updated=updated,
                update_state=update_state,
                replicas=draw(st.sampled_from([None, 0, 1, 2])),
                update_started=started,
                version=draw(st.integers(0, 3)),
            )
        )
    return made


@st.composite
def tasks(
    draw: st.DrawFn, found: list[Image], owners: list[Service], count: int, calm: bool
) -> list[Task]:
    ids = [s.id for s in owners] + ["service-gone"]
    by_id = {s.id: s for s in owners}
    made = []
    for i in range(count):
        service_id = draw(st.sampled_from(ids))
        own = by_id.get(service_id)
        # The service's own image, as swarm makes them; another (an update's old task, a
        # task pulling what its service no longer names); or none.
        image = draw(
            st.one_of(
                st.just(own.image if own else ""),
                references(found),
                references(found),
                st.just(""),
            )
        )
        created = NOW - draw(AGES)
        # A service whose spec last changed hours ago is stuck, not in flight, even on a calm
        # host: its tasks may be in any state (pending for ever, a crash loop, ready).
        stuck = own is not None and NOW - own.spec_changed >= timedelta(hours=3)
        state, desired = draw(
            SETTLED
            if calm and not stuck
            else st.tuples(st.sampled_from(TASK_STATES), st.sampled_from(TASK_DESIRED))
        )
        made.append(
            Task(
                id=f"task{i:021d}",
                service_id=service_id,
                state=state,
                desired_state=desired,
                container_id=hex64(f"task-container-{i}") if draw(st.booleans()) else "",
                image=image,
                error=draw(st.sampled_from(TASK_ERRORS)),
                created=created,
                changed=max(created, NOW - draw(AGES)) if draw(st.booleans()) else None,
                exit_code=draw(st.sampled_from([None, 0, 1, 137])),
            )
        )
    return made


@st.composite
def volumes(draw: st.DrawFn, count: int) -> list[Volume]:
    made = []
    for i in range(count):
        stack = draw(_stack_or_none())
        made.append(
            Volume(
                name=f"{stack or 'local'}_data{i}",
                driver="local",
                labels=draw(_stack_labels(stack)),
                created=draw(st.one_of(st.none(), AGES.map(lambda a: NOW - a))),
            )
        )
    return made


@st.composite
def networks(draw: st.DrawFn, count: int) -> list[Network]:
    made = []
    for i in range(count):
        stack = draw(_stack_or_none())
        made.append(
            Network(
                id=f"network{i:018d}",
                name=f"{stack or 'bridge'}_default{i}",
                driver="overlay",
                scope="swarm",
                labels=draw(_stack_labels(stack)),
                created=NOW - draw(AGES),
            )
        )
    return made


@st.composite
def configs(draw: st.DrawFn, count: int) -> list[SwarmObject]:
    made = []
    for i in range(count):
        stack = draw(_stack_or_none())
        made.append(
            SwarmObject(
                id=f"config{i:019d}",
                name=f"{stack or 'global'}_conf{i}",
                labels=draw(_stack_labels(stack)),
                created=NOW - draw(AGES),
            )
        )
    return made


@st.composite
def secrets(draw: st.DrawFn, count: int) -> list[SwarmObject]:
    """abra's secrets are external, so unlabelled: ``<stack>_<secret>_<version>``, with a
    stack name that may be a prefix of another stack's. Some carry the namespace label (a
    recipe's own non-external secret), some belong to no stack at all."""
    made = []
    for i in range(count):
        owner = draw(st.sampled_from(STACKS))
        name = draw(
            st.sampled_from([f"{owner}_db_password_v{i}", f"{owner}_uk_token_v{i}", f"manual_{i}"])
        )
        stack = owner if draw(st.integers(0, 3)) == 0 else None
        made.append(
            SwarmObject(
                id=f"secret{i:019d}",
                name=name,
                labels=draw(_stack_labels(stack)),
                created=NOW - draw(AGES),
            )
        )
    return made


@st.composite
def env_files(draw: st.DrawFn, count: int) -> list[FileFact]:
    """abra's env files: in its folder or another user's, saying whose they are by their
    name, their DOMAIN or their STACK_NAME — or contradicting themselves, or unreadable."""
    made = []
    for _ in range(count):
        stack = draw(st.sampled_from(STACKS))
        domain = stack.replace("_", ".")
        folder = draw(
            st.sampled_from(
                [
                    f"{ABRA_DIR}/servers/cc-ci",
                    f"{ABRA_DIR}/servers/other",
                    "/home/ci/.abra/servers/cc-ci",
                ]
            )
        )
        made.append(
            FileFact(
                path=f"{folder}/{domain}.env",
                exists=draw(st.integers(0, 4)) > 0,
                size=120,
                modified=draw(st.one_of(st.none(), AGES.map(lambda a: NOW - a))),
                domain=draw(st.sampled_from(["", domain, "else.ci.example.org"])),
                stack_name=draw(st.sampled_from(["", "", stack, STACKS[0]])),
                error=draw(st.sampled_from(["", "", "", "permission denied"])),
            )
        )
    # One file per path, as a gathering sees a folder.
    return list({f.path: f for f in made}.values())


@st.composite
def build_cache(draw: st.DrawFn, count: int) -> list[BuildCacheRecord]:
    made = []
    for i in range(count):
        created = NOW - draw(AGES)
        made.append(
            BuildCacheRecord(
                id=hex64(f"cache-{i}")[:25],
                type=draw(st.sampled_from(["regular", "internal", "frontend", "source.local"])),
                description=f"step {i}",
                in_use=draw(st.booleans()),
                shared=draw(st.booleans()),
                size=draw(st.sampled_from([0, 10**6, 10**9, 5 * 10**9])),
                created=created,
                last_used=draw(st.one_of(st.none(), AGES.map(lambda a: NOW - a))),
            )
        )
    return made


@st.composite
def disks(draw: st.DrawFn, full: bool = False) -> list[DiskUsage]:
    """Each gate's filesystem measured or not, often over the thresholds the policies name;
    ``full``: measured and over every threshold."""
    made = []
    for path in DISK_PATHS:
        ratios = (
            [0.85, 0.86, 0.9, 0.91, 0.99]
            if full
            else [None, 0.1, 0.5, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0]
        )
        ratio = draw(st.sampled_from(ratios))
        if ratio is None:
            continue
        used = int(DISK_TOTAL * ratio)
        made.append(DiskUsage(path, DISK_TOTAL, used, DISK_TOTAL - used))
    return made


@st.composite
def gaps(draw: st.DrawFn, rare: bool = False) -> list[FactGap]:
    """Mostly a full view; else a worker node or a locked swarm (every swarm kind missing),
    or any few kinds lost to an API error or a timeout."""
    full = 21 if rare else 5
    shape = draw(st.sampled_from(["full"] * full + ["worker", "locked", "some"]))
    if shape == "full":
        return []
    if shape in ("worker", "locked"):
        cause = GapCause.NOT_MANAGER if shape == "worker" else GapCause.SWARM_LOCKED
        return [FactGap(k, cause) for k in ("services", "tasks", "secrets", "configs")]
    kinds = draw(st.lists(st.sampled_from(GAP_KINDS), min_size=1, max_size=3, unique=True))
    cause = draw(st.sampled_from([GapCause.API_ERROR, GapCause.TIMEOUT, GapCause.NOT_ASKED]))
    return [FactGap(k, cause, "fuzzed") for k in kinds]


@st.composite
def fact_snapshots(draw: st.DrawFn, pressure: bool = False, quiet: bool = False) -> Facts:
    """One host's facts. A kind that was not gathered is empty, as a gathering leaves it.

    ``pressure``: a calm host (nothing in flight) with full disks and old last uses, so
    that the gates open and the prune and eviction are reached often. ``quiet``: no service
    belongs to a run-app either, so no live run-app holds the stack gates closed.
    """
    calm = pressure or quiet or draw(st.booleans())
    found = draw(images(draw(st.integers(0, 6))))
    owners = draw(services(found, draw(st.integers(0, 4)), calm, quiet))
    missing = draw(gaps(rare=pressure))
    lost = {g.kind for g in missing}

    def kept(kind: str, values: Sequence[T]) -> tuple[T, ...]:
        return () if kind in lost else tuple(values)

    last_use = {i.id: NOW - draw(AGES) for i in found if draw(st.integers(0, 3)) > 0}
    return Facts(
        host=HOST,
        gathered_at=NOW,
        daemon=Daemon(HOST, "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True),
        disks=tuple(draw(disks(full=pressure))),
        images=kept("images", found),
        containers=kept("containers", draw(containers(found, draw(st.integers(0, 4))))),
        build_cache=kept("build_cache", draw(build_cache(draw(st.integers(0, 3))))),
        services=kept("services", owners),
        tasks=kept("tasks", draw(tasks(found, owners, draw(st.integers(0, 6)), calm))),
        volumes=kept("volumes", draw(volumes(draw(st.integers(0, 3))))),
        networks=kept("networks", draw(networks(draw(st.integers(0, 2))))),
        secrets=kept("secrets", draw(secrets(draw(st.integers(0, 4))))),
        configs=kept("configs", draw(configs(draw(st.integers(0, 2))))),
        files=tuple(draw(env_files(draw(st.integers(0, 3))))),
        image_last_use=last_use,
        gaps=tuple(missing),
    )
