"""Reliability at the engine's boundaries: values that are accepted but wrong (NaN/inf, negative std, wrong shapes
or dtypes) are refused with one line naming the file and field; limits are checked before work; the CLI reports
every failure class in one line (the traceback only with --debug), never replaces its own inputs, and cleans up on
SIGTERM; writes that fail (read-only folder, full disk) leave nothing behind."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from adain_core import CardError, ImageLoadError, ModelError, StyleCard, ValueRangeError, mix, store
from adain_core.cli import main

REPO = Path(__file__).resolve().parents[2]


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line and "it/s" not in line]
    assert len(lines) == 1, err  # one clear line, no traceback
    return lines[0]


def run(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _rewrite(src: Path, dest: Path, tensors: dict | None = None, meta: dict | None = None, drop=()) -> Path:
    """Copy a safetensors file, replacing some tensors and/or metadata fields."""
    with safe_open(str(src), framework="pt") as f:
        data = {k: f.get_tensor(k) for k in f.keys() if k not in drop}
        metadata = dict(f.metadata() or {})
    data.update(tensors or {})
    metadata.update(meta or {})
    save_file(data, str(dest), metadata=metadata)
    return dest


# ------------------------------------------------------------------ style cards
@pytest.fixture
def card_file(tmp_path, card_a) -> Path:
    return card_a.save(tmp_path / "good.adainstyle.safetensors")


@pytest.mark.parametrize("tensors, meta, field", [
    ({"relu4_1.mean": torch.full((512,), float("nan"))}, None, "relu4_1.mean contains NaN"),
    ({"relu4_1.std": torch.full((512,), float("inf"))}, None, "relu4_1.std contains NaN or infinite"),
    ({"relu4_1.std": -torch.ones(512)}, None, "relu4_1.std has negative values"),
    ({"relu4_1.mean": torch.zeros(512, 2), "relu4_1.std": torch.ones(512, 2)}, None, r"relu4_1.mean has shape \(512, 2\)"),
    ({"relu4_1.mean": torch.zeros(512, dtype=torch.int32)}, None, "relu4_1.mean has dtype torch.int32"),
    ({"relu4_1.std": torch.ones(256)}, None, "differ in shape"),
    ({"relu2_1.std": torch.full((128,), float("nan"))}, None, "relu2_1.std contains NaN"),
    ({"thumbnail": torch.zeros(4, 4, 3, dtype=torch.float32)}, None, "thumbnail must be a uint8"),
    ({"pixels.0": torch.zeros(5, 5, dtype=torch.uint8)}, None, r"pixels.0 has shape \(5, 5\)"),
    (None, {"taps": "5"}, "taps must be a list"),
    (None, {"taps": "[[1]]"}, "taps must be a list"),
    (None, {"sources": "{}"}, "sources must be a list"),
    (None, {"sources": '[{"weight": "x"}]'}, "source weights"),
    (None, {"style_size": '"big"'}, "style_size"),
    (None, {"taps": "[" * 100_000}, "incomplete"),
])
def test_bad_card_values_are_refused_naming_file_and_field(tmp_path, card_file, tensors, meta, field, capsys):
    bad = _rewrite(card_file, tmp_path / "bad.adainstyle.safetensors", tensors, meta)
    with pytest.raises(CardError, match=field) as info:
        StyleCard.load(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    code, _, err = run(["card", "info", bad], capsys)
    assert code == 1 and field.split(" ")[0].replace("\\", "") in error_line(err)


def test_cards_made_in_memory_are_checked_before_use(random_engine, card_a, make_image):
    import dataclasses

    nan_card = dataclasses.replace(card_a, std=torch.full_like(card_a.std, float("nan")))
    with pytest.raises(CardError, match="relu4_1.std contains NaN"):
        random_engine.stylize(make_image(16, 16), nan_card)
    with pytest.raises(CardError, match="relu4_1.std contains NaN"):
        mix([card_a, nan_card])
    with pytest.raises(CardError, match="relu4_1.std contains NaN"):
        nan_card.save(Path("never-written.adainstyle.safetensors"))
    assert not Path("never-written.adainstyle.safetensors").exists()


@pytest.mark.parametrize("weights", [[float("inf"), 1.0], [float("nan"), 1.0], [-1.0, 2.0], [0.0, 0.0]])
def test_bad_mix_weights_are_refused(card_a, card_b, weights):
    with pytest.raises(ValueRangeError, match="mix weights"):
        mix([card_a, card_b], weights)


def test_huge_but_finite_mix_weights_do_not_overflow(card_a, card_b, tmp_path, capsys):
    mixed = mix([card_a, card_b], [1e308, 1e308])
    assert torch.isfinite(mixed.mean).all() and torch.isfinite(mixed.std).all()
    torch.testing.assert_close(mixed.mean, (card_a.mean + card_b.mean) / 2)
    a, b = card_a.save(tmp_path / "a.adainstyle.safetensors"), card_b.save(tmp_path / "b.adainstyle.safetensors")
    code, _, _ = run(["card", "mix", a, b, "--weights", "1e308,1e308", "-o", tmp_path / "m.adainstyle.safetensors"],
                     capsys)
    assert code == 0 and torch.isfinite(StyleCard.load(tmp_path / "m.adainstyle.safetensors").std).all()
    code, _, err = run(["card", "mix", a, b, "--weights", "inf,1", "-o", tmp_path / "n.adainstyle.safetensors"],
                       capsys)
    assert code == 1 and "mix weights" in error_line(err) and not (tmp_path / "n.adainstyle.safetensors").exists()


@pytest.mark.parametrize("alpha", [float("inf"), float("nan"), -0.5, "x"])
def test_alpha_must_be_finite(random_engine, card_a, make_image, alpha):
    with pytest.raises(ValueRangeError, match="alpha"):
        random_engine.stylize(make_image(16, 16), card_a, alpha=alpha)


def test_nan_in_a_float_image_file_is_refused(random_engine, card_a, tmp_path):
    arr = np.full((16, 16), 0.5, np.float32)
    arr[3, 4] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(arr).save(path)  # mode F
    with pytest.raises(ValueRangeError, match="NaN"):
        random_engine.stylize(path, card_a)
    with pytest.raises(ValueRangeError, match="mask 1.*NaN"):
        random_engine.stylize(np.zeros((16, 16, 3), np.float32), [(card_a, path)])


# ------------------------------------------------------------------ models
def _model(random_model_path: Path, tmp_path: Path, name: str, **changes) -> Path:
    return _rewrite(random_model_path, tmp_path / f"{name}.safetensors", **changes)


def test_nan_weights_are_refused_naming_the_tensor(random_model_path, tmp_path):
    import adain_core

    with safe_open(str(random_model_path), framework="pt") as f:
        keys = list(f.keys())
        dec = next(k for k in keys if k.startswith("decoder.") and k.endswith("weight"))
        enc = next(k for k in keys if k.startswith("encoder.") and k.endswith("weight"))
        dec_t, enc_t = f.get_tensor(dec), f.get_tensor(enc)
    for key, t in ((dec, dec_t), (enc, enc_t)):
        bad = _model(random_model_path, tmp_path, "nan", tensors={key: torch.full_like(t, float("nan"))})
        with pytest.raises(ModelError, match=f"{key.split('.', 1)[1]} contains NaN"):
            adain_core.load(bad, device="cpu")


def test_cached_encoder_with_nan_is_refused(random_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    model = store.read_model(random_model_path)
    state = {k: v.clone() for k, v in model.encoder.items()}
    first = next(iter(state))
    state[first][...] = float("inf")
    store.save_safetensors_atomic(state, store.encoder_path(model.encoder_id), {"format": "adain-encoder/1"})
    with pytest.raises(ModelError, match=f"{first} contains NaN or infinite"):
        store.load_encoder(model.encoder_id)


@pytest.mark.parametrize("change, message", [
    ({"drop": "decoder"}, "no decoder tensors"),
    ({"meta": {"arch": "resnet50"}}, "unknown architecture 'resnet50'"),
    ({"meta": {"metadata": "{not json"}}, "metadata field metadata"),
    ({"meta": {"metadata": "[1, 2]"}}, "metadata field metadata"),
    ({"nan": "decoder"}, "contains NaN"),
])
def test_models_import_validates_fully(random_model_path, tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    with safe_open(str(random_model_path), framework="pt") as f:
        keys = list(f.keys())
        first_dec = next(k for k in keys if k.startswith("decoder."))
        t = f.get_tensor(first_dec)
    if "drop" in change:
        bad = _model(random_model_path, tmp_path, "bad", drop=[k for k in keys if k.startswith("decoder.")])
    elif "nan" in change:
        bad = _model(random_model_path, tmp_path, "bad", tensors={first_dec: torch.full_like(t, float("nan"))})
    else:
        bad = _model(random_model_path, tmp_path, "bad", meta=change["meta"])
    code, _, err = run(["models", "import", bad], capsys)
    assert code == 1 and message in error_line(err) and str(bad) in error_line(err)
    assert not (tmp_path / "home" / "models").exists() or not list((tmp_path / "home" / "models").iterdir())


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "..", ".hidden", "a/b", "a\\b", "x" * 200, "nul\0"])
def test_models_import_name_stays_in_the_cache(random_model_path, tmp_path, monkeypatch, capsys, name):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home" / "cache"))
    code, _, err = run(["models", "import", random_model_path, "--name", name], capsys)
    assert code == 1 and "not a valid name" in error_line(err)
    assert not list(tmp_path.rglob("*.safetensors")) and not Path("/abs/path.safetensors").exists()


def _enospc_after_partial_write(real):
    def write_then_fail(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    return write_then_fail


def test_full_disk_during_import_leaves_nothing(random_model_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(store.shutil, "copyfile", _enospc_after_partial_write(store.shutil.copyfile))
    code, _, err = run(["models", "import", random_model_path, "--name", "full"], capsys)
    line = error_line(err)
    assert code == 1 and "No space left on device" in line and "full.safetensors" in line
    assert list((tmp_path / "home" / "models").iterdir()) == []


# ------------------------------------------------------------------ limits before work
def test_extreme_style_aspect_is_refused_before_resizing(random_engine, tmp_path, capsys):
    strip = tmp_path / "strip.png"
    Image.new("RGB", (200, 1), (120, 30, 200)).save(strip)  # 1x200: at style size 512 it would be 512x102400
    with pytest.raises(ValueRangeError, match="102400 px long"):
        random_engine.encode_style(strip, size=512)
    assert random_engine.encode_style(strip, size=16).mean.shape == (512,)  # 16x3200: within the bound


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_too_large_by_its_header_is_refused(tmp_path, monkeypatch):
    from adain_core.images import load_image

    path = tmp_path / "big.png"
    Image.new("1", (300, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(ImageLoadError, match=r"big.png: 300x200 is 0 megapixels, more than"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    """A 6000x6000 1-bit PNG of a few KB: refused from its header when the free memory cannot decode it, without
    the process's peak memory moving (measured in a fresh process)."""
    bomb = tmp_path / "bomb.png"
    Image.new("1", (6000, 6000)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 100_000
    code = textwrap.dedent(f"""
        import resource, sys
        import adain_core.images as images
        from adain_core import ImageLoadError
        import adain_core.device as device
        device.free_memory_bytes = lambda d: 512 << 20   # 512 MiB free: 36 MP x 32 B = 1.1 GiB does not fit
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            images.load_image({str(bomb)!r})
        except ImageLoadError as exc:
            print("refused:", exc)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("grew_kb", after - before)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "6000x6000" in proc.stdout and "GiB" in proc.stdout
    grew_kb = int(proc.stdout.split("grew_kb")[1])
    assert grew_kb < 64 * 1024, proc.stdout


# ------------------------------------------------------------------ the CLI: one line per failure class
@pytest.fixture
def files(tmp_path, make_image, random_model_path, monkeypatch):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADAIN_DEBUG", raising=False)
    d = tmp_path / "in"
    d.mkdir()
    make_image(24, 32, seed=1).save(d / "photo.png")
    make_image(40, 40, seed=3).save(d / "painting.png")
    return {"content": d / "photo.png", "style": d / "painting.png", "model": random_model_path, "dir": d}


def _stylize(files, *extra):
    return ["stylize", files["content"], "--style", files["style"], "--style-size", "32", "--model", files["model"],
            "--device", "cpu", *extra]


@pytest.mark.parametrize("exc, expected", [
    (MemoryError(), "out of memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                  "allocate 2936012800 bytes"), "out of memory"),
    (Image.DecompressionBombError("Image size (1 pixels) exceeds limit"), "too large to decode"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/out.png"), "/ro/out.png: Permission denied"),
    (KeyError("boom"), "unexpected KeyError"),
])
def test_every_failure_class_is_one_line(files, tmp_path, monkeypatch, capsys, exc, expected):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr("adain_core.engine.Engine.stylize", fail)
    code, _, err = run(_stylize(files, "-o", tmp_path / "o.png"), capsys)
    assert code == 1 and expected in error_line(err)
    code, _, err = run(["--debug", *_stylize(files, "-o", tmp_path / "o.png")], capsys)
    assert code == 1 and "Traceback" in err
    monkeypatch.setenv("ADAIN_DEBUG", "1")
    code, _, err = run(_stylize(files, "-o", tmp_path / "o.png"), capsys)
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("adain: error:")


def test_read_only_output_folder_is_one_line_naming_the_file(files, tmp_path, monkeypatch, capsys):
    """Mocked at the os boundary (root ignores directory modes): creating the temp file fails with EROFS."""
    import adain_core.images as images

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro" / ".o.tmp.png"))

    monkeypatch.setattr(images.tempfile, "mkstemp", read_only)
    target = tmp_path / "ro" / "o.png"
    code, _, err = run(_stylize(files, "-o", target), capsys)
    line = error_line(err)
    assert code == 1 and f"{target}: Read-only file system" in line


def test_full_disk_while_saving_image_and_card_leaves_nothing(files, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    real_save = Image.Image.save

    def save_then_fail(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    code, _, err = run(_stylize(files, "-o", out / "o.png"), capsys)
    assert code == 1 and f"{out / 'o.png'}: No space left on device" in error_line(err)
    assert list(out.iterdir()) == []
    monkeypatch.setattr(Image.Image, "save", real_save)

    import adain_core.store as store_module

    def write_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "save_file", write_then_fail)
    card = out / "c.adainstyle.safetensors"
    code, _, err = run(["card", "create", files["style"], "-o", card, "--style-size", "32", "--model", files["model"],
                        "--device", "cpu"], capsys)
    assert code == 1 and f"{card}: No space left on device" in error_line(err)
    assert list(out.iterdir()) == []


def test_overwrite_never_replaces_an_input(files, tmp_path, capsys):
    before = files["content"].read_bytes()
    for target in (files["content"], files["style"], files["dir"] / ".." / "in" / "photo.png"):
        code, _, err = run(_stylize(files, "-o", target, "--overwrite"), capsys)
        assert code == 1 and "is one of this job's inputs" in error_line(err)
    assert files["content"].read_bytes() == before
    link = tmp_path / "link.png"
    link.symlink_to(files["style"])
    code, _, err = run(_stylize(files, "-o", link, "--overwrite"), capsys)
    assert code == 1 and "inputs" in error_line(err)
    code, _, err = run(["card", "create", files["style"], "-o", files["style"], "--overwrite", "--model",
                        files["model"], "--device", "cpu"], capsys)
    assert code == 1 and "inputs" in error_line(err)


def test_sigterm_during_frames_cleans_the_staging_folder(files, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        Image.new("RGB", (16, 16), (40 * i, 80, 120)).save(frames / f"f_{i}.png")
    out = tmp_path / "styled"
    script = textwrap.dedent(f"""
        import os, signal, sys
        import adain_core.engine as engine
        real = engine.Engine.stylize_frames
        def frames_then_sigterm(self, *args, **kwargs):
            for i, frame in enumerate(real(self, *args, **kwargs)):
                if i == 2:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield frame
        engine.Engine.stylize_frames = frames_then_sigterm
        from adain_core.cli import main
        sys.exit(main(["stylize", {str(frames)!r}, "--style", {str(files["style"])!r}, "--style-size", "32",
                       "--model", {str(files["model"])!r}, "--device", "cpu", "-o", {str(out)!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 143, proc.stderr
    assert "terminated; no partial output" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("frames", "in", "home")] == []


def test_encoder_download_takes_wheels_only(monkeypatch, tmp_path):
    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "")

    monkeypatch.setenv("ADAIN_HOME", str(tmp_path))
    monkeypatch.setattr(store.subprocess, "run", fake_run)
    with pytest.raises(ModelError, match="could not download"):
        store.fetch_encoder(quiet=True)
    assert "--only-binary=:all:" in seen[0] and "download" in seen[0]


def test_check_weights_normalises_without_overflow():
    from adain_core.validate import check_weights

    assert check_weights([1e308, 1e308]) == [0.5, 0.5]
    assert math.isclose(sum(check_weights([3, 1e-300, 7])), 1.0)
    with pytest.raises(ValueRangeError):
        check_weights([True, "x"])
    assert json.dumps(check_weights([2, 2]))


def test_video_frames_too_large_are_refused_before_decoding(tmp_path, monkeypatch):
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    from adain_core.video import read_video

    clip = tmp_path / "clip.mp4"
    with iio.get_writer(str(clip), format="FFMPEG", fps=5, codec="libx264", macro_block_size=1) as w:
        for _ in range(2):
            w.append_data(np.zeros((32, 48, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match=r"clip.mp4: 48x32 is 0 megapixels, more than"):
        read_video(clip)
