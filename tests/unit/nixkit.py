"""What the unit tests of generated NixOS modules share: nix-instantiate, and evaluating a
module into plain values with a stand-in for nixpkgs.

test_unit_fuzz.py and test_farm_nightly.py each check modules by evaluating them; one
spelling of how nix-instantiate is had (and when its absence fails rather than skips) and of
the stand-in keeps the two from drifting apart.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.nix import NixError, ensure_nix_instantiate

# A stand-in for nixpkgs' lib and the module system's arguments: just enough to evaluate
# the module into plain values (nothing of nixpkgs is needed, or fetched). ``pkgs`` is the
# caller's: a module that puts a package on a unit's PATH needs a store path for it.
EVAL = """
let
  module = import {path};
  lib = {{
    mkForce = v: {{ _forced = v; }};
    mkPackageOption = pkgs: name: extra: {{ _package = name; }};
  }};
in module {{
  config.services.ccci.package = "/nix/store/stub-ccci";
  inherit lib;
  pkgs = {pkgs};
}}
"""


def require_nix_instantiate() -> str:
    """nix-instantiate (apt-installed from Debian's nix-bin when missing): a test that needs
    it fails under CI, where its absence is a broken image, and skips elsewhere."""
    from harness.pytest_support import in_ci

    try:
        return ensure_nix_instantiate()
    except NixError as exc:
        if in_ci():
            pytest.fail(f"nix-instantiate cannot be had: {exc}", pytrace=False)
        pytest.skip(f"nix-instantiate cannot be had: {exc}")


def evaluate_module(nix: str, module: str, tmp: Path, pkgs: str = "{ }") -> dict[str, Any]:
    """``module`` (the text of a NixOS module) evaluated strictly to JSON, with ``pkgs`` (a
    Nix attribute set) as its packages; no store, no network, no HOME."""
    path = tmp / "module.nix"
    path.write_text(module, encoding="utf-8")
    expr = EVAL.format(path=path, pkgs=pkgs)
    done = subprocess.run(
        [nix, "--eval", "--strict", "--json", "--store", "dummy://", "-E", expr],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        check=False,
    )
    assert done.returncode == 0, f"{done.stderr}\n--- module ---\n{module}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result
