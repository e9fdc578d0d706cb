"""Gather Docker and Swarm facts: one API call each, plus a pure ``parse_*`` for its answer.

The parse functions take the engine's raw JSON and return typed facts, so they are tested
from recorded answers; ``gather`` runs the calls concurrently through a connector.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccci.facts.model import (
    SCOPE_FULL,
    STACK_LABEL,
    SWARM_KINDS,
    BuildCacheRecord,
    Container,
    Daemon,
    DiskUsage,
    FactGap,
    Facts,
    GapCause,
    Image,
    Network,
    Service,
    SwarmObject,
    Task,
    Volume,
)
from ccci.facts.swarm import parse_node, placement_fields
from ccci.quantities import parse_time

if TYPE_CHECKING:
    from ccci.connectors.base import Connector

# Docker's zero time, reported for containers that never finished.
_ZERO_TIME_PREFIX = "0001-01-01"
_INSPECT_STATES = frozenset({"exited", "dead"})
_WORKERS = 8


def _epoch(seconds: int | float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _time(text: str | None) -> datetime | None:
    if not text or text.startswith(_ZERO_TIME_PREFIX):
        return None
    return parse_time(text)


def _real(values: Iterable[str] | None) -> tuple[str, ...]:
    """Drop the ``<none>:<none>`` placeholders older engines put in RepoTags/RepoDigests."""
    return tuple(sorted(v for v in values or () if not v.startswith("<none>")))


def parse_image(raw: dict[str, Any]) -> Image:
    """One ``/images/json`` entry; the ``<none>`` placeholders are dropped, so ``tags`` and
    ``digests`` say what really names the image (and so its kind)."""
    return Image(
        id=raw["Id"],
        tags=_real(raw.get("RepoTags")),
        digests=_real(raw.get("RepoDigests")),
        created=_epoch(raw["Created"]),
        size=int(raw.get("Size") or 0),
        parent=raw.get("ParentId") or "",
        labels=dict(raw.get("Labels") or {}),
    )


def parse_container(raw: dict[str, Any], finished: datetime | None = None) -> Container:
    """One ``/containers/json`` entry; the list has no exit time, so ``finished`` comes from an
    inspect, made only for stopped containers."""
    names = raw.get("Names") or [raw["Id"][:12]]
    return Container(
        id=raw["Id"],
        name=names[0].lstrip("/"),
        image=raw.get("Image") or "",
        image_id=raw.get("ImageID") or "",
        state=raw.get("State") or "",
        created=_epoch(raw["Created"]),
        finished=finished,
        labels=dict(raw.get("Labels") or {}),
    )


def parse_finished(inspect: dict[str, Any]) -> datetime | None:
    """When an inspected container exited, or None when it never ran (Docker's zero time)."""
    return _time((inspect.get("State") or {}).get("FinishedAt"))


def parse_build_cache(raw: dict[str, Any]) -> BuildCacheRecord:
    """One build cache record of ``/system/df``; a record with no creation time dates from the
    epoch."""
    created = _time(raw.get("CreatedAt"))
    return BuildCacheRecord(
        id=raw["ID"],
        type=raw.get("Type") or "",
        description=raw.get("Description") or "",
        in_use=bool(raw.get("InUse")),
        shared=bool(raw.get("Shared")),
        size=int(raw.get("Size") or 0),
        created=created or _epoch(0),
        last_used=_time(raw.get("LastUsedAt")),
    )


def parse_build_cache_records(raws: Iterable[dict[str, Any]]) -> tuple[BuildCacheRecord, ...]:
    """Every record, by id: BuildKit (and ``/system/df``, which copies it) answers in a map's
    random order, and a plan's changes should not move about from one run to the next."""
    return tuple(sorted((parse_build_cache(r) for r in raws), key=lambda r: r.id))


def parse_service(raw: dict[str, Any]) -> Service:
    """One ``/services`` entry: the spec times the convergence clock starts from, the update status
    and where its tasks may run; ``replicas`` is None unless the service is replicated."""
    spec = raw.get("Spec") or {}
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    replicated = (spec.get("Mode") or {}).get("Replicated")
    update = raw.get("UpdateStatus") or {}
    return Service(
        id=raw["ID"],
        name=spec.get("Name") or raw["ID"],
        image=container_spec.get("Image") or "",
        labels=dict(spec.get("Labels") or {}),
        created=parse_time(raw["CreatedAt"]),
        updated=parse_time(raw.get("UpdatedAt") or raw["CreatedAt"]),
        update_state=update.get("State") or "",
        replicas=replicated.get("Replicas") if replicated else None,
        update_started=_time(update.get("StartedAt")),
        update_message=update.get("Message") or "",
        version=int((raw.get("Version") or {}).get("Index") or 0),
        **placement_fields(spec),
    )


def parse_task(raw: dict[str, Any]) -> Task:
    """One ``/tasks`` entry: the states, errors and exit code that tell whether its service has
    converged."""
    status = raw.get("Status") or {}
    container_spec = ((raw.get("Spec") or {}).get("ContainerSpec")) or {}
    container = status.get("ContainerStatus") or {}
    # A task that never had a container reports ExitCode 0 too: that is not an exit.
    exit_code = container.get("ExitCode") if container.get("ContainerID") else None
    return Task(
        id=raw["ID"],
        service_id=raw.get("ServiceID") or "",
        state=status.get("State") or "",
        desired_state=raw.get("DesiredState") or "",
        container_id=container.get("ContainerID") or "",
        image=container_spec.get("Image") or "",
        error=status.get("Err") or "",
        created=_time(raw.get("CreatedAt")),
        changed=_time(status.get("Timestamp")),
        message=status.get("Message") or "",
        exit_code=exit_code if isinstance(exit_code, int) else None,
        node_id=raw.get("NodeID") or "",
    )


def parse_volume(raw: dict[str, Any]) -> Volume:
    """One ``/volumes`` entry; its stack label is what ties a named volume to a stack, which
    ``docker stack rm`` leaves behind."""
    return Volume(
        name=raw["Name"],
        driver=raw.get("Driver") or "",
        labels=dict(raw.get("Labels") or {}),
        created=_time(raw.get("CreatedAt")),
    )


def parse_network(raw: dict[str, Any]) -> Network:
    """One ``/networks`` entry; the scope tells a stack's swarm-wide overlay from a node's own
    network."""
    return Network(
        id=raw["Id"],
        name=raw["Name"],
        driver=raw.get("Driver") or "",
        scope=raw.get("Scope") or "",
        labels=dict(raw.get("Labels") or {}),
        created=_time(raw.get("Created")),
    )


def parse_swarm_object(raw: dict[str, Any]) -> SwarmObject:
    """One ``/secrets`` or ``/configs`` entry: name, labels and creation time, never the data."""
    spec = raw.get("Spec") or {}
    return SwarmObject(
        id=raw["ID"],
        name=spec.get("Name") or raw["ID"],
        labels=dict(spec.get("Labels") or {}),
        created=parse_time(raw["CreatedAt"]),
    )


def parse_daemon(info: dict[str, Any], version: dict[str, Any]) -> Daemon:
    """``/info`` and ``/version`` as one fact: the version endpoint's numbers win, and the swarm
    fields say whether this node is a manager and of which cluster."""
    swarm = info.get("Swarm") or {}
    return Daemon(
        name=info.get("Name") or "",
        server_version=version.get("Version") or info.get("ServerVersion") or "",
        api_version=version.get("ApiVersion") or "",
        data_root=info.get("DockerRootDir") or "",
        storage_driver=info.get("Driver") or "",
        swarm_state=swarm.get("LocalNodeState") or "inactive",
        swarm_manager=bool(swarm.get("ControlAvailable")),
        node_id=swarm.get("NodeID") or "",
        cluster_id=(swarm.get("Cluster") or {}).get("ID") or "",
        managers=tuple(
            sorted(m.get("NodeID") or "" for m in swarm.get("RemoteManagers") or [] if m)
        ),
    )


_DF_BUSY = "a disk usage operation is already running"
_DF_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 3.0, 4.0)


