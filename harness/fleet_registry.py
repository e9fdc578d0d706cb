"""The fleet's image registry: what the test hosts pull from, as a real farm's nodes do.

A real swarm host deploys with ``docker stack deploy``, which pins every service to
``<image>@<digest>``; each node then pulls by digest from a registry and keeps the image
untagged after teardown (moby#28908). The loopback registry (harness/registry.py) is out of
the fleet's reach: 127.0.0.1 inside a node's namespace is the node itself. So the fleet has
a registry of its own, Debian's docker-registry in a fourth network namespace
(``ccci-fleet-reg``) on the fleet's bridge, at 10.213.77.10:5000: an address that exists
only inside that namespace, reached only from the nodes and the root namespace.

Every fleet dockerd trusts it over plain HTTP (``insecure-registries`` in its daemon.json,
see harness/fleet.py). Its store (under ``<fleet dir>/registry``) is kept across stops, as
the data-roots are; its access log counts the pulls (``Registry.manifest_gets``).

Use (the swarm-scope tests): ``ref = push_test_image(fleet, "recipe/app:1")`` builds a
unique image on the manager, pushes it and leaves it on no node; ``deploy(fleet, name,
compose)`` deploys a stack on the manager with ``--resolve-image always``, so the service
is pinned by digest and its tasks pull on whichever node they land. Stdlib only.
"""

from __future__ import annotations

import functools
import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from harness import netns, registry
from harness.engine import Engine
from harness.registry import Registry

if TYPE_CHECKING:  # harness.fleet imports this module; the helpers only take its Fleet
    from harness.fleet import Fleet

NETNS = "ccci-fleet-reg"
ADDRESS = "10.213.77.10"  # in the fleet's /24, below the nodes' .11, .12, .13
PORT = 5000
ADDR = f"{ADDRESS}:{PORT}"
MEMBER = netns.Member(NETNS, "cccifleetr", ADDRESS)


def site(state_dir: str) -> registry.Site:
    """The fleet registry's state dir, address, and its start inside its own namespace."""
    paths = registry.RegistryPaths(os.path.join(state_dir, "registry"))
    return registry.Site(paths, ADDR, functools.partial(netns.inside, MEMBER, NETNS, "true"))


def daemon_settings() -> dict[str, object]:
    """What each fleet dockerd's daemon.json says: trust the fleet registry over HTTP."""
    return {"insecure-registries": [ADDR]}


def trusted_by(info: Any) -> bool:
    """Whether a dockerd's /info says it treats the fleet registry as insecure (plain
    HTTP): what its daemon.json asks, as the running daemon has it, not as the file says."""
    config = info.get("RegistryConfig") if isinstance(info, dict) else None
    indexes = config.get("IndexConfigs") if isinstance(config, dict) else None
    entry = indexes.get(ADDR) if isinstance(indexes, dict) else None
    return isinstance(entry, dict) and entry.get("Secure") is False


def ensure(state_dir: str, timeout: float = 30.0) -> Registry:
    """The running fleet registry (its namespace must exist: harness.fleet makes it)."""
    return registry.start(site(state_dir), timeout)


def running(state_dir: str) -> Registry | None:
    """The fleet registry when it runs and serves, else None (the warm check)."""
    return registry.running(site(state_dir))


def stop(state_dir: str, purge: bool = False) -> bool:
    """Stop the fleet registry (its process only); ``purge`` drops its store too."""
    return registry.stop(site(state_dir), purge)


# ---- images and stacks -----------------------------------------------------------------


def _repository(repo_tag: str) -> str:
    """``recipe/app:1`` → ``recipe/app`` (a port in a registry host is not a tag)."""
    head, _, last = repo_tag.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def push(fleet: Fleet, local_ref: str, repo_tag: str, engine: Engine | None = None) -> str:
    """Push the image ``local_ref`` of a fleet node's engine (the manager's by default) to
    the fleet registry as ``repo_tag``, and return the digest-pinned reference a stack is
    deployed by: ``10.213.77.10:5000/<repo>@sha256:…``. The pusher keeps ``local_ref``;
    the registry's name is taken off it again, so the pusher too gets that name only by
    pulling."""
    pusher = engine or fleet.manager.engine
    remote = fleet.registry.ref(repo_tag)
    digest = registry.push_image(pusher, local_ref, remote, fleet.registry.addr)
    if remote != local_ref:
        pusher.docker("rmi", remote)
    return f"{fleet.registry.ref(_repository(repo_tag))}@{digest}"


def push_test_image(
    fleet: Fleet,
    repo_tag: str,
    created: datetime | None = None,
    layer_bytes: int = 0,
    marker: str = "",
) -> str:
    """Build a test image of its own (harness.images.load_image: the busybox base and a
    unique top layer) on the manager, push it as ``repo_tag`` and leave it on no node;
    returns its digest-pinned reference (see push()). The same ``marker`` and ``created``
    give the same digest again."""
    from harness.images import load_image

    boss = fleet.manager.engine
    scratch = f"ccci-fleet-push/{uuid.uuid4().hex[:12]}:1"
    when = created or datetime(2026, 1, 1, tzinfo=UTC)
    load_image(boss, scratch, when, layer_bytes=layer_bytes, marker=marker or uuid.uuid4().hex)
    try:
        return push(fleet, scratch, repo_tag)
    finally:
        boss.docker("rmi", scratch, check=False)


def deploy(
    fleet: Fleet, name: str, compose_yaml: str, wait: bool = True, timeout: float = 90
) -> None:
    """``docker stack deploy --resolve-image always`` on the fleet manager, as abra deploys
    on a real host: the manager asks the fleet registry for each image's digest and pins
    the service to ``<image>@<digest>``, so every node pulls by digest. ``wait`` waits
    until every service of the stack runs its replicas."""
    from harness import swarm

    swarm.deploy_stack(
        fleet.manager.engine, name, compose_yaml, wait=wait, timeout=timeout, resolve_image="always"
    )
