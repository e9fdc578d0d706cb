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
from ccci.render.escape import terminal


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
            target = _target(root, spec, path, prefix)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # The blob is read by its object id, never by its (refused-if-odd) path.
                target.write_bytes(git(["cat-file", "blob", f"{commit.strip()}:{path}"], here))
            except OSError as exc:
                raise CcciError(
                    f"{spec}: cannot copy {terminal(path)!r} out of git: {exc.strerror}"
                ) from None
        yield Tree(root, spec, revision=commit.strip())


# Path parts a git tree can hold (``git mktree`` accepts them) that a checkout never writes:
# each would lead out of the folder or into git's own.
_ODD_PARTS = frozenset({"", ".", "..", ".git"})


def _target(root: Path, spec: str, path: str, prefix: str) -> Path:
    """Where a blob of the revision goes under ``root``; a tree entry that would leave
    it (``..``, an absolute or empty part) refuses the whole side, naming the entry."""
    parts = path.split("/")
    if any(p in _ODD_PARTS for p in parts):
        raise CcciError(
            f"{spec}: refusing tree entry {terminal(path)!r}: "
            "a path part is '..', '.', '.git' or empty (a crafted tree, not a checkout)"
        )
    inside = PurePosixPath(path)
    target = root / (inside.relative_to(prefix) if prefix else inside)
    # Belt and braces: whatever the parts, nothing is written outside the temp folder.
    if not target.resolve().is_relative_to(root.resolve()):
        raise CcciError(f"{spec}: refusing tree entry {terminal(path)!r}: it leaves the folder")
    return target
