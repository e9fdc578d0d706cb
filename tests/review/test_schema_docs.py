"""``ccci schema`` prints the JSON Schemas; docs/policies-reference.md is generated from them
and must stay in sync; every schema carries its ``$id``, titles, descriptions and examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from review_helpers import run_cli

from ccci.policy.schema import schema, schema_names
from ccci.review.docgen import reference

REPO = Path(__file__).resolve().parents[2]


def test_the_policy_reference_is_generated_from_the_schemas() -> None:
    written = (REPO / "docs" / "policies-reference.md").read_text(encoding="utf-8")
    assert written == reference(), (
        "docs/policies-reference.md is stale: "
        "python -m ccci.review.docgen > docs/policies-reference.md"
    )


def test_the_generator_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ccci.review.docgen"], capture_output=True, text=True, check=True
    )
    assert done.stdout == reference()


def test_the_reference_documents_every_field_of_every_kind() -> None:
    text = reference()
    for kind in schema_names():
        assert f"## {kind}" in text
    for field in (
        "spec.gates.disk_usage.at_least",
        "spec.prune.dangling_build_cache.older_than",
        "spec.present[].randomized_delay",
        "spec.run_apps.selector",
        "spec.evict.down_to",
        "spec.registry_auth.user",
    ):
        assert f"| `{field}` |" in text


def _properties(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(node, dict):
        return found
    for name, child in node.get("properties", {}).items():
        found.append((f"{path}{name}", child))
        found += _properties(child, f"{path}{name}.")
    if isinstance(node.get("items"), dict):
        found += _properties(node["items"], f"{path}[].")
    for name, child in node.get("$defs", {}).items():
        found += [(f"$defs.{name}", child), *_properties(child, f"$defs.{name}.")]
    return found


@pytest.mark.parametrize("kind", schema_names())
def test_every_schema_has_an_id_title_description_and_examples(kind: str) -> None:
    document = schema(kind)
    assert document["$id"] == f"ccci/v1/{kind}"
    assert document["title"] == kind
    assert document["description"]
    assert document["examples"]
    undescribed = [p for p, node in _properties(document) if not _described(document, node)]
    assert undescribed == []


def _described(document: dict[str, Any], node: dict[str, Any]) -> bool:
    """A description of its own, or the one of the definition it refers to."""
    if "description" in node:
        return True
    if "$ref" not in node:
        return False
    target: Any = document
    for part in str(node["$ref"])[2:].split("/"):
        target = target[part]
    return "description" in target


def test_schema_prints_every_schema_as_one_json_object() -> None:
    result = run_cli(["schema"])
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert sorted(document) == schema_names()
    assert document["PrunePolicy"] == schema("PrunePolicy")


def test_schema_kind_prints_that_schema() -> None:
    result = run_cli(["schema", "TimerPolicy"])
    assert json.loads(result.output) == schema("TimerPolicy")


def test_an_unknown_kind_is_one_clean_error() -> None:
    result = run_cli(["schema", "Nope"])
    assert result.exit_code == 1
    assert result.stderr == (
        "ccci: unknown kind 'Nope' (known: DaemonPolicy, ImageRetention, OrphanStackPolicy, "
        "PrunePolicy, StackSelector, TimerPolicy)\n"
    )


def test_the_review_commands_import_nothing_heavy_at_start() -> None:
    code = (
        "import sys; import ccci.cli.policy; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('yaml', 'jsonschema', 'jinja2', 'docker') or m.startswith('ccci.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # ccci.cli.options (click only) and ccci.errors (stdlib only) are the shared command helpers.
    assert done.stdout.strip() == "ccci.cli,ccci.cli.options,ccci.cli.policy,ccci.errors"
