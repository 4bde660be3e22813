"""The engine worker process: keeps models and style cards warm and serves stylize requests over a private socket.

Started on demand by :class:`adain_core.worker.client.WorkerClient` as ``python -m adain_core.worker``; exits after
an idle timeout. Runs in the engine's Python (torch, numpy); jobs run one at a time, queued clients are told so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import LRU, EngineCache, StyleCache, model_key
from ..options import StylizeOptions
from ..vocabulary import COLOR_MODES, TILE_MODES
from . import protocol
from .protocol import DTYPE_SIZES, PROTOCOL_VERSION, ProtocolError, recv_message, send_message

__all__ = ["WorkerServer", "main", "FEATURES", "MAX_SEQUENCES"]

log = logging.getLogger("adain_core.worker")

DEFAULT_IDLE_TIMEOUT = 600.0
#: frame sequences whose temporal state the worker keeps at once (least recently used ones are dropped).
MAX_SEQUENCES = 16
_MAX_SEQUENCE_ID = 200
#: optional protocol features this worker understands, announced in its hello (clients needing one replace an older
#: worker that lacks it).
FEATURES = ("sequence",)


class _RequestError(Exception):
    """A malformed request: reported to the client as ``kind = "BadRequest"``."""


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
    """One stylize request on one connection: sends progress, notices cancel frames and vanished clients."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.cancelled = False

    def poll_cancel(self) -> bool:
        if self.cancelled:
            return True
        try:
            readable, _, _ = select.select([self.conn], [], [], 0)
            if readable:
                if not self.conn.recv(1, socket.MSG_PEEK):
                    self.cancelled = True  # client closed: nobody wants the result
                else:
                    message = recv_message(self.conn)
                    if message is None or message[0].get("op") == "cancel":
                        self.cancelled = True
        except (OSError, ProtocolError):
            self.cancelled = True
        return self.cancelled

    def check(self) -> None:
        if self.poll_cancel():
            raise _ClientGone()

    def progress(self, stage: str, done: int = 0, total: int = 0) -> None:
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
    """

    def __init__(self, directory: Path, name: str, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 device: str = "auto") -> None:
        self.directory = Path(directory)
        self.name = name
        self.idle_timeout = idle_timeout
        self.device = device
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
                conn.settimeout(None)
                with self._state:
                    self._active += 1
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        finally:
            self.close()

    # ---------------------------------------------------------------- connections
    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            authenticated = self._token is None
            while True:
                message = recv_message(conn)
                if message is None:
                    return
                header, payload = message
                op = header.get("op")
                if not authenticated:
                    if op != "hello" or not secrets.compare_digest(str(header.get("token", "")), self._token):
                        send_message(conn, {"type": "error", "kind": "Unauthorized", "message": "bad token"})
                        return
                    authenticated = True
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
                elif op == "stylize":
                    self._handle_stylize(conn, header, payload)
                elif op == "end_sequence":
                    send_message(conn, {"type": "sequence_ended", "existed": self._end_sequence(header.get("id"))})
                elif op == "cancel":
                    continue  # arrived after its job ended
                else:
                    send_message(conn, {"type": "error", "kind": "BadRequest", "message": f"unknown op {op!r}"})
        except (OSError, ProtocolError) as exc:
            log.debug("connection ended: %s", exc)
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
            return self.sequences.pop(sequence_id) is not None if isinstance(sequence_id, str) else False

    def _handle_stylize(self, conn: socket.socket, header: dict[str, Any], payload: bytearray) -> None:
        job = _Job(conn)
        try:
            reply, data = self._stylize(job, header, payload)
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
    def _stylize(self, job: _Job, header: dict[str, Any], payload: bytearray) -> tuple[dict[str, Any], Any]:
        import numpy as np

        started = time.perf_counter()
        request = _parse_stylize(header, len(payload))
        request["options"] = StylizeOptions(alpha=request["alpha"], color=request["color"], tile=request["tile"],
                                            style_size=request["style_size"])
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
        return self.cards.mixed(engine, styles, request["options"].style_size, before_encode=encoding)


def _parse_stylize(header: dict[str, Any], payload_size: int) -> dict[str, Any]:
    """Validate a stylize request; the engine validates values further (ranges, files)."""

    def number(name: str, default: float) -> float:
        value = header.get(name, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _RequestError(f"{name} must be a number, got {value!r}")
        return float(value)

    def buffer_spec(name: str, ndim: tuple[int, ...], channels: tuple[int, ...] | None) -> dict[str, Any] | None:
        spec = header.get(name)
        if spec is None:
            return None
        shape, dtype = spec.get("shape"), spec.get("dtype")
        if dtype not in DTYPE_SIZES:
            raise _RequestError(f"{name}.dtype must be one of {sorted(DTYPE_SIZES)}, got {dtype!r}")
        if (not isinstance(shape, list) or len(shape) not in ndim
                or not all(isinstance(n, int) and n > 0 for n in shape)):
            raise _RequestError(f"{name}.shape must be {'/'.join(map(str, ndim))} positive ints, got {shape!r}")
        if channels is not None and shape[2] not in channels:
            raise _RequestError(f"{name} must have {' or '.join(map(str, channels))} channels, got {shape[2]}")
        count = 1
        for n in shape:
            count *= n
        return {"shape": tuple(shape), "dtype": dtype, "count": count, "nbytes": count * DTYPE_SIZES[dtype]}

    if header.get("protocol", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise _RequestError(f"protocol {header.get('protocol')} not supported (worker speaks {PROTOCOL_VERSION})")
    image = buffer_spec("image", (3,), (3, 4))
    if image is None:
        raise _RequestError("image is missing")
    mask = buffer_spec("mask", (2, 3), None)
    if mask is not None:
        if len(mask["shape"]) == 3 and mask["shape"][2] != 1:
            raise _RequestError(f"mask must be (H, W) or (H, W, 1), got {list(mask['shape'])}")
        if tuple(mask["shape"][:2]) != image["shape"][:2]:
            raise _RequestError(f"mask shape {list(mask['shape'])} does not match image {list(image['shape'])}")
        mask["shape"] = mask["shape"][:2]
    expected = image["nbytes"] + (mask["nbytes"] if mask else 0)
    if payload_size != expected:
        raise _RequestError(f"payload has {payload_size} bytes, the image and mask headers say {expected}")

    styles = header.get("styles")
    if not isinstance(styles, list) or not styles:
        raise _RequestError("styles must be a non-empty list of {path, weight}")
    parsed_styles = []
    for style in styles:
        if not isinstance(style, dict) or not isinstance(style.get("path"), str):
            raise _RequestError(f"each style needs a path, got {style!r}")
        weight = style.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            raise _RequestError(f"style weight must be a number >= 0, got {weight!r}")
        parsed_styles.append({"path": style["path"], "weight": float(weight)})
    if sum(s["weight"] for s in parsed_styles) <= 0:
        raise _RequestError("style weights sum to 0")
    color = header.get("color", "style")
    if color not in COLOR_MODES:
        raise _RequestError(f"color must be one of {list(COLOR_MODES)}, got {color!r}")
    tile = header.get("tile", "auto")
    if not (tile in TILE_MODES or (isinstance(tile, int) and not isinstance(tile, bool) and tile > 0)):
        raise _RequestError(f"tile must be 'auto', 'off' or a positive int, got {tile!r}")
    style_size = header.get("style_size", 512)
    if not isinstance(style_size, int) or isinstance(style_size, bool) or style_size < 16:
        raise _RequestError(f"style_size must be an int >= 16, got {style_size!r}")
    model = header.get("model") or os.environ.get("ADAIN_MODEL") or "default"
    if not isinstance(model, str):
        raise _RequestError(f"model must be a string, got {model!r}")
    sequence = header.get("sequence")
    if sequence is not None:
        if not isinstance(sequence, dict):
            raise _RequestError(f"sequence must be an object {{id, temporal}}, got {sequence!r}")
        sequence_id, temporal = sequence.get("id"), sequence.get("temporal", 0.0)
        if not isinstance(sequence_id, str) or not 0 < len(sequence_id) <= _MAX_SEQUENCE_ID:
            raise _RequestError(f"sequence.id must be a string of 1 to {_MAX_SEQUENCE_ID} characters, "
                                f"got {sequence_id!r}")
        if not isinstance(temporal, (int, float)) or isinstance(temporal, bool) or not 0 <= temporal < 1:
            raise _RequestError(f"sequence.temporal must be a number in [0, 1), got {temporal!r}")
        sequence = {"id": sequence_id, "temporal": float(temporal)}
    return {"image": image, "mask": mask, "styles": parsed_styles, "alpha": number("alpha", 1.0), "color": color,
            "tile": tile, "style_size": style_size, "model": model, "sequence": sequence}


def main(argv: list[str] | None = None, *, ready: Callable[[WorkerServer], None] | None = None) -> int:
    """Entry point of ``python -m adain_core.worker``."""
    parser = argparse.ArgumentParser(prog="python -m adain_core.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--directory", help="runtime directory (default: see adain_core.worker.protocol.runtime_dir)")
    parser.add_argument("--name", default=None, help="endpoint name (default: derived from this Python's path)")
    parser.add_argument("--idle-timeout", type=float,
                        default=float(os.environ.get("ADAIN_WORKER_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT)),
                        help="seconds without requests before exiting (0: never); default %(default)s")
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

    server = WorkerServer(directory, name, idle_timeout=args.idle_timeout, device=args.device)
    if not server.bind():
        log.info("another worker already serves %s; exiting", name)
        return 0
    if ready is not None:
        ready(server)
    server.serve_forever()
    return 0
