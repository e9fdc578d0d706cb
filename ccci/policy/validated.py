"""Which rendered policy documents already passed their kind's JSON Schema, kept between runs.

Policy files change once in a while; the nightly, and the janitor before every deploy, load
the very same documents each time. Validating them imports jsonschema (~35 ms: referencing,
the metaschemas, format checkers) and walks every schema (~10 ms), which is most of what a
janitor run costs beyond Python's own start. So, as Python keeps ``.pyc`` files, a document
that passed is remembered by a digest of everything that decided it passed:

- its kind and its rendered data, encoded injectively (:func:`encode`): two documents with
  the same digest hold equal values of equal types in the same order;
- the kind's packaged schema text;
- ccci's version and the files of ccci's own validity code (schema keywords, RE2 patterns),
  so an edited checkout is not trusted on an unchanged version;
- the installed jsonschema and RE2 (``re2``) by their module file's path, size and mtime, as
  found by ``importlib.util.find_spec`` (which imports neither), and Python's version (its
  ``re`` decides which patterns compile).

Only a pass is recorded: a document that fails is validated, and its error reported, every
time, so an error reads exactly as it does without the cache. ``ccci policy check`` never
uses it. The control-character check is cheap and never skipped (see
:func:`ccci.policy.pipeline.validate`).

It is one small JSON file, ``<state-dir>/cache/validated.json``, handled as
:mod:`ccci.state.cachefile` handles every cache file: one read per run rather than a stat per
document, one atomic write (one fsync) when anything new passed rather than one per
document, concurrent runs can only lose each other's entries (which costs a validation), and
a cache and never more (missing, unwritable, corrupt, foreign or others-writable means no
cache, never an error and never a different result). It keeps the :data:`MAX_ENTRIES` most
recently used digests, so a policy repo that changes every night does not grow it for ever.
Deleting the folder clears it.

Beside it, ``<state-dir>/cache/built.json`` (the same handling, its own bound) remembers
what passed everything after the schema too, so that a run which uses only some kinds (the
janitor: OrphanStackPolicy, StackSelector) need not build the others while they pass as
they did (:mod:`ccci.policy.load`):

- a host's documents (:func:`host_key`): the :func:`document_key` of each document it
  targets, in order, rendered with its vars, and the one host var ``finalize`` reads; a
  pass means every one validated and built, ``finalize`` resolved them and no kind and name
  came twice;
- a document that targets no host (:func:`document_key`): it validated and built.

A document key covers what a schema pass does plus the builders' and the later stages' own
code (:data:`BUILD_MODULES`, by path, size and mtime) and the home abra's default folder is
under (a builder reads it). As above, only a pass is recorded: a set with an error is built
in full, and its error found, on every run.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ccci import __version__, saferegex
from ccci.policy import schema
from ccci.state import cachefile

# Bump when what a digest covers changes, so older entries never match.
FORMAT = 1
# Far more rendered documents than one run of a farm loads (documents x distinct host vars),
# few enough that the file stays a ~70 KB read.
MAX_ENTRIES = 1024
# A file larger than MAX_ENTRIES entries could be is not one ccci wrote: ignored unread.
_MAX_BYTES = 256 * 1024
# What decides validity besides the document and its schema: the validator, and the
# pattern engine a policy regex must compile in.
_LIBRARIES = ("jsonschema", "re2")
# Bump when what a document or host key covers changes.
BUILT_FORMAT = 1
# What decides that a rendered document builds and that a host's built policies finalize,
# besides what ``environment`` names: the builders, what they check values with, and the
# stages after them. Paths in the ccci package, by identity rather than import: a run that
# finds its documents known imports most of them never (that is the point).
# tests/unit/test_unused_kinds.py checks that building every kind imports no other module.
BUILD_MODULES = (
    "policy/build.py",
    "policy/model.py",
    "policy/pipeline.py",
    "policy/load.py",
    "policy/validated.py",
    "quantities.py",
    "facts/__init__.py",
    "facts/model.py",
    "facts/refs.py",
    "systemd/__init__.py",
    "systemd/values.py",
    "systemd/units.py",
    "systemd/sandbox.py",
    "render/escape.py",
    "saferegex.py",
    "errors.py",
)


class Uncacheable(Exception):
    """A value :func:`encode` cannot encode injectively (a set, whose order changes from run
    to run; an object a template made): such a document is simply validated every time."""


def encode(data: Any) -> str:
    """An injective text for ``data`` as YAML (and templates) build it: equal texts mean equal
    values of equal types in the same order.

    ``repr`` would nearly do, but a set's order depends on the hash seed, and an arbitrary
    object's repr may name its address or hide its fields. Here every value is tagged by its
    type, strings and containers are length-prefixed (so no text can forge a boundary), and
    a type not listed raises :class:`Uncacheable`. Mapping order counts: the same mapping in
    another order is only a miss.
    """
    out: list[str] = []
    todo: list[Any] = [data]
    while todo:
        value = todo.pop()
        # bool before int, datetime before date: each is a subclass of the next.
        if value is None:
            out.append("n;")
        elif isinstance(value, bool):
            out.append("T;" if value else "F;")
        elif isinstance(value, int):
            out.append(f"i{int(value)};")
        elif isinstance(value, float):
            out.append(f"f{float(value)!r};")
        elif isinstance(value, str):
            out.append(f"s{len(value)}:{value}")
        elif isinstance(value, datetime.datetime):
            out.append(f"d{value.isoformat()};")
        elif isinstance(value, datetime.date):
            out.append(f"D{value.isoformat()};")
        elif isinstance(value, bytes):
            out.append(f"b{len(value)}:{value.hex()}")
        elif isinstance(value, (list, tuple)):
            out.append(f"{'[' if isinstance(value, list) else '('}{len(value)}:")
            todo.extend(reversed(value))
        elif isinstance(value, dict):
            out.append(f"{{{len(value)}:")
            for key, item in reversed(list(value.items())):
                todo.append(item)
                todo.append(key)
        else:
            raise Uncacheable(type(value).__name__)
    return "".join(out)


@cache
def environment() -> str:
    """Everything besides the document and its schema that decides whether it passes; read
    once per process."""
    parts = [
        f"ccci-validated {FORMAT}",
        f"ccci {__version__}",
        f"python {sys.version}",
        *(cachefile.library_identity(name) for name in _LIBRARIES),
        *(cachefile.file_identity(module.__file__) for module in (schema, saferegex)),
    ]
    return "\n".join(parts)


def build_environment() -> str:
    """Everything besides the rendered documents that decides whether they build and
    finalize (see the module's docstring): what decides a schema pass, and more."""
    return f"{environment()}\n{_build_identity()}"


@cache
def _build_identity() -> str:
    """``build_environment``'s own part; read once per process."""
    from ccci.policy.build import default_abra_dir

    package = Path(__file__).parent.parent  # the ccci package
    parts = [
        f"ccci-built {BUILT_FORMAT}",
        # An OrphanStackPolicy without abra_dir builds with the default, under this home.
        f"abra_dir {default_abra_dir()}",
        *(cachefile.file_identity(f"{package}/{module}") for module in BUILD_MODULES),
    ]
    return "\n".join(parts)


def _hashed(*parts: str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        # surrogatepass: a YAML escape can make a lone surrogate, still one text.
        hasher.update(part.encode("utf-8", "surrogatepass"))
        hasher.update(b"\0")
    return hasher.hexdigest()


def document_key(kind: str, data: Any) -> str | None:
    """The key under which a rendered document of ``kind`` is known to build; None when its
    data cannot be encoded (it is then built every time)."""
    try:
        text = encode(data)
    except Uncacheable:
        return None
    return _hashed(build_environment(), "document", kind, _schema_digest(kind), text)


def host_key(server: str, documents: Sequence[str]) -> str:
    """The key under which one host's documents (their :func:`document_key`, in the order the
    host takes them) are known to build and finalize; ``server`` is what ``finalize`` reads
    of the host (:func:`ccci.policy.pipeline.abra_server`)."""
    # Length-prefixed like encode's strings, so no server name can forge a boundary.
    return _hashed(build_environment(), "host", f"{len(server)}:{server}", *documents)


@cache
def _schema_digest(kind: str) -> str:
    return hashlib.sha256(schema.schema_text(kind).encode("utf-8")).hexdigest()


def digest(kind: str, data: Any) -> str | None:
    """The key of one rendered document of ``kind``; None when its data cannot be encoded."""
    try:
        text = encode(data)
    except Uncacheable:
        return None
    return _hashed(environment(), kind, _schema_digest(kind), text)


def cache_file(state_dir: Path) -> Path:
    """Where a state directory keeps the cache; delete its folder to clear it."""
    return cachefile.folder(state_dir) / "validated.json"


def built_file(state_dir: Path) -> Path:
    """Where a state directory keeps the documents and host sets known to build."""
    return cachefile.folder(state_dir) / "built.json"


class ValidatedCache:
    """The documents known to pass, for one load: each file read once when first asked,
    written once by :meth:`save` when anything new passed."""

    def __init__(self, state_dir: Path, limit: int = MAX_ENTRIES) -> None:
        self.state_dir = state_dir
        self.path = cache_file(state_dir)
        self.built_path = built_file(state_dir)
        self.limit = limit
        self._entries: cachefile.Recent[None] = cachefile.Recent(
            limit, lambda: ((key, None) for key in self._read(self.path))
        )
        self._built: cachefile.Recent[None] = cachefile.Recent(
            limit, lambda: ((key, None) for key in self._read(self.built_path))
        )

    def built(self, key: str) -> bool:
        """Whether a :func:`document_key` or :func:`host_key` is known to have passed."""
        return self._built.use(key)

    def add_built(self, key: str) -> None:
        """Remember that what ``key`` stands for passed (never call it for a failure)."""
        self._built.add(key, None)

    def validate(self, kind: str, data: Any, check: Callable[[], None]) -> None:
        """Run ``check`` (which raises on a problem) unless this document passed before, and
        remember it when ``check`` returns."""
        key = digest(kind, data)
        if key is None:
            check()
            return
        if self._entries.use(key):
            return
        check()
        self._entries.add(key, None)

    def save(self) -> None:
        """Write the entries back, this run's last (the newest), keeping at most ``limit``;
        nothing is written when every document was known already, and a failure to write
        leaves the run as it was."""
        for entries, path in ((self._entries, self.path), (self._built, self.built_path)):
            entries.save(
                self.state_dir,
                path,
                lambda kept: {"format": FORMAT, "digests": [k for k, _ in kept]},
            )

    def _read(self, path: Path) -> list[str]:
        digests = cachefile.read_list(path, _MAX_BYTES, FORMAT, "digests")
        return [d for d in digests if isinstance(d, str) and len(d) == 64]
