"""Stylise frame folders, videos and image lists on a Ray cluster: Ray Data feeds contiguous chunks of frames to an
actor pool of engines that write each frame atomically, named by its index, so a job resumes and survives a lost
worker. Needs the ``cluster`` extra (``pip install -e ".[cluster]"``)."""

from __future__ import annotations

import logging
import math
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .engine import StyleSpec
from .errors import AdaINError
from .extras import require
from .images import IMAGE_SUFFIXES, save_image
from .options import StylizeOptions
from .video import VideoWriter, is_video, list_frames, load_frame, read_video

__all__ = ["ClusterJob", "ClusterResult", "Chunk", "stylize_many", "connect", "warmup_frames", "plan_chunks",
           "frame_name", "WARMUP_TOLERANCE", "LOCAL_OBJECT_STORE_BYTES"]

#: The temporal EMA's memory of the frames before a chunk's warm-up must have decayed below this (S^k < 1e-3).
WARMUP_TOLERANCE = 1e-3
#: Object store of a ``local`` cluster: frames never travel through it (actors read and write files), only the job.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
#: Whole-job attempts: Ray retries tasks and restarts actors itself; the driver then re-plans any frame still missing.
ATTEMPTS = 3
#: How often the driver counts finished frames for the progress bar, in seconds.
POLL_SECONDS = 0.5

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)


def warmup_frames(temporal: float) -> int:
    """Frames a chunk re-runs before its first frame so that its temporal EMA matches the single-machine run.

    The EMA ``used[n] = S·used[n-1] + (1−S)·measured[n]`` forgets its starting point as S^k; ``k`` is the smallest
    number of frames with S^k < :data:`WARMUP_TOLERANCE` (0 without smoothing).

    Examples:
        >>> [warmup_frames(s) for s in (0.0, 0.5, 0.7, 0.9)]
        [0, 10, 20, 66]
    """
    if temporal <= 0:
        return 0
    return math.floor(math.log(WARMUP_TOLERANCE) / math.log(temporal)) + 1


@dataclass(frozen=True)
class Chunk:
    """Frames ``start … stop-1`` of a sequence, stylised after running frames ``warmup_start … start-1`` for the
    temporal state only (their outputs are discarded)."""

    start: int
    stop: int
    warmup_start: int


def plan_chunks(total: int, chunk_frames: int, temporal: float, missing: set[int] | None = None) -> list[Chunk]:
    """Contiguous chunks of ``chunk_frames`` frames covering ``0 … total-1``, keeping only those with a frame in
    ``missing`` (``None``: all frames are missing). Each chunk starts its warm-up :func:`warmup_frames` earlier."""
    if chunk_frames < 1:
        raise AdaINError(f"chunk size must be at least 1 frame, got {chunk_frames}")
    k = warmup_frames(temporal)
    chunks = []
    for start in range(0, total, chunk_frames):
        stop = min(total, start + chunk_frames)
        if missing is None or any(i in missing for i in range(start, stop)):
            chunks.append(Chunk(start, stop, max(0, start - k)))
    return chunks


def frame_name(index: int) -> str:
    """The output file of frame ``index`` (0-based, in input order): ``000042.png``."""
    return f"{index:06d}.png"


@dataclass(frozen=True)
class ClusterJob:
    """What every actor needs, put in the object store once: input frame files, output folder, style, options."""

    frames: tuple[str, ...]
    output: str
    style: StyleSpec
    options: StylizeOptions
    temporal: float
    model: str
    device: str
    precision: str


@dataclass(frozen=True)
class ClusterResult:
    """A finished job: where the output is, how many frames it has, and how many this run wrote."""

    output: Path
    frames: int
    written: int
    attempts: int