def _build_cache(conn: Connector) -> list[dict[str, Any]]:
    """BuildKit's records, from BuildKit itself when the engine lets it be asked, else from
    ``/system/df``."""
    return list(_build_cache_answer(conn).get("BuildCache") or [])


def _build_cache_answer(conn: Connector) -> dict[str, Any]:
    """The build cache as a disk-usage answer: ``{"BuildCache": …}`` from BuildKit's own call,
    which before API 1.42 costs a fraction of ``/system/df`` (that sizes every image,
    container and volume too); else ``/system/df``'s whole answer, whose images' shared sizes
    a plan that evicts may take too (see Prefetch.image_usage)."""
    records = conn.build_cache_records()
    if records is not None:
        return {"BuildCache": records}
    return _build_cache_usage(conn)


def _build_cache_usage(conn: Connector) -> dict[str, Any]:
    """``/system/df`` asked for the build cache.

    API 1.42 can limit the call to the build cache; older engines size everything (so the
    answer has every image's shared size too), and answer a second concurrent caller
    (``docker system df``, another ccci) with a 500 "already running", which is retried for
    a while rather than failing the whole run.
    """
    return _disk_usage(conn, {"type": "build-cache"})


# One disk-usage call at a time per engine from this process: with --forks, several host
# names may reach the same engine at once, and the engine refuses a second concurrent call.
# Our own threads wait for each other here; only other callers are retried below.
_DF_LOCKS: dict[str, threading.Lock] = {}
_DF_LOCKS_GUARD = threading.Lock()


