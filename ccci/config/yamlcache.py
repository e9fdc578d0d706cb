"""The documents of inventory and policy files that parsed before, kept between runs.

A janitor run before every deploy reads the same inventory and policy files each time.
Parsing them costs importing PyYAML (~8-10 ms) and its pure-Python loader (~5 ms for a
policy set), a large part of what the run costs beyond Python's own start. So, as
:mod:`ccci.policy.validated` keeps schema passes, the documents
:func:`ccci.config.yamlsrc.load_file` made of a file (their data, index, start line and the
line of every value) are remembered by a digest of everything that decided them:

- the file's bytes, read every run: an edited file is a miss, never served stale;
- the installed PyYAML by its module file's path, size and mtime, as found by
  ``importlib.util.find_spec`` (which does not import it), and Python's version;
- ccci's version and the source of this module and of :mod:`ccci.config.yamlsrc` (the
  loader's refusals and line map), so an edited checkout is not trusted on an unchanged
  version.

The file's name is not in the key: it is the name the documents carry and errors show, and
it is the caller's. Only a file that parsed is remembered: one with a YAML error is parsed,
and its error reported, every time, so the error reads as it does without the cache. A
value YAML's safe loader makes is encoded exactly (:func:`pack`); anything else (a set, a
tuple, a subclass) means that file is parsed every time. Entries are JSON with type tags,
read back by ``json`` alone: never pickle, marshal or eval.

It is ``<state-dir>/cache/parsed.json``, handled as :mod:`ccci.state.cachefile` handles
every cache file (trusted only when this user's and no one else's to write; a cache and
never more). It keeps the :data:`MAX_ENTRIES` most recently used files within
:data:`MAX_BYTES`. ``ccci policy check`` and review never use it: they must see exactly what
the parser says.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from ccci import __version__
from ccci.config import yamlsrc
from ccci.config.yamlsrc import Document
from ccci.state import cachefile

# Bump when what a digest covers or how an entry is written changes.
FORMAT = 1
# Files, not documents: a farm's inventories and policy sets, with room for the versions a
# policy repo goes through between two runs.
MAX_ENTRIES = 128
# The file stays a small read: the oldest entries go first past it.
MAX_BYTES = 1 << 20
# A file whose documents encode to more than this is parsed each time: a few of them would
# push every other file out.
MAX_ENTRY_CHARS = 64 * 1024

# A JSON object with this one key is a tagged value, never a mapping YAML made: a mapping
# that has it as a key (or any key that is not text) is written in the tagged pair form.
_TAG = "\0"


class Uncacheable(Exception):
    """A value YAML's safe loader does not make, or one JSON cannot carry exactly."""


def pack(value: Any) -> Any:
    """``value`` as JSON carries it exactly: text, integers, floats (also inf and nan, as
    ``json`` writes them), booleans and null as themselves; lists as lists; mappings with
    text keys as objects (``json`` keeps their order); dates, times, bytes and mappings
    with other keys as tagged objects. Exact types only: a subclass is not what YAML makes,
    and it would not come back as itself."""
    kind = type(value)
    if kind is str:
        return value if _plain(value) else {_TAG: ["u", value.encode("utf-8", _LONE).hex()]}
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if kind is list:
        return [pack(item) for item in value]
    if kind is dict:
        if _TAG not in value and all(type(key) is str and _plain(key) for key in value):
            return {key: pack(item) for key, item in value.items()}
        return {_TAG: ["m", [[pack(key), pack(item)] for key, item in value.items()]]}
    if kind is datetime.datetime:
        # fromisoformat gives back a fixed-offset zone, and knows no fold.
        if value.fold or not (value.tzinfo is None or type(value.tzinfo) is datetime.timezone):
            raise Uncacheable("datetime with a zone of its own")
        return {_TAG: ["d", value.isoformat()]}
    if kind is datetime.date:
        return {_TAG: ["D", value.isoformat()]}
    if kind is bytes:
        return {_TAG: ["b", value.hex()]}
    raise Uncacheable(kind.__name__)


# A YAML escape can make a lone surrogate (PyYAML reads "\ud83d\ude00" as two), and
# JSON would read two such escapes side by side back as one character.
_LONE = "surrogatepass"


