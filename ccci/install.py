"""``ccci systemd install``: ccci's own nightly oneshot and its timer.

The values are the ones a TimerPolicy ``present`` entry takes, so the installed units are
exactly what such a policy would render (and a policy can then own them).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ccci.policy.build import timer_values

UNIT_NAME = "ccci-reconcile"


def ccci_command() -> str:
    """The absolute path of this ccci, so the unit runs the same one that installed it."""
    found = shutil.which("ccci")
    if found:
        return os.path.abspath(found)
    return f"{sys.executable} -m ccci"


def nightly_values(
    working_directory: Path,
    on_calendar: str,
    randomized_delay: str,
    state_dir: Path,
    unit_dir: Path = Path("/etc/systemd/system"),
) -> dict[str, Any]:
    """The nightly's values. The sandbox keeps the state directory and the unit directory
    writable: the run journals there, and a TimerPolicy writes and masks units there."""
    return timer_values(
        {
            "name": UNIT_NAME,
            "description": "ccci: reconcile this Docker CI host with its policies",
            "on_calendar": on_calendar,
            "persistent": True,
            "randomized_delay": randomized_delay,
            "exec": f"{ccci_command()} reconcile --apply --yes",
            "success_exit_status": "75",
            "after": "docker.service",
            "hardening": True,
            "read_write_paths": [str(state_dir), str(unit_dir)],
            "working_directory": str(working_directory),
        },
        policy="ccci systemd install",
    )


def install(conn: Any, unit_dir: Path, files: dict[str, str], state_dir: Path) -> list[str]:
    """Write the unit files, reload systemd, enable and start the timer; returns the paths.
    The state directory is made first: the first nightly run journals there."""
    state_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, content in files.items():
        path = str(unit_dir / filename)
        conn.write_file(path, content)
        written.append(path)
    conn.systemctl("daemon-reload")
    conn.systemctl("enable", "--now", f"{UNIT_NAME}.timer")
    return written
