"""Wire format between the engine worker and its clients: length-prefixed frames of a JSON header plus raw bytes.

Standard library only: this module is loaded by hosts whose Python has neither torch nor numpy (GIMP 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "PROTOCOL_VERSION",
    "ProtocolError",
    "send_message",
    "recv_message",
    "runtime_dir",
    "endpoint_name",
    "use_unix_socket",
    "DTYPE_SIZES",
]

PROTOCOL_VERSION = 1

#: frame = magic, JSON header length, payload length; then the UTF-8 JSON header, then the payload bytes.
_FRAME = struct.Struct("!4sIQ")
_MAGIC = b"ADN1"
_MAX_HEADER = 1 << 20
#: a 16k x 16k RGBA float32 image is 4 GiB; anything larger is refused before reading it.
_MAX_PAYLOAD = 1 << 33

#: bytes per channel value of the pixel types the protocol carries.
DTYPE_SIZES = {"uint8": 1, "float32": 4}


class ProtocolError(ConnectionError):
    """The peer sent something that is not a frame of this protocol, or closed the connection mid-frame."""


def send_message(sock: socket.socket, header: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> None:
    """Send one frame.

    Args:
        sock: a connected stream socket.
        header: JSON-serialisable dict; by convention it has ``"op"`` (requests) or ``"type"`` (replies).
        payload: raw bytes that follow the header (image buffers), possibly empty.
    """
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    payload = memoryview(payload).cast("B")
    sock.sendall(_FRAME.pack(_MAGIC, len(body), payload.nbytes) + body)
    if payload.nbytes:
        sock.sendall(payload)


def _recv_exactly(sock: socket.socket, size: int, *, allow_eof: bool = False) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], min(size - got, 1 << 22))
        if n == 0:
            if got == 0 and allow_eof:
                return None
            raise ProtocolError(f"connection closed after {got} of {size} bytes")
        got += n
    return buffer


def recv_message(sock: socket.socket) -> tuple[dict[str, Any], bytearray] | None:
    """Receive one frame.

    Returns:
        ``(header, payload)``, or ``None`` when the peer closed the connection cleanly between frames.

    Raises:
        ProtocolError: bad magic, oversized frame, or a connection closed mid-frame.
    """
    raw = _recv_exactly(sock, _FRAME.size, allow_eof=True)
    if raw is None:
        return None
    magic, header_size, payload_size = _FRAME.unpack(raw)
    if magic != _MAGIC:
        raise ProtocolError(f"not an AdaIN worker frame (magic {bytes(magic)!r})")
    if header_size > _MAX_HEADER or payload_size > _MAX_PAYLOAD:
        raise ProtocolError(f"frame too large (header {header_size} B, payload {payload_size} B)")
    body = _recv_exactly(sock, header_size)
    try:
        header = json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    payload = _recv_exactly(sock, payload_size) if payload_size else bytearray()
    return header, payload


def use_unix_socket() -> bool:
    """Whether to use a Unix socket (everywhere it exists) or the loopback-TCP-with-token fallback (Windows)."""
    forced = os.environ.get("ADAIN_WORKER_TRANSPORT", "").lower()
    if forced in ("tcp", "unix"):
        return forced == "unix"
    return hasattr(socket, "AF_UNIX") and sys.platform != "win32"


def runtime_dir(base: str | os.PathLike[str] | None = None) -> Path:
    """The user-only directory that holds the worker's socket (or TCP address + token), its lock and its log.

    ``$ADAIN_WORKER_DIR``, else ``$XDG_RUNTIME_DIR/adain``, else ``<tmp>/adain-<uid>``. Created with mode 0700;
    refused when it belongs to another user or is readable by others, since whoever can reach the socket can make the
    worker read any file the user can.

    Raises:
        PermissionError: the directory exists but is not private to this user.
    """
    if base is None:
        base = os.environ.get("ADAIN_WORKER_DIR")
    if base is None:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg and os.path.isdir(xdg):
            base = os.path.join(xdg, "adain")
        elif sys.platform == "win32":
            base = os.path.join(os.environ.get("LOCALAPPDATA") or os.path.expanduser("~"), "adain", "worker")
        else:
            import tempfile

            base = os.path.join(tempfile.gettempdir(), f"adain-{os.getuid()}")
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform != "win32":
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise PermissionError(f"worker directory {path} is not a plain directory")
        if info.st_uid != os.getuid():
            raise PermissionError(f"worker directory {path} belongs to another user (uid {info.st_uid})")
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)
    return path


def endpoint_name(python: str) -> str:
    """File stem shared by the socket, lock and log of the worker that runs interpreter ``python``.

    One worker per engine interpreter: two hosts that use the same engine share its warm models and style cards
    (one worker serves any number of models).
    """
    digest = hashlib.sha256(os.path.abspath(python).encode("utf-8")).hexdigest()[:12]
    return f"worker-{digest}"