def _plain(text: str) -> bool:
    """Whether JSON gives ``text`` back as itself: it holds no surrogate."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unpack(obj: dict[str, Any]) -> Any:
    # json calls this for every object, innermost first: a tagged pair's key and value are
    # already values again.
    tagged = obj.get(_TAG)
    if tagged is None:
        return obj
    tag, payload = tagged
    if tag == "m":
        return {key: item for key, item in payload}
    if tag == "d":
        return datetime.datetime.fromisoformat(payload)
    if tag == "D":
        return datetime.date.fromisoformat(payload)
    if tag == "b":
        return bytes.fromhex(payload)
    if tag == "u":
        return bytes.fromhex(payload).decode("utf-8", _LONE)
    raise ValueError(f"unknown tag {tag!r}")


def encode(docs: list[Document]) -> str:
    """One file's documents as an entry's text (without the file's name, which is the
    caller's); raises :class:`Uncacheable` when a value cannot be carried exactly."""
    packed = []
    for doc in docs:
        if doc.sensitive:
            raise Uncacheable("a rendered document")
        lines = []
        for path, line in doc.lines.items():
            if not all(type(part) is int or (type(part) is str and _plain(part)) for part in path):
                raise Uncacheable("a path of other parts than text and indices")
            lines.append([list(path), line])
        packed.append([doc.index, doc.line, pack(doc.data), lines])
    try:
        return json.dumps(packed, separators=(",", ":"))
    except (ValueError, RecursionError):  # an integer past Python's digit limit, a deep one
        raise Uncacheable("not JSON") from None


def decode(text: str, name: str) -> list[Document]:
    """An entry's documents again, named ``name``; raises ValueError (or TypeError) when the
    entry is not one :func:`encode` wrote."""
    return [
        Document(name, index, line, data, {tuple(path): at for path, at in lines})
        for index, line, data, lines in json.loads(text, object_hook=_unpack)
    ]


@cache
def environment() -> bytes:
    """Everything besides a file's bytes that decides its documents; read once per process."""
    sources = hashlib.sha256()
    for module in (yamlsrc, sys.modules[__name__]):
        sources.update(Path(str(module.__file__)).read_bytes())
    parts = [
        f"ccci-parsed {FORMAT}",
        f"ccci {__version__}",
        f"python {sys.version}",
        cachefile.library_identity("yaml"),
        f"sources {sources.hexdigest()}",
    ]
    return "\n".join(parts).encode("utf-8")


def digest(raw: bytes) -> str:
    """The key of a file's bytes."""
    return hashlib.sha256(environment() + b"\0" + raw).hexdigest()


def cache_file(state_dir: Path) -> Path:
    """Where a state directory keeps the parsed documents; delete its folder to clear it."""
    return cachefile.folder(state_dir) / "parsed.json"


class ParsedCache:
    """The files known to parse, for one run: read once when first asked, written once by
    :meth:`save` when a file was parsed that was not known."""

    def __init__(self, state_dir: Path, limit: int = MAX_ENTRIES) -> None:
        self.state_dir = state_dir
        self.path = cache_file(state_dir)
        self.limit = limit
        self._entries: cachefile.Recent[str] = cachefile.Recent(limit, self._read)

    def documents(self, raw: bytes, name: str) -> list[Document]:
        """The documents of a file's ``raw`` bytes, named ``name``: as they parsed before,
        or parsed now (an error raised as the parser raises it)."""
        key = digest(raw)
        if self._entries.use(key):
            try:
                return decode(self._entries.value(key), name)
            except (ValueError, TypeError, KeyError, RecursionError):
                pass  # not an entry this code wrote: parsed, and written anew
        docs = yamlsrc.parse(raw, name)
        try:
            text = encode(docs)
        except Uncacheable:
            return docs
        if len(text) <= MAX_ENTRY_CHARS:
            self._entries.add(key, text)
        return docs

    def save(self) -> None:
        """Write the entries back, this run's the newest; nothing is written when every file
        was known already, and a failure to write leaves the run as it was."""
        self._entries.save(self.state_dir, self.path, _shaped)

    def _read(self) -> list[tuple[str, str]]:
        return [
            (entry[0], entry[1])
            for entry in cachefile.read_list(self.path, MAX_BYTES, FORMAT, "entries")
            if isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and len(entry[0]) == 64
            and isinstance(entry[1], str)
        ]


def _shaped(kept: list[tuple[str, str]]) -> dict[str, Any]:
    # Newest last: drop from the front until the file fits MAX_BYTES (with room for JSON's
    # escapes of the entries' quotes).
    size = sum(2 * len(text) + 80 for _, text in kept)
    start = 0
    while start < len(kept) and size > MAX_BYTES:
        size -= 2 * len(kept[start][1]) + 80
        start += 1
    return {"format": FORMAT, "entries": [[key, text] for key, text in kept[start:]]}
