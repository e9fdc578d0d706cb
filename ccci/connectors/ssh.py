"""The SSH connector: a remote host through the system's OpenSSH client.

Everything of the host is read and changed on the host: the Docker API goes to the remote
engine's unix socket, and disk usage, env files, the client config, systemd and unit files
are remote commands. Nothing of a remote host is read or written on the machine ccci runs on.

- One multiplexed master per host (``ControlMaster``), its control socket in a private
  0700 folder; every command is a session on that one connection, and never a login of its
  own: ssh would quietly log in afresh when the master refuses a session, so commands get a
  proxy that cannot connect (see :data:`NO_DIRECT_LOGIN`). A session refused because the
  host's sshd allows no more on the connection (``MaxSessions``; two ccci sharing a kept
  master can ask for more) is waited for, never reported as an unreachable host.
- Masters are kept between runs (``ControlPersist``), as Ansible keeps them: in a per-user
  folder (:func:`kept_folder`), each named by a digest of everything that decides the
  connection (:func:`master_key`), so the next run (``--plan`` then ``--apply``, the janitor
  before each deploy) connects to the running master instead of paying the handshake
  again. A file lock per master keeps concurrent runs from starting two; a master that was
  killed leaves stale sockets, which are removed before a new one starts. The host var
  ``ccci_ssh_persist`` or the env ``CCCI_SSH_PERSIST`` turns this off: then each run
  starts its masters in a folder of its own and ends them when it closes.
- The Docker API: the master forwards a local socket in that folder to the remote engine's
  socket (``-L local.sock:remote.sock``), and ccci talks to the local end as to a local
  engine: reads by plain HTTP (``ccci.connectors.engineapi``, so a plan imports no docker
  SDK), the rest by the SDK's client on the same socket. Chosen over ``ssh -W`` per
  connection (a process and a handshake per HTTP connection, and a socket adapter of our
  own) and over the SDK's ``ssh://`` (it runs ``docker system dial-stdio`` on the remote,
  so it needs the docker CLI there and always reaches the remote's default engine, not the
  one ``docker_host`` names): the forward is one channel per HTTP connection on a
  connection already made, streams (events, pulls) work unchanged, and timeouts and
  errors are the local ones.
- The user's ``~/.ssh/config``, agent and ``known_hosts`` apply; host keys are checked as
  configured and never turned off here. A changed host key is one line, and no action.
- Every remote argument is shell-quoted; writes go to a temporary file in the same folder,
  then ``mv`` over the target, so a reader sees the old file or the new.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ccci.connectors.local import (
    DEFAULT_DOCKER_HOST,
    ConnectionFailed,
    LocalConnector,
)
from ccci.errors import CcciError
from ccci.facts.model import ClientConfig, DiskUsage, FileFact, Unit, UnitFile
from ccci.state.atomic import WriteFailed

# At most this many commands at once on one master: OpenSSH's sshd allows 10 sessions per
# connection (MaxSessions). Other processes sharing a kept master are not counted here: a
# session the master refuses is waited for (see SshConnector.run).
MAX_SESSIONS = 8
# What OpenSSH's mux client writes when the master asked sshd for a session and sshd refused
# it (mux.c: mux_session_confirm's reply, printed by mux_client_request_session). Only this:
# the master is up and the command was never started, so asking again is safe.
SESSION_REFUSED = "mux_client_request_session: session request failed: Session open refused by peer"
# How long a command waits for a free session in all, and the pauses between its tries
# (doubling). Other runs' commands hold a session for milliseconds to a few seconds each;
# half a minute outlasts a burst of them, yet a master whose sessions something holds for
# good fails the host in a bounded time, not each command only after its COMMAND_TIMEOUT.
SESSION_WAIT = 30.0
SESSION_PAUSE = (0.05, 0.5)
# A command's ssh gets this proxy, which cannot connect: when the master refuses the session,
# ssh falls back to logging in on its own (a second login per command, and one that may run
# the command, so a refusal could never be retried safely). A command only ever goes through
# the master; the master itself keeps the user's own proxy settings. ssh takes the first
# value it is given, so this one wins over the inventory's and ~/.ssh/config's.
NO_DIRECT_LOGIN = "ProxyCommand=false"
# What ssh writes when it tried that login (so the master's session never opened, and the
# command never ran): the proxy it was given closed at once (sshconnect: kex_exchange_
# identification). Seen only when the master was gone before the command's session.
NO_MASTER = "kex_exchange_identification: Connection closed by remote host"
# ssh's short options that take a value (OpenSSH 9's getopt string), to find a -J among them.
_SSH_VALUE_FLAGS = frozenset("bceilmopBDEFIJLOPQRSwW")
# A kept master's sessions, shared by every connector of this process that uses it (one run
# may make several connectors of one host); by master key.
_KEPT_SESSIONS: dict[str, threading.BoundedSemaphore] = {}
_KEPT_SESSIONS_LOCK = threading.Lock()
# A master goes away by itself after this long unused: a kept one this long after the last
# run that used it, one of a run that was killed this long after the kill.
CONTROL_PERSIST = "120s"
# Keeping masters between runs: the host var and the env (its default for every host) that
# turn it off, and the env naming the folder they are kept in (see kept_folder).
PERSIST_VAR = "ccci_ssh_persist"
PERSIST_ENV = "CCCI_SSH_PERSIST"
CONTROL_DIR_ENV = "CCCI_SSH_CONTROL_DIR"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
COMMAND_TIMEOUT = 120
CLIENT_CONFIG_LIMIT = 1024 * 1024
# ssh's own exit status for "the connection failed" (every other status is the command's).
SSH_FAILED = 255


class HostKeyMismatch(ConnectionFailed):
    """The host's key is not the one known_hosts holds (or none is known, and checking is
    strict): ccci neither connects nor acts."""


class UnsafeControlFolder(ConnectionFailed):
    """The folder masters are kept in is not this user's alone (another user owns it or can
    write to it, or it is not a plain folder): ccci neither uses it nor connects, as OpenSSH
    refuses a key file or ``~/.ssh`` others can write."""


class NoFreeSession(ConnectionFailed):
    """Every session the host's sshd allows on the connection (``MaxSessions``) stayed in
    use past :data:`SESSION_WAIT`: the host answers, it is busy, and the command never ran.
    A ConnectionFailed still, so one such host leaves the others running, as unreachable
    hosts do."""


class RemoteCommandFailed(CcciError, OSError):
    """A remote command exited non-zero: an OSError too, as the local connector's file and
    statvfs failures are, so callers that treat "cannot be measured" alike keep doing so."""


@dataclass(frozen=True)
class SshTarget:
    """How to reach one inventory host with ssh, from Ansible's connection variables."""

    host: str
    address: str
    port: int | None = None
    user: str = ""
    key_file: str = ""
    common_args: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    # Keep the master for later runs (see the module docstring).
    persist: bool = True

    @classmethod
    def from_vars(cls, host: str, host_vars: Mapping[str, Any]) -> SshTarget:
        """``ansible_host`` (default: the inventory name), ``ansible_port``,
        ``ansible_user``, ``ansible_ssh_private_key_file``, ``ansible_ssh_common_args``,
        ``ansible_ssh_extra_args`` and ccci's ``ccci_ssh_persist`` (else ``CCCI_SSH_PERSIST``,
        else on); a bad value is one line naming the host and variable."""
        address = _word(host, "ansible_host", host_vars.get("ansible_host") or host)
        user = _word(host, "ansible_user", host_vars.get("ansible_user") or "")
        port = host_vars.get("ansible_port")
        if port not in (None, ""):
            text = str(port)
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise CcciError(f"{host}: ansible_port: not a port number: {text!r}")
            port = int(text)
        key = str(host_vars.get("ansible_ssh_private_key_file") or "")
        if key:
            key = os.path.expanduser(key)
        return cls(
            host=host,
            address=address,
            port=port or None,
            user=user,
            key_file=key,
            common_args=_args(host, "ansible_ssh_common_args", host_vars),
            extra_args=_args(host, "ansible_ssh_extra_args", host_vars),
            persist=_persist(host, host_vars),
        )

    def describe(self) -> str:
        """``user@address:port`` as far as the inventory says it."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.address}" + (f":{self.port}" if self.port else "")

    def options(self, control_path: str, master: bool = False) -> list[str]:
        """ssh's options, before the ``--`` and the address. ssh takes the first value it
        is given for an option: the connection sharing and BatchMode (a prompt would hang a
        nightly) come first and are ours; the inventory's own options come next and win
        over the defaults after them; host key checking is never set here at all."""
        ours = [
            "-o", f"ControlPath={control_path}",
            "-o", f"ControlMaster={'yes' if master else 'no'}",
            "-o", f"ControlPersist={CONTROL_PERSIST}",
            "-o", "BatchMode=yes",
            *([] if master or self.names_jump_host else ["-o", NO_DIRECT_LOGIN]),
        ]  # fmt: skip
        defaults = [
            "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
        ]  # fmt: skip
        who = [
            *(["-i", self.key_file] if self.key_file else []),
            *(["-p", str(self.port)] if self.port else []),
            *(["-l", self.user] if self.user else []),
        ]
        return [*ours, *self.common_args, *self.extra_args, *defaults, *who]

    @property
    def names_jump_host(self) -> bool:
        """Whether the inventory's ssh arguments give ``-J``: ssh refuses ``-J`` after a
        ProxyCommand, so such a host's commands keep ssh's own fallback login (and a
        refused session is not retried: the fallback may have run the command)."""
        return _has_jump_flag((*self.common_args, *self.extra_args))


def _has_jump_flag(args: Sequence[str]) -> bool:
    """``-J`` among ssh's short options, also in a cluster (``-qJ host``), never inside a
    value (``-i ~/J``, ``-o ProxyJump=…``: that one ssh orders as any option)."""
    value_next = False
    for arg in args:
        if value_next or not arg.startswith("-") or arg.startswith("--") or arg == "-":
            value_next = False
            continue
        for i, flag in enumerate(arg[1:]):
            if flag == "J":
                return True
            if flag in _SSH_VALUE_FLAGS:
                value_next = i == len(arg) - 2  # the value is the next word
                break
    return False


def _word(host: str, name: str, value: object) -> str:
    """A host or user name: no blank, no control character, not an option (``-oProxy…``)."""
    text = str(value)
    if text.startswith("-") or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise CcciError(f"{host}: {name}: not a host or user name: {text!r}")
    return text


def _persist(host: str, host_vars: Mapping[str, Any]) -> bool:
    """The host var beats the env, as an Ansible host var beats its configuration."""
    own = host_vars.get(PERSIST_VAR)
    if own is not None and own != "":
        return _flag(own, f"{host}: {PERSIST_VAR}")
    env = os.environ.get(PERSIST_ENV, "")
    return _flag(env, PERSIST_ENV) if env else True


def _flag(value: object, where: str) -> bool:
    """YAML's booleans, and the words Ansible takes for them."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise CcciError(f"{where}: not true or false: {value!r}")


