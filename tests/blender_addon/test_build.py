"""The extension zip, built without Blender: manifest, add-on modules, the worker client, nothing else."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

from blender_addon.build import build_blender_zip


def _build(tmp_path: Path) -> Path:
    return build_blender_zip(tmp_path)


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
    out = build_blender_zip(tmp_path / "sub" / "x.zip")
    assert out == tmp_path / "sub" / "x.zip" and zipfile.is_zipfile(out)
