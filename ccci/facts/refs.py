"""Image references, one model for the whole of ccci: parsed and normalised as Docker does.

Docker's reference grammar (distribution/reference) names one image in many spellings:
``redis`` = ``library/redis`` = ``docker.io/library/redis:latest`` =
``index.docker.io/library/redis:latest``. Retain patterns, ``ensure_present``, service and
task specs and the engine's own tags (short on the classic image store, long on the
containerd one) are all compared in the canonical form, so each spelling names the same
image. The grammar itself comes from ``docker-image-py``, a port of distribution/reference;
this module adds what ccci needs on top: a typed result, strictness about whitespace and
control characters (the port anchors with ``$``, which accepts a trailing newline), image-id
references, and glob patterns.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccci.facts.model import Image

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_ID = re.compile(r"\A(?:sha256:)?[0-9a-f]{64}\Z")
_ID_PREFIX = re.compile(r"\Asha256:[0-9a-f]{1,64}\Z")
_DIGEST = re.compile(r"\A[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}\Z")
_GLOB = re.compile(r"\[[^\]]*\]|[*?]")
_PRINTABLE = re.compile(r"\A[\x21-\x7e]+\Z")


# The plain spellings CI hosts are full of (``bench/app:build-1``, ``localhost:5000/x:y``),
# in Docker's grammar but narrower: lower case only, no digest, no IPv6 domain. Such text
# is parsed here, in the stdlib; anything else goes to docker-image-py, whose import and
# per-reference parsing cost more than a whole plan's rules on 1,500 images.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z", re.ASCII)
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
                     r"(?::[0-9]+)?\Z", re.ASCII)  # fmt: skip
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z", re.ASCII)
_FAST_MAX = 200  # well under Docker's 255 for a canonical name, so no length edge here


def _plain_ref(text: str) -> Ref | None:
    """``text`` parsed as Docker would, when it is in the plain subset; else None."""
    if len(text) > _FAST_MAX or "@" in text:
        return None
    slash = text.rfind("/")
    colon = text.rfind(":")
    name, tag = (text[:colon], text[colon + 1 :]) if colon > slash else (text, "")
    if colon > slash and not _TAG.match(tag):
        return None
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            return None
        domain, path = (DEFAULT_DOMAIN if first == LEGACY_DOMAIN else first), rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    parts = path.split("/")
    if not all(_COMPONENT.match(p) for p in parts) or _ID.match(path):
        return None  # a 64-hex repository: docker-image-py says why it is refused
    if domain == DEFAULT_DOMAIN and len(parts) == 1:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return Ref(repo=f"{domain}/{path}", tag=tag)


class InvalidReference(ValueError):
    """Text that Docker would not accept as an image reference (the message says why)."""


@dataclass(frozen=True)
class Ref:
    """A normalised reference: ``repo`` is canonical (``docker.io/library/redis``); ``tag``
    and ``digest`` are empty when the text gave none."""

    repo: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``repo:tag`` with Docker's default tag: what a tag on an image is compared by."""
        return f"{self.repo}:{self.tag or DEFAULT_TAG}"

    @property
    def familiar(self) -> str:
        """The short form ``docker image ls`` shows: ``redis:7-alpine``."""
        shown = familiar_repo(self.repo)
        if self.tag:
            shown += f":{self.tag}"
        if self.digest:
            shown += f"@{self.digest}"
        return shown


# Docker Hub's names: the client config keys it as ``https://index.docker.io/v1/``, images
# name it ``docker.io`` or ``index.docker.io``, and its API host is ``registry-1.docker.io``.
HUB_HOSTS = frozenset({DEFAULT_DOMAIN, LEGACY_DOMAIN, "registry-1.docker.io"})


def canonical_registry(host: str) -> str:
    """A registry host as one name: any of Docker Hub's names is ``docker.io``."""
    host = host.strip().lower()
    return DEFAULT_DOMAIN if host in HUB_HOSTS else host


def registry_host(key: str) -> str:
    """A config key (``https://host/v1/``, ``host:5000``) as the bare registry host, Docker
    Hub under one name whichever of its names the key uses (``docker login`` writes
    ``https://index.docker.io/v1/``; a policy says ``docker.io``)."""
    host = key.strip()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    return canonical_registry(host.split("/", 1)[0])


