"""The engine worker process: keeps models and style cards warm and serves stylize requests over a private socket.

Started on demand by :class:`adain_core.worker.client.WorkerClient` as ``python -m adain_core.worker``; exits after
an idle timeout. Runs in the engine's Python (torch, numpy); jobs run one at a time, queued clients are told so.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import math
import os
import secrets
import select
import socket
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import LRU, EngineCache, StyleCache, model_key
from ..errors import ValueRangeError
from ..options import StylizeOptions
from ..validate import check_marks, check_scale
from ..vocabulary import BACKDROP_MODES, COLOR_MODES, TILE_MODES
from . import protocol
from .protocol import (DTYPE_SIZES, PROTOCOL_VERSION, ProtocolError, ProtocolTimeout, discard_payload, peer_uid,
                       recv_header, recv_message, recv_payload, send_message)

__all__ = ["WorkerServer", "main", "FEATURES", "MAX_SEQUENCES"]

log = logging.getLogger("adain_core.worker")

DEFAULT_IDLE_TIMEOUT = 600.0
#: seconds a connection may sit between frames before the worker closes it (``--connection-timeout``).
DEFAULT_CONNECTION_TIMEOUT = 60.0
#: seconds any single wait for data inside a frame may take (``--read-timeout``).
DEFAULT_READ_TIMEOUT = 30.0
#: connections served at once; more are answered ``Busy`` and closed.
MAX_CONNECTIONS = 32
#: style files (images or cards) larger than this are refused before they are read.
MAX_STYLE_FILE = 1 << 30
#: seconds a client has to finish a frame it started sending while its job runs (a stray byte cancels the job).
_CANCEL_FRAME_TIMEOUT = 1.0
#: seconds between repeated progress messages while a job waits or runs a long step (see :class:`_Job`).
HEARTBEAT = 10.0
#: a refused request whose payload does not match its header is drained only up to this size, else disconnected.
_DRAIN_LIMIT = 1 << 20
#: frame sequences whose temporal state the worker keeps at once (least recently used ones are dropped).
MAX_SEQUENCES = 16
_MAX_SEQUENCE_ID = 200
#: optional protocol features this worker understands, announced in its hello (clients needing one replace an older
#: worker that lacks it).
FEATURES = ("sequence", "scale", "palette", "backdrop", "marks")


class _RequestError(Exception):
    """A malformed request: reported to the client as ``kind = "BadRequest"``."""


class _FramingError(_RequestError):
    """The image/mask description does not describe the announced payload: the payload is not read at all."""


def _default_memory_budget() -> int:
    """Bytes of request payloads held at once: ``$ADAIN_WORKER_MAX_MEMORY``, else half the physical memory."""
    env = os.environ.get("ADAIN_WORKER_MAX_MEMORY")
    if env:
        from adain_core.device import parse_size

        return int(parse_size(env))
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30


class _Disconnect(Exception):
    """The connection is out of step with the framing (a refused payload left unread): close it."""


class _ClientGone(Exception):
    """The client cancelled or closed its connection while its job ran."""


@dataclass
class _Sequence:
    """The temporal state of one frame sequence: the engine's running content statistics after its last frame."""

    model_key: tuple[Any, ...]
    state: Any  # adain_core.engine.FrameState
    frames: int
    last_used: float


