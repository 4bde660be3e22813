"""Engine worker: a long-lived engine process that hosts without torch (GIMP, Blender) drive through a client library.

Importing this package needs only the standard library (GIMP 3's Python loads it straight from the engine's
install folder); the server part (torch, numpy) is imported only by ``python -m adain_core.worker``.

Lifecycle
    :class:`WorkerClient` connects to the worker of its engine Python (``$ADAIN_PYTHON``, the config file written by
    ``adain install gimp``, or the current interpreter) and starts it when none runs:
    ``<python> -m adain_core.worker --directory DIR --name worker-<hash of the python path>``, detached, logging to
    ``DIR/<name>.log``. The worker keeps up to 2 models and 64 style cards in memory (:mod:`adain_core.cache`: cards keyed
    by the style file's identity and the style size) and exits after ``--idle-timeout`` seconds without requests
    (default 600, ``$ADAIN_WORKER_IDLE_TIMEOUT``). If a worker dies during a job the client starts a new one and
    retries once, then raises :class:`WorkerCrashed` naming the log.

Transport and access
    A Unix socket ``DIR/<name>.sock`` (mode 0600) in a directory of mode 0700 owned by the user
    (``$ADAIN_WORKER_DIR``, else ``$XDG_RUNTIME_DIR/adain``, else ``/tmp/adain-<uid>``). Where Unix sockets are missing
    (Windows), loopback TCP on a random port whose number and 256-bit token lie in ``DIR/<name>.json`` (mode 0600);
    a connection must say hello with the token first.

Frames (:mod:`adain_core.worker.protocol`)
    ``b"ADN1"``, uint32 header length, uint64 payload length (big-endian), UTF-8 JSON header, raw payload.
    Requests carry ``"op"``, replies ``"type"``:

    - ``hello {protocol, token}`` → ``hello {protocol, pid, python, engine_version, features}``; ``features`` lists
      optional request fields or values the worker understands (``"sequence"``, ``"scale"``, ``"palette"``,
      ``"backdrop"``, ``"marks"``). A client that needs one replaces a running worker without it once (an older engine's worker
      left running across an upgrade), then reports the engine as too old (``error kind "Unsupported"``, raised by
      the client).
    - ``stylize {protocol, model, styles: [{path, weight}], alpha, color?, style_size, backdrop?, tile, scale?, marks?,
      image: {shape: [H, W, 3|4], dtype: "uint8"|"float32"}, mask?: {shape: [H, W], dtype},
      sequence?: {id, temporal}}`` + payload (image bytes, then mask bytes) → any number of
      ``progress {stage, done, total}``, then ``result {image: {shape, dtype}, timings, cache, sequence?: {id,
      frames}}`` + payload, or ``error {kind, message}``, or ``cancelled``. Sending ``cancel`` (or closing the
      connection) while the job runs stops it at the engine's next cancel check. Jobs run one at a time; a waiting
      job is told ``progress {stage: "queued"}``.
    - ``color``: a colour mode (default: the engine's, ``"palette"``; the value ``"palette"`` is the feature of the
      same name).
    - ``backdrop``: how style *images* are encoded, a mode of ``adain_core.vocabulary.BACKDROP_MODES`` (default
      ``"ignore"``: a flat surround or transparent pixels are left out of the style; ``"keep"`` is the feature of the
      same name).
    - ``scale``: the working resolution, a number in (0, 1] or ``"auto"`` (also spelt 0; default 1, full size; see
      :class:`adain_core.StylizeOptions`); the result always has the image's size.
    - ``marks``: 0-2, the painting's own typical marks in the image's flat areas (default 0, off; see
      :class:`adain_core.StylizeOptions`).
    - ``sequence``: the image is the next frame of sequence ``id`` (a string of 1-200 characters the client picks);
      its content statistics are smoothed with the sequence's previous frames by
      :meth:`adain_core.Engine.stylize_frame` (``temporal`` in [0, 1)), so a sequence sent frame by frame equals
      ``Engine.stylize_frames(frames, temporal=...)``. The worker keeps the state of the 16 most recently used ids
      (only after a frame completes: a cancelled or failed frame leaves it unchanged); an id is forgotten by
      ``end_sequence``, after the idle timeout without use, when a frame comes for another model, or when the worker
      exits. ``frames`` in the result counts the frames chained so far (1 = no history, e.g. after a worker restart).
    - ``end_sequence {id}`` → ``sequence_ended {existed}``.
    - ``ping`` → ``pong``; ``stats`` → ``stats {models, cards, sequences, jobs_done}``; ``shutdown`` → ``bye`` and
      exit.

Limits and deadlines
    Headers are at most 256 KiB of JSON nested at most 32 deep. A stylize payload must be exactly the bytes its image
    and mask shapes announce and fit the worker's memory budget for payloads (``--max-memory``,
    ``$ADAIN_WORKER_MAX_MEMORY``, default half the RAM, shared by all connections); it is read incrementally after the
    header (and, over TCP, the token) has been checked. A refused request's payload is drained (or, when it does not
    match the header, the connection is closed) and answered ``error {kind}``: ``BadRequest`` (malformed),
    ``MemoryError`` (over the budget), ``Busy`` (more than 32 connections), ``Unauthorized`` (TCP token). A connection
    silent for 60 s between frames (``--connection-timeout``) or for 30 s inside a frame (``--read-timeout``) is
    closed. While a job waits or works, the worker repeats its last ``progress`` every 10 s; clients treat a longer
    silence as a hung worker (``WorkerTimeout``). Data sent during a job other than a complete ``cancel`` frame
    cancels that job. The worker serves only its own user (``SO_PEERCRED``) and never imports from its working
    directory (it runs from the file-system root).

Images are sRGB-encoded RGB(A), values in [0, 1] for float32; alpha passes through; where the optional mask is < 1
the input shows through (a pixel-space blend).
"""

from pathlib import Path

from . import client, config, protocol
from .client import (
    EngineError,
    StylizeResult,
    WorkerCancelled,
    WorkerClient,
    WorkerCrashed,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
    resolve_engine_python,
)

__all__ = [*client.__all__, "config", "protocol", "BUNDLED_NAME", "client_files"]

#: The package name under which hosts without the engine (GIMP, Blender) carry a copy of this client.
BUNDLED_NAME = "adain_worker"
_CLIENT_FILES = ("__init__.py", "client.py", "config.py", "protocol.py")


def client_files() -> list[Path]:
    """The standard-library-only files of this package (the client side; ``server.py`` and ``__main__.py`` need
    torch), which an adapter's installer copies into its host as the package :data:`BUNDLED_NAME`, imported there
    like any package (no path loading)."""
    here = Path(__file__).resolve().parent
    return [here / name for name in _CLIENT_FILES]
