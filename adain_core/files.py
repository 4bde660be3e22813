"""Atomic publication of written files: a temp file in the target folder is given normal permissions and renamed."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["publish"]


def publish(tmp: str | Path, dest: str | Path) -> None:
    """Give ``tmp`` the permissions a plain ``open()`` would have (0666 minus the umask; ``mkstemp`` makes 0600)
    and rename it onto ``dest`` in one step, so readers never see a half-written file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)
