"""Debian's ``nix-bin``, for parsing the NixOS modules ccci generates.

Only ``nix-instantiate --parse`` is used: it reads an expression and prints it back, without
evaluating it, a store, a daemon or the network. The package comes from Debian's archive
(apt), as the engine harness brings ``docker.io``; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import os
import subprocess

from harness import apt

PACKAGE = "nix-bin"
BINARY = "nix-instantiate"


class NixError(RuntimeError):
    """nix-instantiate is missing and could not be installed."""


def ensure_nix_instantiate() -> str:
    """The path of nix-instantiate, apt-installing ``nix-bin`` when it is missing (harness.apt's
    guard keeps the package's nix-daemon service from starting)."""
    apt.ensure({BINARY: PACKAGE}, NixError, timeout=900)
    found = apt.which(BINARY)
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
