"""GPU sprint rehearsed on the CPU: ``adain-train pack`` on tiny folders, read back, and ``adain-train sprint
--device cpu --max-steps 3`` end to end in a Python where kornia, matplotlib, tqdm, platformdirs, imageio and h5py
cannot be imported (the GPU machine has none of them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import cli
from training.data import PAINTED_SHARE
from training.pack import read_pack
from training.sprint import random_crops

REPO = Path(__file__).resolve().parents[2]
ABSENT_ON_GPU_MACHINE = ("kornia", "matplotlib", "tqdm", "platformdirs", "imageio", "imageio_ffmpeg", "h5py")


@pytest.fixture(scope="module")
def paintings(image_dirs, portrait, tmp_path_factory) -> Path:
    """The 5 pattern paintings and 2 portraits on a flat white backdrop (28 px figures on 64 px)."""
    folder = tmp_path_factory.mktemp("paintings")
    for p in image_dirs[1].iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    rng = np.random.default_rng(3)
    for i in range(2):
        Image.fromarray(portrait(rng, 64, 28)).save(folder / f"portrait{i}.png")
    return folder


def _make_pack(out: Path, content: Path, style: Path, *args: str) -> Path:
    rc = cli.main(["pack", str(out), "--content", str(content), "--style", str(style), "--eval-content",
                   str(content), "--eval-style", str(style), "--encoder", "random-vgg16", "--side", "48",
                   "--eval-side", "40", "--max-mb", "6.5", "--max-content", "4", *args])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def pack(image_dirs, paintings, tmp_path_factory) -> Path:
    return _make_pack(tmp_path_factory.mktemp("pack") / "pack", image_dirs[0], paintings)


def test_pack_holds_what_the_manifest_says(pack):
    manifest = json.loads((pack / "manifest.json").read_text())
    assert sorted(p.name for p in pack.iterdir()) == ["encoder.safetensors", "images.bin", "manifest.json"]
    assert manifest["counts"] == {"content": 4, "style": 7, "eval_content": 6, "eval_style": 7}
    assert manifest["total_bytes"] == sum(p.stat().st_size for p in pack.iterdir()) <= 6.5e6
    loaded = read_pack(pack)
    assert loaded.content.shape == (4, 3, 48, 48) and loaded.content.dtype == torch.uint8
    assert loaded.style.shape == (7, 4, 48, 48) and loaded.painted
    assert len(loaded.eval_content) == 6 and min(loaded.eval_content[0].shape[-2:]) == 40
    assert loaded.eval_style[0].shape[1] == 3
    assert set(loaded.encoder_state) and all(v.dtype == torch.float32 for v in loaded.encoder_state.values())


def test_pack_carries_each_paintings_painted_pixels(pack, image_dirs, paintings, tmp_path):
    """A portrait's backdrop is alpha 0 with its white kept under it, its figure 255; a painting without a backdrop
    is 255 throughout; ``--painted 0`` packs RGB paintings."""
    loaded = read_pack(pack)
    names = loaded.manifest["sets"]["style"]["names"]
    for i, name in enumerate(names):
        alpha, rgb = loaded.style[i, 3], loaded.style[i, :3]
        if not name.startswith("portrait"):
            assert bool((alpha == 255).all()), name
            continue
        figure = slice(16, 32)  # the 28 px figure at 18 of 64 px, scaled to 48: 21 px from 13.5
        assert float((alpha == 0).float().mean()) == pytest.approx(1 - (21 / 48) ** 2, abs=0.05), name
        assert bool((alpha[figure, figure] == 255).all()) and bool((alpha[:4] == 0).all())
        assert int(rgb[:, :4].min()) >= 250  # the backdrop's own colour survives (WebP ``exact``)
    plain = read_pack(_make_pack(tmp_path / "rgb", image_dirs[0], paintings, "--painted", "0"))
    assert plain.style.shape == (7, 3, 48, 48) and not plain.painted


def test_pack_refuses_a_budget_too_small_in_one_line(image_dirs, tmp_path, capsys):
    content, style = image_dirs
    rc = cli.main(["pack", str(tmp_path / "p"), "--content", str(content), "--style", str(style),
                   "--eval-content", str(content), "--eval-style", str(style), "--encoder", "random-vgg16",
                   "--max-mb", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--max-mb 1" in err and len(err.splitlines()) == 1


def test_a_damaged_pack_is_refused(pack, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in pack.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "images.bin").read_bytes())
    data[10] ^= 0xFF
    (copy / "images.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        read_pack(copy)


def test_random_crops_are_seeded_sized_and_in_range():
    images = torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8)
    a = random_crops(images, 6, 24, torch.Generator().manual_seed(1))
    b = random_crops(images, 6, 24, torch.Generator().manual_seed(1))
    assert a.shape == (6, 3, 24, 24) and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    full = random_crops(images[:1], 1, 40, torch.Generator().manual_seed(0), min_scale=1.0)
    img = images[:1].float() / 255
    assert torch.allclose(full, img, atol=1e-4) or torch.allclose(full, img.flip(-1), atol=1e-4)


def test_random_crops_of_paintings_with_a_backdrop_show_painting():
    """With a painted channel each crop is at least ``PAINTED_SHARE`` painting where a window can be (the share
    is that of the crop's own painted channel), and a painting that is all backdrop is all painting."""
    images = torch.randint(0, 256, (3, 4, 64, 64), dtype=torch.uint8)
    images[:, 3] = 0
    images[0, 3, :, :24] = 255   # a strip at the left: many windows miss it
    images[1, 3, 32:] = 255       # the lower half
    gen = torch.Generator().manual_seed(0)
    crops = random_crops(images[:2], 64, 32, gen, min_scale=0.5)
    assert crops.shape == (64, 4, 32, 32) and 0 <= float(crops.min()) and float(crops.max()) <= 1
    share = crops[:, 3].mean(dim=(1, 2))
    assert float(share.min()) >= PAINTED_SHARE - 0.05, share
    unguided = random_crops(images[:2, :3], 64, 32, torch.Generator().manual_seed(0), min_scale=0.5)
    assert unguided.shape == (64, 3, 32, 32)
    empty = random_crops(images[2:], 4, 32, gen)
    assert bool((empty[:, 3] == 1).all())


def _sprint(pack: Path, out: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``adain-train sprint`` on the CPU at toy sizes in a Python where the GPU machine's missing packages fail to
    import; asserts it succeeded."""
    blocker = tmp_path / "site"  # stand-ins that fail to import, found before the real packages
    for name in ABSENT_ON_GPU_MACHINE:
        (blocker / name).mkdir(parents=True, exist_ok=True)
        (blocker / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is not installed on the GPU machine', name='{name}')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "training.cli", "sprint", str(pack), "--out", str(out), "--device", "cpu",
         "--batch", "2", "--size", "32", "--eval-size", "32", "--precision", "fp32", "--log-seconds", "0",
         "--snapshot-seconds", "0", "--palette", "1", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize(("init", "skip"), [("plain", "0"), ("plain", "1"), ("default", "1")])
def test_sprint_rehearsal_on_the_cpu_without_the_packages_the_gpu_machine_lacks(pack, tmp_path, random_model_path,
                                                                                 init, skip):
    """From a plain decoder (kept plain, or given the relu3_1 input) and from the shipped skip decoder, with the
    Gram term on."""
    out = tmp_path / "out"
    proc = _sprint(pack, out, tmp_path, "--max-steps", "3", "--decoder-skip", skip,
                   "--init", "default" if init == "default" else str(random_model_path), "--gram-weight", "0.5",
                   "--structure-taps", *(["relu3_1", "relu4_1"] if skip == "1" else ["relu4_1"]))
    assert "images/s" in proc.stdout and "colour transfer (reference)" in proc.stdout
    files = sorted(p.name for p in out.iterdir())
    assert files == ["decoder.safetensors", "log.jsonl", "loss.png", "metrics.json", "sheet.png"]
    # (the decoder file is larger here only because a random-encoder run embeds its encoder)
    assert all(p.stat().st_size < 16e6 for p in out.iterdir() if p.name != "decoder.safetensors")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["steps"] == 3
    means = metrics["eval"]["means"]["sprint"]
    assert {"style_gap_ratio", "gram_gap", "colour_gap", "content_corr", "spread", "recon_psnr"} <= set(means)
    assert metrics["eval"]["means"]["content (reference)"]["colour_gap"] == pytest.approx(1.0)

    import adain_core

    engine = adain_core.load(out / "decoder.safetensors", device="cpu", precision="fp32")
    assert engine.metadata["steps"] >= 3 and engine.metadata["name"] == "sprint"
    assert engine.taps == (("relu3_1", "relu4_1") if skip == "1" else ("relu4_1",))
    assert engine.metadata["structure_taps"] == list(engine.taps)  # the skip run also trained relu3_1's structure
    assert engine.metadata["grid_weight"] == 2.0  # the recipe's grid term
    assert engine.metadata["gram_weight"] == 0.5
    assert engine.metadata["backdrop"] == "ignore"  # the paintings' backdrops left out, as the engine's cards do
    assert engine.stylize(torch.rand(1, 3, 24, 24), engine.encode_style(torch.rand(1, 3, 32, 32))).shape[-2:] == (24, 24)


def test_the_smoke_run_profiles_its_steps(pack, tmp_path):
    """The runbook's smoke run with ``--profile-steps``: the steps after the warm-up run under the profiler and
    ``profile.txt`` gives their wall time and the operators' table; a run that ends inside the window writes what
    it profiled."""
    for steps, profiled in ((14, 3), (12, 2)):
        out = tmp_path / f"out{steps}"
        _sprint(pack, out, tmp_path, "--init", "default", "--max-steps", str(steps), "--no-eval",
                "--profile-steps", "3")
        text = (out / "profile.txt").read_text()
        assert text.startswith(f"{profiled} steps profiled (after 10) on cpu:"), text[:200]
        assert "Self CPU time total" in text and "aten::convolution" in text


def test_a_second_call_continues_the_first_calls_decoder(pack, tmp_path):
    """The runbook's second device call: a sprint whose ``--init`` is the first call's decoder (as carried back in
    ``.sprint/last``) trains on from its step count, skip input and recipe; the first call, without its evaluation,
    still leaves the decoder, the log and the metrics."""
    import adain_core

    first, second = tmp_path / "first", tmp_path / "second"
    _sprint(pack, first, tmp_path, "--init", "default", "--max-steps", "2", "--no-eval")
    assert sorted(p.name for p in first.iterdir()) == ["decoder.safetensors", "log.jsonl", "loss.png", "metrics.json"]
    start = adain_core.load("default", device="cpu").metadata["steps"]
    after_first = adain_core.load(first / "decoder.safetensors", device="cpu").metadata
    assert after_first["steps"] == start + 2
    _sprint(pack, second, tmp_path, "--init", str(first / "decoder.safetensors"), "--max-steps", "2")
    engine = adain_core.load(second / "decoder.safetensors", device="cpu", precision="fp32")
    assert engine.metadata["steps"] == start + 4 and engine.taps == ("relu3_1", "relu4_1")
    assert json.loads((second / "metrics.json").read_text())["summary"]["total_steps"] == start + 4


def test_backdrop_ignore_needs_a_pack_with_painted_pixels(image_dirs, paintings, tmp_path, capsys):
    """A pack made with ``--painted 0`` is refused in one line that says what to do; ``--backdrop keep`` trains
    from it."""
    rgb = _make_pack(tmp_path / "rgb", image_dirs[0], paintings, "--painted", "0")
    rc = cli.main(["sprint", str(rgb), "--out", str(tmp_path / "refused"), "--device", "cpu", "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--backdrop keep" in err and str(rgb) in err
    assert not (tmp_path / "refused" / "decoder.safetensors").exists()
    _sprint(rgb, tmp_path / "kept", tmp_path, "--init", "default", "--max-steps", "1", "--no-eval", "--backdrop", "keep")
    import adain_core

    assert adain_core.load(tmp_path / "kept" / "decoder.safetensors", device="cpu").metadata["backdrop"] == "keep"
