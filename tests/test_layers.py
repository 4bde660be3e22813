"""The layering rules, read from the source: the engine never imports an adapter, and the worker client that hosts
without torch carry is standard library only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from adain_core import worker

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = {"comfy_nodes", "gimp_plugin", "blender_addon"}


def _imports(path: Path, root: Path = REPO) -> list[tuple[ast.AST, str]]:
    """Every absolute module an import in ``path`` names (relative imports resolved against ``root``), including
    ``importlib.import_module("...")`` / ``find_spec("...")`` with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = path.relative_to(root).parent.parts
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = [*package[:len(package) - node.level + 1]] if node.level else []
            module = ".".join(parts + ([node.module] if node.module else []))
            # `from x import y` may import the module x.y: both names count.
            found += [(node, module)] + [(node, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__", "find_spec") and node.args and isinstance(node.args[0], ast.Constant):
            found.append((node, str(node.args[0].value)))
    return found


ENGINE_MODULES = sorted((REPO / "adain_core").rglob("*.py"))


@pytest.mark.parametrize("path", ENGINE_MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_engine_imports_no_adapter(path):
    offending = [f"line {node.lineno}: {name}" for node, name in _imports(path) if name.split(".")[0] in ADAPTERS]
    assert not offending, f"{path.relative_to(REPO)} imports an adapter: {offending}"


def test_import_scan_sees_every_kind_of_import(tmp_path):
    """The scanner itself: a module naming an adapter in each way is caught."""
    package = tmp_path / "adain_core"
    package.mkdir()
    module = package / "bad.py"
    module.write_text("import gimp_plugin\nfrom blender_addon.build import x\n"
                      "import importlib\nimportlib.import_module('comfy_nodes')\nfrom . import cards\n")
    names = {name for _, name in _imports(module, tmp_path)}
    assert names == {"gimp_plugin", "blender_addon.build", "blender_addon.build.x", "importlib", "comfy_nodes",
                     "adain_core", "adain_core.cards"}


@pytest.mark.parametrize("path", worker.client_files(), ids=lambda p: p.name)
def test_worker_client_is_stdlib_only(path):
    """GIMP's and Blender's Python have no torch: the client files they carry import only the standard library
    (numpy only inside a function, for callers that have it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            in_function = any(node in ast.walk(f) for f in functions)
            assert top in sys.stdlib_module_names or top == "__future__" or (top == "numpy" and in_function), \
                f"{path.name} imports {module}"