def _engine_key(conn: Connector) -> str:
    target = getattr(conn, "target", None)
    where = getattr(target, "address", "") if target is not None else ""
    return f"{where}|{getattr(conn, 'docker_host', '')}"


def _disk_usage(conn: Connector, params: dict[str, str]) -> dict[str, Any]:
    """``/system/df``, retried while another caller's disk-usage operation runs."""
    with _DF_LOCKS_GUARD:
        lock = _DF_LOCKS.setdefault(_engine_key(conn), threading.Lock())
    with lock:
        for pause in (*_DF_RETRY_SECONDS, None):
            try:
                # Its container list is most of the answer, and nothing reads it.
                return dict(conn.get_json("/system/df", params, leave_out=("Containers",)))
            except Exception as exc:
                if pause is None or _DF_BUSY not in str(exc):
                    raise
                time.sleep(pause)
    raise AssertionError("unreachable")


def _containers(conn: Connector, created_before: datetime | None) -> tuple[Container, ...]:
    """List all containers, then inspect the exited ones for their finish time.

    With ``created_before``, only containers created before it are inspected: one created
    later cannot have finished before it either, so no age rule needs its finish time.
    """
    raws = _list_containers(conn.api)
    stopped = [
        r["Id"]
        for r in raws
        if r.get("State") in _INSPECT_STATES
        and (created_before is None or _epoch(r["Created"]) < created_before)
    ]

    def finished(container_id: str) -> tuple[str, datetime | None]:
        try:
            return container_id, parse_finished(conn.api.inspect_container(container_id))
        except Exception:  # removed between list and inspect: no finish time to report
            return container_id, None

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        times = dict(pool.map(finished, stopped))
    return tuple(parse_container(r, times.get(r["Id"])) for r in raws)


def _stack_containers(conn: Connector) -> tuple[Container, ...]:
    """Only containers that belong to a stack, uninspected: what the janitor needs."""
    return tuple(parse_container(r) for r in _list_stack_containers(conn.api))


# The engine's reads, one function each, so that gather and opening_reads make the very
# same calls: an answer started early serves only the call it was started as.
def _list_images(api: Any) -> Any:
    # all=True: untagged parents of other images are facts too (and are never removed
    # while a child exists).
    return api.images(all=True)


def _list_containers(api: Any) -> Any:
    return api.containers(all=True)


def _list_stack_containers(api: Any) -> Any:
    return api.containers(all=True, filters={"label": STACK_LABEL})


def _list_volumes(api: Any) -> Any:
    return api.volumes()


def _list_networks(api: Any) -> Any:
    return api.networks()


def _list_services(api: Any) -> Any:
    return api.services(status=True)


