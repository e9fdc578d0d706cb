"""Deploy a recipe the way abra does, on the private engine, without abra.

What abra leaves on a host, step by step, is what ccci's janitor has to find again:

1. ``abra app new <recipe> --domain D --server S`` copies the recipe's ``.env.sample`` to
   ``$ABRA_DIR/servers/S/D.env`` with ``DOMAIN`` (and ``TYPE``) set.
2. ``abra app secret generate`` creates each external secret of the compose file as
   ``<stack>_<secret>_<version>`` (the version from ``SECRET_<SECRET>_VERSION``, default
   ``v1``), unlabelled.
3. ``abra app deploy`` runs ``docker stack deploy`` of ``COMPOSE_FILE`` with the env file's
   values, ``STACK_NAME`` and ``DOMAIN`` in the environment the compose files are
   interpolated with: services, networks, configs and volumes are created, labelled with
   the stack.
4. ``abra app undeploy`` is ``docker stack rm`` (services first, then networks and configs;
   external secrets and volumes stay); ``abra app remove`` removes those and the env file.

The stack name is abra's: the domain with dots turned into underscores, cut to 45 bytes
(``STACK_NAME`` in the env file wins). This module implements it on its own, so a test
compares ccci's reading against an independent one. Images are the harness's local busybox
tagged under every name the compose files use: nothing is pulled.
"""

from __future__ import annotations

import os
import secrets as randomness
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.engine import Engine, EngineError, docker_cli
from harness.images import BASE_TAG, ensure_busybox_image
from harness.swarm import STACK_LABEL, wait_for_services

RECIPES = Path(__file__).resolve().parents[1] / "tests" / "data" / "recipes"
MAX_STACK_NAME = 45  # abra's own cut, so that Docker's derived names stay under 63/64
CI_OVERLAY = "compose.ccci.yml"


def stack_name(domain: str) -> str:
    """abra's stack name for an app: dots to underscores, at most 45 bytes."""
    return domain.replace(".", "_").encode()[:MAX_STACK_NAME].decode(errors="ignore")


