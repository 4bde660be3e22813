"""The extension zip, built without Blender: manifest, add-on modules, the worker client, nothing else."""

from __future__ import annotations

import ast
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build_module():
    sys.path.insert(0, str(REPO))
    try:
        from blender_addon import build
    finally:
        sys.path.remove(str(REPO))
    return build


def _build(tmp_path: Path) -> Path:
    return _build_module().build_blender_zip(tmp_path)


def test_zip_layout_and_manifest(tmp_path):
    path = _build(tmp_path)
    assert path.name == "adain_style_transfer-0.1.0.zip"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert {"__init__.py", "blender_manifest.toml", "node.py", "pipeline.py", "adain_worker/client.py",
            "adain_worker/protocol.py", "adain_worker/config.py", "adain_worker/__init__.py"} <= names
    assert not any(name.endswith((".pyc", "build.py")) or "__pycache__" in name
                   or "server" in name for name in names)
    assert manifest["id"] == "adain_style_transfer" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert "files" in manifest["permissions"]


def test_zip_into_file_path(tmp_path):
    out = _build_module().build_blender_zip(tmp_path / "sub" / "x.zip")
    assert out == tmp_path / "sub" / "x.zip" and zipfile.is_zipfile(out)


def test_worker_client_is_stdlib_only():
    """Blender's Python has no torch: the client files the zip carries may import only the standard library."""
    for name in _build_module().WORKER_CLIENT_FILES:
        tree = ast.parse((REPO / "adain_core" / "worker" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__" or (
                    top == "numpy" and _inside_function(tree, node)), f"{name} imports {module}"


def _inside_function(tree, target) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(n is target for n in ast.walk(node)):
            return True
    return False
