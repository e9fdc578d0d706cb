"""Which policy files a run reads: the folders and files named on the command line.

Apart from the loader (:mod:`ccci.policy.load`) so that the CLI can refuse an empty policy
set before it imports the pipeline, and a live plan can start its first reads meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ccci.config.yamlsrc import Document, load_file
from ccci.errors import InputError, Location

if TYPE_CHECKING:
    from ccci.config.yamlcache import ParsedCache


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files named on the command line, or every ``*.yaml``/``*.yml`` in named folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            found.append(path)
        else:
            raise InputError(Location(str(path), 0), "no such file or directory")
    return found


def read(paths: Iterable[Path], parsed: ParsedCache | None = None) -> list[Document]:
    """Every document of every policy file, unrendered: the pipeline's input. ``parsed`` (a
    run's cache of parsed files) spares parsing the files that did not change."""
    docs: list[Document] = []
    for path in discover(paths):
        docs.extend(load_file(path, str(path), parsed))
    return docs


def require_policies(paths: Iterable[Path], parsed: ParsedCache | None = None) -> None:
    """Refuse an empty policy set: with no policy, every host "matches policy", so a
    mistyped ``-p`` or a missing checkout would report a healthy host and exit 0. Files
    are read until one holds a document (a bad one's error is the loader's to report),
    through the run's cache of parsed files when there is one."""
    named = list(paths)
    if not any(load_file(path, str(path), parsed) for path in discover(named)):
        where = ", ".join(str(p) for p in named) or "policies"
        raise InputError(
            Location(where, 0),
            "no policy documents found (pass --allow-empty if an empty policy set is meant)",
        )
