"""Dependencies point one way: a module imports only from its own layer or the ones below.

The layers are docs/architecture.md's; this test is what keeps them true. A lazy import
inside a function counts too: it is a dependency all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "ccci"

# Lowest first. A module is placed by its longest listed prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Languages and base utilities: no knowledge of hosts, policies or plans.
    ("errors", "quantities", "saferegex", "serde", "render.escape", "render.redact",
     "render.secretname", "state.atomic", "state.cachefile", "systemd.values", "systemd.units",
     "config.yamlsrc", "config.yamlcache"),
    ("facts", "connectors", "config"),
    ("policy", "systemd.sandbox"),
    ("plan.address", "plan.model"),
    ("rules",),
    ("plan",),
    ("state", "views"),
    ("apply", "systemd"),
    ("render", "review"),
    ("run",),
    ("cli",),
)  # fmt: skip


def layer_of(module: str) -> int:
    parts = module.split(".")[1:]
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        for index, names in enumerate(LAYERS):
            if prefix in names:
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(path: Path) -> list[tuple[int, str]]:
    """Every ccci module ``path`` imports; ``from ccci.render import escape`` names
    ``ccci.render.escape``, the module, not its package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "ccci" and not node.module.startswith("ccci."):
                continue
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if is_module(name):
                    found.append((node.lineno, name))
                elif node.module != "ccci":
                    found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ccci.")]
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if module_name(p) not in ("ccci", "ccci.__main__"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_a_module_imports_nothing_from_a_layer_above_its_own(path: Path) -> None:
    mine = layer_of(module_name(path))
    upward = [
        f"{module_name(path)}:{line} imports {name}"
        for line, name in imported(path)
        if layer_of(name) > mine
    ]
    assert upward == []


def test_every_package_of_ccci_has_a_layer() -> None:
    packages = {module_name(p) for p in ROOT.rglob("__init__.py")} - {"ccci"}
    assert {p: layer_of(p) for p in packages}  # raises naming the package that has none
    assert all(layer_of(p) >= 0 for p in packages)