def _args(host: str, name: str, host_vars: Mapping[str, Any]) -> tuple[str, ...]:
    """Split as Ansible does (shell words)."""
    try:
        return tuple(shlex.split(str(host_vars.get(name) or "")))
    except ValueError as exc:
        raise CcciError(f"{host}: {name}: {exc}") from None


def remote_command(argv: Sequence[str]) -> str:
    """One command line for the remote shell, each argument quoted: sshd hands the
    command to the user's shell as a string, so an unquoted ``;`` or ``$(…)`` in a path
    would run."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def sh_script(script: str, *args: str) -> list[str]:
    """argv that runs ``script`` with ``args`` as ``$1…``: the values never become code."""
    return ["sh", "-c", script, "sh", *args]


def unix_socket_path(docker_host: str) -> str:
    """The remote socket of ``unix:///path``; anything else cannot be forwarded."""
    if not docker_host.startswith("unix:///"):
        raise CcciError(
            f"docker_host {docker_host!r}: over SSH the engine must be a unix:///path on the host"
        )
    return docker_host.removeprefix("unix://")


def ssh_failure(target: SshTarget, stderr: str) -> ConnectionFailed:
    """ssh's own failure as one line naming the host; a host key problem is its own error."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and set(ln.strip()) != {"@"}]
    text = " ".join(lines)
    where = f"{target.host} ({target.describe()})"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key for" in text:
        return HostKeyMismatch(
            f"{where}: the SSH host key does not match known_hosts; refusing to connect "
            "(check the host, then fix known_hosts)"
        )
    if "host key is known" in text or "Host key verification failed" in text:
        return HostKeyMismatch(
            f"{where}: the SSH host key is not in known_hosts and checking is strict; "
            "refusing to connect"
        )
    said = lines[-1] if lines else "ssh failed"
    return ConnectionFailed(f"{where}: cannot connect over SSH: {said}")


# Scripts run on the remote host with their values as $1, $2…: never spliced into the text.
_STAT_FILE = (
    'info=$(stat -L -c "%f %s %Y" -- "$1" 2>/dev/null) || { echo absent; exit 0; }\n'
    'echo "$info"\n'
    '[ -f "$1" ] || exit 0\n'
    'head -c "$2" -- "$1" || exit 3\n'
)
_GLOB = 'IFS=; for f in $1; do { [ -e "$f" ] || [ -L "$f" ]; } && printf "%s\\0" "$f"; done; :'
_READ = '[ -e "$1" ] || exit 4\nhead -c "$2" -- "$1"\n'
_FIRST_LINES = (
    'for p; do printf "%s\\n" "$(head -c 256 -- "$p" 2>/dev/null | head -n 1 | tr -d "\\0")"; done'
)
_UNIT_FILE = (
    'w=0; [ -w "$2" ] && w=1\n'
    'r=$(realpath -m -- "$2" 2>/dev/null) || r=$2\n'
    'e=0; { [ -e "$1" ] || [ -L "$1" ]; } && e=1\n'
    'l=; [ -L "$1" ] && l=$(readlink -- "$1")\n'
    'printf \'%s\\0%s\\0%s\\0%s\\0\' "$w" "$r" "$e" "$l"\n'
    '[ -f "$1" ] && cat -- "$1" 2>/dev/null; :\n'
)
_WRITE = (
    "set -e\n"
    'mkdir -p -- "$2"\n'
    't=$(mktemp -- "$2/.$3.XXXXXX")\n'
    "trap 'rm -f -- \"$t\"' EXIT\n"
    'cat >"$t"\n'
    # The rename must not be seen before the data is on disk (see ccci.state.atomic).
    'sync -- "$t" 2>/dev/null || sync\n'
    'chmod 0644 -- "$t"\n'
    'mv -f -- "$t" "$1"\n'
    "trap - EXIT\n"
)


@dataclass
class SshConnector(LocalConnector):
    """One remote host. The Docker API methods are the local connector's, on an API client
    reaching the remote engine; every method that touches the host itself is a remote
    command here (tests/fleet/test_ssh_commands.py keeps it so for every new method)."""

    target: SshTarget = field(default_factory=lambda: SshTarget(host="", address=""))
    _dir: str = field(default="", init=False, repr=False)
    # How this master's files are named in _dir: plainly in a run's own folder (""), after
    # the master's key in the kept folder, which every kept master of the user shares.
    _stem: str = field(default="", init=False, repr=False)
    _sessions: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(MAX_SESSIONS), init=False, repr=False
    )
    _master_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # Ends the master and removes the folder if close() is never called (an exception, a
    # forgotten connector): at garbage collection, or at the latest when ccci exits. A kept
    # master has none: it is meant to outlive the run.
    _finalizer: weakref.finalize[[list[str], str], SshConnector] | None = field(
        default=None, init=False, repr=False
    )

    @classmethod
    def for_host(cls, host: str, host_vars: dict[str, Any]) -> SshConnector:
        """``docker_host`` names a socket on the remote host (default its
        ``/var/run/docker.sock``); the local ``DOCKER_HOST`` is about this machine and is
        never used for a remote one."""
        docker_host = str(host_vars.get("docker_host") or DEFAULT_DOCKER_HOST)
        unix_socket_path(docker_host)
        return cls(host=host, docker_host=docker_host, target=SshTarget.from_vars(host, host_vars))

    # ---- the connection ---------------------------------------------------------------

    @property
    def control_path(self) -> str:
        """The SSH master's control socket, in this connector's private folder."""
        return _named(self._dir, self._stem, "control")

    @property
    def forwarded_socket(self) -> str:
        """The engine's socket forwarded by the master, in the private folder: ccci connects
        here as to a local engine."""
        return _named(self._dir, self._stem, "docker.sock")

    @property
    def _where(self) -> str:
        return f"{self.host} ({self.target.describe()})"

    def connect(self) -> None:
        """Start the master, with the engine's socket forwarded, unless it runs (a kept one
        too); a refused host key, an unreachable host or a kept folder that is not this
        user's alone is a ConnectionFailed naming the host.

        A master unused for ``ControlPersist`` exits and removes its control socket; the
        next command or API request starts it again in the same folder, so the forwarded
        socket's path, which the API client holds, stays the same."""
        with self._master_lock:
            if self._dir and os.path.exists(self.control_path):
                return
            if self.target.persist:
                self._connect_kept()
            else:
                self._connect_own()

    def _connect_own(self) -> None:
        """A master of this run's own, in a new folder, ended by close()."""
        # 0700: the control socket and the forwarded engine socket are ours alone.
        folder = self._dir or private_folder()
        try:
            self._start_master(folder, "")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            self._dir = ""
            raise
        if self._dir != folder:
            exit_argv = [
                "ssh", *self.target.options(os.path.join(folder, "control")),
                "-O", "exit", "--", self.target.address,
            ]  # fmt: skip
            self._finalizer = weakref.finalize(self, _end_master, exit_argv, folder)
        self._dir = folder

    def _connect_kept(self) -> None:
        """The kept master of this connection when one answers, else a new one; under the
        master's file lock, so a second ccci waits for the first one's handshake and then
        uses its master rather than starting another."""
        folder = kept_folder(self._where)
        stem = master_key(self.target, unix_socket_path(self.docker_host))
        control = _named(folder, stem, "control")
        forwarded = _named(folder, stem, "docker.sock")
        with _locked(_named(folder, stem, "lock")):
            if not (_answers(control) and _is_socket(forwarded)):
                if _answers(control):  # its forward was removed: a master no read can use
                    _exit_master(control)
                # A killed master's sockets stay behind: ssh would not bind over the control
                # socket (it would run without one), and the forward's is stale.
                for stale in (control, forwarded):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(stale)
                self._start_master(folder, stem)
        with _KEPT_SESSIONS_LOCK:
            shared = _KEPT_SESSIONS.setdefault(stem, threading.BoundedSemaphore(MAX_SESSIONS))
        self._dir, self._stem, self._sessions = folder, stem, shared

    def _start_master(self, folder: str, stem: str) -> None:
        forwarded = _named(folder, stem, "docker.sock")
        argv = [
            "ssh", *self.target.options(_named(folder, stem, "control"), master=True),
            "-o", "ExitOnForwardFailure=yes",
            "-o", "StreamLocalBindUnlink=yes",
            "-o", "StreamLocalBindMask=0177",
            "-L", f"{forwarded}:{unix_socket_path(self.docker_host)}",
            "-N", "-f", "--", self.target.address,
        ]  # fmt: skip
        # A file, not a pipe: the backgrounded master keeps its stderr open for its life.
        log = os.open(
            _named(folder, stem, "master.log"),
            os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        with open(log, "w+") as err:
            try:
                done = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    timeout=COMMAND_TIMEOUT, check=False,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ConnectionFailed(f"{self._where}: cannot start ssh: {exc}") from None
            err.seek(0)
            said = err.read()
        if done.returncode != 0:
            raise ssh_failure(self.target, said)

    def close(self) -> None:
        """The API client; then a master of this run's own (``-O exit``) and its folder. A
        kept master stays, for the next run, until ``ControlPersist`` passes unused."""
        super().close()
        with self._master_lock:
            if self._finalizer is not None:
                self._finalizer()
                self._finalizer = None
            self._dir = ""
            self._stem = ""

    def run(
        self, argv: Sequence[str], input: bytes | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        """Run argv on the host (each argument quoted) through the master; a failed
        connection raises, the command's own exit status is the caller's to judge.

        A session the host refuses because all it allows on the connection are in use (other
        ccci processes share a kept master) is asked for again, after a pause, for at most
        SESSION_WAIT in all; then NoFreeSession says so. Only that refusal is retried: the
        command never started (and, its ssh having no way to log in by itself, never ran
        elsewhere), whereas after any other failure it may have run, and runs once at most."""
        command = remote_command(argv)
        retry = not self.target.names_jump_host  # else ssh's own login may have run it
        deadline = time.monotonic() + SESSION_WAIT
        pause = SESSION_PAUSE[0]
        restarted = False
        while True:
            # Each try: the master may have expired while this command waited.
            self.connect()
            done = self._run_once(argv[0], command, input, timeout)
            said = done.stderr.decode("utf-8", errors="replace")
            if done.returncode != SSH_FAILED:
                return done
            if retry and not restarted and NO_MASTER in said and self._restart_dead_master():
                # The master was gone before the session (killed, or it expired just now):
                # ssh tried its own login instead, which cannot connect, so nothing ran.
                restarted = True
                continue
            if not (retry and SESSION_REFUSED in said):
                raise ssh_failure(self.target, said)
            if time.monotonic() + pause > deadline:
                raise NoFreeSession(
                    f"{self._where}: the SSH connection has no free session: every session "
                    f"the host's sshd allows on one connection (MaxSessions) stayed in use "
                    f"for {SESSION_WAIT:.0f}s, so {argv[0]} was not run (raise MaxSessions "
                    "in the host's sshd_config, or run fewer ccci at once)"
                )
            _pause(pause)
            pause = min(pause * 2, SESSION_PAUSE[1])

    def _restart_dead_master(self) -> bool:
        """A new master when the control socket no longer answers (a killed master leaves
        it behind, and connect() takes a socket file for a running master); whether the
        master was dead."""
        with self._master_lock:
            if not self._dir or _answers(self.control_path):
                return False
            if self.target.persist:
                self._connect_kept()  # under its file lock: stale sockets go, a master starts
                return True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.control_path)
            self._connect_own()
            return True

    def _run_once(
        self, name: str, command: str, input: bytes | None, timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        """One ssh through the master, holding one of this process's sessions for it."""
        ssh = ["ssh", *self.target.options(self.control_path), "--", self.target.address, command]
        with self._sessions:
            try:
                return subprocess.run(
                    ssh, input=input, capture_output=True, timeout=timeout, check=False,
                    stdin=None if input is not None else subprocess.DEVNULL,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise ConnectionFailed(
                    f"{self._where}: {name} did not finish within {timeout:.0f}s (timed out)"
                ) from None

    def _check(self, argv: Sequence[str], what: str, input: bytes | None = None) -> bytes:
        done = self.run(argv, input=input)
        if done.returncode != 0:
            raise RemoteCommandFailed(f"{self.host}: {what}: {_said(done)}")
        return done.stdout

    @property
    def _shown(self) -> str:
        """The remote engine as errors name it: its socket, the host, and how it is reached."""
        return f"{self.docker_host} on {self.target.describe()} (over SSH)"

    @property
    def api(self) -> Any:
        """The remote engine's reads by plain HTTP on the forwarded socket, as a local socket's
        are (see engineapi: a plan imports no docker SDK), and the rest by the SDK's client on
        the same socket. The SSH master is started first, and every read and request runs
        ``connect`` ahead of it (a master that expired while idle is started again); a
        failure is a ConnectionFailed naming the host and the remote engine."""
        if self._client is None:
            self.connect()
        return super().api

    def _plain_socket(self) -> str:
        """The master's forwarded socket: never the local ``docker_host``."""
        return self.forwarded_socket

    def _base_url(self) -> str:
        """The SDK's client on the forwarded socket too: what the plain-HTTP reads hand on
        (removals, pulls, targeted inspects)."""
        return f"unix://{self.forwarded_socket}"

    def _ready(self) -> None:
        """A master that expired while idle is started again before a read or request."""
        self.connect()

    # ---- the host itself: all remote ------------------------------------------------

    def disk_usage(self, path: str) -> DiskUsage:
        """statvfs on the host (``stat -f``), counted as the local connector counts it."""
        out = self._check(["stat", "-f", "-c", "%S %b %f %a", "--", path], f"stat -f {path}")
        frsize, blocks, free, avail = (int(v) for v in out.split())
        return DiskUsage(
            path=path,
            total=blocks * frsize,
            used=(blocks - free) * frsize,
            available=avail * frsize,
        )

    def stat_file(self, path: str) -> FileFact:
        """As the local connector's: size, time, and only ``DOMAIN``/``STACK_NAME`` of the
        file's text, read on the host (at most the read limit and one byte travels)."""
        from ccci.facts.stacks import ENV_READ_LIMIT, parse_env_keys

        done = self.run(sh_script(_STAT_FILE, path, str(ENV_READ_LIMIT + 1)))
        head, _, raw = done.stdout.partition(b"\n")
        if done.returncode not in (0, 3) or not head:
            raise RemoteCommandFailed(f"{self.host}: stat {path}: {_said(done)}")
        if head == b"absent":
            return FileFact(path=path, exists=False)
        mode, size, mtime = head.decode().split()
        modified = datetime.fromtimestamp(int(mtime), tz=UTC)
        found = FileFact(path=path, exists=True, size=int(size), modified=modified)
        if not stat.S_ISREG(int(mode, 16)):
            return replace(found, error="not a regular file")
        if int(size) > ENV_READ_LIMIT or len(raw) > ENV_READ_LIMIT:
            return replace(found, error=f"larger than {ENV_READ_LIMIT // 1024} KiB")
        if done.returncode == 3:
            return replace(found, error=_said(done) or "unreadable")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return replace(found, error="not UTF-8 text")
        keys = parse_env_keys(text)
        return replace(found, domain=keys.get("DOMAIN", ""), stack_name=keys.get("STACK_NAME", ""))

    def glob(self, pattern: str) -> list[str]:
        """The host's shell expands the pattern (no word splitting); existing paths only,
        and never ``.`` or ``..`` (a shell's ``.*`` has them, Python's glob has not)."""
        out = self._check(sh_script(_GLOB, pattern), f"glob {pattern}")
        found = (p.decode("utf-8", errors="surrogateescape") for p in out.split(b"\0") if p)
        return sorted(p for p in found if os.path.basename(p) not in (".", ".."))

    def remove_file(self, path: str) -> None:
        """``rm -f``: already gone is fine, as locally."""
        self._check(["rm", "-f", "--", path], f"rm {path}")

    def client_config(self, path: str) -> ClientConfig:
        """The host's Docker client config, names only (the secrets are dropped on parse)."""
        from ccci.facts.clientconfig import parse_client_config

        done = self.run(sh_script(_READ, path, str(CLIENT_CONFIG_LIMIT + 1)))
        if done.returncode == 4:
            return ClientConfig(path=path, found=False)
        if done.returncode != 0:
            return ClientConfig(path=path, found=False, error=_said(done) or "unreadable")
        if len(done.stdout) > CLIENT_CONFIG_LIMIT:
            return ClientConfig(path=path, found=False, error="larger than 1 MiB")
        try:
            text = done.stdout.decode("utf-8")
        except UnicodeDecodeError:
            return ClientConfig(path=path, found=False, error="not UTF-8 text")
        return parse_client_config(path, text)

    def systemctl(self, verb: str, *units: str, options: Sequence[str] = ()) -> str:
        """The host's ``systemctl VERB OPTIONS -- UNITS`` (TZ=UTC, as locally)."""
        argv = [verb, *options, *(("--", *units) if units else ())]
        done = self.run(["env", "TZ=UTC", "systemctl", *argv])
        if done.returncode != 0:
            raise CcciError(f"{self.host}: systemctl {' '.join(argv)}: {_said(done) or 'failed'}")
        return done.stdout.decode("utf-8", errors="replace")

    def units(self, names: list[str]) -> tuple[str, tuple[Unit, ...]]:
        """The host's systemd state and the named units, as the local connector reads them."""
        from ccci.facts.systemd import SHOW_PROPERTIES, parse_show, usable

        if not names:
            return "", ()
        asked = self.run(["systemctl", "is-system-running"])
        if asked.returncode == 127:
            return "not available (systemctl not found)", ()
        state = asked.stdout.decode("utf-8", errors="replace").strip() or "unknown"
        if not usable(state):
            return state, ()
        props = [arg for p in SHOW_PROPERTIES for arg in ("-p", p)]
        shown = self.systemctl("show", *names, options=("--timestamp=unix", *props))
        found = parse_show(shown, names)
        paths = [u.fragment_path for u in found if u.fragment_path]
        heads = dict(zip(paths, self._first_lines(paths), strict=True)) if paths else {}
        return state, tuple(
            replace(u, fragment_head=heads[u.fragment_path]) if u.fragment_path else u
            for u in found
        )

    def _first_lines(self, paths: list[str]) -> list[str]:
        """Each file's first line (of its first 256 bytes), '' when unreadable: one command."""
        out = self._check(sh_script(_FIRST_LINES, *paths), "read unit headers")
        lines = out.decode("utf-8", errors="replace").split("\n")
        return (lines + [""] * len(paths))[: len(paths)]

    def unit_file(self, path: str) -> UnitFile:
        """Read by one remote shell script (writability, real path, link, content); a folder in the
        Nix store counts as read-only, and a failed read is an error, never an absent unit."""
        folder = os.path.dirname(path)
        done = self.run(sh_script(_UNIT_FILE, path, folder))
        fields = done.stdout.split(b"\0", 4)
        if done.returncode != 0 or len(fields) < 5:
            raise RemoteCommandFailed(f"{self.host}: read {path}: {_said(done)}")
        writable, real, exists, link, raw = fields
        dir_writable = writable == b"1" and not real.decode(errors="replace").startswith(
            "/nix/store"
        )
        found = UnitFile(
            path=path,
            exists=exists == b"1",
            link=link.decode("utf-8", errors="replace"),
            dir_writable=dir_writable,
        )
        if not raw:
            return found
        try:
            return replace(found, content=raw.decode("utf-8"))
        except UnicodeDecodeError:
            return found

    def write_file(self, path: str, content: str) -> None:
        """Atomic on the host: a temporary file in the same folder, synced, then ``mv``."""
        folder, name = os.path.dirname(path) or ".", os.path.basename(path)
        done = self.run(sh_script(_WRITE, path, folder, name), input=content.encode("utf-8"))
        if done.returncode != 0:
            raise WriteFailed(f"{self.host}:{path}: cannot write: {_said(done) or 'failed'}")


# A unix socket's path holds 108 bytes on Linux (104 on the BSDs): the longest name ccci puts
# in its folder is docker.sock, so the folder's own path must leave room for it.
SOCKET_PATH_MAX = 104
_LONGEST_NAME = "docker.sock"


def private_folder() -> str:
    """A new 0700 folder for a host's control and forwarded sockets, where their paths fit a
    unix socket: the temporary directory (``TMPDIR``) when it is short enough, else
    ``XDG_RUNTIME_DIR`` (the user's own, 0700), else ``/tmp``. Without this, a deep
    ``TMPDIR`` made every host unreachable ("too long for Unix domain socket")."""
    sample = "ccci-ssh-" + "x" * 8  # mkdtemp's random part is 8 characters
    for root in (tempfile.gettempdir(), os.environ.get("XDG_RUNTIME_DIR", ""), "/tmp"):
        fits = len(os.path.join(root, sample, _LONGEST_NAME).encode()) <= SOCKET_PATH_MAX
        if root and os.path.isdir(root) and fits:
            return tempfile.mkdtemp(prefix="ccci-ssh-", dir=root)
    # Too long everywhere: ssh then says so, in the host's one-line error.
    return tempfile.mkdtemp(prefix="ccci-ssh-")


# The kept folder's longest name: a master's key (16 hex digits) and ".docker.sock".
_KEPT_LONGEST = "0" * 16 + ".docker.sock"


def _named(folder: str, stem: str, name: str) -> str:
    """One of a master's files: ``control``, ``docker.sock``, ``master.log``, ``lock``."""
    return os.path.join(folder, f"{stem}.{name}" if stem else name)


def master_key(target: SshTarget, remote_socket: str) -> str:
    """16 hex digits of a digest of everything that decides what a master reaches and how:
    the local ``ssh`` binary, user, address, port, key file, the inventory's ssh options, the
    remote socket it forwards, and the ssh config files it read (each by path, size and
    mtime). A run that changes any of them, or edits a config file, gets a master of its own,
    never another connection's (one whose host key was checked against other known_hosts,
    or that logged in as another user, or with a ``User`` or ``HostName`` since changed)."""
    found = shutil.which("ssh")
    args = [*target.common_args, *target.extra_args]
    parts = [
        os.path.realpath(found) if found else "ssh",
        target.user,
        target.address,
        target.port,
        os.path.abspath(target.key_file) if target.key_file else "",
        list(target.common_args),
        list(target.extra_args),
        remote_socket,
        [_file_identity(path) for path in ssh_config_files(args)],
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"


def ssh_config_files(args: Sequence[str]) -> list[str]:
    """The config files ssh reads with these options: each ``-F`` file, else the user's
    ``~/.ssh/config`` (in the home the user database names, as ssh finds it) and the
    system's."""
    named = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-F"]
    named += [arg[2:] for arg in args if arg.startswith("-F") and len(arg) > 2]
    if named:
        return [os.path.abspath(os.path.expanduser(path)) for path in named]
    import pwd

    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        home = os.path.expanduser("~")
    return [os.path.join(home, ".ssh", "config"), SYSTEM_SSH_CONFIG]


def _file_identity(path: str) -> list[object]:
    """A file as the key sees it: its path, size and mtime; a missing one only by its path."""
    try:
        found = os.stat(path)
    except OSError:
        return [path]
    return [path, found.st_size, found.st_mtime_ns]


def kept_folder(where: str = "ssh") -> str:
    """The folder this user's kept masters live in: ``CCCI_SSH_CONTROL_DIR``, else
    ``$XDG_RUNTIME_DIR/ccci-ssh`` (when that is the user's own, as it is meant to be: gone
    at logout), else ``/tmp/ccci-ssh-<uid>``. One fixed place and not ``TMPDIR``: the next
    run must find the master whatever its own TMPDIR (a nightly's and a shell's differ).

    Made 0700 when missing. Used only when it is a folder (not a link) that this user owns
    and no one else can write to, checked every time a run first needs it, as OpenSSH
    checks ``~/.ssh``: in a shared ``/tmp`` another user may have made the name first, and
    whoever can write there could put a socket of theirs where ccci's would be. ``where``
    begins the error (the host)."""
    chosen = os.environ.get(CONTROL_DIR_ENV, "")
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if chosen:
        folder = os.path.abspath(chosen)
    elif _own_runtime_dir(runtime) and _fits(os.path.join(runtime, "ccci-ssh")):
        folder = os.path.join(runtime, "ccci-ssh")
    else:
        folder = f"/tmp/ccci-ssh-{os.getuid()}"
    if "%" in folder:
        raise UnsafeControlFolder(
            f"{where}: SSH control folder {folder}: holds a '%', which ssh reads as the start "
            f"of a token in socket paths; name another in {CONTROL_DIR_ENV}"
        )
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UnsafeControlFolder(
            f"{where}: SSH control folder {folder}: cannot make it: {exc.strerror}"
        ) from None
    why = _not_private(folder)
    if why:
        raise UnsafeControlFolder(
            f"{where}: SSH control folder {folder}: {why}; refusing to use it (remove it, "
            f"name a folder of your own in {CONTROL_DIR_ENV}, or set {PERSIST_ENV}=no)"
        )
    return folder


def _own_runtime_dir(runtime: str) -> bool:
    """Whether ``XDG_RUNTIME_DIR`` is this user's: ``sudo -E`` keeps the caller's, and a
    folder root made in it would then be refused to its user."""
    try:
        return os.path.isdir(runtime) and os.stat(runtime).st_uid == os.getuid()
    except OSError:
        return False


def _fits(folder: str) -> bool:
    return len(os.path.join(folder, _KEPT_LONGEST).encode()) <= SOCKET_PATH_MAX


def _not_private(folder: str) -> str:
    """Why ``folder`` is not this user's alone, or ''."""
    try:
        st = os.lstat(folder)
    except OSError as exc:
        return exc.strerror or "cannot be read"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link, not a folder"
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"its group or others can write to it (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def _answers(control: str) -> bool:
    """Whether a master listens on its control socket: a killed one leaves the file behind,
    and connecting to it is refused. (Cheaper than ``ssh -O check``, a process of its own.)"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(5)
    try:
        probe.connect(control)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """An exclusive flock on ``path``. Close-on-exec: the master that ssh leaves running in
    the background must not inherit the lock and hold it for its whole life."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _exit_master(control: str) -> None:
    """``ssh -O exit`` on a control socket alone: only the socket is asked, so no
    configuration (``-F /dev/null``) and a placeholder for the host ssh requires."""
    argv = ["ssh", "-F", "/dev/null", "-o", f"ControlPath={control}", "-O", "exit", "ccci"]
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(argv, capture_output=True, timeout=30, check=False)


def end_kept_masters(folder: str | None = None) -> list[str]:
    """End every master kept in ``folder`` (default :func:`kept_folder`'s) and remove the
    sockets killed ones left; the control sockets of the masters that were running. For
    whoever wants the connections gone now rather than ``ControlPersist`` after their last
    use (a test that stops a host's sshd: an established master outlives its listener)."""
    folder = folder or kept_folder()
    ended = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".control"):
            continue
        stem = name.removesuffix(".control")
        control = _named(folder, stem, "control")
        with _locked(_named(folder, stem, "lock")):  # never one a run is starting
            if _answers(control):
                _exit_master(control)
                ended.append(control)
            for left in (control, _named(folder, stem, "docker.sock")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(left)
    return ended


def _end_master(exit_argv: list[str], folder: str) -> None:
    """``ssh -O exit`` when the master still runs, then the private folder."""
    if os.path.exists(os.path.join(folder, "control")):
        subprocess.run(exit_argv, capture_output=True, timeout=30, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def _pause(seconds: float) -> None:
    """The wait between a refused session and the next try (a name of its own, so a test
    can see that a command really waited)."""
    time.sleep(seconds)


def _said(done: subprocess.CompletedProcess[bytes]) -> str:
    """The last line the command wrote to stderr."""
    lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else f"exit status {done.returncode}"