def familiar_repo(repo: str) -> str:
    """``docker.io/library/redis`` → ``redis``; ``docker.io/foo/bar`` → ``foo/bar``."""
    if repo.startswith(f"{DEFAULT_DOMAIN}/"):
        repo = repo[len(DEFAULT_DOMAIN) + 1 :]
        if repo.startswith(f"{OFFICIAL_NAMESPACE}/") and repo.count("/") == 1:
            repo = repo[len(OFFICIAL_NAMESPACE) + 1 :]
    return repo


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text:
        raise InvalidReference("an image reference cannot be empty")
    if not _PRINTABLE.match(text):
        raise InvalidReference(f"{text!r} holds whitespace or control characters")


@functools.lru_cache(maxsize=65536)
def parse_ref(text: str) -> Ref:
    """Parse and normalise a reference as ``docker pull`` reads it; raise InvalidReference.

    Upper case in a repository, a 64-hex repository name and malformed digests are refused
    exactly as Docker refuses them. An image id is not a reference: see :func:`is_image_id`.
    """
    _check_text(text)
    plain = _plain_ref(text)
    if plain is not None:
        return plain
    from docker_image import reference

    try:
        parsed = reference.Reference.parse_normalized_named(text)
    except reference.InvalidReference as exc:
        raise InvalidReference(f"{text!r} is not an image reference: {exc}") from None
    name = str(parsed["name"])
    if name.startswith(f"{LEGACY_DOMAIN}/"):
        name = DEFAULT_DOMAIN + name[len(LEGACY_DOMAIN) :]
    return Ref(repo=name, tag=str(parsed["tag"] or ""), digest=str(parsed["digest"] or ""))


def try_ref(text: str) -> Ref | None:
    """The reference, or None for text the engine reports that is not one (``<none>``)."""
    try:
        return parse_ref(text)
    except InvalidReference:
        return None


def is_image_id(text: str) -> bool:
    """``sha256:`` + hex (or a prefix of it) names an image by id, not by reference."""
    return bool(_ID.match(text) or _ID_PREFIX.match(text))


def digest_of(repo_digest: str) -> str:
    """``redis@sha256:ab…`` → ``sha256:ab…``."""
    return repo_digest.partition("@")[2]


def repo_of(repo_digest: str) -> str:
    """The canonical repository of a RepoDigests entry (``redis@sha256:…`` →
    ``docker.io/library/redis``), or the text before ``@`` when it does not parse."""
    ref = try_ref(repo_digest)
    return ref.repo if ref is not None else repo_digest.partition("@")[0]


def image_names(image: Image) -> frozenset[str]:
    """Every canonical ``repo:tag`` the image is tagged as."""
    return _tag_names(tuple(image.tags))


def image_repos(image: Image) -> frozenset[str]:
    """The canonical repositories of the image's digests: where a digest pull came from."""
    return _digest_repos(tuple(image.digests))


# A plan asks for an image's names and repositories many times (each retain pattern, the
# prune, the in-use index, each reference resolved): both are worked out once per set of
# tags (of digests), which is once per image, instead of each tag parsed again each time.
@functools.lru_cache(maxsize=65536)
def _tag_names(tags: tuple[str, ...]) -> frozenset[str]:
    names = set()
    for tag in tags:
        ref = try_ref(tag)
        if ref is not None:
            names.add(ref.name)
    return frozenset(names)


@functools.lru_cache(maxsize=65536)
def _digest_repos(digests: tuple[str, ...]) -> frozenset[str]:
    return frozenset(repo_of(d) for d in digests)


def names_image(text: str, image: Image) -> bool:
    """Whether a reference (a service or task spec, an ``ensure_present`` entry, a tag)
    names ``image``: by digest when it has one (a digest is the content, whatever the
    repository), by id when it is one, else by canonical ``repo:tag``."""
    if is_image_id(text):
        wanted = text if text.startswith("sha256:") else f"sha256:{text}"
        return image.id.startswith(wanted)
    ref = try_ref(text)
    if ref is None:
        return False
    if ref.digest:
        return any(digest_of(d) == ref.digest for d in image.digests)
    return ref.name in image_names(image)