class FrameStylizer:
    """The Ray Data actor: loads the engine once, then stylises whole chunks, writing frames that do not exist yet.

    Called with a batch of chunks (``start``, ``stop``, ``warmup_start`` columns); yields one row per frame of each
    chunk (``index``) and whether this call wrote it (``written``: False when a retried or resumed chunk found it
    already written).
    """

    def __init__(self, job: object) -> None:
        import ray

        from .engine import load

        self.job: ClusterJob = ray.get(job) if isinstance(job, ray.ObjectRef) else job  # type: ignore[assignment]
        self.engine = load(self.job.model, device=self.job.device, precision=self.job.precision)
        self.folder = Path(self.job.output)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices, written = [], []
        for start, stop, warmup_start in zip(batch["start"], batch["stop"], batch["warmup_start"]):
            chunk = Chunk(int(start), int(stop), int(warmup_start))
            done = set(self._run(chunk))
            indices += range(chunk.start, chunk.stop)
            written += [i in done for i in range(chunk.start, chunk.stop)]
        return {"index": np.asarray(indices, dtype=np.int64), "written": np.asarray(written, dtype=bool)}

    def _done(self, index: int) -> bool:
        return (self.folder / frame_name(index)).exists()

    def _write(self, index: int, frame: np.ndarray) -> None:
        from PIL import Image

        save_image(Image.fromarray(frame), self.folder / frame_name(index), overwrite=True)

    def _run(self, chunk: Chunk) -> Iterator[int]:
        """Stylise the chunk's missing frames; yields the indices written."""
        job = self.job
        missing = [i for i in range(chunk.start, chunk.stop) if not self._done(i)]
        if not missing:
            return
        if job.temporal > 0:
            # Sequential: the warm-up frames and every frame up to the last missing one carry the EMA state.
            state = None
            for i in range(chunk.warmup_start, missing[-1] + 1):
                out, state = self.engine.stylize_frame(load_frame(Path(job.frames[i])), job.style, job.options,
                                                       state=state, temporal=job.temporal)
                if i >= chunk.start and not self._done(i):
                    self._write(i, out)
                    yield i
            return
        pending = [(i, load_frame(Path(job.frames[i]))) for i in missing]
        while pending:
            h, w = pending[0][1].shape[:2]
            limit = self.engine.frames_per_pass(h, w, job.options)
            group = []
            while pending and len(group) < limit and pending[0][1].shape == (h, w, 3):
                group.append(pending.pop(0))
            pixels = torch.from_numpy(np.stack([f for _, f in group])).permute(0, 3, 1, 2).float() / 255.0
            out = self.engine.stylize(pixels, job.style, job.options)
            frames = (out.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
            for (i, _), frame in zip(group, frames):
                self._write(i, frame)
                yield i


def connect(address: str, workers: int) -> bool:
    """Connect this process to Ray: ``local`` starts a private instance on 127.0.0.1 with ``workers`` CPUs (one per
    worker actor, no dashboard, a small object store); ``auto`` joins the cluster this machine belongs to; anything
    else is a cluster address (``ray://host:10001``). Returns True when this call started the connection (the
    caller then calls ``ray.shutdown()``), False when Ray was already initialised.

    Raises:
        MissingDependencyError: Ray is not installed (the message names the install command).
    """
    require("cluster", f"stylising on a Ray cluster ({address})")
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
    if address == "local":
        ray.init(num_cpus=workers, object_store_memory=LOCAL_OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1",
                 **quiet)
    else:
        ray.init(address=address, **quiet)
    return True


def _frames_folder(contents: Sequence[Path], output: Path) -> Path:
    """Where the stylised frames go: ``output``, or ``<output>.frames/styled`` for a video."""
    if len(contents) == 1 and is_video(contents[0]):
        return output.parent / f"{output.name}.frames" / "styled"
    return output


def _collect_frames(contents: Sequence[Path], output: Path) -> tuple[list[Path], float | None]:
    """Input frame files, and the frame rate when the content is a video (whose frames are first extracted next to
    the output, once: every node must see the same files)."""
    if len(contents) == 1 and contents[0].is_dir():
        return list_frames(contents[0]), None
    if len(contents) == 1 and is_video(contents[0]):
        source = output.parent / f"{output.name}.frames" / "source"
        done = source / ".complete"  # holds the frame rate
        if not done.exists():
            from PIL import Image

            frames, fps, _ = read_video(contents[0])
            source.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(frames):
                save_image(Image.fromarray(frame), source / frame_name(i), overwrite=True)
            done.write_text(repr(fps))
        return list_frames(source), float(done.read_text())
    for p in contents:
        if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES:
            raise AdaINError(f"{p}: a cluster job takes one folder of frames, one video, or image files")
    return list(contents), None


def _missing(folder: Path, total: int) -> set[int]:
    return {i for i in range(total) if not (folder / frame_name(i)).exists()}


def stylize_many(contents: Sequence[str | Path], style: StyleSpec, output: str | Path, *, cluster: str = "local",
                 workers: int = 2, options: StylizeOptions | None = None, temporal: float = 0.0,
                 model: str | Path = "default", device: str = "auto", precision: str = "auto",
                 resume: bool = False, overwrite: bool = False, chunk_frames: int | None = None,
                 gpus_per_worker: float | None = None, progress: Progress | None = None) -> ClusterResult:
    """Stylise a folder of frames, a video or a list of images on a Ray cluster.

    Frames are split into contiguous chunks (each re-running :func:`warmup_frames` earlier frames when ``temporal``
    > 0, so the result equals :meth:`Engine.stylize_frames` within 2/255); a pool of ``workers`` actors, each with
    the model loaded once, stylises them and writes ``output/000000.png …`` atomically. A video's frames go to
    ``<output>.frames/`` and the video is assembled at ``output`` (same frame rate) only once every frame exists;
    that folder is then removed.

    Args:
        contents: one folder of frames (sorted by name), one video file, or image files (in the given order).
        style: a :class:`StyleCard` or ``(card, mask)`` pairs (as :meth:`Engine.stylize`), sent to the actors once.
        output: the output folder (a video file for a video).
        cluster: ``local``, ``auto`` or a Ray address (see :func:`connect`).
        workers: engine actors (one per GPU on a GPU cluster).
        options, temporal, model, device, precision: as :meth:`Engine.stylize_frames` and :func:`load`; ``model``
            and the inputs must be paths every node can read.
        resume: keep frames an earlier run wrote and stylise only the missing ones.
        overwrite: replace an earlier run's frames (or video).
        chunk_frames: frames per chunk (default: four chunks per worker, at least 4·k frames with warm-up k).
        gpus_per_worker: GPUs each actor requests (default: 1 when the cluster has GPUs, else 0).
        progress: ``progress(done, total)`` on the driver after each frame.

    Returns:
        A :class:`ClusterResult`.

    Raises:
        MissingDependencyError: Ray is not installed. FileExistsError: output exists (without ``resume`` or
        ``overwrite``). AdaINError: frames still missing after :data:`ATTEMPTS` attempts.
    """
    if not 0.0 <= temporal < 1.0:
        raise AdaINError(f"temporal smoothing must be in [0, 1), got {temporal}")
    if workers < 1:
        raise AdaINError(f"workers must be at least 1, got {workers}")
    if chunk_frames is not None and chunk_frames < 1:
        raise AdaINError(f"chunk size must be at least 1 frame, got {chunk_frames}")
    require("cluster", f"stylising on a Ray cluster ({cluster})")
    output = Path(output)
    paths = [Path(p) for p in contents]
    for p in paths:
        if not p.exists():
            raise AdaINError(f"{p}: no such file or folder")
    video = len(paths) == 1 and is_video(paths[0])
    folder = _frames_folder(paths, output)
    if output.exists() and video and not overwrite:
        raise FileExistsError(f"{output}: output exists (pass --overwrite to replace it)")
    if folder.is_dir() and any(folder.glob("[0-9]" * 6 + ".png")) and not (resume or overwrite):
        raise FileExistsError(f"{folder}: holds frames of an earlier run (pass --resume to finish it or "
                              f"--overwrite to replace it)")
    frames, fps = _collect_frames(paths, output)
    total = len(frames)
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite and not resume:
        for i in range(total):
            (folder / frame_name(i)).unlink(missing_ok=True)
    options = StylizeOptions.of(options)
    k = warmup_frames(temporal)
    size = chunk_frames if chunk_frames is not None else max(-(-total // (4 * workers)), 4 * k, 1)
    model = Path(model).resolve() if Path(model).is_file() else model  # actors may start in another folder
    job = ClusterJob(tuple(str(f.resolve()) for f in frames), str(folder.resolve()), style, options, float(temporal),
                     str(model), str(device), str(precision))

    started = connect(cluster, workers)
    try:
        written, attempts = _run(job, total, size, workers, gpus_per_worker, progress)
    finally:
        if started:
            import ray

            ray.shutdown()
    for stale in folder.glob(".*.png"):  # temp files of a worker killed while writing
        stale.unlink(missing_ok=True)
    if video:
        _assemble(folder, total, output, fps or 25.0)
        shutil.rmtree(folder.parent)
    return ClusterResult(output, total, written, attempts)


def _run(job: ClusterJob, total: int, chunk_frames: int, workers: int, gpus_per_worker: float | None,
         progress: Progress | None) -> tuple[int, int]:
    """Run the Ray Data pipeline until every frame exists; returns (frames written, attempts)."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job has one bar, on the driver
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    folder = Path(job.output)
    ref = ray.put(job)
    written, failure = 0, ""
    for attempt in range(1, ATTEMPTS + 1):
        missing = _missing(folder, total)
        if progress is not None:
            progress(total - len(missing), total)
        if not missing:
            return written, attempt - 1
        chunks = plan_chunks(total, chunk_frames, job.temporal, missing)
        items = [{"start": c.start, "stop": c.stop, "warmup_start": c.warmup_start} for c in chunks]
        # Ray Data's actor pools restart a dead actor and retry its task (max_restarts = max_task_retries = -1 by
        # default): a killed worker's chunk runs again, and frames it had already written are skipped.
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            FrameStylizer, fn_constructor_kwargs={"job": ref}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))), num_cpus=1, num_gpus=gpus_per_worker)
        outcome: dict[str, object] = {}

        def consume(dataset=dataset, outcome=outcome) -> None:
            try:
                outcome["written"] = sum(int(row["written"]) for row in dataset.iter_rows())
            except BaseException as exc:  # noqa: BLE001 - handed to the driver thread below
                outcome["error"] = exc

        # The pipeline runs in a thread; the driver counts finished frames on disk meanwhile, so the bar moves
        # per frame whatever the size of Ray Data's output blocks.
        thread = threading.Thread(target=consume, name="adain-cluster-job", daemon=True)
        thread.start()
        while thread.is_alive():
            if progress is not None:
                progress(total - len(_missing(folder, total)), total)
            thread.join(POLL_SECONDS)
        written += int(outcome.get("written", 0))  # type: ignore[call-overload]
        error = outcome.get("error")
        if isinstance(error, ray.exceptions.UserCodeException):
            # Our code failed on the input (a corrupt frame, a bad option): retrying cannot help.
            cause = error.__cause__ or error
            raise AdaINError(" ".join(str(cause).split()) or type(cause).__name__) from error
        if isinstance(error, BaseException) and not isinstance(error, ray.exceptions.RayError):
            raise error
        if error is not None:
            # A chunk failed for good (its actor died more often than Ray retries): plan its frames again.
            failure = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning("cluster attempt %d failed: %s", attempt, failure)
    missing = _missing(folder, total)
    if progress is not None:
        progress(total - len(missing), total)
    if missing:
        raise AdaINError(f"{job.output}: {len(missing)} of {total} frames still missing after {ATTEMPTS} attempts "
                         f"({failure or 'no error reported'}); run again with --resume to finish them")
    return written, ATTEMPTS


def _assemble(folder: Path, total: int, output: Path, fps: float) -> None:
    """Write the video from frames 0 … total-1, atomically; only called when every frame exists."""
    writer = VideoWriter(output, fps)
    try:
        for i in range(total):
            writer.write(load_frame(folder / frame_name(i)))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
