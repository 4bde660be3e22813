"""Where the host adapters find the engine: a small JSON file naming the engine's Python (and optionally a model).

Standard library only. Written by ``adain install gimp``; ``$ADAIN_PYTHON`` / ``$ADAIN_MODEL`` override it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["config_path", "read_config", "write_config"]


def config_path() -> Path:
    """``$ADAIN_CONFIG``, else ``engine.json`` in the per-user config folder (``~/.config/adain`` on Linux,
    ``%APPDATA%\\adain`` on Windows, ``~/Library/Application Support/adain`` on macOS)."""
    override = os.environ.get("ADAIN_CONFIG")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "adain" / "engine.json"


def read_config() -> dict[str, Any]:
    """The config as a dict; ``{}`` when the file is missing or unreadable."""
    try:
        data = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_config(**values: Any) -> Path:
    """Merge ``values`` (``None`` removes a key) into the config file, atomically. Returns its path."""
    path = config_path()
    data = read_config()
    for key, value in values.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
