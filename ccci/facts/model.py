"""The facts snapshot: frozen dataclasses that round-trip through JSON.

Rules read only these types, never the Docker API, so any behaviour can be replayed from a
saved snapshot (``ccci facts --output json``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from ccci.serde import from_jsonable, to_jsonable

STACK_LABEL = "com.docker.stack.namespace"
SCOPE_FULL = "full"
SCOPE_STACKS = "stacks"
FACTS_FORMAT = 1
_T = TypeVar("_T")

# Container states in which a container holds resources and must never be touched.
ACTIVE_CONTAINER_STATES = frozenset({"running", "restarting", "paused", "removing"})


class ImageKind(enum.Enum):
    """What an image is to the cache. On a swarm most of the cache is untagged: a node pulls
    each service image by the digest ``docker stack deploy`` pinned, and a pull by digest
    makes no tag (moby#28908). So "untagged" is not "leftover": only an image with neither a
    tag nor a repo digest is a build's leftover layer."""

    TAGGED = "tagged"
    DIGEST = "pulled by digest"
    LEFTOVER = "leftover"


@dataclass(frozen=True)
class Image:
    """A local image; ``tags`` are ``repo:tag`` as ``docker image ls`` shows them."""

    id: str
    tags: tuple[str, ...]
    digests: tuple[str, ...]
    created: datetime
    size: int
    parent: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    unique_size: int | None = None

    @property
    def kind(self) -> ImageKind:
        """What the image is to the cache: a tag wins, then a repo digest (the swarm's untagged pull
        cache); only an image with neither is a leftover."""
        if self.tags:
            return ImageKind.TAGGED
        return ImageKind.DIGEST if self.digests else ImageKind.LEFTOVER

    @property
    def dangling(self) -> bool:
        """A leftover: no tag and no repo digest. Stricter than ``docker image prune``
        (without ``--all``), which also removes every image a swarm pulled by digest."""
        return self.kind is ImageKind.LEFTOVER

    @property
    def short_id(self) -> str:
        """The twelve hex digits ``docker image ls`` shows, for labels and reasons."""
        return self.id.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class Container:
    """A container in any state; ``finished`` is set once it has exited."""

    id: str
    name: str
    image: str
    image_id: str
    state: str
    created: datetime
    finished: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Holds resources (running, restarting, paused, removing): never touched by a prune."""
        return self.state in ACTIVE_CONTAINER_STATES


@dataclass(frozen=True)
class BuildCacheRecord:
    """One BuildKit cache record, as the engine's disk-usage endpoint reports it."""

    id: str
    type: str
    description: str
    in_use: bool
    shared: bool
    size: int
    created: datetime
    last_used: datetime | None = None

    @property
    def dangling(self) -> bool:
        """Neither in use nor shared with an image: what ``docker builder prune`` removes."""
        return not self.in_use and not self.shared


@dataclass(frozen=True)
class Service:
    """A swarm service; ``update_state`` is UpdateStatus.State (``updating``, …) or empty."""

    id: str
    name: str
    image: str
    labels: dict[str, str]
    created: datetime
    updated: datetime
    update_state: str = ""
    replicas: int | None = None
    update_started: datetime | None = None
    update_message: str = ""
    version: int = 0
    # Where the swarm may put its tasks (see ccci.facts.swarm): ``mode`` is ``replicated``,
    # ``global``, ``replicated-job`` or ``global-job``; ``platforms`` are ``os/arch``.
    mode: str = "replicated"
    constraints: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    max_replicas: int = 0

    @property
    def stack(self) -> str:
        """The stack the service was deployed by, or '' when it is in none."""
        return self.labels.get(STACK_LABEL, "")

    @property
    def spec_changed(self) -> datetime:
        """When the service was last told to become something: created, updated, or its
        update started. Its convergence clock starts here, not at its newest task, because
        a crash loop keeps making new tasks and would otherwise never look old."""
        moments = [self.created, self.updated]
        if self.update_started is not None:
            moments.append(self.update_started)
        return max(moments)


@dataclass(frozen=True)
class Task:
    """A swarm task: the unit whose state tells whether a service has converged.

    ``changed`` is Status.Timestamp, when the task last changed state; ``error`` and
    ``message`` are the engine's words for why ("no suitable node …", "No such image …").
    """

    id: str
    service_id: str
    state: str
    desired_state: str
    container_id: str = ""
    image: str = ""
    error: str = ""
    created: datetime | None = None
    changed: datetime | None = None
    message: str = ""
    exit_code: int | None = None
    # The swarm node the task is assigned to ("" before it is assigned).
    node_id: str = ""


@dataclass(frozen=True)
class Volume:
    """A named volume; ``docker stack rm`` never removes one, so an orphaned stack's volumes stay
    until a reap names them."""

    name: str
    driver: str
    labels: dict[str, str]
    created: datetime | None = None

    @property
    def stack(self) -> str:
        """The stack that created the volume, or '' when it is in none."""
        return self.labels.get(STACK_LABEL, "")


@dataclass(frozen=True)
class Network:
    """A network; a stack's own are labelled with its name, and swarm-scoped ones are the cluster's,
    not one node's."""

    id: str
    name: str
    driver: str
    scope: str
    labels: dict[str, str]
    created: datetime | None = None

    @property
    def stack(self) -> str:
        """The stack that created the network, or '' when it is in none."""
        return self.labels.get(STACK_LABEL, "")


@dataclass(frozen=True)
class SwarmObject:
    """A secret or a config: both are named, labelled, and created."""

    id: str
    name: str
    labels: dict[str, str]
    created: datetime

    @property
    def stack(self) -> str:
        """The stack that created it, or '': abra's secrets are external and carry no label, so
        ``ccci.facts.stacks`` finds those by name."""
        return self.labels.get(STACK_LABEL, "")


@dataclass(frozen=True)
class Daemon:
    """What the engine says about itself."""

    name: str
    server_version: str
    api_version: str
    data_root: str
    storage_driver: str
    swarm_state: str
    swarm_manager: bool
    # Swarm.NodeID; Swarm.Cluster.ID (only a manager knows it); RemoteManagers' node IDs.
    node_id: str = ""
    cluster_id: str = ""
    managers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiskUsage:
    """statvfs of the filesystem holding ``path``; ``used`` as ``df`` counts it."""

    path: str
    total: int
    used: int
    available: int

    @property
    def ratio(self) -> float:
        """Used share as ``df`` computes Use%: used / (used + available to users)."""
        denominator = self.used + self.available
        return self.used / denominator if denominator else 0.0


@dataclass(frozen=True)
class RegistryAuth:
    """That a client config holds credentials for a registry, and for which user.

    Only the registry and the user name are kept: the secret part of an entry is never
    read into facts, so it cannot reach a plan, a journal or a log.
    """

    registry: str
    user: str = ""
    via: str = "auths"


@dataclass(frozen=True)
class ClientConfig:
    """A Docker client config (``~/.docker/config.json``) of the user the daemon pulls as."""

    path: str
    found: bool
    error: str = ""
    auths: tuple[RegistryAuth, ...] = ()
    creds_store: str = ""


@dataclass(frozen=True)
class Unit:
    """A systemd unit as ``systemctl show`` reports it; timer fields only for timers."""

    name: str
    load_state: str
    active_state: str = ""
    unit_file_state: str = ""
    fragment_path: str = ""
    calendars: tuple[str, ...] = ()
    persistent: bool | None = None
    randomized_delay_seconds: float | None = None
    next_elapse: datetime | None = None
    last_trigger: datetime | None = None
    # The first line of the fragment file: ccci's units begin with its "Managed by ccci"
    # header, and a unit without it is someone else's, never to be written over.
    fragment_head: str = ""

    @property
    def exists(self) -> bool:
        """Whether systemd knows a unit of this name: ``not-found``, or no answer, is no unit."""
        return self.load_state not in ("not-found", "")

    @property
    def masked(self) -> bool:
        """Masked by a link (runtime or persistent): systemd will not start it, whatever enables
        it."""
        return self.load_state == "masked" or self.unit_file_state.startswith("masked")


@dataclass(frozen=True)
class UnitFile:
    """A unit file where ccci would write it: its content, and whether it can be written."""

    path: str
    exists: bool
    content: str = ""
    link: str = ""
    dir_writable: bool = True


@dataclass(frozen=True)
class FileFact:
    """A file a policy names (abra's env files): whether it exists, its size, and the only
    two keys ccci reads from it, ``DOMAIN`` and ``STACK_NAME`` (they say whose it is;
    nothing else of an env file ever enters facts). ``error`` says why it was not read."""

    path: str
    exists: bool
    size: int = 0
    modified: datetime | None = None
    domain: str = ""
    stack_name: str = ""
    error: str = ""


@dataclass(frozen=True)
class Stack:
    """Everything that belongs to one stack name; derived from the facts, not gathered."""

    name: str
    services: tuple[Service, ...]
    volumes: tuple[Volume, ...]
    networks: tuple[Network, ...]
    secrets: tuple[SwarmObject, ...]
    configs: tuple[SwarmObject, ...]
    env_files: tuple[FileFact, ...] = ()

    @property
    def live(self) -> bool:
        """A stack with services is deployed; one without is only leftovers."""
        return bool(self.services)

    def objects(self) -> dict[str, tuple[str, ...]]:
        """Names of what the stack holds, by kind, in reap order."""
        return {
            "services": tuple(s.name for s in self.services),
            "secrets": tuple(s.name for s in self.secrets),
            "configs": tuple(c.name for c in self.configs),
            "networks": tuple(n.name for n in self.networks),
            "volumes": tuple(v.name for v in self.volumes),
        }

    def labels(self) -> list[dict[str, str]]:
        """Every object's labels, for the deadline a run stamps on whichever of them it created
        last."""
        groups: list[tuple[Service | Volume | Network | SwarmObject, ...]] = [
            self.services,
            self.volumes,
            self.networks,
            self.secrets,
            self.configs,
        ]
        return [o.labels for group in groups for o in group]

    def _moments(self) -> list[datetime]:
        moments: list[datetime | None] = [s.updated for s in self.services]
        moments += [s.created for s in self.services]
        moments += [v.created for v in self.volumes] + [n.created for n in self.networks]
        moments += [s.created for s in self.secrets] + [c.created for c in self.configs]
        moments += [f.modified for f in self.env_files]
        return [m for m in moments if m is not None]

    def newest(self) -> datetime | None:
        """When the stack last changed: the newest creation or service update among its
        objects, or its env file's last write. A run that is still going keeps this fresh."""
        known = self._moments()
        return max(known) if known else None

    def oldest(self) -> datetime | None:
        """When the stack began: the oldest moment known of any of its objects. How long a
        deadline label can keep it is counted from here."""
        known = self._moments()
        return min(known) if known else None


class GapCause(enum.Enum):
    """Why a kind of fact is missing from a snapshot. A missing kind is never "none there":
    a worker node lists no services although the swarm runs many."""

    NOT_ASKED = "not asked"
    SWARM_INACTIVE = "swarm inactive"
    NOT_MANAGER = "not a swarm manager"
    SWARM_LOCKED = "swarm locked"
    SWARM_UNAVAILABLE = "swarm unavailable"
    API_ERROR = "API error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class FactGap:
    """One kind of fact (``services``, ``tasks``, ``build_cache``, …) that was not gathered."""

    kind: str
    cause: GapCause
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.kind} not gathered ({self.cause.value}{detail})"


