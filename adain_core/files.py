"""Atomic publication of written files: a temp file in the target folder is given normal permissions and renamed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["publish", "naming"]


@contextlib.contextmanager
def naming(dest: str | Path) -> Iterator[None]:
    """Re-raise an ``OSError`` of writing ``dest`` (through its temp file) with ``dest`` as the file name, so a full
    disk or a read-only folder is reported against the file the user asked for, not a temp name or no name."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, FileExistsError) and exc.filename is None:
            raise
        raise type(exc)(exc.errno, exc.strerror or str(exc), str(dest)) from None


def publish(tmp: str | Path, dest: str | Path) -> None:
    """Give ``tmp`` the permissions a plain ``open()`` would have (0666 minus the umask; ``mkstemp`` makes 0600)
    and rename it onto ``dest`` in one step, so readers never see a half-written file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)
