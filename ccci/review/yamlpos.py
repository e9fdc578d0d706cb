"""Line *and column* of every value in a YAML stream, for findings a reviewer can click.

ccci's loader keeps lines only; check needs ``file:line:column``. Both come from the one
walk, :func:`ccci.config.yamlsrc.positions` (documents counted alike, keys pointed at rather than
their values), so a path or a dotted field from a ccci error finds its column here. This
is also check's first, defensive pass: it stops on recursive aliases and alias bombs, so
check can refuse such a file with a finding instead of handing it to a loader that would
never return.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ccci.config.yamlsrc import NodeRefused, PathKey, Position, dotted, mark_position, positions

__all__ = ["DocIndex", "FileIndex", "Position", "Problem", "index_text"]


@dataclass(frozen=True)
class DocIndex:
    """Where each value of one document is: by path, and by dotted field name."""

    index: int
    start: Position
    positions: dict[PathKey, Position] = field(default_factory=dict)
    fields: dict[str, PathKey] = field(default_factory=dict)

    def position(self, path: PathKey) -> Position:
        """The position of ``path``, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return self.start

    def path_of(self, name: str) -> PathKey | None:
        """The path a dotted field name (``spec.present[0].name``) stands for."""
        if not name:
            return ()
        return self.fields.get(name)

    def field_position(self, name: str) -> Position:
        """Position of a dotted field; an unwritten one falls back to its written parent."""
        path = self.path_of(name)
        if path is not None:
            return self.position(path)
        parent = name
        while parent:
            cut = max(parent.rfind("."), parent.rfind("["))
            parent = parent[:cut] if cut > 0 else ""
            path = self.path_of(parent)
            if path is not None:
                return self.position(path)
        return self.start


@dataclass(frozen=True)
class Problem:
    """Why a file cannot be read as YAML (or should not be): where, and what.

    ``stop`` is where a reader must stop: the text from there on is not safe to hand to
    ccci's loader (a cycle or a bomb in it would never come back). None: read it all; the
    loader finds the same syntax error itself.
    """

    position: Position
    message: str
    stop: int | None = None


@dataclass(frozen=True)
class FileIndex:
    """The documents of one file, and the problem that stopped reading, if any."""

    docs: tuple[DocIndex, ...]
    problem: Problem | None = None
    lines: tuple[str, ...] = ()

    def by_index(self, index: int) -> DocIndex | None:
        """The document the loader counted as ``index`` (both count documents alike)."""
        return next((d for d in self.docs if d.index == index), None)

    def exact(self, line: int, name: str) -> Position:
        """The column of field ``name`` on ``line``, where an error said it is."""
        doc = self.doc_at(line)
        if doc is not None:
            path = doc.path_of(name)
            if path is not None and doc.positions.get(path, Position(0, 0)).line == line:
                return doc.positions[path]
        if not 0 < line <= len(self.lines):
            return Position(line, 1 if line else 0)
        text = self.lines[line - 1]
        last = name.rsplit(".", 1)[-1].split("[", 1)[0]
        found = text.find(last) if last else -1
        indent = len(text) - len(text.lstrip())
        return Position(line, (found if found >= 0 else indent) + 1)

    def doc_at(self, line: int) -> DocIndex | None:
        """The document a line belongs to: the last one starting at or before it."""
        found = None
        for doc in self.docs:
            if doc.start.line <= line:
                found = doc
        return found or (self.docs[0] if self.docs else None)

    def locate(self, line: int, name: str) -> Position:
        """Position of field ``name`` in the document holding ``line``."""
        doc = self.doc_at(line)
        if doc is None:
            return Position(max(line, 1), 1)
        path = doc.path_of(name)
        if path is not None and path in doc.positions:
            return doc.positions[path]
        if doc.positions and line:
            # Not written in this document (a default, say): the line is still right.
            return Position(line, doc.field_position(name).column if name else 1)
        return doc.field_position(name)


def _offset_position(text: str, offset: int) -> Position:
    before = text[:offset]
    return Position(before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _fields(positions: dict[PathKey, Position]) -> dict[str, PathKey]:
    names: dict[str, PathKey] = {}
    for path in positions:
        names.setdefault(dotted(path), path)
    return names


def index_text(text: str) -> FileIndex:
    """Index every document of a YAML stream; a problem stops at the document it is in."""
    docs: list[DocIndex] = []
    lines = tuple(text.splitlines())

    def stopped(problem: Problem) -> FileIndex:
        return FileIndex(tuple(docs), problem, lines)

    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        # The reader refuses the whole text at once (a control character, say).
        where = _offset_position(text, exc.position)
        return stopped(Problem(where, f"invalid YAML: {exc.reason}", stop=0))
    index = 0
    # Where the last document read in full ends: a reader may safely stop there.
    safe_end = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            start = mark_position(node.start_mark)
            try:
                found = positions(node, text_keys=False)
            except NodeRefused as exc:
                # A bomb is the document's doing, wherever the count ran out.
                where = start if exc.bomb else mark_position(exc.node.start_mark)
                return stopped(Problem(where, exc.message, safe_end))
            # Construct as well: a bad tag or an unhashable key is found here, with its column.
            loader.construct_document(node)
            docs.append(DocIndex(index, start, found, _fields(found)))
            safe_end = node.end_mark.index
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return stopped(Problem(mark_position(mark), f"invalid YAML: {exc.problem or exc}"))
    except yaml.YAMLError as exc:
        return stopped(Problem(Position(1, 1), f"invalid YAML: {exc}", stop=safe_end))
    except RecursionError:
        where = _offset_position(text, safe_end)
        return stopped(Problem(where, "invalid YAML: nested too deeply", stop=safe_end))
    finally:
        loader.dispose()
    return FileIndex(tuple(docs), None, lines)