# The kinds a swarm manager alone can list.
SWARM_KINDS = ("services", "tasks", "secrets", "configs", "nodes")


@dataclass(frozen=True)
class Node:
    """A swarm node as a manager lists it; identified by ``id`` (hostnames may repeat)."""

    id: str
    hostname: str
    role: str
    availability: str = ""
    state: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    engine_labels: dict[str, str] = field(default_factory=dict)
    os: str = ""
    arch: str = ""


@dataclass(frozen=True)
class UnreachedNode:
    """A node of the swarm no host of the run reached: its volumes were not looked at."""

    id: str
    hostname: str
    why: str


@dataclass(frozen=True)
class SwarmScope:
    """Where this host's cluster objects came from, in a run over several hosts (see
    ``ccci.run.swarmscope``): ``source`` is the host whose manager lent them, and the one
    that does the swarm's cluster work (``cluster_work``). ``cluster_reaps`` names the
    stacks it reaps in the same run: the only ones whose volumes another node reaps."""

    cluster_id: str
    node_id: str
    source: str
    cluster_work: bool
    unreached: tuple[UnreachedNode, ...] = ()
    cluster_reaps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """One host's snapshot; ``gathered_at`` is informational, rules take ``now`` separately.

    ``gaps`` names every kind that was not gathered and why, so a rule that needs it can say
    so instead of reading an empty list as "nothing there".
    """

    host: str
    gathered_at: datetime
    daemon: Daemon
    disks: tuple[DiskUsage, ...] = ()
    images: tuple[Image, ...] = ()
    containers: tuple[Container, ...] = ()
    build_cache: tuple[BuildCacheRecord, ...] = ()
    services: tuple[Service, ...] = ()
    tasks: tuple[Task, ...] = ()
    volumes: tuple[Volume, ...] = ()
    networks: tuple[Network, ...] = ()
    secrets: tuple[SwarmObject, ...] = ()
    configs: tuple[SwarmObject, ...] = ()
    nodes: tuple[Node, ...] = ()
    files: tuple[FileFact, ...] = ()
    client_configs: tuple[ClientConfig, ...] = ()
    units: tuple[Unit, ...] = ()
    unit_files: tuple[UnitFile, ...] = ()
    systemd: str = ""
    image_last_use: dict[str, datetime] = field(default_factory=dict)
    scope: str = SCOPE_FULL
    gaps: tuple[FactGap, ...] = ()
    swarm: SwarmScope | None = None
    format_version: int = FACTS_FORMAT

    @property
    def not_gathered(self) -> tuple[str, ...]:
        """The kinds that were not gathered, by name."""
        return tuple(g.kind for g in self.gaps)

    def missing(self, *kinds: str) -> tuple[FactGap, ...]:
        """The gaps among ``kinds``: what a rule that needs them must not act without."""
        return tuple(g for g in self.gaps if g.kind in kinds)

    def client_config(self, path: str) -> ClientConfig | None:
        """The client config read at ``path``, or None when it was not asked for (a config asked for
        and absent has ``found`` false)."""
        return next((c for c in self.client_configs if c.path == path), None)

    def unit(self, name: str) -> Unit | None:
        """The unit as systemd reported it, or None when systemd was not asked about it."""
        return next((u for u in self.units if u.name == name), None)

    def unit_file(self, path: str) -> UnitFile | None:
        """What is at ``path`` in a unit directory, or None when it was not looked at."""
        return next((f for f in self.unit_files if f.path == path), None)

    def file(self, path: str) -> FileFact | None:
        """The file's fact, or None when it was not looked at (a missing file has ``exists``
        false)."""
        return next((f for f in self.files if f.path == path), None)

    def stack(self, name: str) -> Stack | None:
        """The named stack, found even when only abra's unlabelled secrets or its env file
        are left of it."""
        # A stack the host's own grouping finds is the same when asked for by name (a
        # known name adds nothing to the names already there), so only a name it does
        # not find, of which only unlabelled secrets may be left, is grouped again.
        by_name = self.derived((Facts.stack,), lambda: {s.name: s for s in self.stacks()})
        found = by_name.get(name)
        if found is None:
            found = next((s for s in self.stacks((name,)) if s.name == name), None)
        if found is None or not (any(found.objects().values()) or found.env_files):
            return None
        return found

    def disk(self, path: str) -> DiskUsage | None:
        """The usage gathered for ``path``, or None when it was not gathered."""
        return next((d for d in self.disks if d.path == path), None)

    def stacks(self, known: tuple[str, ...] = ()) -> tuple[Stack, ...]:
        """Group labelled objects, abra's external secrets (by name) and abra's env files
        (by what they say) into stacks; ``ccci.facts.stacks`` owns the rules.

        ``known`` adds stack names learnt elsewhere (a name asked for, or read from secrets
        by the run-app pattern), so a stack of which only unlabelled secrets are left is
        still found.
        """
        from ccci.facts.stacks import group

        known = tuple(known)
        return self.derived(
            (Facts.stacks, known),
            lambda: group(
                self.services,
                self.volumes,
                self.networks,
                self.secrets,
                self.configs,
                self.files,
                known,
            ),
        )

    def derived(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """``make()``, computed once per Facts instance and ``key``.

        One snapshot is asked the same question many times in a plan (its stacks, by the
        orphan rule, the stack gate and every stack change's fingerprint; which services
        are unsettled at ``now``, by every stack's verdict and every convergence gate):
        answering each time from scratch made planning a big host quadratic. The answers
        are kept beside the fields, in the instance's ``__dict__`` as
        ``functools.cached_property`` keeps its values, so equality, repr, JSON and
        ``dataclasses.replace`` see only the facts, and a replaced or re-read snapshot
        starts with none. Facts never change once made, so no answer goes stale. ``key``
        begins with the function that owns the decision, so two owners never share one.
        """
        memo: dict[Hashable, Any] = self.__dict__.setdefault("_derived", {})
        if key in memo:
            return cast(_T, memo[key])
        value = memo[key] = make()
        return value

    def to_json(self) -> str:
        """The snapshot ``ccci facts --output json`` writes and ``--facts`` reads back to plan
        offline."""
        return json.dumps(to_jsonable(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Facts:
        """Read a snapshot, also one from before ``gaps`` (its ``not_gathered`` kinds count as not
        asked for)."""
        if isinstance(data, dict) and "not_gathered" in data:
            # Snapshots before ``gaps`` listed bare kind names: a lean gather's skips.
            data = dict(data)
            old = data.pop("not_gathered") or []
            if not isinstance(old, list) or not all(isinstance(k, str) for k in old):
                raise ValueError("Facts.not_gathered: expected a list of kind names")
            data.setdefault("gaps", [{"kind": k, "cause": GapCause.NOT_ASKED.value} for k in old])
        return from_jsonable(cls, data)
