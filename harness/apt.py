"""Debian packages the harness needs on a fresh machine, installed through apt when missing.

CI runs as root on a new Debian machine, so a tool the harness uses (dockerd, sshd,
docker-registry, nix-instantiate, debootstrap, ...) may not be there yet; this is the one
place that installs it. Every install runs with a policy-rc.d that refuses all service
starts: otherwise a package's postinst would start the *machine's* own daemon (a system
dockerd, sshd on port 22, a registry on 0.0.0.0:5000, nix-daemon), which the harness did
not start and must never own. Stdlib only, like the rest of the harness.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

POLICY_RC = "/usr/sbin/policy-rc.d"
# Daemons and Debian's admin tools live in sbin, which a CI job's PATH may lack.
_SEARCH = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")


def which(tool: str) -> str | None:
    """Where ``tool`` (a name, or an absolute path) is, looking in sbin too."""
    path = ":".join([os.environ.get("PATH", ""), *_SEARCH])
    return shutil.which(tool, path=path)


def ensure(
    tools: Mapping[str, str], error: type[Exception] = RuntimeError, timeout: float | None = None
) -> None:
    """Install the package of every tool in ``tools`` (tool → Debian package) that is not
    found, then check that all are; ``error`` is the caller's own error class, raised with
    apt's words when anything fails. Nothing runs when every tool is there already."""
    wanted = sorted({package for tool, package in tools.items() if not which(tool)})
    if not wanted:
        return
    install(wanted, error, timeout)
    if missing := [tool for tool in tools if not which(tool)]:
        raise error(f"still missing after installing {', '.join(wanted)}: {', '.join(missing)}")


def install(
    packages: Sequence[str], error: type[Exception] = RuntimeError, timeout: float | None = None
) -> None:
    """``apt-get update`` and ``apt-get install`` (no recommends), with no service started."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Only a policy-rc.d of our own making is removed again: the machine's stays as it was.
    made_policy = not os.path.exists(POLICY_RC)
    if made_policy:
        with open(POLICY_RC, "w") as fh:
            fh.write("#!/bin/sh\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
    try:
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        ):
            try:
                proc = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=timeout,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                raise error(f"{' '.join(cmd)}: {exc}") from None
            if proc.returncode != 0:
                said = f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
                raise error(f"{' '.join(cmd)} failed:\n{said}")
    finally:
        if made_policy:
            os.unlink(POLICY_RC)
