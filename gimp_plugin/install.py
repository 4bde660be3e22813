"""``adain install gimp``: put the GIMP 3 filter, with its copy of the engine worker's client, into the user's
plug-ins folder and record the engine's Python.

Runs in the engine's Python (it reads the client files from :mod:`adain_core.worker`); standard library otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
from pathlib import Path

from adain_core import worker
from adain_core.worker import config

__all__ = ["install_gimp_plugin", "install_plugin_files", "gimp_plugins_dir", "PLUGIN_NAME", "PLUGIN_SOURCE",
           "INSTALLER"]

PLUGIN_NAME = "adain-style-transfer"
#: The plug-in folder in this package (GIMP wants folder and script to share the name).
PLUGIN_SOURCE = Path(__file__).resolve().parent / PLUGIN_NAME


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


def install_plugin_files(plugins: Path, *, link: bool = False) -> Path:
    """Write ``plugins/adain-style-transfer/``: the plug-in script and, beside it, the worker client as the package
    ``adain_worker`` (which the script imports), replacing an earlier copy.

    Args:
        plugins: a GIMP plug-ins folder (created if missing).
        link: symlink the script and the client instead of copying them (for development: edits take effect on
            GIMP's next start).

    Returns:
        The installed plug-in folder.
    """
    plugins.mkdir(parents=True, exist_ok=True)
    target = plugins / PLUGIN_NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.mkdir()
    script = target / f"{PLUGIN_NAME}.py"
    bundled = target / worker.BUNDLED_NAME
    bundled.mkdir()
    if link:
        script.symlink_to(PLUGIN_SOURCE / script.name)
        for path in worker.client_files():
            (bundled / path.name).symlink_to(path)
    else:
        shutil.copy2(PLUGIN_SOURCE / script.name, script)
        for path in worker.client_files():
            shutil.copy2(path, bundled / path.name)
    if sys.platform != "win32":
        source = script.resolve()
        source.chmod(source.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def install_gimp_plugin(dest: str | os.PathLike[str] | None = None, *, python: str | os.PathLike[str] | None = None,
                        link: bool = False) -> Path:
    """Install the GIMP 3 filter and record which Python runs the engine.

    Args:
        dest: the GIMP plug-ins folder (default :func:`gimp_plugins_dir`); the plug-in goes into
            ``dest/adain-style-transfer/`` (see :func:`install_plugin_files`).
        python: the engine's Python (default ``$ADAIN_PYTHON``, else the interpreter running this function).
            Written to the config file (:func:`adain_core.worker.config.config_path`) that the plug-in reads.
        link: symlink instead of copying (see :func:`install_plugin_files`).

    Returns:
        The installed plug-in folder.

    Raises:
        FileNotFoundError: the given Python does not exist.
    """
    python = os.fspath(python or os.environ.get("ADAIN_PYTHON") or sys.executable)
    if not os.path.isfile(python):
        raise FileNotFoundError(f"engine Python {python} does not exist")
    target = install_plugin_files(Path(dest) if dest is not None else gimp_plugins_dir(), link=link)
    config.write_config(python=os.path.abspath(python))
    return target


class _GimpInstaller:
    help = "install the GIMP 3 plug-in for this user"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dest", type=Path,
                            help="GIMP plug-ins folder (default: the user's GIMP 3 plug-ins folder)")
        parser.add_argument("--python", type=Path,
                            help="engine Python to record (default: $ADAIN_PYTHON or this Python)")
        parser.add_argument("--link", action="store_true", help="symlink the plug-in instead of copying it")

    def install(self, args: argparse.Namespace) -> list[str]:
        target = install_gimp_plugin(args.dest, python=args.python, link=args.link)
        return [str(target), f"engine Python recorded in {config.config_path()}; restart GIMP"]


#: The ``adain.installers`` entry point named ``gimp``.
INSTALLER = _GimpInstaller()