_DAEMON_READS: dict[str, Callable[[Any], Any]] = {
    "info": lambda api: api.info(),
    "version": lambda api: api.version(),
}
_SWARM_READS: dict[str, Callable[[Any], Any]] = {
    "services": _list_services,
    "tasks": lambda api: api.tasks(),
    "secrets": lambda api: api.secrets(),
    "configs": lambda api: api.configs(),
    "nodes": lambda api: api.nodes(),
}


def opening_reads(scope: str) -> tuple[Callable[[Any], Any], ...]:
    """The engine reads :func:`gather` of ``scope`` makes whatever the policies say: a run
    starts them while its policies load (ccci.run.opening). The swarm's are among them
    although only a manager answers them: a worker's refusal is an answer nobody asks for."""
    listed = (_list_images, _list_containers) if scope == SCOPE_FULL else (_list_stack_containers,)
    return (
        *_DAEMON_READS.values(),
        _list_volumes,
        _list_networks,
        *listed,
        *_SWARM_READS.values(),
    )


def swarm_gap(daemon: Daemon) -> FactGap | None:
    """Why this engine cannot list the swarm's objects, or None when it can. Only a manager
    can: a worker, a locked manager or an engine outside any swarm would answer with empty
    lists, which must never read as "no services"."""
    state = daemon.swarm_state
    if state == "active" and daemon.swarm_manager:
        return None
    if state == "active":
        return FactGap("swarm", GapCause.NOT_MANAGER, "a worker node cannot list them")
    if state == "locked":
        return FactGap("swarm", GapCause.SWARM_LOCKED, "unlock it with docker swarm unlock")
    if state == "inactive":
        return FactGap("swarm", GapCause.SWARM_INACTIVE, "this engine is in no swarm")
    return FactGap("swarm", GapCause.SWARM_UNAVAILABLE, f"swarm state {state or 'unknown'}")


def failure_gap(kind: str, exc: BaseException) -> FactGap:
    """A call that failed: the kind is missing, with the engine's own words on one line."""
    name = type(exc).__name__.lower()
    timed_out = isinstance(exc, TimeoutError) or "timeout" in name or "timed out" in str(exc)
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return FactGap(kind, GapCause.TIMEOUT if timed_out else GapCause.API_ERROR, detail)


def _collect(
    pool: ThreadPoolExecutor, calls: dict[str, Callable[[], Any]], gaps: list[FactGap]
) -> dict[str, Any]:
    """Run calls concurrently; one that fails leaves its kind empty and recorded in ``gaps``,
    so the rules that need it can refuse to act while the others go on."""
    futures = {name: pool.submit(call) for name, call in calls.items()}
    found: dict[str, Any] = {}
    for name, future in futures.items():
        try:
            found[name] = future.result()
        except Exception as exc:  # any failure of one list: that kind is not known
            gaps.append(failure_gap(name, exc))
            found[name] = ()
    return found


_STACK_SCOPE_GAPS = (
    FactGap("images", GapCause.NOT_ASKED, "the janitor gathers only stacks"),
    FactGap("containers", GapCause.NOT_ASKED, "only stack containers were listed"),
    FactGap("build_cache", GapCause.NOT_ASKED, "the janitor gathers only stacks"),
)


