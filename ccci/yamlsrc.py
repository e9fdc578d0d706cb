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

    def line_of(self, path: PathKey) -> int:
        """The line of ``path``, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return self.line

    def location(self, path: PathKey) -> Location:
        return Location(self.file, self.line_of(path), dotted(path))


def _index(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], doc_file: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise InputError(
                    Location(doc_file, key_node.start_mark.line + 1, dotted((*path, key))),
                    "duplicate key",
                )
            seen.add(key)
            _index(value_node, (*path, key), lines, doc_file)
            # Point at the key rather than the value: that is where a reader looks.
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines, doc_file)


def load_text(text: str, file: str) -> Iterator[Document]:
    """Yield each non-empty document of a YAML stream with its line map."""
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[PathKey, int] = {}
            _index(node, (), lines, file)
            data = loader.construct_document(node)
            if data is not None:
                yield Document(file, index, node.start_mark.line + 1, data, lines)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InputError(Location(file, line), f"invalid YAML: {exc.problem or exc}") from None
    finally:
        loader.dispose()


def load_file(path: Path, display: str | None = None) -> list[Document]:
    """Read a YAML file; ``display`` is the name errors show (relative, as the user typed)."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Location(name, 0), f"cannot read: {exc}") from None
    return list(load_text(text, name))
