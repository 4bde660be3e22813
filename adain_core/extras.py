"""Optional dependencies (the package's pip extras): what each extra brings, whether it is importable here, and the
exact command that installs it into the Python running the engine (a host's own Python included)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from importlib import metadata
from urllib.parse import unquote, urlparse

from .errors import MissingDependencyError

__all__ = ["DISTRIBUTION", "EXTRAS", "install_command", "missing_modules", "require"]

DISTRIBUTION = "adain-style-transfer"

# extra → (pip requirements, modules they provide). Kept equal to pyproject's optional-dependencies by a test.
EXTRAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "video": (("imageio>=2.30", "imageio-ffmpeg>=0.4.9"), ("imageio", "imageio_ffmpeg")),
    "convert": (("h5py>=3.8",), ("h5py",)),
    "cluster": (("ray[data]>=2.9",), ("ray", "ray.data")),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that do not import in this Python (empty when the extra is installed)."""
    return [m for m in EXTRAS[extra][1] if importlib.util.find_spec(m) is None]


def _quote(text: str) -> str:
    return f'"{text}"' if any(c.isspace() for c in text) or "[" in text or ">" in text else text


def install_command(extra: str) -> str:
    """The pip command that installs ``extra`` into *this* Python (``sys.executable``).

    An installed package gets ``pip install "adain-style-transfer[extra]"``; an editable install (a checkout) gets
    ``pip install -e "<checkout>[extra]"``; a copy that pip does not know (a ComfyUI ``custom_nodes`` clone) gets the
    extra's requirements themselves.
    """
    python = _quote(sys.executable or "python")
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return f"{python} -m pip install {' '.join(_quote(r) for r in EXTRAS[extra][0])}"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except json.JSONDecodeError:
        direct = {}
    if direct.get("dir_info", {}).get("editable") and direct.get("url", "").startswith("file:"):
        checkout = unquote(urlparse(direct["url"]).path)
        if os.name == "nt" and checkout.startswith("/"):
            checkout = checkout[1:]
        return f"{python} -m pip install -e {_quote(f'{checkout}[{extra}]')}"
    return f"{python} -m pip install {_quote(f'{DISTRIBUTION}[{extra}]')}"


def require(extra: str, purpose: str) -> None:
    """Raise :class:`MissingDependencyError` (one line, naming the install command) unless ``extra`` imports.

    Args:
        extra: a key of :data:`EXTRAS`.
        purpose: what needs it, e.g. ``"reading video"``.
    """
    missing = missing_modules(extra)
    if missing:
        raise MissingDependencyError(f"{purpose} needs {', '.join(missing)} (the '{extra}' extra), not installed in "
                                     f"this Python; install it with: {install_command(extra)}")
