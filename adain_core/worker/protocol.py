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
    "ProtocolTimeout",
    "send_message",
    "recv_message",
    "recv_header",
    "recv_payload",
    "discard_payload",
    "peer_uid",
    "runtime_dir",
    "endpoint_name",
    "use_unix_socket",
    "DTYPE_SIZES",
]

PROTOCOL_VERSION = 1

#: frame = magic, JSON header length, payload length; then the UTF-8 JSON header, then the payload bytes.
_FRAME = struct.Struct("!4sIQ")
_MAGIC = b"ADN1"
#: a request header is a few hundred bytes of JSON; 256 KiB leaves room for long paths and many styles.
MAX_HEADER = 1 << 18
#: a 16k x 16k RGBA float32 image is 4 GiB; anything larger is refused before reading it.
MAX_PAYLOAD = 1 << 33
#: JSON nesting deeper than this is refused (the parser would otherwise recurse until the interpreter's limit).
MAX_DEPTH = 32
_CHUNK = 1 << 22

#: bytes per channel value of the pixel types the protocol carries.
DTYPE_SIZES = {"uint8": 1, "float32": 4}


class ProtocolError(ConnectionError):
    """The peer sent something that is not a frame of this protocol, or closed the connection mid-frame."""


class ProtocolTimeout(ProtocolError):
    """The peer sent nothing (or stopped mid-frame) for longer than the read deadline."""


def send_message(sock: socket.socket, header: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> None:
    """Send one frame.

    Args:
        sock: a connected stream socket.
        header: JSON-serialisable dict; by convention it has ``"op"`` (requests) or ``"type"`` (replies).
        payload: raw bytes that follow the header (image buffers), possibly empty.

    Raises:
        ProtocolTimeout: the socket has a timeout (its whole-send deadline) and the peer did not read in time.
    """
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    payload = memoryview(payload).cast("B")
    try:
        sock.sendall(_FRAME.pack(_MAGIC, len(body), payload.nbytes) + body)
        if payload.nbytes:
            sock.sendall(payload)
    except (TimeoutError, socket.timeout):
        raise ProtocolTimeout(f"the peer did not take the frame within {sock.gettimeout():g} s") from None


def _recv_into(sock: socket.socket, view: memoryview, timeout: float | None, what: str) -> int:
    """One ``recv_into`` that waits at most ``timeout`` seconds (None: forever) for at least one byte."""
    previous = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        return sock.recv_into(view, min(view.nbytes, _CHUNK))
    except (TimeoutError, socket.timeout):
        raise ProtocolTimeout(f"no data from the peer for {timeout:g} s ({what})") from None
    finally:
        sock.settimeout(previous)


def _recv_exactly(sock: socket.socket, size: int, *, timeout: float | None = None, first_timeout: float | None = None,
                  allow_eof: bool = False, what: str = "frame") -> bytearray | None:
    """Read exactly ``size`` bytes; the buffer grows with the bytes that arrive (an announced size alone allocates
    nothing). Every wait for data is bounded by ``timeout`` (``first_timeout`` for the first byte)."""
    buffer = bytearray()
    chunk = bytearray(min(size, _CHUNK))
    view = memoryview(chunk)
    while len(buffer) < size:
        wait = first_timeout if not buffer and first_timeout is not None else timeout
        n = _recv_into(sock, view[:size - len(buffer)], wait, what)
        if n == 0:
            if not buffer and allow_eof:
                return None
            raise ProtocolError(f"connection closed after {len(buffer)} of {size} bytes ({what})")
        buffer += view[:n]
    return buffer


def _depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings counted too: an upper bound is enough)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def recv_header(sock: socket.socket, *, timeout: float | None = None, idle_timeout: float | None = None,
                max_payload: int = MAX_PAYLOAD) -> tuple[dict[str, Any], int] | None:
    """Receive the header of one frame, leaving its payload unread (read it with :func:`recv_payload`).

    Args:
        timeout: seconds each wait for data may take once the frame has begun (None: forever).
        idle_timeout: seconds to wait for the frame's first byte (default ``timeout``).
        max_payload: announced payload sizes above this are refused before anything is allocated.

    Returns:
        ``(header, payload_size)``, or ``None`` when the peer closed the connection cleanly between frames.

    Raises:
        ProtocolTimeout: nothing arrived in time.
        ProtocolError: bad magic, oversized or malformed header, or a connection closed mid-frame.
    """
    raw = _recv_exactly(sock, _FRAME.size, timeout=timeout, first_timeout=idle_timeout, allow_eof=True,
                        what="frame start")
    if raw is None:
        return None
    magic, header_size, payload_size = _FRAME.unpack(raw)
    if magic != _MAGIC:
        raise ProtocolError(f"not an AdaIN worker frame (magic {bytes(magic)!r})")
    if header_size > MAX_HEADER or payload_size > min(max_payload, MAX_PAYLOAD):
        raise ProtocolError(f"frame too large (header {header_size} B, payload {payload_size} B)")
    body = _recv_exactly(sock, header_size, timeout=timeout, what="frame header")
    try:
        text = bytes(body).decode("utf-8")
        if _depth(text) > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    return header, payload_size


