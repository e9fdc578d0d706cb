"""Debian's ``nix-bin``, for parsing the NixOS modules ccci generates.

Only ``nix-instantiate --parse`` is used: it reads an expression and prints it back, without
evaluating it, a store, a daemon or the network. The package comes from Debian's archive
(apt), as the engine harness brings ``docker.io``; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGE = "nix-bin"
BINARY = "nix-instantiate"


class NixError(RuntimeError):
    """nix-instantiate is missing and could not be installed."""


def _found() -> str | None:
    return shutil.which(BINARY) or next(
        (p for p in ("/usr/bin/nix-instantiate",) if os.access(p, os.X_OK)), None
    )


def ensure_nix_instantiate() -> str:
    """The path of nix-instantiate, apt-installing ``nix-bin`` when it is missing."""
    found = _found()
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # nix-bin ships a nix-daemon service; a policy-rc.d keeps its postinst from starting it.
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as fh:
            fh.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE],
        ):
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.SubprocessError) as exc:
                raise NixError(f"{' '.join(cmd)}: {exc}") from None
            if proc.returncode != 0:
                said = f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
                raise NixError(f"{' '.join(cmd)} failed:\n{said}")
    finally:
        if made_policy:
            os.unlink(policy)
    found = _found()
    if not found:
        raise NixError(f"{BINARY} still missing after installing {PACKAGE}")
    return found


def parse(binary: str, text: str) -> subprocess.CompletedProcess[str]:
    """``nix-instantiate --parse`` of ``text`` (read from stdin); never evaluates it."""
    return subprocess.run(
        # dummy:// — no store at all: parsing needs none, and a fresh machine has no /nix.
        [binary, "--parse", "--store", "dummy://", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No store, state or config of the machine's own: the parser needs none of them.
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/nonexistent",
            "NIX_REMOTE": "",
        },
    )
