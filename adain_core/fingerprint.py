"""File identity and content hashes: the one fingerprint (resolved path, size, mtime) by which caches notice a file
replaced in place, and the one sha256 hasher (memoised by that fingerprint, so a file is read once per change)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

__all__ = ["FileIdentity", "file_identity", "sha256_file", "sha256_bytes"]

_HASHES_KEPT = 256


class FileIdentity(NamedTuple):
    """What identifies a file's current content cheaply: a change of any field means "read it again"."""

    path: str  # resolved (symlinks followed)
    size: int
    mtime_ns: int


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """The :class:`FileIdentity` of ``path``.

    Raises:
        FileNotFoundError / OSError: the file cannot be stat'ed.
    """
    resolved = os.path.realpath(path)
    info = os.stat(resolved)
    return FileIdentity(resolved, info.st_size, info.st_mtime_ns)


_hashes: OrderedDict[FileIdentity, str] = OrderedDict()
_lock = threading.Lock()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; remembered for the file's current identity."""
    identity = file_identity(path)
    with _lock:
        digest = _hashes.get(identity)
        if digest is not None:
            _hashes.move_to_end(identity)
            return digest
    h = hashlib.sha256()
    with open(Path(identity.path), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _lock:
        _hashes[identity] = digest
        while len(_hashes) > _HASHES_KEPT:
            _hashes.popitem(last=False)
    return digest


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes in memory (e.g. decoded style pixels with no file behind them)."""
    return hashlib.sha256(data).hexdigest()
