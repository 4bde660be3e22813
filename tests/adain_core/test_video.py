"""Frames and video: reading/writing with imageio-ffmpeg, frame folders, and temporal smoothing of the content
statistics (issue 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adain_core import ImageLoadError, ValueRangeError
from adain_core.images import pil_to_tensor
from adain_core.video import FrameFolderWriter, VideoWriter, is_video, list_frames, read_video

iio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    writer = VideoWriter(path, fps)
    for f in frames:
        writer.write(f)
    return writer.commit()


def test_video_round_trip_keeps_fps_and_count(tmp_path: Path) -> None:
    frames = [np.full((32, 48, 3), 20 * i, np.uint8) for i in range(6)]
    path = write_video(tmp_path / "clip.mp4", frames, fps=12)
    assert is_video(path) and not is_video(tmp_path / "nothing.mp4")
    it, fps, count = read_video(path)
    got = list(it)
    assert fps == pytest.approx(12) and count == 6 and len(got) == 6
    assert got[0].shape == (32, 48, 3) and abs(int(got[3].mean()) - 60) <= 3
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # the temp file was renamed into place


def test_odd_sized_video_and_abort(tmp_path: Path) -> None:
    path = write_video(tmp_path / "odd.mp4", [np.zeros((17, 31, 3), np.uint8)] * 2, fps=5)
    assert next(read_video(path)[0]).shape == (17, 31, 3)
    writer = VideoWriter(tmp_path / "aborted.mp4", 5)
    writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_corrupt_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ImageLoadError, match="cannot read video"):
        frames, _, _ = read_video(bad)
        list(frames)


def test_frame_folders(tmp_path: Path, make_image) -> None:
    src = tmp_path / "frames"
    src.mkdir()
    with pytest.raises(ImageLoadError, match="no image frames"):
        list_frames(src)
    for name in ("f10.png", "f02.png", ".hidden.png", "notes.txt"):
        (src / name).write_bytes(b"x")
    assert [p.name for p in list_frames(src)] == ["f02.png", "f10.png"]
    out = tmp_path / "out"
    writer = FrameFolderWriter(out, overwrite=False)
    writer.write(make_image(8, 8), "a.png")
    assert not (out / "a.png").exists()  # staged until commit
    writer.commit()
    assert (out / "a.png").is_file()
    writer = FrameFolderWriter(out, overwrite=False)
    with pytest.raises(FileExistsError):
        writer.write(make_image(8, 8), "a.png")
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "out"]


def _pan_with_flashes(make_image) -> tuple[list[torch.Tensor], int]:
    """A camera pan (8 px per frame) over a synthetic picture, with a light flashing on and off in one corner:
    the flash changes each frame's global statistics although the rest of the scene is only moving."""
    big, _ = pil_to_tensor(make_image(96, 256, seed=5))
    frames = []
    for i in range(8):
        f = big[..., 16:80, 8 * i:8 * i + 96].clone()
        if i % 2:
            f[..., 4:20, 4:20] = 1.0
        frames.append(f)
    return frames, 8


def _flicker(outs: list[torch.Tensor], step: int) -> float:
    """Motion-compensated mean |Δ| between consecutive outputs, away from the flash and the frame borders."""
    return float(np.mean([(outs[i][..., 32:64, 40:88] - outs[i + 1][..., 32:64, 40 - step:88 - step]).abs().mean()
                          for i in range(len(outs) - 1)]))


def test_temporal_smoothing_lowers_flicker(random_engine, card_a, make_image) -> None:
    """Stated: with temporal = 0.7 the motion-compensated frame-to-frame output difference is ≤ 0.85 × that with
    temporal = 0 (measured ≈ 0.6× on the random model, ≈ 0.7× on an early trained decoder)."""
    frames, step = _pan_with_flashes(make_image)
    flicker = {s: _flicker(list(random_engine.stylize_frames(frames, card_a, temporal=s)), step) for s in (0.0, 0.7)}
    assert flicker[0.7] <= 0.85 * flicker[0.0], flicker


def test_stylize_frames_types_progress_and_first_frame(random_engine, card_a, make_image) -> None:
    frames = [np.asarray(make_image(24, 32, seed=i)) for i in range(3)]
    calls: list[tuple[int, int]] = []
    outs = list(random_engine.stylize_frames(frames, card_a, temporal=0.5, progress=lambda d, t: calls.append((d, t)),
                                             total=3))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(o, np.ndarray) and o.shape == (24, 32, 3) and o.dtype == np.uint8 for o in outs)
    # The first frame has no history: it equals the single-image result.
    assert np.array_equal(outs[0], random_engine.stylize(frames[0], card_a))
    # Temporal 0 is exactly per-frame stylisation.
    plain = list(random_engine.stylize_frames(frames, card_a, temporal=0.0))
    assert all(np.array_equal(p, random_engine.stylize(f, card_a)) for p, f in zip(plain, frames))
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueRangeError, match="temporal"):
            list(random_engine.stylize_frames(frames, card_a, temporal=bad))
