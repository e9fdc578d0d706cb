"""Image references as Docker reads them: ``repo[:tag][@digest]``, tag ``latest`` by default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ref:
    repo: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        return f"{self.repo}:{self.tag}"


def parse_ref(ref: str) -> Ref:
    """Split a reference; a ``library/`` prefix is dropped so ``library/redis`` = ``redis``."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        repo, tag = name[:colon], name[colon + 1 :]
    else:
        repo, tag = name, "latest" if name else ""
    repo = repo.removeprefix("library/")
    return Ref(repo=repo, tag=tag, digest=digest)


def digest_of(repo_digest: str) -> str:
    """``redis@sha256:ab…`` → ``sha256:ab…``."""
    return repo_digest.partition("@")[2]
