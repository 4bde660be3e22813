# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Blender extension zip (``adain install blender --zip OUT.zip``): the add-on's files plus a copy of the
engine worker's stdlib-only client (``adain_core/worker`` → ``adain_worker/``), which Blender's Python runs without
torch. Needs neither bpy nor torch."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

__all__ = ["build_blender_zip", "ADDON_DIR", "WORKER_CLIENT_FILES"]

ADDON_DIR = Path(__file__).resolve().parent
_REPO = ADDON_DIR.parent
# The client side of adain_core.worker: standard library only (server.py and __main__.py need torch).
WORKER_CLIENT_FILES = ("__init__.py", "client.py", "config.py", "protocol.py")
_EXCLUDED = {"build.py"}


def _manifest_version() -> str:
    text = (ADDON_DIR / "blender_manifest.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "0.0.0"


def _addon_files() -> list[Path]:
    files = []
    for path in sorted(ADDON_DIR.rglob("*")):
        relative = path.relative_to(ADDON_DIR)
        if not path.is_file() or "__pycache__" in relative.parts or relative.parts[0] == "adain_worker":
            continue
        if path.name in _EXCLUDED or path.suffix in (".pyc", ".zip"):
            continue
        files.append(path)
    return files


def build_blender_zip(out: Path, worker_dir: Path | None = None) -> Path:
    """Write the extension zip to ``out`` (a directory gets ``adain_style_transfer-<version>.zip``).

    Args:
        out: zip path or existing directory.
        worker_dir: the ``adain_core/worker`` package to copy the client from (default: the one beside this
            add-on in the source tree, else the installed ``adain_core``'s).

    Returns:
        The path of the zip written.

    Raises:
        FileNotFoundError: the worker client files are not found.
    """
    out = Path(out)
    if out.is_dir():
        out = out / f"adain_style_transfer-{_manifest_version()}.zip"
    if worker_dir is None:
        worker_dir = _REPO / "adain_core" / "worker"
        if not (worker_dir / "client.py").is_file():
            import importlib.util

            spec = importlib.util.find_spec("adain_core")
            if spec is not None and spec.submodule_search_locations:
                worker_dir = Path(list(spec.submodule_search_locations)[0]) / "worker"
    missing = [name for name in WORKER_CLIENT_FILES if not (Path(worker_dir) / name).is_file()]
    if missing:
        raise FileNotFoundError(f"engine worker client files {missing} not found in {worker_dir}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _addon_files():
            archive.write(path, path.relative_to(ADDON_DIR).as_posix())
        for name in WORKER_CLIENT_FILES:
            archive.write(Path(worker_dir) / name, f"adain_worker/{name}")
    tmp.replace(out)
    return out


if __name__ == "__main__":
    import sys

    print(build_blender_zip(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