class _Job:
    """One stylize request on one connection: sends progress, notices cancel frames and vanished clients.

    While the job waits for the compute lock or runs a long step without progress of its own, the last progress
    message is repeated every :data:`HEARTBEAT` seconds, so a client's no-message timeout tells a live worker from
    a hung or stopped one.
    """

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.cancelled = False
        self._send_lock = threading.Lock()
        self._last: tuple[str, int, int] = ("starting", 0, 0)
        self._sent_at = time.monotonic()
        self._finished = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> _Job:
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finished.set()
        if self._heartbeat is not None:
            self._heartbeat.join()

    def _beat(self) -> None:
        while not self._finished.wait(HEARTBEAT / 4):
            if time.monotonic() - self._sent_at >= HEARTBEAT and not self.cancelled:
                self.progress(*self._last)

    def poll_cancel(self) -> bool:
        if self.cancelled:
            return True
        try:
            readable, _, _ = select.select([self.conn], [], [], 0)
            if readable:
                if not self.conn.recv(1, socket.MSG_PEEK):
                    self.cancelled = True  # client closed: nobody wants the result
                else:
                    # Whatever arrives mid-job must be a whole cancel frame, promptly: anything else (a stray
                    # byte, a half frame) cancels the job instead of blocking it with the compute lock held.
                    message = recv_message(self.conn, timeout=_CANCEL_FRAME_TIMEOUT, max_payload=0)
                    if message is None or message[0].get("op") == "cancel":
                        self.cancelled = True
        except (OSError, ProtocolError):
            self.cancelled = True
        return self.cancelled

    def check(self) -> None:
        if self.poll_cancel():
            raise _ClientGone()

    def progress(self, stage: str, done: int = 0, total: int = 0) -> None:
        with self._send_lock:
            self._last, self._sent_at = (stage, int(done), int(total)), time.monotonic()
            try:
                send_message(self.conn, {"type": "progress", "stage": stage, "done": int(done), "total": int(total)})
            except OSError:
                self.cancelled = True


