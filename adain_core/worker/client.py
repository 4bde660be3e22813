"""Client of the engine worker: starts it on demand, sends stylize jobs, relays progress and cancel, survives a crash.

Standard library only (numpy is used when present, never required): GIMP 3's Python loads this module from the
engine's install without importing ``adain_core`` itself.

Example (engine Python, numpy image)::

    from adain_core.worker import WorkerClient
    client = WorkerClient()                       # engine Python: $ADAIN_PYTHON, the config file, or this one
    result = client.stylize(image_hwc_uint8, styles=[("van_gogh.jpg", 1.0)], alpha=0.8,
                            progress=lambda done, total, stage: print(stage, done, total))
    out = result.array()                          # numpy, same shape and dtype as the input
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, protocol
from .protocol import DTYPE_SIZES, PROTOCOL_VERSION, ProtocolError, ProtocolTimeout, peer_uid, recv_message, send_message

__all__ = [
    "WorkerClient",
    "StylizeResult",
    "WorkerError",
    "WorkerUnavailable",
    "WorkerCrashed",
    "WorkerCancelled",
    "WorkerTimeout",
    "EngineError",
    "resolve_engine_python",
]

ProgressCallback = Callable[[int, int, str], None]
CancelCallback = Callable[[], bool]

_INSTALL_HINT = ("install the engine (pip install adain-style-transfer) and run `adain install gimp` with that "
                 "Python, or set ADAIN_PYTHON to a Python that can `import adain_core`")


class WorkerError(Exception):
    """The worker could not do the job; the message says why and what to do."""


class WorkerUnavailable(WorkerError):
    """No engine Python is configured, or the worker process cannot start."""


class WorkerCrashed(WorkerError):
    """The worker died during a job, and again after one restart."""


class WorkerCancelled(WorkerError):
    """The job was cancelled through the ``cancel`` callback."""


class WorkerTimeout(WorkerError):
    """The worker sent nothing (no progress either) for longer than the client's timeout: it is hung or stopped."""


#: seconds a request may go without any message from the worker (``$ADAIN_WORKER_TIMEOUT`` overrides).
DEFAULT_TIMEOUT = 120.0
#: the worker answers hello from a connection thread even while a job runs, so this can be short.
_HANDSHAKE_TIMEOUT = 30.0
#: Starts the worker with no working-directory entry on the import path (``python -m`` would put the current folder
#: first, so a module planted there would run): the folder is dropped before anything of the engine is imported.
_BOOTSTRAP = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
              "from adain_core.worker.server import main; sys.exit(main())")


class EngineError(WorkerError):
    """The engine refused the job (bad style file, model missing, out of memory, ...).

    Attributes:
        kind: the engine's exception class name (``"ImageLoadError"``, ``"ModelError"``, ``"BadRequest"``, ...).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class StylizeResult:
    """A stylised image: raw C-contiguous bytes of ``shape`` (H, W, C) and ``dtype`` ("uint8" or "float32")."""

    data: bytearray
    shape: tuple[int, ...]
    dtype: str
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    #: for a frame of a sequence: ``{"id", "frames"}``, frames = how many frames the worker has chained so far
    #: (1 after a worker restart: the smoothing then starts again at this frame).
    sequence: dict[str, Any] = field(default_factory=dict)

    def array(self) -> Any:
        """The image as a numpy array (needs numpy)."""
        import numpy as np

        return np.frombuffer(self.data, dtype=self.dtype).reshape(self.shape)


def resolve_engine_python(python: str | os.PathLike[str] | None = None) -> str:
    """The interpreter that runs the worker.

    Order: ``python`` argument, ``$ADAIN_PYTHON``, ``"python"`` in the config file
    (:func:`adain_core.worker.config.config_path`), else this interpreter when it has the engine installed.

    Raises:
        WorkerUnavailable: none of these is set, or the chosen path does not exist.
    """
    source = "argument"
    if python is None and os.environ.get("ADAIN_PYTHON"):
        python, source = os.environ["ADAIN_PYTHON"], "ADAIN_PYTHON"
    if python is None and config.read_config().get("python"):
        python, source = config.read_config()["python"], f"config file {config.config_path()}"
    if python is None:
        import importlib.util

        if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("adain_core") is not None:
            return sys.executable
        raise WorkerUnavailable(f"no engine Python is configured: {_INSTALL_HINT}")
    python = os.fspath(python)
    if not os.path.isfile(python):
        raise WorkerUnavailable(f"the engine Python {python} (from {source}) does not exist: {_INSTALL_HINT}")
    return python


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock: only one client starts the worker."""
    with open(path, "a+b") as fh:
        if sys.platform == "win32":
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.1)
            try:
                yield
            finally:
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _buffer_of(image: Any, shape: Sequence[int] | None, dtype: str | None, what: str) -> tuple[memoryview, tuple, str]:
    if hasattr(image, "shape") and hasattr(image, "dtype"):  # numpy (or anything array-like with the buffer protocol)
        shape, dtype = tuple(int(n) for n in image.shape), str(image.dtype)
        if hasattr(image, "flags") and not image.flags["C_CONTIGUOUS"]:
            image = image.copy(order="C")
    if shape is None or dtype is None:
        raise TypeError(f"{what}: pass a numpy array, or bytes with shape= and dtype=")
    if dtype not in DTYPE_SIZES:
        raise TypeError(f"{what}: dtype must be one of {sorted(DTYPE_SIZES)}, got {dtype}")
    view = memoryview(image).cast("B")
    expected = DTYPE_SIZES[dtype]
    for n in shape:
        expected *= int(n)
    if view.nbytes != expected:
        raise ValueError(f"{what}: {view.nbytes} bytes do not match shape {tuple(shape)} {dtype} ({expected} bytes)")
    return view, tuple(int(n) for n in shape), dtype


