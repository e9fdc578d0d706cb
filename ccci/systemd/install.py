"""``ccci systemd install``: ccci's own nightly oneshot and its timer.

The values are the ones a TimerPolicy ``present`` entry takes, so the installed units are
exactly what such a policy would render (and a policy can then own them). Each value, the
command's options included, passes the same checks a policy's values do.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccci.errors import CcciError
from ccci.policy.build import timer_values
from ccci.policy.model import Policy
from ccci.policy.workscope import SCOPE_ALL, SCOPES
from ccci.systemd.values import FieldError, check_path, check_timer, control_character

if TYPE_CHECKING:
    from ccci.connectors.base import Connector

UNIT_NAME = "ccci-reconcile"
DEFAULT_STATE_DIR = Path("/var/lib/ccci")
NIGHTLY_ARGS = "reconcile --apply --yes"
# reconcile's own default: an install that does not name --forks leaves it out.
DEFAULT_FORKS = 5
# What a --limit pattern may hold in ExecStart=: Ansible's pattern syntax, minus what systemd
# would read otherwise (``$`` expands a variable, ``%`` a specifier, blanks split words,
# quotes and backslashes unquote and escape) and what starts a second word or an option.
_LIMIT = re.compile(r"[A-Za-z0-9_.:!&*,~\[\]+?^(){}|@/=-]+")
# The options each field of the nightly's values comes from, to name in an error.
_OPTIONS = {
    "on_calendar": "--on-calendar",
    "randomized_delay": "--randomized-delay",
    "working_directory": "--working-directory",
    "read_write_paths": "the writable paths",
    "exec": "the path of ccci itself",
}


def ccci_command() -> str:
    """The absolute path of this ccci, so the unit runs the same one that installed it."""
    found = shutil.which("ccci")
    if found:
        return os.path.abspath(found)
    return f"{sys.executable} -m ccci"


@dataclass(frozen=True)
class Farm:
    """How the nightly covers a farm (docs/operations.md, "A farm's nightly"): ``scope`` is
    reconcile's ``--scope`` (``node`` on each node's own oneshot, ``all`` on the one run
    that does the cluster work), and ``limit``/``forks``/``connection`` the hosts one
    manager's run reaches, and how. The defaults are a single host's nightly."""

    scope: str = SCOPE_ALL
    limit: str | None = None
    forks: int = DEFAULT_FORKS
    connection: str | None = None

    def args(self) -> str:
        """reconcile's options for these values, only those that are not its defaults."""
        words = []
        if self.scope != SCOPE_ALL:
            words += ["--scope", self.scope]
        if self.limit:
            words += ["--limit", self.limit]
        if self.forks != DEFAULT_FORKS:
            words += ["--forks", str(self.forks)]
        if self.connection:
            words += ["--connection", self.connection]
        return " ".join(words)


def check_farm(farm: Farm) -> Farm:
    """The farm's values as reconcile takes them, each one word of ExecStart=."""
    if farm.scope not in SCOPES:
        raise CcciError(
            f"ccci systemd install: --scope: {farm.scope!r} is not one of {', '.join(SCOPES)}"
        )
    if farm.limit is not None:
        found = control_character(farm.limit)
        if found:
            raise CcciError(f"ccci systemd install: --limit: the pattern holds {found}")
        if farm.limit.startswith("-") or not _LIMIT.fullmatch(farm.limit):
            raise CcciError(
                f"ccci systemd install: --limit: {farm.limit!r} holds what the unit's "
                "command line would not pass on as written (a blank, a quote, a backslash, "
                "'$', '%', or a leading '-'); write the pattern with group and host names"
            )
    if not 1 <= farm.forks <= 256:
        raise CcciError(f"ccci systemd install: --forks: {farm.forks} is not within 1-256")
    if farm.connection not in (None, "local", "ssh"):
        raise CcciError(
            f"ccci systemd install: --connection: {farm.connection!r} is not local or ssh"
        )
    return farm


def nightly_args(state_dir: Path, farm: Farm | None = None) -> str:
    """What the nightly runs ccci with: the farm's options, and the state dir only when it
    is not the default, so the sandbox's writable state dir is the one the run uses."""
    words = [NIGHTLY_ARGS]
    if farm is not None and farm.args():
        words.append(farm.args())
    if Path(state_dir) != DEFAULT_STATE_DIR:
        words.append(f"--state-dir {state_dir}")
    return " ".join(words)


