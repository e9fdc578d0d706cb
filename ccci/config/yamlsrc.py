"""YAML documents that remember where each value was written.

Errors must name ``file:line: field``, so loading keeps a map from each value's path
(``("spec", "gates", "disk_usage", "at_least")``) to the line it stands on.

PyYAML is imported where a file is parsed, not with this module: a run whose files did not
change takes its documents from :mod:`ccci.config.yamlcache` and never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccci.errors import InputError, Location

if TYPE_CHECKING:
    import yaml

    from ccci.config.yamlcache import ParsedCache

PathKey = tuple[str | int, ...]


def dotted(path: PathKey) -> str:
    """``("spec", "present", 0, "name")`` → ``spec.present[0].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class Document:
    """One YAML document with the line of every value (1-based)."""

    file: str
    index: int
    line: int
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    # Paths whose value Jinja2 rendered from a secret-looking inventory var
    # (``{{ db_password }}``): no message echoes what they hold.
    sensitive: frozenset[PathKey] = frozenset()

    def is_sensitive(self, path: PathKey) -> bool:
        """Whether the value at ``path`` (or a value it sits in) holds a rendered secret."""
        return any(path[:end] in self.sensitive for end in range(len(path), -1, -1))

    def value_at(self, path: PathKey) -> Any:
        """The value at ``path``, or None when the document has none there."""
        value = self.data
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def line_of(self, path: PathKey) -> int:
        """The line of ``path``, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return self.line

    def location(self, path: PathKey) -> Location:
        """Where an error about ``path`` points: file, line and dotted field."""
        return Location(self.file, self.line_of(path), dotted(path))


# A policy file is small: more values than this is an alias bomb, not a policy.
MAX_VALUES = 100_000
# And so is the file: a policy set or an inventory of a mebibyte is already far past any
# real one, and refusing more keeps a hostile PR from costing minutes of parsing.
MAX_FILE_BYTES = 1 << 20

_TEXT = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Position:
    """1-based line and column of a value (of its key, for a mapping's value)."""

    line: int
    column: int


def mark_position(mark: yaml.Mark | None) -> Position:
    """A YAML mark (0-based) as a Position (1-based); no mark is the file's start."""
    return Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)


class NodeRefused(Exception):
    """A node no policy can hold, and why; ``field`` is the dotted path of a refused key."""

    def __init__(self, node: yaml.Node, message: str, field: str = "", bomb: bool = False):
        super().__init__(message)
        self.node = node
        self.message = message
        self.field = field
        self.bomb = bomb


def _key_problem(key_node: yaml.Node, key: str, seen: set[str]) -> str | None:
    import yaml

    if key_node.tag != _TEXT:
        # ``on:`` or ``yes:`` reads as a boolean, ``2024:`` as a number.
        value = yaml.constructor.SafeConstructor().construct_object(key_node)
        return (
            f"field names are text, but YAML reads {key} as "
            f"{type(value).__name__} {value} (quote it)"
        )
    return "duplicate key" if key in seen else None


def positions(root: yaml.Node, *, text_keys: bool = True) -> dict[PathKey, Position]:
    """Where every value under ``root`` is written: the one walk over a YAML document.

    Iterative, so no document is too deep for it, and refusing an alias that contains
    itself and a document that expands past MAX_VALUES (a few aliases can stand for
    millions), in the order a reader meets them. A mapping's value is placed at its key:
    that is where a reader looks. ``text_keys`` refuses keys that are not text and keys
    written twice (ccci's loader); ``ccci policy check`` indexes without it and reports
    those itself.
    """
    import yaml

    found: dict[PathKey, Position] = {}
    # Node entries, and key entries checked just before the value they hold.
    todo: list[tuple[yaml.Node, PathKey, frozenset[int], set[str] | None]] = [
        (root, (), frozenset(), None)
    ]
    visited = 0
    while todo:
        node, path, ancestors, seen = todo.pop()
        if seen is not None:
            key = str(path[-1])
            why = _key_problem(node, key, seen)
            if why:
                raise NodeRefused(node, why, dotted(path))
            seen.add(key)
            continue
        visited += 1
        if visited > MAX_VALUES:
            raise NodeRefused(
                node, f"more than {MAX_VALUES} values (an alias expands too far)", bomb=True
            )
        if id(node) in ancestors:
            raise NodeRefused(node, "a YAML alias refers to itself")
        found.setdefault(path, mark_position(node.start_mark))
        inner = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in reversed(node.value):
                child = (*path, str(key_node.value))
                todo.append((value_node, child, inner, None))
                if text_keys:
                    todo.append((key_node, child, inner, keys))
                found.setdefault(child, mark_position(key_node.start_mark))
        elif isinstance(node, yaml.SequenceNode):
            for i in range(len(node.value) - 1, -1, -1):
                todo.append((node.value[i], (*path, i), inner, None))
    return found


def load_text(text: str, file: str) -> Iterator[Document]:
    """Yield each non-empty document of a YAML stream with its line map.

    Any input, however malformed, ends in an InputError with a location, never a crash.
    """
    import yaml

    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                lines = {path: at.line for path, at in positions(node).items()}
            except NodeRefused as exc:
                line = exc.node.start_mark.line + 1
                raise InputError(Location(file, line, exc.field), exc.message) from None
            data = loader.construct_document(node)
            if data is not None:
                yield Document(file, index, node.start_mark.line + 1, data, lines)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InputError(Location(file, line), f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        # ReaderError (a control character) has a position, not a mark.
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 0
        raise InputError(Location(file, line), f"invalid YAML: {exc}") from None
    except RecursionError:
        raise InputError(Location(file, 0), "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_file(
    path: Path, display: str | None = None, parsed: ParsedCache | None = None
) -> list[Document]:
    """Read a YAML file; ``display`` is the name errors show (relative, as the user typed).

    ``parsed`` (a run's :class:`~ccci.config.yamlcache.ParsedCache`) gives the documents of
    bytes that parsed before without parsing them; the bytes are read every time, so an
    edited file is always parsed again.
    """
    name = display or str(path)
    raw = read_bytes(path, name)
    if parsed is not None:
        return parsed.documents(raw, name)
    return parse(raw, name)


def parse(raw: bytes, name: str) -> list[Document]:
    """The documents of a file's bytes, as :func:`load_file` reads them without a cache."""
    return list(load_text(decode(raw, name), name))


def read_text(path: Path, name: str) -> str:
    """A policy or inventory file's text; over MAX_FILE_BYTES it is refused unread."""
    return decode(read_bytes(path, name), name)


def read_bytes(path: Path, name: str) -> bytes:
    """A policy or inventory file's bytes; over MAX_FILE_BYTES it is refused unread."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(Location(name, 0), f"cannot read: {exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(
            Location(name, 0), f"larger than {MAX_FILE_BYTES // 1024} KiB: refused unread"
        )
    return raw


def decode(raw: bytes, name: str) -> str:
    """A file's bytes as text: UTF-8, or a one-line error naming the file."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(Location(name, 0), f"cannot read: {exc}") from None
