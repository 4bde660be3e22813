"""``adain install gimp``: put the GIMP 3 filter into the user's plug-ins folder and record the engine's Python.

Standard library only.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
from pathlib import Path

from . import config

__all__ = ["install_gimp_plugin", "gimp_plugins_dir", "gimp_plugin_source", "PLUGIN_NAME"]

PLUGIN_NAME = "adain-style-transfer"


def gimp_plugin_source() -> Path:
    """The folder ``adain-style-transfer/`` holding the plug-in in this install (source checkout or wheel).

    Raises:
        FileNotFoundError: this install does not ship the plug-in.
    """
    candidates = []
    spec = importlib.util.find_spec("gimp_plugin")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / PLUGIN_NAME for p in spec.submodule_search_locations]
    candidates.append(Path(__file__).resolve().parents[2] / "gimp_plugin" / PLUGIN_NAME)
    for candidate in candidates:
        if (candidate / f"{PLUGIN_NAME}.py").is_file():
            return candidate
    raise FileNotFoundError(f"the GIMP plug-in {PLUGIN_NAME}.py is not part of this install (looked in "
                            f"{', '.join(map(str, candidates))}); install adain-style-transfer from a release or a "
                            f"source checkout")


def gimp_plugins_dir() -> Path:
    """The user's GIMP 3 plug-ins folder.

    ``$GIMP3_DIRECTORY/plug-ins`` when set; otherwise the per-user GIMP 3.0 folder of the platform
    (``~/.config/GIMP/3.0`` on Linux, or the Flatpak one when only that exists;
    ``%APPDATA%\\GIMP\\3.0`` on Windows; ``~/Library/Application Support/GIMP/3.0`` on macOS).
    """
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"]) / "plug-ins"
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / "GIMP" / "3.0"
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support" / "GIMP" / "3.0"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP" / "3.0"
        flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0"
        if not base.exists() and flatpak.exists():
            base = flatpak
    return base / "plug-ins"


def install_gimp_plugin(dest: str | os.PathLike[str] | None = None, *, python: str | os.PathLike[str] | None = None,
                        link: bool = False) -> Path:
    """Install the GIMP 3 filter and record which Python runs the engine.

    Args:
        dest: the GIMP plug-ins folder (default :func:`gimp_plugins_dir`); the plug-in goes into
            ``dest/adain-style-transfer/``, replacing an earlier copy.
        python: the engine's Python (default ``$ADAIN_PYTHON``, else the interpreter running this function).
            Written to the config file (:func:`adain_core.worker.config.config_path`) that the plug-in reads.
        link: symlink the plug-in folder instead of copying it (for development: edits take effect on GIMP's next
            start).

    Returns:
        The installed plug-in folder.

    Raises:
        FileNotFoundError: the plug-in source or the given Python does not exist.
    """
    source = gimp_plugin_source()
    python = os.fspath(python or os.environ.get("ADAIN_PYTHON") or sys.executable)
    if not os.path.isfile(python):
        raise FileNotFoundError(f"engine Python {python} does not exist")
    plugins = Path(dest) if dest is not None else gimp_plugins_dir()
    plugins.mkdir(parents=True, exist_ok=True)
    target = plugins / PLUGIN_NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if link:
        target.symlink_to(source.resolve(), target_is_directory=True)
    else:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    script = target / f"{PLUGIN_NAME}.py"
    if sys.platform != "win32":
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    config.write_config(python=os.path.abspath(python))
    return target