def read_env(path: Path) -> dict[str, str]:
    """An env file as abra's reader takes it (``KEY=value``, quotes and `` #`` comments)."""
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if value[:1] in ("'", '"'):
            end = value.find(value[0], 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split(" #", 1)[0].strip()
        found[key.strip()] = value
    return found


@dataclass(frozen=True)
class Recipe:
    """A recipe folder under tests/data/recipes (or any folder shaped like one)."""

    name: str
    path: Path

    @classmethod
    def named(cls, name: str) -> Recipe:
        return cls(name, RECIPES / name)

    def compose(self, files: tuple[str, ...] = ("compose.yml",)) -> dict[str, Any]:
        """The compose files merged the way this harness needs them: services, secrets,
        configs and volumes by name (later files add to earlier ones)."""
        merged: dict[str, Any] = {}
        for name in files:
            data = yaml.safe_load((self.path / name).read_text(encoding="utf-8")) or {}
            for section in ("services", "secrets", "configs", "volumes", "networks"):
                merged.setdefault(section, {}).update(data.get(section) or {})
        return merged

    def secret_versions(self, env: dict[str, str]) -> dict[str, str]:
        """Each external secret's version, as abra reads it from the env file."""
        secrets = self.compose().get("secrets", {})
        return {
            name: env.get(f"SECRET_{name.upper()}_VERSION", "v1")
            for name, spec in secrets.items()
            if (spec or {}).get("external")
        }

    def images(self) -> set[str]:
        return {s["image"] for s in self.compose().get("services", {}).values() if "image" in s}


@dataclass
class AbraApp:
    """One app abra made on a server: its env file, and the stack it deploys as (read when
    the app was made: the env file may be gone by the time a test asks)."""

    abra_dir: Path
    server: str
    domain: str
    recipe: Recipe
    stack: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env_file(self) -> Path:
        return self.abra_dir / "servers" / self.server / f"{self.domain}.env"

    def env(self) -> dict[str, str]:
        return read_env(self.env_file)

    def secret_names(self) -> list[str]:
        versions = self.recipe.secret_versions(self.env())
        return sorted(f"{self.stack}_{name}_{version}" for name, version in versions.items())


def app_new(
    abra_dir: Path,
    recipe: Recipe,
    domain: str,
    server: str = "default",
    stack: str = "",
    set_env: dict[str, str] | None = None,
) -> AbraApp:
    """``abra app new``: the recipe's ``.env.sample`` as the app's env file, ``TYPE`` and
    ``DOMAIN`` filled in (and ``STACK_NAME`` when given, as an operator may set it)."""
    app = AbraApp(abra_dir, server, domain, recipe, stack or stack_name(domain))
    app.env_file.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    wanted = {"TYPE": recipe.name, "DOMAIN": domain, **(set_env or {})}
    if stack:
        wanted["STACK_NAME"] = stack
    for line in (recipe.path / ".env.sample").read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if key in wanted:
            line = f"{key}={wanted.pop(key)}"
        lines.append(line)
    lines += [f"{k}={v}" for k, v in wanted.items()]
    app.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return app


def secret_generate(engine: Engine, app: AbraApp) -> list[str]:
    """``abra app secret generate --all``: every external secret, created unlabelled."""
    names = app.secret_names()
    for name in names:
        engine.docker("secret", "create", name, "-", input=randomness.token_urlsafe(24))
    return names


def ensure_images(engine: Engine, recipe: Recipe) -> None:
    """Every image the recipe names, as a tag of the local busybox image."""
    ensure_busybox_image(engine)
    for ref in sorted(recipe.images()):
        engine.docker("tag", BASE_TAG, ref)


def ensure_proxy_network(engine: Engine) -> None:
    """The overlay network Traefik and every app's public service share (not a stack's)."""
    if engine.docker("network", "inspect", "proxy", check=False).returncode != 0:
        engine.docker("network", "create", "--driver", "overlay", "--attachable", "proxy")


def deploy(
    engine: Engine,
    app: AbraApp,
    *,
    expires: int | str = "",
    services: tuple[str, ...] | None = None,
    wait: bool = True,
    timeout: float = 90,
) -> None:
    """``abra app deploy``: ``docker stack deploy`` of compose.yml and the CI overlay with
    the env file's values, ``STACK_NAME``, ``DOMAIN`` and the run's ``CI_EXPIRES``.

    ``services`` deploys only those (what a deploy killed half-way leaves: the stack's
    networks and configs, and some of its services)."""
    ensure_images(engine, app.recipe)
    ensure_proxy_network(engine)
    env = {**engine.env(), **app.env(), **app.extra_env}
    env |= {"STACK_NAME": app.stack, "DOMAIN": app.domain, "CI_EXPIRES": str(expires)}
    files = ["compose.yml", CI_OVERLAY]
    tmp = os.path.join(engine.state_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        paths = []
        for name in files:
            data = yaml.safe_load((app.recipe.path / name).read_text(encoding="utf-8"))
            if services is not None:
                data["services"] = {
                    k: v for k, v in (data.get("services") or {}).items() if k in services
                }
            # Config files are relative to the recipe, as abra runs from the recipe folder.
            for spec in (data.get("configs") or {}).values():
                if spec and "file" in spec:
                    spec["file"] = str(app.recipe.path / spec["file"])
            path = Path(work) / name
            path.write_text(yaml.safe_dump(data), encoding="utf-8")
            paths.append(str(path))
        args = [docker_cli(), "stack", "deploy", "--resolve-image", "never"]
        for compose in paths:
            args += ["-c", compose]
        done = subprocess.run(
            [*args, app.stack], env=env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise EngineError(f"stack deploy {app.stack}: {done.stderr.strip()}")
    if wait:
        wait_for_services(engine, stack=app.stack, timeout=timeout)


def undeploy_services(engine: Engine, app: AbraApp, timeout: float = 60) -> None:
    """The first half of ``abra app undeploy`` (``docker stack rm``): the services go, and
    their task containers after them; a teardown killed here leaves the stack's networks
    and configs, its volumes, its secrets and its env file."""
    label = f"label={STACK_LABEL}={app.stack}"
    ids = engine.docker("service", "ls", "-q", "--filter", label).stdout.split()
    if ids:
        engine.docker("service", "rm", *ids)
    deadline = time.monotonic() + timeout
    while engine.docker("ps", "-aq", "--filter", label).stdout.strip():
        if time.monotonic() > deadline:
            raise EngineError(f"task containers of {app.stack} still present after {timeout}s")
        time.sleep(0.3)
