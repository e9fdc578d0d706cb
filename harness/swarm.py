"""Stack helpers and a between-tests reset for the private engine.

reset() returns the engine to "swarm + base image only" so tests don't see each
other's leftovers; keeping the busybox base image avoids re-importing it.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable

from harness.engine import Engine, EngineError
from harness.images import BASE_TAG

BUILTIN_NETWORKS = frozenset({"bridge", "host", "none", "ingress", "docker_gwbridge"})
STACK_LABEL = "com.docker.stack.namespace"


def _lines(engine: Engine, *args: str) -> list[str]:
    return [ln for ln in engine.docker(*args).stdout.splitlines() if ln.strip()]


def _wait(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            raise EngineError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def deploy_stack(
    engine: Engine,
    name: str,
    compose_yaml: str,
    wait: bool = True,
    timeout: float = 60,
    resolve_image: str = "never",
) -> None:
    """`docker stack deploy` from YAML text; optionally wait until replicas converge.

    ``resolve_image="always"`` deploys as a real swarm host does (and abra does): the client
    asks the registry for each image's digest and pins the service to ``ref@digest``, so the
    node pulls by digest and keeps the image untagged after teardown (moby#28908).
    """
    tmp = os.path.join(engine.state_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=tmp, suffix=".yml") as fh:
        fh.write(compose_yaml)
        fh.flush()
        # "never" by default: most tests have no registry to ask, and asking costs a timeout
        engine.docker("stack", "deploy", "--resolve-image", resolve_image, "-c", fh.name, name)
    if wait:
        wait_for_services(engine, stack=name, timeout=timeout)


def _replicas(engine: Engine, stack: str | None) -> list[str]:
    args = ["service", "ls", "--format", "{{.Replicas}}"]
    if stack:
        args += ["--filter", f"label={STACK_LABEL}={stack}"]
    return _lines(engine, *args)


def wait_for_services(engine: Engine, stack: str | None = None, timeout: float = 60) -> None:
    """Wait until every (stack's) service runs its desired replica count."""

    def converged() -> bool:
        # Replicas reads "1/1", or "1/1 (max 1 per node)"
        counts = [r.split()[0].split("/") for r in _replicas(engine, stack)]
        return all(running == desired for running, desired in counts)

    _wait(f"services of {stack or 'all stacks'} to converge", converged, timeout)


def remove_all_stacks(engine: Engine, timeout: float = 60) -> None:
    """Remove every stack, asking again while any is listed: engine 20.10 answers ``docker
    stack rm`` with an error while a shutting-down task still holds a stack's network (a CI
    run failed on it), and a second ask then removes what is left."""

    def gone() -> bool:
        stacks = _lines(engine, "stack", "ls", "--format", "{{.Name}}")
        if stacks:
            engine.docker("stack", "rm", *stacks, check=False)
        return not _lines(engine, "stack", "ls", "--format", "{{.Name}}")

    _wait("stacks to go", gone, timeout)


def remove_all_services(engine: Engine, timeout: float = 60) -> None:
    services = _lines(engine, "service", "ls", "-q")
    if services:
        engine.docker("service", "rm", *services, check=False)
    _wait("services to go", lambda: not _lines(engine, "service", "ls", "-q"), timeout)


def _remove_all(engine: Engine, kind: str, lister: Callable[[], list[str]], timeout: float) -> None:
    """Remove until the listing is empty: swarm tears things down asynchronously,
    so rm can fail ("network in use") or the object can linger after a removal."""

    def gone() -> bool:
        for ident in lister():
            engine.docker(kind, "rm", ident, check=False)
        return not lister()

    _wait(f"{kind}s to go", gone, timeout)


# The systemd test host outlives resets: it takes seconds to boot and other tests use it.
SYSTEMD_IMAGE = "ccci-test/systemd:bookworm"
SYSTEMD_HOST_FILTER = "label=ccci.harness=systemd-host"


def reset(
    engine: Engine, keep: tuple[str, ...] = (BASE_TAG, SYSTEMD_IMAGE), timeout: float = 90
) -> None:
    """Remove services, stacks, containers, custom networks, volumes, secrets,
    configs and every image except `keep` (by tag) from OUR engine. The systemd
    test host container (labelled by harness.systemd) is kept."""
    remove_all_stacks(engine, timeout)
    remove_all_services(engine, timeout)

    # rm -f instead of waiting for task shutdown: busybox `sleep` as PID 1 ignores
    # SIGTERM, so a graceful stop would cost the full 10 s grace period.
    def others() -> list[str]:
        # Only a running host is kept: a stopped one (the engine was killed) is just a
        # stopped container, and would otherwise be pruned by the tests' own policies.
        hosts = set(_lines(engine, "ps", "-q", "--filter", SYSTEMD_HOST_FILTER))
        return [i for i in _lines(engine, "ps", "-aq") if i not in hosts]

    def containers_gone() -> bool:
        ids = others()
        if ids:
            engine.docker("rm", "-f", "-v", *ids, check=False)
        return not others()

    _wait("containers to go", containers_gone, timeout)

    def networks() -> list[str]:
        rows = [
            ln.split() for ln in _lines(engine, "network", "ls", "--format", "{{.ID}} {{.Name}}")
        ]
        return [ident for ident, name in rows if name not in BUILTIN_NETWORKS]

    _remove_all(engine, "network", networks, timeout)
    for kind in ("volume", "secret", "config"):
        _remove_all(engine, kind, functools.partial(_lines, engine, kind, "ls", "-q"), timeout)

    kept = set()
    for ref in keep:
        proc = engine.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        if proc.returncode == 0:
            kept.add(proc.stdout.strip())

    def images() -> list[str]:
        return sorted(set(_lines(engine, "image", "ls", "-a", "-q", "--no-trunc")) - kept)

    def images_gone() -> bool:
        # repeated passes: a parent image can only go once its children have
        if left := images():
            engine.docker("rmi", "-f", *left, check=False)
        return not images()

    _wait("images to go", images_gone, timeout)
    # Extra tags pointing at a kept image would otherwise survive the reset.
    keep_refs = set(keep)
    for line in _lines(engine, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"):
        if line not in keep_refs and "<none>" not in line:
            engine.docker("rmi", line, check=False)
