"""What belongs to stack X: the one owner of that decision.

``Facts.stacks()``/``Facts.stack()``, the orphan rule, ``reap.leftovers`` and ``ccci
residual`` all ask here, so a secret or an env file is never counted as one stack's by one
of them and another's by the next.

How each abra object is found (abra's own conventions, see docs/policies.md):

- services, networks, configs and volumes carry ``com.docker.stack.namespace=<stack>``;
- abra's secrets are external, so unlabelled: ``<stack>_<secret>_<version>``, found by the
  longest known stack name they start with, or, when nothing else of the stack is left, by
  the run-app pattern (only when exactly one prefix of the name can be that stack);
- an env file is read, not guessed: its own ``STACK_NAME`` key decides, else the app name
  (the file name without ``.env``) as abra turns it into a stack name: dots become
  underscores and a name longer than 45 bytes is cut to 45. A ``DOMAIN`` key that names
  another app makes the file's owner undecidable.

Pure functions of facts; no I/O (the connector reads the two keys, with a size cap).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ccci.facts.model import FileFact, Network, Service, Stack, SwarmObject, Volume

# abra (pkg/config): stack names are cut to this many bytes, so that the names Docker
# derives from them (``<stack>_<service>``, ``<stack>_<secret>_<version>``) stay within
# its own limits (63 for a service's DNS name, 64 for a secret or config name).
ABRA_MAX_STACK_NAME = 45
# Only these keys of an env file ever enter facts: the rest is the app's configuration,
# secrets' versions and whatever else a run wrote there.
ENV_KEYS = ("DOMAIN", "STACK_NAME")
ENV_READ_LIMIT = 64 * 1024


class Pattern(Protocol):
    """A compiled run-app pattern: ``re`` or the policy's time-safe matcher."""

    def search(self, text: str) -> object:
        """Truthy when the pattern matches anywhere in ``text``, as ``re.Pattern.search``:
        all that grouping asks of a pattern."""


_KEY_LINE = re.compile(r"\A(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\Z")


def unsafe_name(name: str) -> str:
    """Why a stack name must never become part of a path or be acted on, or ''.

    Engine names and env-file keys are written by the recipes under test, so a name with a
    separator, a parent reference or a control character is refused and shown, never used.
    """
    if not name:
        return "it is empty"
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if ".." in name:
        return "it holds '..'"
    if "\x00" in name:
        return "it holds a NUL"
    bad = next((ch for ch in name if unicodedata.category(ch).startswith("C")), None)
    if bad is not None:
        return f"it holds the control character U+{ord(bad):04X}"
    return ""


def abra_stack_name(app_name: str) -> str:
    """The stack abra deploys an app as, from its name (the env file's name): dots become
    underscores, then the name is cut to 45 bytes (abra counts bytes, as Go's ``len`` does).
    """
    sanitised = app_name.replace(".", "_").encode("utf-8")
    return sanitised[:ABRA_MAX_STACK_NAME].decode("utf-8", errors="ignore")


def parse_env_keys(text: str) -> dict[str, str]:
    """``DOMAIN`` and ``STACK_NAME`` from an env file in Docker's env-file syntax, as abra's
    reader takes them: ``export`` allowed, quotes removed, an unquoted value ends at `` #``;
    the last assignment wins. Every other line is skipped unread."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEY_LINE.match(line)
        if match is None or match.group(1) not in ENV_KEYS:
            continue
        value = match.group(2).strip()
        if value[:1] in ("'", '"'):
            end = value.find(value[0], 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split(" #", 1)[0].strip()
        found[match.group(1)] = value
    return found


@dataclass(frozen=True)
class EnvOwner:
    """Whose an env file is: ``stack`` when it can be decided, else ``why`` not."""

    stack: str
    why: str = ""
    via: str = ""


def app_name(path: str) -> str:
    """abra's name for the app of an env file: its file name without ``.env``."""
    base = os.path.basename(path)
    return base[: -len(".env")] if base.endswith(".env") and len(base) > 4 else base


def env_file_owner(file: FileFact) -> EnvOwner:
    """The stack an env file belongs to, read from the file itself."""
    if file.error:
        return EnvOwner("", f"cannot read it ({file.error})")
    if file.stack_name:
        return EnvOwner(file.stack_name, via="STACK_NAME")
    name = app_name(file.path)
    stack = abra_stack_name(name)
    if file.domain and abra_stack_name(file.domain) != stack:
        return EnvOwner(
            "", f"its DOMAIN={file.domain!r} names another app than its file name {name!r}"
        )
    return EnvOwner(stack, via="DOMAIN" if file.domain else "file name")