class WorkerClient:
    """Talks to the engine worker of one engine Python, starting it when needed.

    Args:
        python: engine interpreter; see :func:`resolve_engine_python`.
        directory: runtime directory for the socket and log (default :func:`protocol.runtime_dir`).
        idle_timeout: seconds a worker started by this client stays alive without requests (default: the worker's,
            10 min, or ``$ADAIN_WORKER_IDLE_TIMEOUT``).
        start_timeout: seconds to wait for a new worker to accept connections (it imports torch first).
        env: extra environment for a worker this client starts. ``PYTHONHOME``/``PYTHONPATH`` of the host are
            never passed on (they belong to the host's Python, e.g. GIMP's); give ``PYTHONPATH`` here if needed.
        timeout: seconds a request may go without any message from the worker (progress counts) before
            :class:`WorkerTimeout` is raised (default ``$ADAIN_WORKER_TIMEOUT`` or 120; a live worker
            repeats its last progress every 10 s, also while a job waits in the queue).
    """

    def __init__(self, python: str | os.PathLike[str] | None = None, *, directory: str | os.PathLike[str] | None = None,
                 idle_timeout: float | None = None, start_timeout: float = 180.0,
                 env: dict[str, str] | None = None, timeout: float | None = None) -> None:
        self.python = resolve_engine_python(python)
        try:
            self.directory = protocol.runtime_dir(directory)
        except OSError as exc:  # PermissionError included: someone else's directory is never used
            raise WorkerUnavailable(f"cannot use the worker directory: {exc}") from None
        self.name = protocol.endpoint_name(self.python)
        self.idle_timeout = idle_timeout
        self.start_timeout = start_timeout
        if timeout is None:
            try:
                timeout = float(os.environ.get("ADAIN_WORKER_TIMEOUT") or DEFAULT_TIMEOUT)
            except ValueError:
                raise WorkerUnavailable(f"ADAIN_WORKER_TIMEOUT must be a number of seconds, "
                                        f"got {os.environ['ADAIN_WORKER_TIMEOUT']!r}") from None
        if not 0 < timeout < float("inf"):
            raise WorkerUnavailable(f"the worker timeout must be a positive number of seconds, got {timeout}")
        self.timeout = float(timeout)
        self.env = dict(env or {})
        self.worker_pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._token = ""  # TCP transport only
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"WorkerClient(python={self.python!r}, endpoint={str(self.directory / self.name)!r})"

    @property
    def log_path(self) -> Path:
        """The worker's log file (stdout and stderr of every worker started for this engine Python)."""
        return self.directory / f"{self.name}.log"

    # ---------------------------------------------------------------- public requests
    def ping(self, *, start: bool = True) -> dict[str, Any]:
        """Hello round trip. Returns the worker's hello (pid, python, protocol, engine_version).

        Args:
            start: start the worker when none runs; with ``False`` raise :class:`WorkerUnavailable` instead.
        """
        sock, hello = self._open(start=start)
        sock.close()
        return hello

    def is_running(self) -> bool:
        """Whether a worker currently answers (never starts one)."""
        try:
            self.ping(start=False)
            return True
        except WorkerError:
            return False

    def stats(self) -> dict[str, Any]:
        """Cache contents and job count of the running worker (starts one if needed)."""
        return self._simple_request({"op": "stats"})

    def shutdown(self) -> bool:
        """Ask a running worker to exit. Returns False when none was running."""
        try:
            self._simple_request({"op": "shutdown"}, start=False)
        except WorkerError:
            return False
        return True

    def stylize(self, image: Any, styles: str | os.PathLike[str] | Iterable[Any], *,
                shape: Sequence[int] | None = None, dtype: str | None = None, alpha: float = 1.0,
                color: str | None = None, style_size: int = 512, tile: str | int = "auto", scale: float | str = 1.0,
                marks: float = 0.5, backdrop: str = "ignore", model: str | None = None, mask: Any = None,
                mask_shape: Sequence[int] | None = None, mask_dtype: str | None = None,
                progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                sequence: tuple[str, float] | None = None) -> StylizeResult:
        """Stylise one image in the worker.

        Args:
            image: (H, W, 3|4) uint8 or float32 in [0, 1], sRGB-encoded RGB(A): a numpy array, or bytes-like with
                ``shape`` and ``dtype``. Alpha passes through unchanged.
            styles: a style path (image file or ``.adainstyle.safetensors`` card), or a list of paths or
                ``(path, weight)`` pairs mixed with those weights.
            alpha, color, style_size, tile: as :meth:`adain_core.Engine.stylize` / ``encode_style``; ``color=None``
                is the engine's default colour mode. ``"palette"`` needs a worker announcing the ``"palette"``
                feature (an older one is replaced once).
            scale: working resolution, a factor in (0, 1] or ``"auto"`` (see ``adain_core.StylizeOptions``); other
                than 1 it needs a worker announcing the ``"scale"`` feature (an older one is replaced once).
            marks: 0-2, the painting's own typical marks in flat areas (see ``adain_core.StylizeOptions``; the
                default is ``adain_core.vocabulary.DEFAULT_MARKS``, pinned by a test); other than 0 it needs a worker
                announcing the ``"marks"`` feature (an older one is replaced once).
            backdrop: ``"ignore"`` (a style image's flat surround or transparent pixels are left out of the style) or
                ``"keep"``, as ``encode_style``'s; ``"keep"`` needs a worker announcing the ``"backdrop"`` feature.
            model: model name or path (default ``$ADAIN_MODEL``, the config file's ``"model"``, else ``"default"``).
            mask: optional (H, W) uint8 or float32 in [0, 1]: where it is < 1 the input shows through (pixel space).
            progress: ``progress(done, total, stage)``; ``total == 0`` when a stage has no count.
            cancel: polled about every 0.1 s; when it returns True the job stops and :class:`WorkerCancelled` is raised.
            sequence: ``(id, temporal)``: the image is the next frame of the sequence ``id`` (any string the caller
                picks, e.g. a uuid), smoothed with the previous frames' content statistics as
                :meth:`adain_core.Engine.stylize_frames` does with ``temporal``. The worker keeps the state of the
                last :data:`~adain_core.worker.server.MAX_SEQUENCES` sequences used until :meth:`end_sequence`, the
                idle timeout or a worker restart (a new or forgotten id starts without history). See
                :meth:`stylize_frames`.

        Returns:
            :class:`StylizeResult` of the input's shape and dtype.

        Raises:
            EngineError: the engine refused the job (message from the engine).
            WorkerUnavailable, WorkerCrashed, WorkerCancelled.
        """
        view, shape, dtype = _buffer_of(image, shape, dtype, "image")
        if isinstance(styles, (str, os.PathLike)):
            styles = [styles]
        style_list = []
        for style in styles:
            path, weight = (style, 1.0) if isinstance(style, (str, os.PathLike)) else style
            style_list.append({"path": os.path.abspath(os.fspath(path)), "weight": float(weight)})
        model = model or os.environ.get("ADAIN_MODEL") or config.read_config().get("model") or "default"
        if os.path.exists(model):
            model = os.path.abspath(model)
        header: dict[str, Any] = {
            "op": "stylize", "protocol": PROTOCOL_VERSION, "model": model, "styles": style_list,
            "alpha": float(alpha), "style_size": int(style_size), "tile": tile,
            "image": {"shape": list(shape), "dtype": dtype},
        }
        features: tuple[str, ...] = ()
        if color is not None:
            header["color"] = color
            features = ("palette",) if color == "palette" else ()
        payload: list[memoryview] = [view]
        if mask is not None:
            mask_view, mask_shape, mask_dtype = _buffer_of(mask, mask_shape, mask_dtype, "mask")
            header["mask"] = {"shape": list(mask_shape), "dtype": mask_dtype}
            payload.append(mask_view)
        if scale != 1.0:
            header["scale"] = scale if isinstance(scale, str) else float(scale)
            features = (*features, "scale")
        if marks:
            header["marks"] = float(marks)
            features = (*features, "marks")
        if backdrop != "ignore":
            header["backdrop"] = backdrop
            features = (*features, "backdrop")
        if sequence is not None:
            sequence_id, temporal = sequence
            header["sequence"] = {"id": str(sequence_id), "temporal": float(temporal)}
            features = (*features, "sequence")
        data = payload[0] if len(payload) == 1 else memoryview(b"".join(payload))

        reply, result = self._with_restart(lambda sock: self._run_job(sock, header, data, progress, cancel),
                                           features=features)
        return StylizeResult(result, tuple(reply["image"]["shape"]), reply["image"]["dtype"],
                             reply.get("timings", {}), reply.get("cache", {}), reply.get("sequence", {}))

    def stylize_frames(self, frames: Iterable[Any], styles: str | os.PathLike[str] | Iterable[Any], *,
                       temporal: float = 0.0, sequence_id: str | None = None,
                       **options: Any) -> Iterator[StylizeResult]:
        """Stylise frames one request each, smoothing content statistics across them as
        :meth:`adain_core.Engine.stylize_frames` does (``temporal`` = S in [0, 1), 0 = independent frames).

        Args:
            frames: images as for :meth:`stylize` (all of one size for the smoothing to apply).
            styles, options: as :meth:`stylize` (``progress`` and ``cancel`` apply per frame).
            temporal: EMA factor of the content statistics.
            sequence_id: the worker's key for this sequence (default: a fresh random id).

        Yields:
            A :class:`StylizeResult` per frame. The worker forgets the sequence when the generator ends or is closed.
        """
        if not 0.0 <= float(temporal) < 1.0:
            raise ValueError(f"temporal smoothing must be in [0, 1), got {temporal}")
        if float(temporal) == 0.0:  # nothing to carry between frames: plain requests work with any worker
            for frame in frames:
                yield self.stylize(frame, styles, **options)
            return
        sequence_id = sequence_id or uuid.uuid4().hex
        try:
            for frame in frames:
                yield self.stylize(frame, styles, sequence=(sequence_id, float(temporal)), **options)
        finally:
            with contextlib.suppress(WorkerError):
                self.end_sequence(sequence_id)

    def end_sequence(self, sequence_id: str) -> bool:
        """Make the running worker forget a frame sequence (never starts one). Returns whether it knew the id."""
        try:
            reply = self._simple_request({"op": "end_sequence", "id": str(sequence_id)}, start=False)
        except (WorkerError, ProtocolError, OSError):
            return False
        return bool(reply.get("existed"))

    # ---------------------------------------------------------------- internals
    def _simple_request(self, header: dict[str, Any], *, start: bool = True) -> dict[str, Any]:
        def exchange(sock: socket.socket) -> dict[str, Any]:
            send_message(sock, header)
            message = recv_message(sock, timeout=self.timeout)
            if message is None:
                raise ProtocolError("the worker closed the connection")
            return message[0]

        if not start:
            sock, _ = self._open(start=False)
            with sock:
                return exchange(sock)
        return self._with_restart(exchange)

    def _with_restart(self, exchange: Callable[[socket.socket], Any], features: Sequence[str] = ()) -> Any:
        """Run ``exchange`` on a fresh connection; if the worker dies meanwhile, restart it once and retry."""
        last: BaseException | None = None
        for attempt in range(2):
            sock, _ = self._open(start=True, features=features)
            try:
                with sock:
                    return exchange(sock)
            except ProtocolTimeout as exc:  # a hung worker: retrying would only wait as long again
                raise self._hung(exc) from None
            except (ProtocolError, ConnectionError, OSError) as exc:
                last = exc
                self._reap()
        raise WorkerCrashed(
            f"the AdaIN engine worker stopped unexpectedly twice ({last}); see its log {self.log_path}"
            + self._log_tail(" Last log line: ")
        )

    def _hung(self, exc: BaseException) -> WorkerTimeout:
        pid = self.worker_pid
        return WorkerTimeout(
            f"the AdaIN engine worker{f' (pid {pid})' if pid else ''} sent nothing for {self.timeout:g} s and looks "
            f"hung; see its log {self.log_path} (stop it with `kill {pid or 'PID'}`; raise ADAIN_WORKER_TIMEOUT for "
            f"very large jobs)")

    def _run_job(self, sock: socket.socket, header: dict[str, Any], data: memoryview,
                 progress: ProgressCallback | None, cancel: CancelCallback | None) -> tuple[dict[str, Any], bytearray]:
        send_message(sock, header, data)
        cancel_sent_at: float | None = None
        last_message = time.monotonic()
        while True:
            if cancel is not None and cancel_sent_at is None and cancel():
                send_message(sock, {"op": "cancel"})
                cancel_sent_at = time.monotonic()
            if cancel is not None:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if not readable:
                    if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > 10:
                        raise WorkerCancelled("cancelled (the worker did not confirm within 10 s)")
                    if time.monotonic() - last_message > self.timeout:
                        raise ProtocolTimeout(f"no message for {self.timeout:g} s")
                    continue
            message = recv_message(sock, timeout=self.timeout)
            last_message = time.monotonic()
            if message is None:
                raise ProtocolError("the worker closed the connection during the job")
            reply, payload = message
            kind = reply.get("type")
            if kind == "progress":
                if progress is not None:
                    progress(int(reply.get("done", 0)), int(reply.get("total", 0)), str(reply.get("stage", "")))
            elif kind == "result":
                return reply, payload
            elif kind == "cancelled":
                raise WorkerCancelled("cancelled")
            elif kind == "error":
                raise EngineError(str(reply.get("kind", "Error")), str(reply.get("message", "unknown error")))
            else:
                raise ProtocolError(f"unexpected reply {kind!r}")

    def _connect(self) -> socket.socket | None:
        """A connected socket to a live worker, or None when none listens."""
        try:
            if protocol.use_unix_socket():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(self.directory / f"{self.name}.sock"))
                except OSError:
                    sock.close()
                    return None
                uid = peer_uid(sock)
                if uid is not None and uid != os.getuid():  # a socket another user put there: never talk to it
                    sock.close()
                    return None
                sock.settimeout(self.timeout)  # bounds every send; reads set their own deadlines
                return sock
            address = json.loads((self.directory / f"{self.name}.json").read_text(encoding="utf-8"))
            sock = socket.create_connection(("127.0.0.1", int(address["port"])), timeout=5)
            sock.settimeout(self.timeout)
            self._token = str(address["token"])
            return sock
        except (OSError, ValueError, KeyError):
            return None

    def _handshake(self, sock: socket.socket) -> dict[str, Any] | None:
        try:
            send_message(sock, {"op": "hello", "protocol": PROTOCOL_VERSION, "token": self._token})
            message = recv_message(sock, timeout=min(self.timeout, _HANDSHAKE_TIMEOUT))
        except ProtocolTimeout as exc:
            sock.close()
            raise self._hung(exc) from None
        except (OSError, ProtocolError):
            return None
        if message is None or message[0].get("type") != "hello":
            return None
        return message[0]

    def _open(self, *, start: bool, features: Sequence[str] = ()) -> tuple[socket.socket, dict[str, Any]]:
        """Connect (starting the worker if allowed) and say hello. Returns the socket and the worker's hello.

        ``features``: protocol features the request needs; a running worker without them (one started by an
        older engine before an upgrade) is replaced once.
        """
        replaced_for_features = False
        for _ in range(2):
            sock = self._connect()
            if sock is None and start:
                self._start()
                sock = self._connect()
            if sock is None:
                raise WorkerUnavailable(f"no AdaIN engine worker is running for {self.python}")
            hello = self._handshake(sock)
            if hello is None:
                sock.close()
                if not start:
                    raise WorkerUnavailable(f"the AdaIN engine worker for {self.python} does not answer")
                continue
            if hello.get("protocol") != PROTOCOL_VERSION:
                # A worker left over from another engine version: replace it.
                with contextlib.suppress(OSError, ProtocolError):
                    send_message(sock, {"op": "shutdown"})
                    recv_message(sock, timeout=_HANDSHAKE_TIMEOUT)
                sock.close()
                self._wait_gone(hello.get("pid"))
                continue
            missing = [name for name in features if name not in (hello.get("features") or ())]
            if missing:
                if replaced_for_features or not start:
                    sock.close()
                    raise EngineError("Unsupported", (
                        f"the AdaIN engine in {self.python} (adain_core {hello.get('engine_version', '?')}) does not "
                        f"support {', '.join(missing)} (frame sequences: temporal smoothing through the worker); "
                        f"upgrade it (pip install -U adain-style-transfer) or set temporal smoothing to 0"))
                with contextlib.suppress(OSError, ProtocolError):
                    send_message(sock, {"op": "shutdown"})
                    recv_message(sock, timeout=_HANDSHAKE_TIMEOUT)
                sock.close()
                replaced_for_features = True
                self._wait_gone(hello.get("pid"))
                continue
            self.worker_pid = hello.get("pid")
            return sock, hello
        raise WorkerUnavailable(f"could not reach a working AdaIN engine worker; see its log {self.log_path}"
                                + self._log_tail(" Last log line: "))

    def _start(self) -> None:
        with _file_lock(self.directory / f"{self.name}.lock"):
            probe = self._connect()
            if probe is not None:  # another client started it meanwhile
                probe.close()
                return
            if self.log_path.exists() and self.log_path.stat().st_size > (1 << 20):
                self.log_path.unlink()
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
            env.update(self.env)
            command = [self.python, "-c", _BOOTSTRAP, "--directory", str(self.directory), "--name", self.name]
            if self.idle_timeout is not None:
                command += ["--idle-timeout", str(self.idle_timeout)]
            kwargs: dict[str, Any] = {}
            if sys.platform == "win32":
                kwargs["creationflags"] = (subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
                                           | subprocess.CREATE_NO_WINDOW)
            else:
                kwargs["start_new_session"] = True  # survives the host's plug-in process and its signals
            with open(self.log_path, "ab") as log_file:
                try:
                    # cwd: the file-system root, never a folder others (or the runtime folder's past) could fill.
                    self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                                     stderr=log_file, cwd=os.path.abspath(os.sep), env=env, **kwargs)
                except OSError as exc:
                    raise WorkerUnavailable(f"cannot run the engine Python {self.python} ({exc}): {_INSTALL_HINT}")
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                probe = self._connect()
                if probe is not None:
                    probe.close()
                    return
                code = self._process.poll()
                if code is not None:
                    raise WorkerUnavailable(
                        f"the engine Python {self.python} could not start the AdaIN worker (exit code {code})"
                        + self._log_tail(": ", since_start=True) + f". Log: {self.log_path}. Fix: {_INSTALL_HINT}")
                time.sleep(0.05)
            self._process.kill()
            raise WorkerUnavailable(f"the AdaIN worker did not start within {self.start_timeout:.0f} s; "
                                    f"see its log {self.log_path}")

    def _reap(self) -> None:
        """After a connection broke: collect our child if it died, so the retry starts a fresh one."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        if self.worker_pid is not None:
            self._wait_gone(self.worker_pid, timeout=2.0)

    def _wait_gone(self, pid: Any, timeout: float = 10.0) -> None:
        if not isinstance(pid, int) or sys.platform == "win32":
            time.sleep(0.5)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            if self._process is not None and self._process.pid == pid and self._process.poll() is not None:
                return
            time.sleep(0.05)

    def _log_tail(self, prefix: str, *, since_start: bool = False) -> str:
        """The last meaningful line of the worker log (an exception message, usually), prefixed; '' if none."""
        try:
            with open(self.log_path, "rb") as fh:
                if since_start:
                    fh.seek(self._log_offset)
                else:
                    fh.seek(max(0, self.log_path.stat().st_size - 8192))
                lines = [line.strip() for line in fh.read().decode("utf-8", "replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return prefix + lines[-1] if lines else ""