def nightly_values(
    working_directory: Path,
    on_calendar: str,
    randomized_delay: str,
    state_dir: Path,
    unit_dir: Path = Path("/etc/systemd/system"),
    policies: Iterable[Policy] = (),
    unit_dir_writable: bool = True,
    farm: Farm | None = None,
) -> dict[str, Any]:
    """The nightly's values. The sandbox keeps writable the state directory, the unit
    directory (a TimerPolicy writes and masks units there) and every folder the policies
    write in (ccci.systemd.sandbox): the env-file folders an OrphanStackPolicy reaps from.
    ``unit_dir_writable`` is False for NixOS, whose unit folders are the Nix store's."""
    from ccci.systemd.sandbox import env_file_folders, writable_paths

    for option, path in (("--state-dir", state_dir), ("--unit-dir", unit_dir)):
        try:
            check_path(str(path))
        except ValueError as exc:
            raise CcciError(f"ccci systemd install: {option}: {exc}") from None
    listed = list(policies)
    derived = writable_paths(listed) if unit_dir_writable else env_file_folders(listed)
    paths = {str(state_dir), *derived}
    if unit_dir_writable:
        paths.add(str(unit_dir))
    item = {
        "name": UNIT_NAME,
        "description": "ccci: reconcile this Docker CI host with its policies",
        "on_calendar": on_calendar,
        "persistent": True,
        "randomized_delay": randomized_delay,
        "exec": f"{ccci_command()} {nightly_args(state_dir, farm)}",
        "success_exit_status": "75",
        "after": "docker.service",
        "hardening": True,
        "read_write_paths": sorted(paths),
        "working_directory": str(working_directory),
    }
    check_install_values(item)
    return timer_values(item, policy="ccci systemd install")


def check_install_values(item: dict[str, Any]) -> None:
    """The checks a TimerPolicy's values pass, naming the option a bad value came from."""
    from ccci.quantities import parse_duration

    try:
        check_timer(item)
        parse_duration(item["randomized_delay"])
    except FieldError as exc:
        option = _OPTIONS.get(str(exc.field[0]), str(exc.field[0]))
        raise CcciError(f"ccci systemd install: {option}: {exc}") from None
    except ValueError as exc:
        raise CcciError(f"ccci systemd install: --randomized-delay: {exc}") from None


def nightly_policies(working_directory: Path, farm: Farm | None = None) -> tuple[list[Policy], str]:
    """The policies the nightly will run (``policies/`` and ``inventory.yaml`` in its
    working directory), of every host its ``--limit`` takes, and a note when there are none
    to read yet: their folders then cannot be known, and the install says so rather than
    guess. A limit that matches no host is refused here, at install, not on the first night."""
    from ccci.config import inventory as inventory_mod
    from ccci.policy.load import load_for_hosts

    folder = working_directory / "policies"
    inventory = inventory_mod.load(working_directory / "inventory.yaml")
    hosts = inventory.limit(farm.limit if farm is not None else None)
    if not folder.is_dir() or not any(folder.glob("*.y*ml")):
        note = (
            f"no policies at {folder}: the nightly may write only the state and unit "
            "folders; run this again once the policies are there"
        )
        return [], note
    targets = load_for_hosts([folder], inventory, hosts)
    return [p for t in targets for p in t.policies], ""


def nightly_hosts(working_directory: Path, farm: Farm | None = None) -> list[tuple[str, str]]:
    """Each host the nightly reaches and how (``local``, ``ssh``), in the inventory's
    order: what the install tells the operator, and whether a NixOS unit needs OpenSSH."""
    from ccci.config import inventory as inventory_mod
    from ccci.connectors.connection import connection_of

    inventory = inventory_mod.load(working_directory / "inventory.yaml")
    override = farm.connection if farm is not None else None
    return [
        (h.name, connection_of(h.name, h.vars, override))
        for h in inventory.limit(farm.limit if farm is not None else None)
    ]


def install(conn: Connector, unit_dir: Path, files: dict[str, str], state_dir: Path) -> list[str]:
    """Write the unit files, reload systemd, enable and start the timer; returns the paths.
    A file there that ccci did not write (no header, or a mask) is refused before anything
    is written: it is someone else's. The state directory is made first: the first nightly
    run journals there."""
    from ccci.systemd.units import MANAGED_HEADER

    for filename in files:
        current = conn.unit_file(str(unit_dir / filename))
        if current.exists and not current.content.startswith(MANAGED_HEADER):
            what = f"a mask ({current.link})" if current.link == "/dev/null" else "a unit file"
            raise CcciError(
                f"{unit_dir / filename} is {what} ccci did not write (no '{MANAGED_HEADER}' "
                "header): remove it first, or choose another --unit-dir; nothing was written"
            )
    state_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, content in files.items():
        path = str(unit_dir / filename)
        conn.write_file(path, content)
        written.append(path)
    conn.systemctl("daemon-reload")
    conn.systemctl("enable", f"{UNIT_NAME}.timer", options=("--now",))
    return written
