"""One walk places every YAML value (``ccci.config.yamlsrc.positions``): the loader's lines and
``policy check``'s lines and columns come from it, so an error the loader raises and the
finding check reports point at the same place, and both refuse the same hostile input in
the same words."""

from __future__ import annotations

import pytest
import yaml

from ccci.config.yamlsrc import MAX_VALUES, NodeRefused, Position, load_text, positions
from ccci.errors import InputError
from ccci.review.yamlpos import index_text

POLICY = """\
apiVersion: ccci/v1
kind: PrunePolicy
metadata: {name: nightly}
spec:
  gates: &gates
    disk_usage:
      path: /var/lib/docker
      at_least: 80%
  again: *gates
  prune:
    dangling_images: {older_than: 24h}
    list:
      - one
      - {two: 2}
---
kind: StackSelector
spec: {match: x}
"""


def test_the_loader_and_check_place_every_value_on_the_same_line() -> None:
    docs = list(load_text(POLICY, "p.yaml"))
    index = index_text(POLICY)
    assert index.problem is None
    assert len(docs) == len(index.docs) == 2
    for doc, where in zip(docs, index.docs, strict=True):
        assert doc.lines == {path: at.line for path, at in where.positions.items()}


def test_a_value_is_placed_at_its_key_and_an_item_at_itself() -> None:
    (root,) = yaml.compose_all(POLICY.split("---")[0])
    found = positions(root)
    assert found[("spec", "gates", "disk_usage", "at_least")] == Position(8, 7)
    assert found[("spec", "prune", "list", 1)] == Position(14, 9)
    # An alias's values are placed where the alias stands, not where the anchor does.
    assert found[("spec", "again")] == Position(9, 3)
    assert found[("spec", "again", "disk_usage", "path")] == Position(7, 7)


def test_a_recursive_alias_is_refused_alike_by_loader_and_check() -> None:
    text = "a: &x [*x]\n"
    with pytest.raises(InputError) as caught:
        list(load_text(text, "x.yaml"))
    problem = index_text(text).problem
    assert problem is not None
    assert caught.value.message == problem.message == "a YAML alias refers to itself"
    assert caught.value.location.line == problem.position.line == 1


def test_an_alias_bomb_is_refused_alike_by_loader_and_check() -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    text = "\n".join(lines) + "\n"
    with pytest.raises(InputError) as caught:
        list(load_text(text, "bomb.yaml"))
    problem = index_text(text).problem
    assert problem is not None
    assert caught.value.message == problem.message
    assert problem.message.startswith(f"more than {MAX_VALUES} values")


def test_the_walk_never_recurses_however_deep_the_document() -> None:
    leaf = yaml.ScalarNode("tag:yaml.org,2002:str", "x")
    node: yaml.Node = leaf
    for _ in range(3_000):  # beyond any recursion limit
        node = yaml.SequenceNode("tag:yaml.org,2002:seq", [node])
    found = positions(node)
    assert len(found) == 3_001


def test_keys_are_checked_in_reading_order_before_the_value_they_hold() -> None:
    # The loader refuses the first problem a reader meets: the boolean key on line 2 comes
    # before the recursive alias on line 3.
    (root,) = yaml.compose_all("a: 1\non: 2\nb: &x [*x]\n")
    with pytest.raises(NodeRefused) as caught:
        positions(root)
    assert caught.value.field == "on"
    assert caught.value.node.start_mark.line == 1
    # check indexes without the key checks, and reports them itself.
    assert index_text("a: 1\non: 2\n").problem is None


def test_a_key_written_twice_is_refused_at_the_second() -> None:
    with pytest.raises(InputError) as caught:
        list(load_text("a: 1\nb: 2\na: 3\n", "d.yaml"))
    assert str(caught.value.location) == "d.yaml:3: a"
    assert caught.value.message == "duplicate key"