class WorkerServer:
    """Accepts connections on a Unix socket (or loopback TCP with a token) and runs the engine for them.

    Args:
        directory: user-only runtime directory (see :func:`adain_core.worker.protocol.runtime_dir`).
        name: endpoint stem; the socket is ``<directory>/<name>.sock`` (TCP: address file ``<name>.json``).
        idle_timeout: seconds without any connection after which the process exits; ``<= 0`` never.
        device: passed to :func:`adain_core.load`.
        connection_timeout: seconds a connection may stay silent between frames before it is closed.
        read_timeout: seconds any wait for data inside a frame may take.
        max_memory: bytes of request payloads held at once by all connections together (default: half the RAM).
        max_connections: connections served at once; more are answered ``Busy``.

    Limits: a request is authenticated (TCP token) and its header validated before its payload is read; the payload
    size must equal what the image/mask shapes announce and fit in ``max_memory`` minus what other connections hold,
    and is read incrementally. Style files are checked (regular file, size) and hashed before the job waits for the
    compute lock, so a slow or endless file never holds up other clients.
    """

    def __init__(self, directory: Path, name: str, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 device: str = "auto", connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, max_memory: int | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.directory = Path(directory)
        self.name = name
        self.idle_timeout = idle_timeout
        self.device = device
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        self.max_memory = _default_memory_budget() if max_memory is None else int(max_memory)
        self.max_connections = max_connections
        self._reserved = 0  # payload bytes currently held by connections (guarded by _state)
        self.engines = EngineCache(2)
        self.cards = StyleCache(64)
        self.sequences: LRU[_Sequence] = LRU(MAX_SEQUENCES)
        self._compute = threading.Lock()
        self._state = threading.Lock()
        self._active = 0
        self._last_activity = time.monotonic()
        self._stop = threading.Event()
        self._token: str | None = None
        self._listener: socket.socket | None = None
        self.jobs_done = 0

    # ---------------------------------------------------------------- lifecycle
    @property
    def socket_path(self) -> Path:
        return self.directory / f"{self.name}.sock"

    @property
    def address_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    def bind(self) -> bool:
        """Create the listening socket. Returns False when another live worker already serves this endpoint."""
        if protocol.use_unix_socket():
            path = str(self.socket_path)
            if os.path.exists(path):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(path)
                    return False
                except OSError:
                    os.unlink(path)  # stale socket of a worker that died
                finally:
                    probe.close()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)
            try:
                listener.bind(path)
            finally:
                os.umask(old_umask)
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            self._token = secrets.token_hex(32)
            tmp = self.address_path.with_suffix(".json.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"port": listener.getsockname()[1], "token": self._token, "pid": os.getpid()}, fh)
            os.replace(tmp, self.address_path)
        listener.listen(16)
        listener.settimeout(0.5)
        self._listener = listener
        return True

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for path in (self.socket_path, self.address_path):
            try:
                if path.exists() and (path.suffix != ".json" or self._token is not None):
                    path.unlink()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`, a ``shutdown`` request or the idle timeout."""
        if self._listener is None and not self.bind():
            log.info("another worker already serves %s; exiting", self.name)
            return
        log.info("worker %d listening on %s (idle timeout %.0f s)", os.getpid(), self.name, self.idle_timeout)
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    with self._state:
                        idle = self._active == 0 and time.monotonic() - self._last_activity > self.idle_timeout
                    if self.idle_timeout > 0 and idle:
                        log.info("idle for %.0f s: exiting", self.idle_timeout)
                        break
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                conn.settimeout(self.read_timeout)  # bounds every send; reads set their own deadlines
                if not self._admit(conn):
                    continue
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        finally:
            self.close()

    # ---------------------------------------------------------------- connections
    def _admit(self, conn: socket.socket) -> bool:
        """Count a new connection in, or refuse it: another user's process (``SO_PEERCRED``), or too many."""
        uid = peer_uid(conn)
        if uid is not None and uid != os.getuid():
            log.warning("refused a connection from uid %d", uid)
            conn.close()
            return False
        with self._state:
            busy = self._active >= self.max_connections
            if not busy:
                self._active += 1
        if busy:
            try:
                conn.settimeout(1.0)
                send_message(conn, {"type": "error", "kind": "Busy",
                                    "message": f"the worker already serves {self.max_connections} connections"})
            except OSError:
                pass
            conn.close()
        return not busy

    def _reserve(self, nbytes: int) -> bool:
        with self._state:
            if self._reserved + nbytes > self.max_memory:
                return False
            self._reserved += nbytes
            return True

    def _release(self, nbytes: int) -> None:
        with self._state:
            self._reserved -= nbytes

    def _serve_connection(self, conn: socket.socket) -> None:
        def refuse(kind: str, message: str) -> None:
            send_message(conn, {"type": "error", "kind": kind, "message": message})

        try:
            authenticated = self._token is None
            while True:
                got = recv_header(conn, timeout=self.read_timeout, idle_timeout=self.connection_timeout)
                if got is None:
                    return
                header, payload_size = got
                op = header.get("op")
                if not authenticated:
                    token = header.get("token")
                    if op != "hello" or payload_size or not isinstance(token, str) or not secrets.compare_digest(
                            token.encode("utf-8", "replace"), self._token.encode("ascii")):
                        refuse("Unauthorized", "bad token")
                        return
                    authenticated = True
                if op == "stylize":
                    self._handle_stylize(conn, header, payload_size)
                    continue
                if payload_size:
                    discard_payload(conn, payload_size, timeout=self.read_timeout)
                    refuse("BadRequest", f"op {_short(op)} takes no payload, got {payload_size} bytes")
                    continue
                if op == "hello":
                    send_message(conn, self._hello())
                elif op == "ping":
                    send_message(conn, {"type": "pong", "pid": os.getpid()})
                elif op == "stats":
                    send_message(conn, self._stats())
                elif op == "shutdown":
                    send_message(conn, {"type": "bye"})
                    self.stop()
                    return
                elif op == "end_sequence":
                    send_message(conn, {"type": "sequence_ended", "existed": self._end_sequence(header.get("id"))})
                elif op == "cancel":
                    continue  # arrived after its job ended
                else:
                    refuse("BadRequest", f"unknown op {_short(op)}")
        except ProtocolError as exc:
            log.debug("connection ended: %s", exc)
            if not isinstance(exc, ProtocolTimeout) and "closed" not in str(exc):
                with contextlib.suppress(OSError):
                    refuse("BadRequest", str(exc))
        except (OSError, _Disconnect) as exc:
            log.debug("connection ended: %r", exc)
        except Exception as exc:  # noqa: BLE001 - one bad connection never takes the worker down
            log.error("connection failed: %s: %s", type(exc).__name__, exc)
            log.debug("%s", traceback.format_exc())
        finally:
            conn.close()
            with self._state:
                self._active -= 1
                self._last_activity = time.monotonic()

    def _hello(self) -> dict[str, Any]:
        import adain_core

        return {"type": "hello", "protocol": PROTOCOL_VERSION, "pid": os.getpid(), "python": sys.executable,
                "engine_version": getattr(adain_core, "__version__", "unknown"), "features": list(FEATURES)}

    def _stats(self) -> dict[str, Any]:
        return {"type": "stats", "pid": os.getpid(), "models": [list(map(str, k)) for k in self.engines.keys()],
                "cards": len(self.cards), "sequences": len(self.sequences), "jobs_done": self.jobs_done}

    # ---------------------------------------------------------------- frame sequences
    def _sequence(self, sequence_id: str, model_key: tuple[Any, ...]) -> _Sequence | None:
        """The live state of ``sequence_id``, or None: unknown, idle longer than the idle timeout, or another model."""
        with self._state:
            entry = self.sequences.get(sequence_id)
        if entry is None:
            return None
        stale = self.idle_timeout > 0 and time.monotonic() - entry.last_used > self.idle_timeout
        return None if stale or entry.model_key != model_key else entry

    def _end_sequence(self, sequence_id: Any) -> bool:
        with self._state:
            return isinstance(sequence_id, str) and self.sequences.pop(sequence_id) is not None

    def _handle_stylize(self, conn: socket.socket, header: dict[str, Any], payload_size: int) -> None:
        """Validate the request, then read its payload against the memory budget, run the job and answer.

        A request refused before its payload is read has the payload drained through a small buffer (so the
        client reads the refusal, not a broken pipe) and never allocated; when the payload does not even match the
        header's shapes (no well-behaved client sends that), a payload over 1 MiB is not read: the connection closes.
        """
        refusal: tuple[str, str] | None = None
        framing = False
        try:
            request = _parse_stylize(header, payload_size)
        except _RequestError as exc:
            refusal, framing = ("BadRequest", str(exc)), isinstance(exc, _FramingError)
        else:
            if not self._reserve(payload_size):
                refusal = ("MemoryError", (
                    f"the worker cannot hold this image now: {payload_size / 2**30:.2f} GiB announced, "
                    f"{self._reserved / 2**30:.2f} of {self.max_memory / 2**30:.2f} GiB in use "
                    f"(ADAIN_WORKER_MAX_MEMORY); try a smaller image"))
        if refusal is not None:
            if framing and payload_size > _DRAIN_LIMIT:
                send_message(conn, {"type": "error", "kind": refusal[0], "message": refusal[1]})
                raise _Disconnect()
            discard_payload(conn, payload_size, timeout=self.read_timeout)
            send_message(conn, {"type": "error", "kind": refusal[0], "message": refusal[1]})
            return
        try:
            payload = recv_payload(conn, payload_size, timeout=self.read_timeout)
            self._run_stylize(conn, request, payload)
        finally:
            self._release(payload_size)

    def _run_stylize(self, conn: socket.socket, request: dict[str, Any], payload: bytearray) -> None:
        job = _Job(conn)
        try:
            with job:
                reply, data = self._stylize(job, request, payload)
        except _ClientGone:
            log.info("job cancelled by the client")
            try:
                send_message(conn, {"type": "cancelled"})
            except OSError:
                pass
            return
        except _RequestError as exc:
            send_message(conn, {"type": "error", "kind": "BadRequest", "message": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - every failure must reach the client as a message
            import adain_core

            if isinstance(exc, adain_core.Cancelled) or job.cancelled:
                send_message(conn, {"type": "cancelled"})
                return
            if isinstance(exc, adain_core.AdaINError):
                kind, message = type(exc).__name__, str(exc)
            elif isinstance(exc, MemoryError):
                kind, message = "MemoryError", "the engine ran out of memory; try a smaller image or style size"
            else:
                log.error("internal error:\n%s", traceback.format_exc())
                kind, message = "InternalError", f"{type(exc).__name__}: {exc}"
            send_message(conn, {"type": "error", "kind": kind, "message": message})
            return
        send_message(conn, reply, data)

    # ---------------------------------------------------------------- the job
    def _stylize(self, job: _Job, request: dict[str, Any], payload: bytearray) -> tuple[dict[str, Any], Any]:
        import numpy as np

        started = time.perf_counter()
        request["options"] = StylizeOptions(alpha=request["alpha"], color=request["color"], tile=request["tile"],
                                            style_size=request["style_size"], scale=request["scale"],
                                            marks=request["marks"])
        image_spec, mask_spec, sequence = request["image"], request["mask"], request["sequence"]
        log.info("stylize job: %s %s, %d style(s)", list(image_spec["shape"]), image_spec["dtype"],
                 len(request["styles"]))
        image_bytes = image_spec["nbytes"]
        image = np.frombuffer(payload, dtype=image_spec["dtype"], count=image_spec["count"])
        image = image.reshape(image_spec["shape"])
        mask = None
        if mask_spec is not None:
            mask = np.frombuffer(payload, dtype=mask_spec["dtype"], count=mask_spec["count"], offset=image_bytes)
            mask = mask.reshape(mask_spec["shape"]).astype(np.float32)
            if mask_spec["dtype"] == "uint8":
                mask /= 255.0
        # Everything the job reads is checked before it waits for the compute lock: values, then style files.
        for name, array in (("image", image), ("mask", mask)):
            if array is not None and array.dtype.kind == "f" and not np.isfinite(array).all():
                raise _RequestError(f"{name} contains NaN or infinite values")
        for style in request["styles"]:
            _check_style_file(style["path"])

        # One job at a time: the engine already uses every core, and two models at once could exhaust memory.
        if not self._compute.acquire(blocking=False):
            job.progress("queued")
            while not self._compute.acquire(timeout=0.1):
                job.check()
        try:
            timings: dict[str, float] = {}
            job.check()
            t0 = time.perf_counter()
            engine, model_hit, model_key = self._engine(request["model"], job)
            timings["load_model"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            card, card_hits = self._card(engine, request, job)
            timings["encode_style"] = time.perf_counter() - t0
            job.check()

            channels = image.shape[2]
            rgb = image[..., :3].astype(np.float32)
            if image.dtype == np.uint8:
                rgb /= 255.0
            job.progress("stylizing", 0, 1)
            t0 = time.perf_counter()
            hooks = dict(progress=lambda done, total: job.progress("stylizing", done, total), cancel=job.poll_cancel)
            if sequence is None:
                out = engine.stylize(rgb, card, request["options"], **hooks)
            else:
                previous = self._sequence(sequence["id"], model_key)
                out, state = engine.stylize_frame(rgb, card, request["options"],
                                                  state=previous.state if previous else None,
                                                  temporal=sequence["temporal"], **hooks)
            timings["stylize"] = time.perf_counter() - t0
            sequence_reply = None
            if sequence is not None:
                # Kept only once the frame is done (still under the compute lock, so frames of one sequence sent
                # at once are chained in order): a cancelled or failed frame leaves the sequence where it was.
                job.check()
                frames = previous.frames + 1 if previous else 1
                with self._state:
                    self.sequences.put(sequence["id"], _Sequence(model_key, state, frames, time.monotonic()))
                sequence_reply = {"id": sequence["id"], "frames": frames}
        finally:
            self._compute.release()
        job.check()

        out = np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)
        if out.shape != rgb.shape:
            raise RuntimeError(f"engine returned shape {out.shape} for input {rgb.shape}")
        if mask is not None:
            weight = mask[..., None]
            out = out * weight + rgb * (1.0 - weight)
        if image.dtype == np.uint8:
            out = np.rint(out * 255.0).astype(np.uint8)
        if channels == 4:
            out = np.concatenate([out, image[..., 3:].astype(out.dtype)], axis=2)
        out = np.ascontiguousarray(out)
        self.jobs_done += 1
        timings["total"] = time.perf_counter() - started
        reply = {"type": "result", "image": {"shape": list(out.shape), "dtype": str(out.dtype)},
                 "timings": timings, "cache": {"model": model_hit, "styles": card_hits}}
        if sequence_reply is not None:
            reply["sequence"] = sequence_reply
        return reply, memoryview(out).cast("B")

    def _engine(self, model: str, job: _Job) -> tuple[Any, bool, tuple[Any, ...]]:
        def loading() -> None:
            job.progress("loading model")
            log.info("loading model %s", model)

        engine, hit = self.engines.get(model, device=self.device, before_load=loading)
        return engine, hit, model_key(model)

    def _card(self, engine: Any, request: dict[str, Any], job: _Job) -> tuple[Any, list[bool]]:
        def encoding() -> None:
            job.check()
            job.progress("encoding style")

        styles = [(style["path"], style["weight"]) for style in request["styles"]]
        return self.cards.mixed(engine, styles, request["options"].style_size, backdrop=request["backdrop"],
                                before_encode=encoding)


def _check_style_file(path: str) -> None:
    """Refuse a style file that is not a regular file of at most :data:`MAX_STYLE_FILE` bytes, before a job waits
    for the compute lock. Opened without blocking (a FIFO never stalls the open) and checked on the descriptor."""
    import adain_core

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        reason = "not found" if exc.errno == errno.ENOENT else f"cannot be opened ({exc.strerror})"
        raise adain_core.ImageLoadError(f"style file {path}: {reason}") from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise adain_core.ImageLoadError(f"style file {path}: not a regular file")
    if info.st_size > MAX_STYLE_FILE:
        raise adain_core.ImageLoadError(
            f"style file {path}: {info.st_size} bytes, more than the {MAX_STYLE_FILE >> 20} MiB allowed")


def _short(value: Any) -> str:
    """``repr`` of a client-sent value, cut to one short line for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False


#: request limits: styles per job, the engine's style-size range, and pixels per side of an image.
_MAX_STYLES = 64
_STYLE_SIZES = (16, 4096)
_MAX_SIDE = 1 << 17


def _parse_stylize(header: dict[str, Any], payload_size: int) -> dict[str, Any]:
    """Validate a stylize request (types, ranges, sizes); the engine validates values further (files, models).

    Raises:
        _RequestError: anything malformed, with one line naming the field.
    """
    try:
        return _parse_stylize_fields(header, payload_size)
    except _RequestError:
        raise
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as exc:  # a shape no check foresaw
        raise _RequestError(f"malformed stylize request ({type(exc).__name__}: {exc})") from None


def _parse_stylize_fields(header: dict[str, Any], payload_size: int) -> dict[str, Any]:
    def number(name: str, default: float) -> float:
        value = header.get(name, default)
        if not _finite_number(value):
            raise _RequestError(f"{name} must be a finite number, got {_short(value)}")
        return float(value)

    def buffer_spec(name: str, ndim: tuple[int, ...], channels: tuple[int, ...] | None) -> dict[str, Any] | None:
        spec = header.get(name)
        if spec is None:
            return None
        if not isinstance(spec, dict):
            raise _FramingError(f"{name} must be an object {{shape, dtype}}, got {_short(spec)}")
        shape, dtype = spec.get("shape"), spec.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise _FramingError(f"{name}.dtype must be one of {sorted(DTYPE_SIZES)}, got {_short(dtype)}")
        if (not isinstance(shape, list) or len(shape) not in ndim
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= _MAX_SIDE for n in shape)):
            raise _FramingError(f"{name}.shape must be {'/'.join(map(str, ndim))} ints in 1..{_MAX_SIDE}, "
                                f"got {_short(shape)}")
        if channels is not None and shape[2] not in channels:
            raise _FramingError(f"{name} must have {' or '.join(map(str, channels))} channels, got {shape[2]}")
        count = 1
        for n in shape:
            count *= n
        return {"shape": tuple(shape), "dtype": dtype, "count": count, "nbytes": count * DTYPE_SIZES[dtype]}

    if header.get("protocol", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise _RequestError(f"protocol {_short(header.get('protocol'))} not supported "
                            f"(worker speaks {PROTOCOL_VERSION})")
    image = buffer_spec("image", (3,), (3, 4))
    if image is None:
        raise _FramingError("image is missing")
    mask = buffer_spec("mask", (2, 3), None)
    if mask is not None:
        if len(mask["shape"]) == 3 and mask["shape"][2] != 1:
            raise _FramingError(f"mask must be (H, W) or (H, W, 1), got {list(mask['shape'])}")
        if tuple(mask["shape"][:2]) != image["shape"][:2]:
            raise _FramingError(f"mask shape {list(mask['shape'])} does not match image {list(image['shape'])}")
        mask["shape"] = mask["shape"][:2]
    expected = image["nbytes"] + (mask["nbytes"] if mask else 0)
    if payload_size != expected:
        raise _FramingError(f"payload has {payload_size} bytes, the image and mask headers say {expected}")

    styles = header.get("styles")
    if not isinstance(styles, list) or not 0 < len(styles) <= _MAX_STYLES:
        raise _RequestError(f"styles must be a list of 1 to {_MAX_STYLES} {{path, weight}}")
    parsed_styles = []
    for style in styles:
        if not isinstance(style, dict) or not isinstance(style.get("path"), str) or not style["path"]:
            raise _RequestError(f"each style needs a path, got {_short(style)}")
        if "\0" in style["path"]:
            raise _RequestError(f"style path contains a NUL character: {_short(style['path'])}")
        weight = style.get("weight", 1.0)
        if not _finite_number(weight) or weight < 0:
            raise _RequestError(f"style weight must be a finite number >= 0, got {_short(weight)}")
        parsed_styles.append({"path": style["path"], "weight": float(weight)})
    total = sum(s["weight"] for s in parsed_styles)
    if not 0 < total < math.inf:
        raise _RequestError(f"style weights must sum to a positive finite number, got {total}")
    color = header.get("color", COLOR_MODES[0])
    if not isinstance(color, str) or color not in COLOR_MODES:
        raise _RequestError(f"color must be one of {list(COLOR_MODES)}, got {_short(color)}")
    tile = header.get("tile", "auto")
    if not (tile in TILE_MODES or (isinstance(tile, int) and not isinstance(tile, bool) and 0 < tile <= _MAX_SIDE)):
        raise _RequestError(f"tile must be 'auto', 'off' or an int in 1..{_MAX_SIDE}, got {_short(tile)}")
    style_size = header.get("style_size", 512)
    if (not isinstance(style_size, int) or isinstance(style_size, bool)
            or not _STYLE_SIZES[0] <= style_size <= _STYLE_SIZES[1]):
        raise _RequestError(f"style_size must be an int in {_STYLE_SIZES[0]}..{_STYLE_SIZES[1]}, "
                            f"got {_short(style_size)}")
    backdrop = header.get("backdrop", BACKDROP_MODES[0])
    if not isinstance(backdrop, str) or backdrop not in BACKDROP_MODES:
        raise _RequestError(f"backdrop must be one of {list(BACKDROP_MODES)}, got {_short(backdrop)}")
    try:
        scale = check_scale(header.get("scale", 1.0))
        marks = check_marks(header.get("marks", 0.0))
    except ValueRangeError as exc:
        raise _RequestError(str(exc)) from None
    model = header.get("model") or os.environ.get("ADAIN_MODEL") or "default"
    if not isinstance(model, str) or "\0" in model:
        raise _RequestError(f"model must be a string, got {_short(model)}")
    alpha = number("alpha", 1.0)
    if alpha < 0:
        raise _RequestError(f"alpha must be >= 0, got {alpha}")
    sequence = header.get("sequence")
    if sequence is not None:
        if not isinstance(sequence, dict):
            raise _RequestError(f"sequence must be an object {{id, temporal}}, got {_short(sequence)}")
        sequence_id, temporal = sequence.get("id"), sequence.get("temporal", 0.0)
        if not isinstance(sequence_id, str) or not 0 < len(sequence_id) <= _MAX_SEQUENCE_ID:
            raise _RequestError(f"sequence.id must be a string of 1 to {_MAX_SEQUENCE_ID} characters, "
                                f"got {_short(sequence_id)}")
        if not _finite_number(temporal) or not 0 <= temporal < 1:
            raise _RequestError(f"sequence.temporal must be a number in [0, 1), got {_short(temporal)}")
        sequence = {"id": sequence_id, "temporal": float(temporal)}
    return {"image": image, "mask": mask, "styles": parsed_styles, "alpha": alpha, "color": color,
            "tile": tile, "style_size": style_size, "backdrop": backdrop, "scale": scale, "marks": marks,
            "model": model, "sequence": sequence}


def main(argv: list[str] | None = None, *, ready: Callable[[WorkerServer], None] | None = None) -> int:
    """Entry point of ``python -m adain_core.worker``."""
    parser = argparse.ArgumentParser(prog="python -m adain_core.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--directory", help="runtime directory (default: see adain_core.worker.protocol.runtime_dir)")
    parser.add_argument("--name", default=None, help="endpoint name (default: derived from this Python's path)")
    parser.add_argument("--idle-timeout", type=float,
                        default=float(os.environ.get("ADAIN_WORKER_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT)),
                        help="seconds without requests before exiting (0: never); default %(default)s")
    parser.add_argument("--connection-timeout", type=float, default=DEFAULT_CONNECTION_TIMEOUT,
                        help="seconds a connection may stay silent between requests; default %(default)s")
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT,
                        help="seconds any wait for data inside a request may take; default %(default)s")
    parser.add_argument("--max-memory", default=None,
                        help="request payload bytes held at once, e.g. 4GB (default: $ADAIN_WORKER_MAX_MEMORY or "
                             "half the RAM)")
    parser.add_argument("--device", default=os.environ.get("ADAIN_DEVICE", "auto"))
    parser.add_argument("--log-level", default=os.environ.get("ADAIN_WORKER_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    directory = protocol.runtime_dir(args.directory)
    name = args.name or protocol.endpoint_name(sys.executable)
    # Import the engine (torch) before binding: a broken engine install then never looks reachable, and the
    # client reports the import error from this process's log instead of waiting on a socket.
    import adain_core  # noqa: F401
    from adain_core.device import parse_size

    server = WorkerServer(directory, name, idle_timeout=args.idle_timeout, device=args.device,
                          connection_timeout=args.connection_timeout, read_timeout=args.read_timeout,
                          max_memory=None if args.max_memory is None else int(parse_size(args.max_memory)))
    if not server.bind():
        log.info("another worker already serves %s; exiting", name)
        return 0
    if ready is not None:
        ready(server)
    server.serve_forever()
    return 0
