"""YAML documents that remember where each value was written.

Errors must name ``file:line: field``, so loading keeps a map from each value's path
(``("spec", "gates", "disk_usage", "at_least")``) to the line it stands on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ccci.errors import InputError, Location

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
        return Location(self.file, self.line_of(path), dotted(path))


# A policy file is small: more values than this is an alias bomb, not a policy.
MAX_VALUES = 100_000
# And so is the file: a policy set or an inventory of a mebibyte is already far past any
# real one, and refusing more keeps a hostile PR from costing minutes of parsing.
MAX_FILE_BYTES = 1 << 20


class _Walk:
    """Index every value's line once, refusing aliases that contain themselves and
    documents that expand past MAX_VALUES (a few aliases can stand for millions)."""

    def __init__(self, doc_file: str) -> None:
        self.doc_file = doc_file
        self.lines: dict[PathKey, int] = {}
        self.count = 0

    def fail(self, node: yaml.Node, message: str) -> InputError:
        return InputError(Location(self.doc_file, node.start_mark.line + 1), message)

    def index(self, node: yaml.Node, path: PathKey, ancestors: frozenset[int]) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, f"more than {MAX_VALUES} values (aliases expand too far)")
        if id(node) in ancestors:
            raise self.fail(node, "a YAML alias refers to a value that contains it")
        self.lines[path] = node.start_mark.line + 1
        inner = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key_node.tag != "tag:yaml.org,2002:str":
                    # ``on:`` or ``yes:`` reads as a boolean, ``2024:`` as a number.
                    value = yaml.constructor.SafeConstructor().construct_object(key_node)
                    raise InputError(
                        Location(self.doc_file, key_node.start_mark.line + 1, dotted((*path, key))),
                        f"field names are text, but YAML reads {key} as "
                        f"{type(value).__name__} {value} (quote it)",
                    )
                if key in seen:
                    raise InputError(
                        Location(self.doc_file, key_node.start_mark.line + 1, dotted((*path, key))),
                        "duplicate key",
                    )
                seen.add(key)
                self.index(value_node, (*path, key), inner)
                # Point at the key rather than the value: that is where a reader looks.
                self.lines[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.index(item, (*path, i), inner)


def load_text(text: str, file: str) -> Iterator[Document]:
    """Yield each non-empty document of a YAML stream with its line map.

    Any input, however malformed, ends in an InputError with a location, never a crash.
    """
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            walk = _Walk(file)
            walk.index(node, (), frozenset())
            data = loader.construct_document(node)
            if data is not None:
                yield Document(file, index, node.start_mark.line + 1, data, walk.lines)
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


def load_file(path: Path, display: str | None = None) -> list[Document]:
    """Read a YAML file; ``display`` is the name errors show (relative, as the user typed)."""
    name = display or str(path)
    return list(load_text(read_text(path, name), name))


def read_text(path: Path, name: str) -> str:
    """A policy or inventory file's text; over MAX_FILE_BYTES it is refused unread."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise InputError(
                Location(name, 0), f"larger than {MAX_FILE_BYTES // 1024} KiB: refused unread"
            )
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Location(name, 0), f"cannot read: {exc}") from None
