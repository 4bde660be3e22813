"""Frames in and out: a video file (imageio + the imageio-ffmpeg wheel's own ffmpeg: the ``video`` extra) or a folder
of frames."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .files import publish
from .errors import ImageLoadError
from .extras import require
from .images import IMAGE_SUFFIXES, check_image_header, load_image

__all__ = ["VIDEO_SUFFIXES", "is_video", "list_frames", "read_video", "VideoWriter", "FrameFolderWriter"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif")


def is_video(path: Path) -> bool:
    """True for a file whose extension is a video container we read."""
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def list_frames(folder: Path) -> list[Path]:
    """Image files of a frames folder, sorted by name.

    Raises:
        ImageLoadError: no image files in the folder.
    """
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not frames:
        raise ImageLoadError(f"{folder}: folder holds no image frames ({', '.join(IMAGE_SUFFIXES)})")
    return frames


def read_video(path: Path) -> tuple[Iterator[np.ndarray], float, int]:
    """Open a video: (iterator of (H, W, 3) uint8 RGB frames, frames per second, frame count or 0 if unknown).

    Raises:
        ImageLoadError: unreadable or corrupt video, or frames too large (checked from the metadata, before decoding).
        MissingDependencyError: the ``video`` extra is not installed.
    """
    require("video", f"reading the video {path}")
    import imageio.v2 as iio

    try:
        reader = iio.get_reader(str(path), format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as exc:  # imageio raises many types for broken files
        raise ImageLoadError(f"{path}: cannot read video ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    size = meta.get("size") or meta.get("source_size")
    if size:
        try:
            check_image_header(Path(path), int(size[0]), int(size[1]))  # each frame, before any is decoded
        except ImageLoadError:
            reader.close()
            raise
    fps = float(meta.get("fps") or 25.0)
    try:
        count = int(reader.count_frames())
    except Exception:
        count = 0

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in reader:
                yield np.asarray(frame)[..., :3]
        finally:
            reader.close()

    return frames(), fps, count


class VideoWriter:
    """Writes RGB uint8 frames to a video atomically: a temp file in the target folder, renamed on :meth:`commit`."""

    def __init__(self, path: Path, fps: float) -> None:
        require("video", f"writing the video {path}")
        self.path = path
        self.fps = fps
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer = None

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame."""
        import imageio.v2 as iio

        if self._writer is None:
            h, w = frame.shape[:2]
            even = h % 2 == 0 and w % 2 == 0
            kwargs = {} if self.path.suffix.lower() == ".gif" else {
                "codec": "libx264", "quality": 8, "macro_block_size": 1,
                "pixelformat": "yuv420p" if even else "yuv444p"}
            self._writer = iio.get_writer(str(self._tmp), format="FFMPEG" if kwargs else None, fps=self.fps, **kwargs)
        self._writer.append_data(frame)

    def commit(self) -> Path:
        """Finish the file and move it into place."""
        if self._writer is not None:
            self._writer.close()
        publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
        self._tmp.unlink(missing_ok=True)


class FrameFolderWriter:
    """Writes frames into a hidden staging folder and moves them into ``folder`` only on :meth:`commit`."""

    def __init__(self, folder: Path, overwrite: bool) -> None:
        self.folder = folder
        self.overwrite = overwrite
        folder.parent.mkdir(parents=True, exist_ok=True)
        self._stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
        self._names: list[str] = []

    def write(self, image, name: str) -> None:  # type: ignore[no-untyped-def]
        """Stage one PIL image under ``name``."""
        from .images import save_image

        target = self.folder / name
        if target.exists() and not self.overwrite:
            raise FileExistsError(f"{target}: output exists (pass --overwrite to replace it)")
        save_image(image, self._stage / name)
        self._names.append(name)

    def commit(self) -> Path:
        """Move the staged frames into the output folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in self._names:
            os.replace(self._stage / name, self.folder / name)
        shutil.rmtree(self._stage, ignore_errors=True)
        return self.folder

    def abort(self) -> None:
        """Drop the staged frames."""
        shutil.rmtree(self._stage, ignore_errors=True)


def load_frame(path: Path) -> np.ndarray:
    """A frame file as (H, W, 3) uint8 RGB."""
    return np.asarray(load_image(path).convert("RGB"))