def gather(
    conn: Connector,
    disk_paths: Iterable[str] = (),
    now: datetime | None = None,
    scope: str = SCOPE_FULL,
    build_cache: bool = True,
    inspect_created_before: datetime | None = None,
) -> Facts:
    """Gather one host's facts; independent API calls run concurrently.

    ``scope="stacks"`` gathers only what stacks are made of (swarm objects, volumes,
    networks, stack containers): the janitor runs before every deploy and must be cheap.
    ``build_cache=False`` skips the build cache's read (BuildKit's own call, else the engine's
    disk-usage call, the slowest of all before API 1.42). Whatever was not gathered (skipped,
    refused by a worker node or a locked swarm, failed, timed out) is recorded in
    ``Facts.gaps``.
    """
    api = conn.api
    full = scope == SCOPE_FULL
    gaps: list[FactGap] = [] if full else list(_STACK_SCOPE_GAPS)
    calls: dict[str, Callable[[], Any]] = {
        "volumes": lambda: (_list_volumes(api) or {}).get("Volumes") or [],
        "networks": lambda: _list_networks(api),
    }
    if full:
        calls["images"] = lambda: _list_images(api)
        calls["containers"] = lambda: _containers(conn, inspect_created_before)
        if build_cache:
            calls["build_cache"] = lambda: _build_cache(conn)
        else:
            gaps.append(FactGap("build_cache", GapCause.NOT_ASKED, "not needed by an open gate"))
    else:
        calls["containers"] = lambda: _stack_containers(conn)
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        # Without info there is nothing to plan against: that failure is the run's error.
        daemon_calls = {kind: pool.submit(read, api) for kind, read in _DAEMON_READS.items()}
        paths = list(disk_paths)

        def measure_disks() -> tuple[DiskUsage, ...]:
            info, version = daemon_calls["info"].result(), daemon_calls["version"].result()
            return _disks(conn, [parse_daemon(info, version).data_root, *paths])

        # Measured as soon as info names the data root, beside the lists: over SSH each
        # disk is a remote command, which after the lists was a wait of its own.
        disks = pool.submit(measure_disks)
        raw = _collect(pool, calls, gaps)
        daemon = parse_daemon(daemon_calls["info"].result(), daemon_calls["version"].result())
        blocked = swarm_gap(daemon)
        if blocked is None:
            swarm_calls: dict[str, Callable[[], Any]] = {
                kind: functools.partial(read, api) for kind, read in _SWARM_READS.items()
            }
            raw.update(_collect(pool, swarm_calls, gaps))
        else:
            raw.update({kind: () for kind in SWARM_KINDS})
            gaps += [replace(blocked, kind=kind) for kind in SWARM_KINDS]
    return Facts(
        host=conn.host,
        gathered_at=now or datetime.now(UTC),
        daemon=daemon,
        disks=disks.result(),
        images=tuple(sorted((parse_image(r) for r in raw.get("images", ())), key=lambda i: i.id)),
        containers=tuple(sorted(raw["containers"], key=lambda c: c.id)),
        build_cache=parse_build_cache_records(raw.get("build_cache", ())),
        services=tuple(sorted((parse_service(r) for r in raw["services"]), key=lambda s: s.name)),
        tasks=tuple(parse_task(r) for r in raw["tasks"]),
        volumes=tuple(parse_volume(r) for r in raw["volumes"]),
        networks=tuple(parse_network(r) for r in raw["networks"]),
        secrets=tuple(parse_swarm_object(r) for r in raw["secrets"]),
        configs=tuple(parse_swarm_object(r) for r in raw["configs"]),
        nodes=tuple(sorted((parse_node(r) for r in raw["nodes"]), key=lambda n: n.id)),
        scope=scope,
        gaps=tuple(sorted(gaps, key=lambda g: g.kind)),
    )


def add_finish_times(conn: Connector, facts: Facts) -> Facts:
    """Inspect the exited containers a lean gather left uninspected: the last-use record
    wants when each finished. Only an apply records last use, so plans stay cheap."""
    missing = [c.id for c in facts.containers if c.state in _INSPECT_STATES and not c.finished]
    if not missing:
        return facts

    def finished(container_id: str) -> tuple[str, datetime | None]:
        try:
            return container_id, parse_finished(conn.api.inspect_container(container_id))
        except Exception:  # removed meanwhile
            return container_id, None

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        times = dict(pool.map(finished, missing))
    return replace(
        facts,
        containers=tuple(
            replace(c, finished=times[c.id]) if times.get(c.id) else c for c in facts.containers
        ),
    )


