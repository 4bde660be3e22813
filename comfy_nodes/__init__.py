"""ComfyUI nodes (V3 schema) for AdaIN style transfer: model loader, style cards, mixing and stylize.

The nodes are thin: every bit of model math is ``adain_core``'s. This package is loaded through the repository's
root ``__init__.py`` (``comfy_entrypoint``); it makes the engine next to it importable instead of copying it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

__all__ = ["comfy_entrypoint"]

_REPO_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger(__name__)


def _make_engine_importable() -> None:
    """Put the repository root on ``sys.path`` when ``adain_core`` is not installed (custom_nodes clone/registry).

    Appended, not prepended: the repository root holds generic names (``tests``, ``training``) that must not shadow
    anything ComfyUI or other packs import.
    """
    if importlib.util.find_spec("adain_core") is None and (_REPO_ROOT / "adain_core" / "__init__.py").is_file():
        sys.path.append(str(_REPO_ROOT))
    spec = importlib.util.find_spec("adain_core")
    if spec is None:
        raise ImportError(
            f"adain_core (the AdaIN engine) was not found next to the nodes ({_REPO_ROOT}) nor installed; "
            "reinstall the pack or run `pip install -r requirements.txt` in ComfyUI's Python"
        )
    origin = Path(spec.origin or "").resolve()
    if _REPO_ROOT not in origin.parents:
        logger.info("AdaIN: using the installed engine at %s", origin.parent)
    try:
        importlib.import_module("adain_core")
    except ModuleNotFoundError as exc:
        # ComfyUI only logs this; name the command for the Python that runs ComfyUI (venv, conda, embedded).
        raise ImportError(
            f"AdaIN nodes: the Python module {exc.name!r} is missing in ComfyUI's Python; install the pack's "
            f"requirements with: {sys.executable} -m pip install -r {_REPO_ROOT / 'requirements.txt'}"
        ) from None


async def comfy_entrypoint():
    """ComfyUI V3 entry point: returns the extension that lists the nodes."""
    _make_engine_importable()
    from .nodes import AdaINExtension

    return AdaINExtension()