def recv_payload(sock: socket.socket, size: int, *, timeout: float | None = None) -> bytearray:
    """Read the ``size`` payload bytes announced by :func:`recv_header`, incrementally (see :func:`recv_header`)."""
    return _recv_exactly(sock, size, timeout=timeout, what="payload") if size else bytearray()


def discard_payload(sock: socket.socket, size: int, *, timeout: float | None = None) -> None:
    """Read and drop ``size`` payload bytes through a fixed 1 MiB buffer (memory stays bounded whatever the size),
    so that a refused request leaves the stream in step and its sender sees the answer instead of a broken pipe."""
    scratch = memoryview(bytearray(min(size, 1 << 20)))
    left = size
    while left:
        n = _recv_into(sock, scratch[:left], timeout, "payload")
        if n == 0:
            raise ProtocolError(f"connection closed after {size - left} of {size} bytes (payload)")
        left -= n


def recv_message(sock: socket.socket, *, timeout: float | None = None, idle_timeout: float | None = None,
                 max_payload: int = MAX_PAYLOAD) -> tuple[dict[str, Any], bytearray] | None:
    """Receive one frame (header and payload).

    Args:
        timeout, idle_timeout, max_payload: as :func:`recv_header`.

    Returns:
        ``(header, payload)``, or ``None`` when the peer closed the connection cleanly between frames.

    Raises:
        ProtocolTimeout: nothing arrived in time.
        ProtocolError: bad magic, oversized frame, or a connection closed mid-frame.
    """
    got = recv_header(sock, timeout=timeout, idle_timeout=idle_timeout, max_payload=max_payload)
    if got is None:
        return None
    header, payload_size = got
    return header, recv_payload(sock, payload_size, timeout=timeout)


def peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``); None where unknown."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock.family != getattr(socket, "AF_UNIX", None):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def use_unix_socket() -> bool:
    """Whether to use a Unix socket (everywhere it exists) or the loopback-TCP-with-token fallback (Windows)."""
    forced = os.environ.get("ADAIN_WORKER_TRANSPORT", "").lower()
    if forced in ("tcp", "unix"):
        return forced == "unix"
    return hasattr(socket, "AF_UNIX") and sys.platform != "win32"


def runtime_dir(base: str | os.PathLike[str] | None = None) -> Path:
    """The user-only directory that holds the worker's socket (or TCP address + token), its lock and its log.

    ``$ADAIN_WORKER_DIR``, else ``$XDG_RUNTIME_DIR/adain``, else ``<tmp>/adain-<uid>``. Created with mode 0700;
    refused when it is a symlink, belongs to another user or is open to others (mode with any group/other bit):
    whoever can reach the socket can make the worker read any file the user can, and files planted in a folder that
    was open must never be trusted, so the folder is not silently tightened either.

    Raises:
        PermissionError: the directory exists but is not private to this user (the message says how to fix it).
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
            raise PermissionError(
                f"worker directory {path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); files in it "
                f"cannot be trusted: remove it (it is recreated private) or point ADAIN_WORKER_DIR elsewhere")
    return path


def endpoint_name(python: str) -> str:
    """File stem shared by the socket, lock and log of the worker that runs interpreter ``python``.

    One worker per engine interpreter: two hosts that use the same engine share its warm models and style cards
    (one worker serves any number of models).
    """
    digest = hashlib.sha256(os.path.abspath(python).encode("utf-8")).hexdigest()[:12]
    return f"worker-{digest}"
