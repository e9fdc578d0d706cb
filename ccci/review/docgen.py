"""Generate ``docs/policies-reference.md`` from the JSON Schemas, so the reference can
never drift from what ccci validates: ``python -m ccci.review.docgen > docs/policies-reference.md``
(a test compares the two).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml

from ccci.policy import schema as schemas

HEADER = """\
# Policy reference

Generated from the JSON Schemas in [`schemas/`](../schemas) by
`python -m ccci.review.docgen > docs/policies-reference.md`; do not edit it by hand (a test
keeps it in sync). [policies.md](policies.md) explains what each kind does;
`ccci schema KIND` prints a schema and `ccci policy check` validates policies against them.

Every document has `apiVersion`, `kind`, `metadata` and `spec`, and may have `hosts`. Unknown
fields are errors everywhere. Any string value may use Jinja2 over the host's inventory vars.
"""


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref``; the referring node's own annotations win."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    merged = {**_resolve(root, target), **{k: v for k, v in node.items() if k != "$ref"}}
    return merged


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "`" + text.strip().replace("|", "\\|").replace("`", "'") + "`"


def _type(root: dict[str, Any], node: dict[str, Any]) -> str:
    node = _resolve(root, node)
    if "const" in node:
        return _code(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    kind = node.get("type", "")
    title = node.get("title", "")
    if kind == "array":
        items = node.get("items", {})
        return f"list of {_type(root, items)}" if items else "list"
    if kind == "object":
        return "mapping"
    if kind == "integer":
        low = node.get("minimum")
        return f"integer ≥ {low}" if low is not None else "integer"
    name = title or {"string": "text", "boolean": "true or false"}.get(kind, kind or "any")
    if node.get("format") == "regex" and not title:
        name = "regular expression"
    pattern = node.get("pattern")
    return f"{name} ({_code(pattern)})" if pattern and title in ("", "duration") else name


def _about(root: dict[str, Any], node: dict[str, Any]) -> str:
    node = _resolve(root, node)
    parts = [str(node.get("description", "")).strip()]
    if "oneOf" in node:
        names = sorted({k for b in node["oneOf"] for k in b.get("required", [])})
        parts.append(f"Write exactly one of: {', '.join(_code(n) for n in names)}.")
    if node.get("minProperties"):
        parts.append("Name at least one field.")
    if node.get("minItems"):
        parts.append(f"At least {node['minItems']} item(s).")
    examples = node.get("examples")
    if examples and node.get("type") != "object" and "items" not in node:
        parts.append("Examples: " + ", ".join(_code(e) for e in examples) + ".")
    elif examples and node.get("type") == "array":
        parts.append("Example: " + _code(examples[0]) + ".")
    return " ".join(p for p in parts if p).replace("|", "\\|").replace("\n", " ")


def _rows(
    root: dict[str, Any], node: dict[str, Any], prefix: str, required: set[str]
) -> Iterator[str]:
    node = _resolve(root, node)
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        resolved = _resolve(root, child)
        default = resolved.get("default")
        shown_default = _code(default) if default is not None else ""
        yield (
            f"| `{path}` | {_type(root, child)} | {'yes' if name in required else ''} "
            f"| {shown_default} | {_about(root, child)} |"
        )
        if resolved.get("type") == "object":
            yield from _rows(root, resolved, f"{path}.", set(resolved.get("required", [])))
        items = _resolve(root, resolved.get("items", {})) if "items" in resolved else {}
        if items.get("type") == "object":
            yield from _rows(root, items, f"{path}[].", set(items.get("required", [])))


def kind_section(kind: str) -> str:
    """One kind's reference section: description, examples and a field table, all from its schema,
    so the docs say what load validates."""
    root = schemas.schema(kind)
    lines = [
        f"## {kind}",
        "",
        str(root.get("description", "")),
        "",
        f"Schema: [`schemas/{kind}.json`](../schemas/{kind}.json), `$id` `{root.get('$id', '')}`.",
        "",
    ]
    for example in root.get("examples", []):
        text = yaml.safe_dump(example, sort_keys=False, allow_unicode=True, width=100)
        lines += ["```yaml", text.rstrip("\n"), "```", ""]
    lines += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    lines += list(_rows(root, root, "", set(root.get("required", []))))
    return "\n".join(lines) + "\n"


def reference() -> str:
    """The whole reference, every kind in name order."""
    kinds = schemas.schema_names()
    contents = "\n".join(f"- [{k}](#{k.lower()})" for k in kinds)
    sections = "\n".join(kind_section(k) for k in kinds)
    return f"{HEADER}\n{contents}\n\n{sections}"


if __name__ == "__main__":
    print(reference(), end="")