@dataclass(frozen=True)
class ImagePattern:
    """A retain pattern: a glob over canonical ``repo:tag``, an image id (or prefix), or
    ``repo@digest``. Built once, at load, by :func:`compile_pattern`."""

    text: str
    repo_glob: str = ""
    tag_glob: str = ""
    digest: str = ""
    image_id: str = ""

    def matches(self, image: Image) -> bool:
        """By any tag, or by the repository of any digest (a digest-pulled image has no
        tag to compare, so only the repository part of the pattern is checked: keeping
        every cached image of a retained repository is the safe side)."""
        if self.image_id:
            return image.id.startswith(self.image_id) or any(
                digest_of(d) == self.image_id for d in image.digests
            )
        if self.digest:
            return any(digest_of(d) == self.digest for d in image.digests)
        # A plan tries every retain pattern on every image: most have one tag or none, and
        # no digest, so the empty sets are passed by without making a generator.
        names = image_names(image)
        if names and any(self._name_glob(n) for n in names):
            return True
        repos = image_repos(image)
        return bool(repos) and any(self._repo_glob(r) for r in repos)

    # The globs as fnmatch.fnmatchcase reads them, translated once per pattern rather than
    # looked up in fnmatch's cache for every name of every image the pattern is tried on.
    @functools.cached_property
    def _name_glob(self) -> Callable[[str], re.Match[str] | None]:
        return re.compile(fnmatch.translate(f"{self.repo_glob}:{self.tag_glob}")).match

    @functools.cached_property
    def _repo_glob(self) -> Callable[[str], re.Match[str] | None]:
        return re.compile(fnmatch.translate(self.repo_glob)).match


def matches_any(patterns: Iterable[ImagePattern]) -> Callable[[Image], bool]:
    """``any(p.matches(image) for p in patterns)``, with the globs of all the patterns
    tried as one regex (an alternation of what each pattern's glob translates to, so a name
    matches it exactly when it matches one of them). Retention asks it of every image
    before trying each pattern in turn, on the few images it matches: most match none."""
    patterns = tuple(patterns)
    globs = [p for p in patterns if not (p.image_id or p.digest)]
    others = [p for p in patterns if p.image_id or p.digest]

    def one_of(texts: Iterable[str]) -> Callable[[str], re.Match[str] | None]:
        return re.compile("|".join(f"(?:{fnmatch.translate(t)})" for t in texts)).match

    name_glob = one_of(f"{p.repo_glob}:{p.tag_glob}" for p in globs)
    repo_glob = one_of(p.repo_glob for p in globs)

    def matches(image: Image) -> bool:
        if globs:
            names = image_names(image)
            if names and any(name_glob(n) for n in names):
                return True
            repos = image_repos(image)
            if repos and any(repo_glob(r) for r in repos):
                return True
        return any(p.matches(image) for p in others)

    return matches


def _canonical_repo_glob(repo: str) -> str:
    """Apply Docker's familiar-name rules to a repository glob: the first component is a
    registry when it holds ``.`` or ``:`` or is ``localhost``; a glob in the first component
    of a multi-component pattern matches any registry."""
    first, slash, rest = repo.partition("/")
    if slash and _GLOB.search(first):
        return repo
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain = DEFAULT_DOMAIN if first == LEGACY_DOMAIN else first
        path = rest
    else:
        domain, path = DEFAULT_DOMAIN, repo
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return f"{domain}/{path}"


@functools.lru_cache(maxsize=4096)
def compile_pattern(text: str) -> ImagePattern:
    """Check and normalise a retain pattern; raise InvalidReference saying why not.

    The pattern must be a valid reference once each glob (``*``, ``?``, ``[…]``) stands for
    a plain character, so a typo such as an upper-case repository is an error at load,
    not a pattern that silently matches nothing.
    """
    _check_text(text)
    if _ID_PREFIX.match(text):
        return ImagePattern(text, image_id=text)
    name, at, digest = text.partition("@")
    if at:
        if _GLOB.search(text):
            raise InvalidReference(f"{text!r}: a pattern with a digest cannot hold globs")
        if not _DIGEST.match(digest):
            raise InvalidReference(f"{text!r}: {digest!r} is not a digest")
        parse_ref(text)
        return ImagePattern(text, digest=digest)
    colon = name.rfind(":")
    repo, tag = (name[:colon], name[colon + 1 :]) if colon > name.rfind("/") else (name, "")
    first, sep, rest = repo.partition("/")
    # A glob standing for the registry is checked as if it named one.
    plain_repo = f"example.org/{rest}" if sep and _GLOB.search(first) else repo
    plain = _GLOB.sub("a", plain_repo) + (f":{_GLOB.sub('a', tag)}" if tag else "")
    try:
        parse_ref(plain)
    except InvalidReference as exc:
        why = str(exc).partition(": ")[2] or str(exc)
        raise InvalidReference(f"{text!r} cannot name an image: {why}") from None
    return ImagePattern(text, repo_glob=_canonical_repo_glob(repo), tag_glob=tag or DEFAULT_TAG)