class Prefetch:
    """The build cache read started before it is known to be needed, on a daemon thread.

    Made when the prune's disk gates are open before the other facts are in, so it runs
    beside them and is ready when asked: BuildKit's own answer, or ``/system/df``'s where
    BuildKit cannot be asked. ``sizes_too`` (an eviction's disk gate is open too) asks
    ``/system/df`` itself: before API 1.42 it sizes everything whatever it is asked, so its
    one answer serves the images' sizes as well, read beside the other facts rather than
    after them. One nobody asks for (the run ended on an error) is dropped, and the process
    does not wait for it at exit.
    """

    def __init__(self, conn: Connector, *, sizes_too: bool = False) -> None:
        self._usage: dict[str, Any] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(conn, sizes_too), daemon=True)
        self._thread.start()

    def _run(self, conn: Connector, sizes_too: bool) -> None:
        try:
            self._usage = _build_cache_usage(conn) if sizes_too else _build_cache_answer(conn)
        except BaseException as exc:  # handed to the caller that asks, as if read then
            self._error = exc

    def records(self) -> list[dict[str, Any]]:
        """The early read's answer, waiting for it if need be; its error is raised here, as if the
        read had been made now."""
        return list(self._answer().get("BuildCache") or [])

    def image_usage(self) -> list[dict[str, Any]] | None:
        """The images of the same answer when it was ``/system/df``'s and the engine sized them
        too (before API 1.42 it sizes everything whatever was asked), else None (BuildKit's
        own answer, or a newer engine's): then they need a call of their own."""
        images = self._answer().get("Images")
        return list(images) if images is not None else None

    def _answer(self) -> dict[str, Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._usage


def add_build_cache(conn: Connector, facts: Facts, early: Prefetch | None = None) -> Facts:
    """Gather the build cache into facts that were gathered without it (``early``: from
    a read already started)."""
    raws = early.records() if early is not None else _build_cache(conn)
    records = parse_build_cache_records(raws)
    left = tuple(g for g in facts.gaps if g.kind != "build_cache")
    return replace(facts, build_cache=records, gaps=left)


def add_image_sizes(conn: Connector, facts: Facts, early: Prefetch | None = None) -> Facts:
    """Each image's unique size (what removing it frees: its size less the layers it shares),
    from the engine's disk-usage call. Slow before API 1.42: asked for only when needed, and
    taken from the build cache's early read when that answer has them (one call, not two)."""
    rows = early.image_usage() if early is not None else None
    if rows is None:
        rows = list(_disk_usage(conn, {"type": "image"}).get("Images") or [])
    unique = {
        r["Id"]: max(int(r.get("Size") or 0) - max(int(r.get("SharedSize") or 0), 0), 0)
        for r in rows
    }
    return replace(
        facts, images=tuple(replace(i, unique_size=unique.get(i.id)) for i in facts.images)
    )


def _disks(conn: Connector, paths: list[str]) -> tuple[DiskUsage, ...]:
    """statvfs of each path; a path that cannot be measured is left out, so a gate on it
    stays closed and says the usage is unknown."""
    found = []
    for path in dict.fromkeys(p for p in paths if p):
        try:
            found.append(conn.disk_usage(path))
        except OSError:
            continue
    return tuple(found)


def refresh_swarm(conn: Connector, facts: Facts) -> Facts:
    """The same facts with services and tasks read again: cheap enough before every change,
    and exactly what tells whether a deploy started since the last look."""
    # A member of a shared swarm view reads them through its cluster host's connector.
    shared = facts.swarm is not None and not facts.swarm.cluster_work
    if not shared and swarm_gap(facts.daemon) is not None:
        return facts  # still not a manager's view: the gaps stay, and so do the refusals
    api = conn.api
    return replace(
        facts,
        services=tuple(
            sorted((parse_service(r) for r in _list_services(api)), key=lambda s: s.name)
        ),
        tasks=tuple(parse_task(r) for r in api.tasks()),
        gaps=tuple(g for g in facts.gaps if g.kind not in ("services", "tasks")),
    )


def image_from_inspect(raw: dict[str, Any]) -> Image:
    """An Image from ``/images/{id}/json`` (Created there is a timestamp, not epoch)."""
    return Image(
        id=raw["Id"],
        tags=_real(raw.get("RepoTags")),
        digests=_real(raw.get("RepoDigests")),
        created=parse_time(raw["Created"]),
        size=int(raw.get("Size") or 0),
        parent=raw.get("Parent") or "",
    )
