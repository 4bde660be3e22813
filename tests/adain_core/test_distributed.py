"""Stylising on a real local Ray cluster (head + 2 worker actors on 127.0.0.1, started once for this module): the
result equals the single-process run, a killed worker loses or duplicates no frame, ``--resume`` writes only what is
missing, and without Ray ``--cluster`` is one line naming the install command.

Ray is the ``cluster`` extra; these tests skip with the reason when it is not installed, except in CI
(``ADAIN_REQUIRE_REAL`` / ``ADAIN_REQUIRE_HOSTS`` set), where a missing Ray fails.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_core import AdaINError, distributed, extras
from adain_core.cli import main
from adain_core.distributed import Chunk, frame_name, plan_chunks, stylize_many, warmup_frames

WORKERS = 2
FRAMES = 24
HEIGHT, WIDTH = 96, 128


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def _own_processes(marker: str) -> list[int]:
    """Live descendants of this test process whose command line contains ``marker`` (Ray names its actor
    processes ``ray::MapWorker(MapBatches(FrameStylizer))``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command and _descends_from(int(entry.name), os.getpid()):
            found.append(int(entry.name))
    return found


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if alive:
            time.sleep(0.1)
    return alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance (the one ``--cluster local`` starts) shared by this module's tests; torn down on the way
    out, whatever happened: ``ray.shutdown()``, then SIGKILL for any of its processes still alive after 30 s."""
    if importlib.util.find_spec("ray") is None:
        reason = f"Ray is not installed (the cluster extra: {extras.install_command('cluster')})"
        if os.environ.get("ADAIN_REQUIRE_REAL") or os.environ.get("ADAIN_REQUIRE_HOSTS"):
            pytest.fail(f"CI requires the cluster tests but {reason}")
        pytest.skip(reason)
    if not sys.platform.startswith("linux"):
        pytest.skip("the cluster tests find Ray's worker processes through /proc")
    import ray

    assert distributed.connect("local", WORKERS), "Ray was already initialised in this process"
    try:
        yield ray
    finally:
        started = _own_processes("ray")
        ray.shutdown()
        for pid in _wait_gone(started, 30.0):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory: pytest.TempPathFactory, make_image) -> Path:
    """24 frames of 128×96, each a different picture (so the temporal EMA has something to smooth)."""
    folder = tmp_path_factory.mktemp("frames")
    for i in range(FRAMES):
        make_image(HEIGHT, WIDTH, seed=300 + i).save(folder / f"shot_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def card(random_engine, make_image):
    return random_engine.encode_style(make_image(64, 64, seed=9), size=64, name="painting")


@pytest.fixture(scope="module")
def reference(random_engine, frames_dir: Path, card):
    """``reference(S)``: the single-process run with temporal S, frames as the CLI feeds them ((H, W, 3) uint8),
    computed once per S."""
    from adain_core.video import list_frames, load_frame

    done: dict[float, list[np.ndarray]] = {}

    def run(temporal: float) -> list[np.ndarray]:
        if temporal not in done:
            frames = (load_frame(p) for p in list_frames(frames_dir))
            done[temporal] = list(random_engine.stylize_frames(frames, card, temporal=temporal))
        return done[temporal]

    return run


def _outputs(folder: Path) -> list[np.ndarray]:
    names = sorted(p.name for p in folder.iterdir())
    assert names == [frame_name(i) for i in range(FRAMES)], names  # every frame once, nothing else (no temp files)
    return [np.asarray(Image.open(folder / n).convert("RGB")) for n in names]


def _max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    assert len(a) == len(b)
    return max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b))


def _engine_args(model: Path) -> list[str]:
    return ["--model", str(model), "--device", "cpu", "--precision", "fp32"]


# -- planning (no Ray) ------------------------------------------------------------------------------------------------
def test_warmup_makes_the_ema_forget_its_start() -> None:
    for s in (0.3, 0.5, 0.7, 0.9, 0.95):
        k = warmup_frames(s)
        assert s**k < distributed.WARMUP_TOLERANCE <= s ** (k - 1)
    assert warmup_frames(0.0) == 0


def test_chunks_cover_every_frame_once_and_skip_finished_ones() -> None:
    chunks = plan_chunks(24, 5, 0.5)
    assert [i for c in chunks for i in range(c.start, c.stop)] == list(range(24))
    assert chunks[1] == Chunk(5, 10, 0) and chunks[3] == Chunk(15, 20, 5)
    assert plan_chunks(24, 5, 0.0, missing={7, 23}) == [Chunk(5, 10, 5), Chunk(20, 24, 20)]


def test_cluster_without_ray_is_one_line_naming_the_extra(tmp_path: Path, frames_dir: Path, random_model_path: Path,
                                                          make_image, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "cluster", (extras.EXTRAS["cluster"][0], ("no_such_module_ray",)))
    style = tmp_path / "painting.png"
    make_image(40, 40, seed=3).save(style)
    out = tmp_path / "out"
    code = main(["stylize", str(frames_dir), "--style", str(style), "--cluster", "local", "-o", str(out),
                 *_engine_args(random_model_path)])
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and "'cluster' extra" in line and line.endswith(extras.install_command("cluster"))
    assert "[cluster]" in line or "ray[data]" in line
    assert not out.exists()


def test_resume_needs_cluster(tmp_path: Path, frames_dir: Path, capsys) -> None:
    code = main(["stylize", str(frames_dir), "--style", str(frames_dir / "shot_000.png"), "--resume",
                 "-o", str(tmp_path / "out")])
    assert code == 1 and "--resume and --chunk-frames need --cluster" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [{"workers": 0}, {"chunk_frames": 0}, {"temporal": 1.0}])
def test_bad_job_settings_are_refused_before_ray_starts(tmp_path: Path, frames_dir: Path, card, bad) -> None:
    with pytest.raises(AdaINError, match="must be"):
        stylize_many([frames_dir], card, tmp_path / "out", **bad)
    assert not (tmp_path / "out").exists()


# -- a real local cluster ---------------------------------------------------------------------------------------------
def test_cli_cluster_equals_the_single_process_run(ray_cluster, tmp_path: Path, frames_dir: Path,
                                                   random_model_path: Path, make_image, capsys) -> None:
    """``adain stylize frames/ --cluster local --workers 2 -o out/`` = ``adain stylize frames/ -o out/`` (≤ 1/255)."""
    style = tmp_path / "painting.png"
    make_image(40, 40, seed=3).save(style)
    common = ["--style", str(style), "--style-size", "32", *_engine_args(random_model_path)]
    assert main(["stylize", str(frames_dir), *common, "-o", str(tmp_path / "single")]) == 0
    assert main(["stylize", str(frames_dir), *common, "--cluster", "local", "--workers", str(WORKERS),
                 "--chunk-frames", "5", "-o", str(tmp_path / "cluster")]) == 0
    captured = capsys.readouterr()
    assert str(tmp_path / "cluster") in captured.out
    assert "24/24" in captured.err  # the driver's one bar reached the end
    single = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((tmp_path / "single").iterdir())]
    assert _max_difference(_outputs(tmp_path / "cluster"), single) <= 1


def test_temporal_smoothing_across_chunks_matches_within_2(ray_cluster, tmp_path: Path, frames_dir: Path, card,
                                                            reference, random_model_path: Path) -> None:
    """Chunks of 4 frames with S = 0.5 (warm-up 10 frames): chunks after the 10th frame start from a warmed-up EMA,
    not from the true one; the difference stays within 2/255."""
    assert any(c.warmup_start > 0 for c in plan_chunks(FRAMES, 4, 0.5))
    seen: list[tuple[int, int]] = []
    result = stylize_many([frames_dir], card, tmp_path / "out", cluster="local", workers=WORKERS, temporal=0.5,
                          model=random_model_path, device="cpu", precision="fp32", chunk_frames=4,
                          progress=lambda done, total: seen.append((done, total)))
    assert (result.frames, result.written) == (FRAMES, FRAMES)
    assert seen[-1] == (FRAMES, FRAMES) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert _max_difference(_outputs(tmp_path / "out"), reference(0.5)) <= 2


def test_a_killed_worker_loses_and_duplicates_nothing(ray_cluster, tmp_path: Path, frames_dir: Path, card,
                                                      reference, random_model_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One engine actor is killed (SIGKILL of its process) as soon as the first frames are written; Ray restarts it
    and retries its chunk: every frame exists exactly once and equals the single-process run."""
    monkeypatch.setattr(distributed, "POLL_SECONDS", 0.02)  # see the first frames however fast this machine is
    killed: list[tuple[int, int]] = []

    def kill_one_worker(done: int, total: int) -> None:
        if not killed and 0 < done < total:
            pids = _own_processes("FrameStylizer")
            assert pids, "no engine actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append((pids[0], done))

    result = stylize_many([frames_dir], card, tmp_path / "out", cluster="local", workers=WORKERS,
                          model=random_model_path, device="cpu", precision="fp32", chunk_frames=2,
                          progress=kill_one_worker)
    assert killed, "the job finished before a worker could be killed"
    assert not _wait_gone([pid for pid, _ in killed], 10.0)
    assert result.frames == FRAMES
    assert _max_difference(_outputs(tmp_path / "out"), reference(0.0)) <= 1


def test_resume_writes_only_the_missing_frames(ray_cluster, tmp_path: Path, frames_dir: Path, card, reference,
                                               random_model_path: Path) -> None:
    """An interrupted run left 20 of 24 frames: without --resume the job refuses to mix runs; with it, only the four
    missing frames are written and the others are not touched."""
    out = tmp_path / "out"
    out.mkdir()
    expected = reference(0.0)
    for i, frame in enumerate(expected):
        Image.fromarray(frame).save(out / frame_name(i))
    missing = {3, 10, 11, 23}
    for i in missing:
        (out / frame_name(i)).unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    kwargs = dict(cluster="local", workers=1, model=random_model_path, device="cpu", precision="fp32",
                  chunk_frames=6)
    with pytest.raises(FileExistsError, match="--resume"):
        stylize_many([frames_dir], card, out, **kwargs)
    result = stylize_many([frames_dir], card, out, resume=True, **kwargs)
    assert result.written == len(missing)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in before} == before
    assert _max_difference(_outputs(out), expected) <= 1


def test_video_is_assembled_once_every_frame_exists(ray_cluster, tmp_path: Path, frames_dir: Path, card,
                                                    random_model_path: Path) -> None:
    from adain_core.extras import missing_modules
    from adain_core.video import VideoWriter, list_frames, load_frame, read_video

    if missing_modules("video"):
        pytest.skip("the video extra is not installed")
    clip = tmp_path / "clip.mp4"
    writer = VideoWriter(clip, 12.0)
    for p in list_frames(frames_dir):
        writer.write(load_frame(p))
    writer.commit()
    out = tmp_path / "styled.mp4"
    stylize_many([clip], card, out, cluster="local", workers=1, model=random_model_path, device="cpu",
                 precision="fp32")
    frames, fps, _ = read_video(out)
    shapes = [f.shape for f in frames]
    assert len(shapes) == FRAMES and shapes[0] == (HEIGHT, WIDTH, 3) and fps == pytest.approx(12.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "styled.mp4"]  # the frames folder is gone
