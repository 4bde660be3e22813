# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Blender extension zip (``adain install blender --zip OUT.zip``): the add-on's files plus a copy of the
engine worker's stdlib-only client (:func:`adain_core.worker.client_files` → ``adain_worker/``), which Blender's
Python runs without torch. Runs in the engine's Python; needs no bpy."""

from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path

from adain_core import worker

__all__ = ["build_blender_zip", "ADDON_DIR", "INSTALLER"]

ADDON_DIR = Path(__file__).resolve().parent
_EXCLUDED = {"build.py"}


def _manifest_version() -> str:
    text = (ADDON_DIR / "blender_manifest.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "0.0.0"


def _addon_files() -> list[Path]:
    files = []
    for path in sorted(ADDON_DIR.rglob("*")):
        relative = path.relative_to(ADDON_DIR)
        if not path.is_file() or "__pycache__" in relative.parts or relative.parts[0] == worker.BUNDLED_NAME:
            continue
        if path.name in _EXCLUDED or path.suffix in (".pyc", ".zip"):
            continue
        files.append(path)
    return files


def build_blender_zip(out: Path) -> Path:
    """Write the extension zip to ``out`` (a directory gets ``adain_style_transfer-<version>.zip``).

    Args:
        out: zip path or existing directory.

    Returns:
        The path of the zip written.
    """
    out = Path(out)
    if out.is_dir():
        out = out / f"adain_style_transfer-{_manifest_version()}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _addon_files():
            archive.write(path, path.relative_to(ADDON_DIR).as_posix())
        for path in worker.client_files():
            archive.write(path, f"{worker.BUNDLED_NAME}/{path.name}")
    tmp.replace(out)
    return out


class _BlenderInstaller:
    help = "build the Blender extension zip"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--zip", type=Path, required=True, help="output .zip path")

    def install(self, args: argparse.Namespace) -> list[str]:
        return [str(build_blender_zip(args.zip))]


#: The ``adain.installers`` entry point named ``blender``.
INSTALLER = _BlenderInstaller()
