"""The named fake of a host for unit tests: :class:`FakeConnector`.

Unit tests that need a host (apply's re-checks and acts, the reap, last use, gathering)
take this one fake instead of each building its own: it implements
:class:`ccci.connectors.base.Connector`, so mypy proves it offers what ccci calls, and a
test that passes it says by its type what it stands in for. The engine tests
(tests/engine/) prove the same behaviour on a real engine; this fake only answers as an
engine would, from data the test gives it.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ccci.facts.model import (
    STACK_LABEL,
    ClientConfig,
    DiskUsage,
    Facts,
    FileFact,
    Unit,
    UnitFile,
)
from ccci.facts.refs import parse_ref
from ccci.facts.stacks import parse_env_keys
from ccci.facts.systemd import usable

if TYPE_CHECKING:
    from ccci.connectors.base import Connector

# /system/df?type=… limits the engine's answer to one key (API 1.42 and later).
_DF_KEYS = {
    "build-cache": "BuildCache",
    "image": "Images",
    "container": "Containers",
    "volume": "Volumes",
}


@dataclass
class FakeConnector:
    """One host as the Connector Protocol sees it, answered from the test's data.

    What it fakes, and from what:

    - **listed engine objects** (services, networks, volumes, secrets, configs, stack
      containers, env files, disks, client configs, systemd's state, units and unit files)
      from ``facts``, a fact snapshot: ``stack_services``, ``stat_file`` or ``units`` answer
      from it, and ``remove_object``/``remove_file`` take the object out of it, so a test's
      next ``current()`` sees the host as the engine would after the act;
    - **inspected objects** from recorded API payloads: ``images`` (inspect answers by id,
      found by id, tag or repo digest; untagging follows the engine: a repository's last tag
      takes its digests along, the image goes with its last reference), ``containers``
      (inspect answers by id) and ``system_df`` (the ``/system/df`` answer, limited by
      ``type`` as API 1.42 does; removing a build cache record takes it out); with
      ``buildkit``, BuildKit's own call (``build_cache_records``) answers its ``BuildCache``
      too, as an engine whose ``/grpc`` endpoint answers; without it the call says the engine
      cannot be asked that way (None), so the build cache comes from ``/system/df``;
    - **the engine's events** from ``events_log``, within the window asked;
    - **files** in ``files`` (path → content): written, read back as unit files and env files,
      globbed and removed;
    - **the SDK client** (``api``, what gathering lists through) only when the test passes one
      as ``sdk`` (recorded answers): without it, asking is an AssertionError.

    Every act is recorded in ``calls`` and every read in ``reads``, as ``(method, *args)``,
    in order. ``raises`` maps a call's leading part (``("remove_object", "volumes")``) to the
    exception it raises after it is recorded: an engine's refusal, or a bug in ccci's terms.

    What it does not fake: systemd's reaction to ``systemctl`` (recorded only, units keep
    their state), a pull's effect on the image store, the engine's own refusals (an image in
    use, a running container) unless ``raises`` says so, task containers going away with
    their service, time (nothing here reads the clock), and concurrency (one caller at a time).
    """

    host: str = "cc-ci"
    docker_host: str = "fake://cc-ci"
    facts: Facts | None = None
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    system_df: dict[str, Any] = field(default_factory=dict)
    buildkit: bool = False
    events_log: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    sdk: Any = None
    raises: dict[tuple[str, ...], BaseException] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    reads: list[tuple[Any, ...]] = field(default_factory=list)
    closed: bool = False

    # ---- bookkeeping ----------------------------------------------------------------------

    def current(self) -> Facts:
        """The snapshot as the acts so far have left it (the reap's ``current``)."""
        assert self.facts is not None, "this fake holds no fact snapshot"
        return self.facts

    def _act(self, *call: Any) -> None:
        self.calls.append(call)
        self._maybe_raise(call)

    def _read(self, *call: Any) -> None:
        self.reads.append(call)
        self._maybe_raise(call)

    def _maybe_raise(self, call: tuple[Any, ...]) -> None:
        for prefix, exc in self.raises.items():
            if call[: len(prefix)] == prefix:
                raise exc

    def _edit(self, **changes: Any) -> None:
        if self.facts is not None:
            self.facts = replace(self.facts, **changes)

    # ---- the engine: reads ----------------------------------------------------------------

    @property
    def api(self) -> Any:
        assert self.sdk is not None, "this fake has no SDK client: pass sdk=… (recorded answers)"
        return self.sdk

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        self._read("build_cache_records")
        if not self.buildkit:
            return None
        return copy.deepcopy(self.system_df.get("BuildCache") or [])

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, leave_out: tuple[str, ...] = ()
    ) -> Any:
        self._read("get_json", path, params)
        assert path == "/system/df", f"the fake answers /system/df only, not {path}"
        kind = (params or {}).get("type")
        if kind is None:
            # What the caller leaves out is left out, so a caller that reads it fails here.
            return {k: copy.deepcopy(v) for k, v in self.system_df.items() if k not in leave_out}
        key = _DF_KEYS[kind]
        return {key: copy.deepcopy(self.system_df.get(key) or [])}

    def _image(self, ref: str) -> dict[str, Any] | None:
        if ref in self.images:
            return self.images[ref]
        return next(
            (
                i
                for i in self.images.values()
                if ref in (i.get("RepoTags") or []) or ref in (i.get("RepoDigests") or [])
            ),
            None,
        )

    def inspect_image(self, image_id: str) -> dict[str, Any] | None:
        self._read("inspect_image", image_id)
        found = self._image(image_id)
        return copy.deepcopy(found) if found is not None else None

    def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        self._read("inspect_container", container_id)
        found = self.containers.get(container_id)
        return copy.deepcopy(found) if found is not None else None

    def containers_of_image(self, image_id: str) -> list[dict[str, Any]]:
        self._read("containers_of_image", image_id)
        return [copy.deepcopy(c) for c in self.containers.values() if c.get("ImageID") == image_id]

    def stack_containers(self, stack: str) -> list[dict[str, Any]]:
        self._read("stack_containers", stack)
        listed = self.facts.containers if self.facts is not None else ()
        return [
            {"Id": c.id, "Names": [f"/{c.name}"], "State": c.state, "Labels": dict(c.labels)}
            for c in listed
            if c.labels.get(STACK_LABEL) == stack
        ]

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        self._read("stack_services", stack)
        listed = self.facts.services if self.facts is not None else ()
        return [{"ID": s.id, "Spec": {"Name": s.name}} for s in listed if s.stack == stack]

    def events(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        self._read("events", since, until)
        low, high = since.timestamp(), until.timestamp()
        return [e for e in self.events_log if low <= e["time"] <= high]

    # ---- the engine: acts -----------------------------------------------------------------

    def remove_container(self, container_id: str) -> None:
        self._act("remove_container", container_id)
        self.containers.pop(container_id, None)

    def remove_image(self, image_id: str) -> None:
        self._act("remove_image", image_id)
        found = self._image(image_id)
        if found is not None:
            del self.images[found["Id"]]

    def untag_image(self, ref: str) -> None:
        self._act("untag_image", ref)
        found = self._image(ref)
        assert found is not None, f"no such image: {ref}"
        tags = [t for t in found.get("RepoTags") or [] if t != ref]
        digests = [d for d in found.get("RepoDigests") or [] if d != ref]
        repo = parse_ref(ref).repo
        if "@" not in ref and not any(parse_ref(t).repo == repo for t in tags):
            digests = [d for d in digests if parse_ref(d).repo != repo]
        found["RepoTags"], found["RepoDigests"] = tags, digests
        if not tags and not digests:
            del self.images[found["Id"]]

    def pull(self, ref: str) -> str:
        self._act("pull", ref)
        return "Downloaded newer image"

    def remove_build_cache(self, record_id: str) -> int:
        self._act("remove_build_cache", record_id)
        records = self.system_df.get("BuildCache") or []
        found = next((r for r in records if r.get("ID") == record_id), None)
        if found is None:
            return 0
        self.system_df["BuildCache"] = [r for r in records if r is not found]
        return int(found.get("Size") or 0)

    def remove_object(self, kind: str, ident: str) -> None:
        self._act("remove_object", kind, ident)
        f = self.facts
        if f is None:
            return
        self._edit(
            services=tuple(s for s in f.services if s.id != ident),
            secrets=tuple(s for s in f.secrets if s.id != ident),
            configs=tuple(c for c in f.configs if c.id != ident),
            networks=tuple(n for n in f.networks if n.id != ident),
            volumes=tuple(v for v in f.volumes if v.name != ident),
        )

    # ---- the host: files, disks, systemd --------------------------------------------------

    def disk_usage(self, path: str) -> DiskUsage:
        self._read("disk_usage", path)
        found = self.facts.disk(path) if self.facts is not None else None
        if found is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return found

    def client_config(self, path: str) -> ClientConfig:
        self._read("client_config", path)
        found = self.facts.client_config(path) if self.facts is not None else None
        return found if found is not None else ClientConfig(path=path, found=False)

    def stat_file(self, path: str) -> FileFact:
        self._read("stat_file", path)
        if path in self.files:
            keys = parse_env_keys(self.files[path])
            size = len(self.files[path].encode("utf-8"))
            return FileFact(
                path,
                True,
                size,
                domain=keys.get("DOMAIN", ""),
                stack_name=keys.get("STACK_NAME", ""),
            )
        found = self.facts.file(path) if self.facts is not None else None
        return found if found is not None else FileFact(path=path, exists=False)

    def glob(self, pattern: str) -> list[str]:
        self._read("glob", pattern)
        known = set(self.files)
        if self.facts is not None:
            known |= {f.path for f in self.facts.files if f.exists}
        return sorted(p for p in known if fnmatch.fnmatchcase(p, pattern))

    def remove_file(self, path: str) -> None:
        self._act("remove_file", path)
        self.files.pop(path, None)
        if self.facts is not None:
            gone = tuple(
                replace(f, exists=False) if f.path == path else f for f in self.facts.files
            )
            self._edit(files=gone)

    def write_file(self, path: str, content: str) -> None:
        self._act("write_file", path, content)
        self.files[path] = content

    def systemctl(self, verb: str, *units: str, options: Sequence[str] = ()) -> str:
        self._act("systemctl", verb, *options, *units)
        return ""

    def units(self, names: list[str]) -> tuple[str, tuple[Unit, ...]]:
        self._read("units", *names)
        if not names or self.facts is None:
            return "", ()
        if not usable(self.facts.systemd):
            return self.facts.systemd, ()
        found = (self.facts.unit(n) for n in names)
        return self.facts.systemd, tuple(u for u in found if u is not None)

    def unit_file(self, path: str) -> UnitFile:
        self._read("unit_file", path)
        if path in self.files:
            return UnitFile(path=path, exists=True, content=self.files[path])
        found = self.facts.unit_file(path) if self.facts is not None else None
        return found if found is not None else UnitFile(path=path, exists=False)

    def close(self) -> None:
        self.closed = True


if TYPE_CHECKING:

    def _is_a_connector(fake: FakeConnector) -> Connector:
        """Never called: mypy checks here that the fake satisfies the Protocol."""
        return fake
