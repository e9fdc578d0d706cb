"""BASE and HEAD of ``ccci policy diff``: a directory as it is, or a git revision's
policies and inventory written into a temporary directory.

Every git call goes through :func:`git`, so there is one place that runs a subprocess.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ccci.errors import CcciError


@dataclass(frozen=True)
class Tree:
    """One side of a diff: a folder holding the policies and the inventory.

    ``label`` is how the side was named (``origin/main``, ``../old``); ``revision`` is
    set for a git revision, so messages can say ``origin/main:policies/prune.yaml``.
    """

    root: Path
    label: str
    revision: str = ""

    def display(self, file: str) -> str:
        """How a file of this side is named in messages."""
        if self.revision:
            return f"{self.label}:{file}"
        return str(Path(self.label) / file)


def git(args: Sequence[str], cwd: Path | None = None) -> bytes:
    """Run git; its stderr becomes the message of a one-line CcciError."""
    try:
        done = subprocess.run(
            ["git", "-c", "core.quotepath=off", *args],
            cwd=cwd,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise CcciError(f"cannot run git: {exc.strerror}") from None
    if done.returncode != 0:
        problem = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CcciError(f"git {' '.join(args)}: {problem[-1] if problem else 'failed'}")
    return done.stdout


def _commit(revision: str, cwd: Path) -> str | None:
    """The commit a revision names, or None when it names none (or this is no repo)."""
    try:
        return git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd).decode()
    except CcciError:
        return None


def _blobs(commit: str, prefix: str, names: Sequence[str], cwd: Path) -> list[str]:
    """Files (blobs) under ``names`` at a commit, as paths from the repository root."""
    wanted = [f"{prefix}{n}" for n in names]
    listing = git(["ls-tree", "--full-tree", "-r", "-z", commit, "--", *wanted], cwd)
    found = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        if meta.split()[1] == b"blob":
            found.append(path.decode("utf-8"))
    return found


@contextmanager
def materialize(spec: str, names: Sequence[str], cwd: Path | None = None) -> Iterator[Tree]:
    """The side ``spec`` names: a directory as it stands, else the git revision's copy of
    ``names`` (policy folders, the inventory), read relative to the current directory
    within the repository, in a temporary directory removed afterwards.

    A name that is both a directory and a revision is the directory.
    """
    here = cwd or Path.cwd()
    folder = here / spec
    if folder.is_dir():
        yield Tree(folder, spec)
        return
    commit = _commit(spec, here)
    if commit is None:
        raise CcciError(f"{spec}: neither a directory nor a git revision")
    prefix = git(["rev-parse", "--show-prefix"], here).decode().strip()
    with tempfile.TemporaryDirectory(prefix="ccci-diff-") as tmp:
        root = Path(tmp)
        for path in _blobs(commit.strip(), prefix, names, here):
            inside = PurePosixPath(path)
            target = root / (inside.relative_to(prefix) if prefix else inside)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(git(["cat-file", "blob", f"{commit.strip()}:{path}"], here))
        yield Tree(root, spec, revision=commit.strip())
