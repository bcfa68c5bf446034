"""The house rules, checked: an import only points down the layers (or within its own layer),
no module of the package is longer than 400 lines, and nothing in it exists only for tests."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "alore_bench"

# Lowest first; a module may import from its own layer and the ones before it.
LAYERS = [
    {"_version", "errors"},
    {"paths", "network", "devices"},
    {"io", "config", "registry", "code_cache", "progress"},
    {"tuning", "protocols", "presets"},
    {"data"},
    {"backbones"},
    {"methods"},
    {"engine", "env", "params", "logistic", "probe", "demo_pretrain"},
    {"runs"},
    {"execution"},
    {"study"},
    {"reporting"},
    {"costs", "checkup", "listing", "conformance"},
    {"api"},
    {"cli"},
    {"__init__", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_tops(path: Path):
    """(line, top-level module of alore_bench) for every import in the file, function-level too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(PACKAGE).parts) - 1
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "alore_bench":
                    parts = node.module.split(".")[1:]
                else:
                    continue
            else:
                up = node.level - 1
                if up > depth:
                    continue
                base = list(path.relative_to(PACKAGE).parts[:depth - up]) if depth - up > 0 else []
                parts = base + (node.module.split(".") if node.module else [])
            if not parts:  # `from .. import x`: names of the package top itself
                names = [alias.name for alias in node.names]
                yield node.lineno, names[0] if names[0] in RANK else "__init__"
            else:
                yield node.lineno, parts[0]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "alore_bench" and len(alias.name.split(".")) > 1:
                    yield node.lineno, alias.name.split(".")[1]


def test_every_module_has_a_layer():
    tops = {top_name(p) for p in PACKAGE.rglob("*.py")} - {"suite_defs"}
    assert tops <= set(RANK), f"modules without a layer: {sorted(tops - set(RANK))}"


def test_imports_only_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = top_name(path)
        for line, target in imported_tops(path):
            if target in RANK and RANK[target] > RANK[mine]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} (above {mine})")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_longer_than_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long


def test_the_package_top_imports_only_the_version():
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(n.module, n.level) for n in top_level] == [("_version", 1)]