def env_files_by_stack(files: Iterable[FileFact]) -> dict[str, tuple[FileFact, ...]]:
    """Existing env files grouped by the stack each belongs to (undecidable ones left out)."""
    owned: dict[str, list[FileFact]] = {}
    for file in files:
        if not file.exists:
            continue
        owner = env_file_owner(file)
        if owner.stack:
            owned.setdefault(owner.stack, []).append(file)
    return {name: tuple(found) for name, found in owned.items()}


def undecided_env_files(files: Iterable[FileFact]) -> list[tuple[FileFact, str]]:
    """Existing env files whose stack cannot be decided, with why."""
    return [(f, owner.why) for f in files if f.exists and not (owner := env_file_owner(f)).stack]


def secret_candidates(name: str, pattern: Pattern) -> tuple[str, ...]:
    """Every run-app stack an unlabelled secret could be abra's secret of: each prefix of
    its name ending at an underscore, leaving at least ``<secret>_<version>``, that the
    run-app pattern matches and that is a safe stack name."""
    parts = name.split("_")
    found = []
    for end in range(1, len(parts) - 1):
        prefix = "_".join(parts[:end])
        if pattern.search(prefix) and not unsafe_name(prefix):
            found.append(prefix)
    return tuple(found)


def _owner_by_prefix(name: str, names: set[str] | frozenset[str]) -> str:
    """The longest known stack a secret's name starts with: ``x_org_uk``'s secrets are
    never counted as ``x_org``'s. Only prefixes ending before an underscore can be one, so
    those are looked up (a secret has a few; a host may have hundreds of stacks)."""
    end = name.rfind("_")
    while end > 0:
        if name[:end] in names:
            return name[:end]
        end = name.rfind("_", 0, end)
    return ""


def run_app_secrets(
    secrets: Iterable[SwarmObject], known: Iterable[str], pattern: Pattern
) -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    """Stack names learnt from unlabelled secrets no known stack owns, by the run-app
    pattern; and the secrets whose owner cannot be decided, with their candidates."""
    names = set(known)
    pending = [s for s in secrets if not s.stack and not _owner_by_prefix(s.name, names)]
    learnt: set[str] = set()
    ambiguous: dict[str, tuple[str, ...]] = {}
    for secret in pending:
        candidates = secret_candidates(secret.name, pattern)
        if len(candidates) == 1:
            learnt.add(candidates[0])
        elif candidates:
            ambiguous[secret.name] = candidates
    # A stack learnt from one secret settles another whose candidates include it.
    left = {n: c for n, c in ambiguous.items() if not _owner_by_prefix(n, learnt)}
    return frozenset(learnt), left


def group(
    services: tuple[Service, ...],
    volumes: tuple[Volume, ...],
    networks: tuple[Network, ...],
    secrets: tuple[SwarmObject, ...],
    configs: tuple[SwarmObject, ...],
    files: tuple[FileFact, ...],
    known: tuple[str, ...] = (),
) -> tuple[Stack, ...]:
    """Every stack: labelled objects, abra's env files by what they say, and ``known``
    names (learnt elsewhere: asked for, or read from secrets by the run-app pattern) that
    still have a secret. abra's unlabelled secrets go to the longest stack name they start
    with."""
    labelled: list[Service | Volume | Network | SwarmObject] = [
        *services,
        *volumes,
        *networks,
        *configs,
        *secrets,
    ]
    env_files = env_files_by_stack(files)
    names = {o.stack for o in labelled} | set(env_files)
    names.discard("")
    wanted = set(known) - names
    if wanted:
        names |= {_owner_by_prefix(s.name, wanted) for s in secrets if not s.stack} - {""}
    # One pass per kind, bucketed by stack: a host may hold hundreds of stacks.
    by_stack: dict[tuple[str, str], list[Any]] = {}
    for kind, objects in (
        ("services", services),
        ("volumes", volumes),
        ("networks", networks),
        ("configs", configs),
    ):
        for obj in objects:
            by_stack.setdefault((kind, obj.stack), []).append(obj)
    for secret in secrets:
        owner = secret.stack or _owner_by_prefix(secret.name, names)
        by_stack.setdefault(("secrets", owner), []).append(secret)

    def of(kind: str, name: str) -> tuple[Any, ...]:
        return tuple(by_stack.get((kind, name), ()))

    return tuple(
        Stack(
            name=name,
            services=of("services", name),
            volumes=of("volumes", name),
            networks=of("networks", name),
            secrets=of("secrets", name),
            configs=of("configs", name),
            env_files=env_files.get(name, ()),
        )
        for name in sorted(names)
    )
