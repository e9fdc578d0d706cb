"""The local connector: the Docker API over ``docker_host`` and statvfs on this machine."""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ccci.connectors.engineapi import UNIX_SCHEME, EngineReads
from ccci.errors import CcciError
from ccci.facts.model import STACK_LABEL, ClientConfig, DiskUsage, FileFact, Unit, UnitFile
from ccci.state.atomic import write_atomic

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Events read back per run at most: the engine itself keeps only its most recent ones.
MAX_EVENTS = 10000


class ConnectionFailed(CcciError):
    """The engine could not be reached, or stopped answering mid-run (a crash, a restart):
    one line naming the host and the engine's address, never a traceback."""


def _client_for(
    host: str, base_url: str, shown: str, timeout: int, before: Callable[[], None]
) -> Any:
    """docker's APIClient at ``base_url``, except that a lost connection or an unanswered call
    is a ConnectionFailed naming the engine as ``shown``. The SDK raises requests' own
    exceptions for those, which are no DockerException: without this, an engine that dies
    mid-apply ends ccci in a traceback. ``before`` runs ahead of every request (over SSH it
    restarts a master that expired while idle)."""
    import docker
    import requests

    class Client(docker.APIClient):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            before()
            try:
                return super().request(*args, **kwargs)
            except requests.exceptions.Timeout:
                method, url = (*args, kwargs.get("method"), kwargs.get("url"))[:2]
                # "timed out" in the words: fact gathering records such a kind as a timeout.
                raise ConnectionFailed(
                    f"{host}: the Docker engine at {shown} did not answer "
                    f"{method} {_path(str(url))} within {timeout}s (timed out)"
                ) from None
            except requests.exceptions.ConnectionError as exc:
                raise ConnectionFailed(
                    f"{host}: cannot reach the Docker engine at {shown}: {_reason(exc)}"
                ) from None

    return Client(base_url=base_url, version="auto", timeout=timeout)


def _path(url: str) -> str:
    """``/images/sha256:…`` of ``http+docker://localhost/v1.41/images/sha256:…?force=0``."""
    path = "/" + url.split("://", 1)[-1].partition("/")[2].partition("?")[0]
    version, _, rest = path[1:].partition("/")
    return f"/{rest}" if version.startswith("v") and rest else path


def _reason(exc: BaseException) -> str:
    """The innermost cause in words (``Connection refused``, ``Remote end closed
    connection without response``), not requests' nested reprs."""
    while exc.args and isinstance(exc.args[-1], BaseException):
        exc = exc.args[-1]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass
class LocalConnector:
    """Reach one host's engine; the docker SDK is imported only when first needed."""

    host: str
    docker_host: str = ""
    timeout: int = 60
    _client: Any = field(default=None, init=False, repr=False)

    @classmethod
    def for_host(cls, host: str, host_vars: dict[str, Any]) -> LocalConnector:
        """``docker_host`` from inventory vars wins over ``DOCKER_HOST``, then the default."""
        docker_host = str(host_vars.get("docker_host") or os.environ.get("DOCKER_HOST") or "")
        return cls(host=host, docker_host=docker_host or DEFAULT_DOCKER_HOST)

    @property
    def api(self) -> Any:
        """A unix socket's reads by plain HTTP, the rest by the SDK (see engineapi); an engine
        at another address, all by the SDK."""
        if self._client is not None:
            return self._client
        socket = self._plain_socket()
        if socket is None:
            self._client = self._sdk_client()
            return self._client
        self._client = EngineReads(
            socket,
            self.timeout,
            self._sdk_client,
            lambda method, path: ConnectionFailed(
                f"{self.host}: the Docker engine at {self._shown} did not answer "
                f"{method} {path} within {self.timeout}s (timed out)"
            ),
            lambda exc: ConnectionFailed(
                f"{self.host}: cannot reach the Docker engine at {self._shown}: {_reason(exc)}"
            ),
            before=self._ready,
        )
        return self._client

    # Where the engine is and how errors name it; the SSH connector says so for its own.
    @property
    def _shown(self) -> str:
        """The engine as errors name it."""
        return self.docker_host

    def _plain_socket(self) -> str | None:
        """The unix socket plain-HTTP reads go to, or None for an engine the SDK must reach."""
        if self.docker_host.startswith(UNIX_SCHEME):
            return self.docker_host.removeprefix(UNIX_SCHEME)
        return None

    def _base_url(self) -> str:
        """Where the SDK's client connects."""
        return self.docker_host

    def _ready(self) -> None:
        """Run ahead of every read and request: nothing for a local engine."""

    def _sdk_client(self) -> Any:
        """The SDK's client: every call on an engine not on a unix socket, and all but reads on
        one that is."""
        import docker.errors

        try:
            return _client_for(self.host, self._base_url(), self._shown, self.timeout, self._ready)
        except docker.errors.DockerException as exc:
            raise ConnectionFailed(
                f"{self.host}: cannot reach the Docker engine at {self._shown}: {exc}"
            ) from exc

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, leave_out: tuple[str, ...] = ()
    ) -> Any:
        """GET an engine endpoint the SDK has no method for (``/system/df?type=…``); the
        answer may come without the top-level keys in ``leave_out``."""
        api = self.api
        if isinstance(api, EngineReads):
            return api.get_json(path, params, leave_out)
        response = api._get(api._url(path), params=params or {})
        return api._result(response, json=True)

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        """BuildKit's records by its own call on the engine's socket (see
        ccci.connectors.buildkit); None for an engine the SDK reaches (TCP, TLS)."""
        api = self.api
        if isinstance(api, EngineReads):
            return api.build_cache_records()
        return None

    def disk_usage(self, path: str) -> DiskUsage:
        """statvfs, as ``df`` does: the engine's own ``/system/df`` is slow and answers
        a different question (what Docker holds, not how full the filesystem is)."""
        st = os.statvfs(path)
        total = st.f_blocks * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return DiskUsage(path=path, total=total, used=used, available=st.f_bavail * st.f_frsize)

    def close(self) -> None:
        """Close the engine client if one was made; the next call makes a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # Targeted reads used by apply to re-check one object just before acting on it.

    def inspect_image(self, image_id: str) -> dict[str, Any] | None:
        """By id or reference; None when the engine has no such image (gone since the plan)."""
        return self._inspect(self.api.inspect_image, image_id)

    def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        """None when the engine has no such container (removed since it was listed)."""
        return self._inspect(self.api.inspect_container, container_id)

    def containers_of_image(self, image_id: str) -> list[dict[str, Any]]:
        """Containers in any state created from this image (or one built on it)."""
        return list(self.api.containers(all=True, filters={"ancestor": image_id}))

    def _inspect(self, call: Any, ident: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(call(ident))
        except docker.errors.NotFound:
            return None

    # Actions. None of them forces: the engine's own refusals (an image in use, a running
    # container) are a second line of defence behind ccci's preconditions.

    def remove_container(self, container_id: str) -> None:
        """Never forced and never with its volumes: a running container is the engine's to
        refuse."""
        self.api.remove_container(container_id, v=False, force=False)

    def remove_image(self, image_id: str) -> None:
        """Never forced: an image in use, or named by several repositories, is the engine's to
        refuse."""
        # noprune: an untagged parent is not in the plan, so the engine must not take it along.
        self.api.remove_image(image_id, force=False, noprune=True)

    def untag_image(self, ref: str) -> None:
        """Remove one tag; the engine deletes the image with its last tag (never forced)."""
        self.api.remove_image(ref, force=False, noprune=True)

    def pull(self, ref: str) -> str:
        """Pull an image; the registry's own message is the error (auth, rate limit, none)."""
        from ccci.facts.refs import DEFAULT_TAG, parse_ref

        parsed = parse_ref(ref)
        repo, tag = parsed.repo, parsed.digest or parsed.tag or DEFAULT_TAG
        status = ""
        for line in self.api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise CcciError(f"pull {ref}: {line['error']}")
            status = str(line.get("status") or status)
        return status

    def events(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The engine's container and image events between two moments (a bounded read:
        with ``until`` the engine ends the stream itself)."""
        stream = self.api.events(
            since=int(since.timestamp()),
            until=int(until.timestamp()),
            filters={"type": ["container", "image"]},
            decode=True,
        )
        try:
            return list(itertools.islice(stream, MAX_EVENTS))
        finally:
            stream.close()

    def remove_build_cache(self, record_id: str) -> int:
        """Prune one BuildKit record by id; returns the bytes the engine reports freed.

        ``all``: without it BuildKit silently keeps ``internal`` and ``frontend`` records
        even when their id is asked for, and the next plan lists them again. The id filter
        still limits the prune to this one record."""
        result = self.api.prune_builds(filters={"id": [record_id]}, all=True)
        return int((result or {}).get("SpaceReclaimed") or 0)

    # Stacks: removal of swarm objects, volumes and files, by kind.

    def remove_object(self, kind: str, ident: str) -> None:
        """Remove a service, secret, config, network or volume; already gone is fine."""
        import docker.errors

        api = self.api
        call = {
            "services": api.remove_service,
            "secrets": api.remove_secret,
            "configs": api.remove_config,
            "networks": api.remove_network,
            "volumes": lambda name: api.remove_volume(name, force=False),
        }[kind]
        try:
            call(ident)
        except docker.errors.NotFound:
            return

    def stack_containers(self, stack: str) -> list[dict[str, Any]]:
        """Containers of a stack's tasks, in any state (swarm labels them with the stack)."""
        return list(self.api.containers(all=True, filters={"label": f"{STACK_LABEL}={stack}"}))

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        """The stack's services as the engine has them now, by the stack label: the reap waits for
        them to be gone."""
        return list(self.api.services(filters={"label": f"{STACK_LABEL}={stack}"}))

    def client_config(self, path: str) -> ClientConfig:
        """Read on this machine by ``ccci.facts.clientconfig``, which keeps registries and users and
        never a credential."""
        from ccci.facts.clientconfig import read_client_config

        return read_client_config(path)

    def stat_file(self, path: str) -> FileFact:
        """An env file's size and time, and its ``DOMAIN``/``STACK_NAME``: whose it is.

        Nothing else of the file is kept. A file over the read limit, or not a regular
        file, or not text, is not read: its owner is then undecidable, and says why."""
        from ccci.facts.stacks import ENV_READ_LIMIT, parse_env_keys

        try:
            st = os.stat(path)
        except FileNotFoundError:
            return FileFact(path=path, exists=False)
        modified = datetime.fromtimestamp(st.st_mtime, tz=UTC)
        found = FileFact(path=path, exists=True, size=st.st_size, modified=modified)
        if not stat.S_ISREG(st.st_mode):
            return replace(found, error="not a regular file")
        if st.st_size > ENV_READ_LIMIT:
            return replace(found, error=f"larger than {ENV_READ_LIMIT // 1024} KiB")
        try:
            with open(path, "rb") as handle:
                raw = handle.read(ENV_READ_LIMIT + 1)
            text = raw.decode("utf-8")
        except OSError as exc:
            return replace(found, error=exc.strerror or "unreadable")
        except UnicodeDecodeError:
            return replace(found, error="not UTF-8 text")
        if len(raw) > ENV_READ_LIMIT:
            return replace(found, error=f"larger than {ENV_READ_LIMIT // 1024} KiB")
        keys = parse_env_keys(text)
        return replace(found, domain=keys.get("DOMAIN", ""), stack_name=keys.get("STACK_NAME", ""))

    def glob(self, pattern: str) -> list[str]:
        """Files matching a shell pattern (abra's env files of every app on a server)."""
        import glob as globbing

        return sorted(globbing.glob(pattern))

    def remove_file(self, path: str) -> None:
        """Already gone is done: a reap run twice, or a file removed by hand, is no failure."""
        try:
            os.remove(path)
        except FileNotFoundError:
            return

    # systemd: the host's own systemctl, and unit files in the unit directory.

    def systemctl(self, verb: str, *units: str, options: Sequence[str] = ()) -> str:
        """Run ``systemctl VERB OPTIONS -- UNITS``; a failure is an error naming the command
        and its message. The ``--`` keeps a unit name that starts with ``-`` a unit name
        (policies refuse such names; this holds even for a name from elsewhere)."""
        argv = [verb, *options, *(("--", *units) if units else ())]
        # TZ=UTC: the timestamps systemctl prints as text are then in UTC.
        done = subprocess.run(
            ["systemctl", *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "TZ": "UTC"},
        )
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            said = message[-1] if message else "failed"
            raise CcciError(f"systemctl {' '.join(argv)}: {said}")
        return done.stdout

    def units(self, names: list[str]) -> tuple[str, tuple[Unit, ...]]:
        """systemd's state (``running``, ``degraded``…, or why it cannot be asked) and the
        named units. Without a running systemd the units are unknown, not absent."""
        if not names:
            return "", ()
        from ccci.facts.systemd import SHOW_PROPERTIES, parse_show, usable

        try:
            # Exit status is non-zero for "degraded" too; the word on stdout is the answer.
            asked = subprocess.run(
                ["systemctl", "is-system-running"], capture_output=True, text=True, timeout=30
            )
        except OSError as exc:
            return f"not available ({exc.strerror})", ()
        state = asked.stdout.strip() or "unknown"
        if not usable(state):
            return state, ()
        props = [arg for p in SHOW_PROPERTIES for arg in ("-p", p)]
        out = self.systemctl("show", *names, options=("--timestamp=unix", *props))
        found = parse_show(out, names)
        from dataclasses import replace

        return state, tuple(
            replace(u, fragment_head=_first_line(u.fragment_path)) if u.fragment_path else u
            for u in found
        )

    def unit_file(self, path: str) -> UnitFile:
        """Content, symlink and whether the folder is writable; a folder in the Nix store counts as
        read-only, whatever its mode says."""
        folder = os.path.dirname(path)
        writable = os.access(folder, os.W_OK) and not os.path.realpath(folder).startswith(
            "/nix/store"
        )
        link = os.readlink(path) if os.path.islink(path) else ""
        try:
            with open(path, encoding="utf-8") as handle:
                content = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            return UnitFile(
                path=path, exists=os.path.lexists(path), link=link, dir_writable=writable
            )
        except (OSError, UnicodeDecodeError):
            return UnitFile(path=path, exists=True, link=link, dir_writable=writable)
        return UnitFile(path=path, exists=True, content=content, link=link, dir_writable=writable)

    def write_file(self, path: str, content: str) -> None:
        """Write atomically: systemd sees the old unit file or the new, never half."""
        write_atomic(path, content)


def _first_line(path: str) -> str:
    """A unit file's first line (at most 256 bytes), or '' when it cannot be read: the
    header that tells whether ccci wrote it."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return ""
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
