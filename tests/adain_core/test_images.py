"""Images in and out: EXIF orientation, odd modes and bit depths, alpha pass-through, numpy/torch round trips,
atomic saving, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adain_core import ImageLoadError, ShapeError, ValueRangeError
from adain_core.images import load_image, save_image, to_batch


def test_exif_orientation_is_honoured(tmp_path: Path, random_engine, card_a, make_image) -> None:
    img = make_image(20, 36, seed=1)  # landscape pixels ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... displayed rotated 90° clockwise → portrait
    path = tmp_path / "rotated.png"  # lossless, so the pixel check below is exact
    img.save(path, exif=exif.tobytes())
    loaded = load_image(path)
    assert loaded.size == (20, 36)
    assert random_engine.stylize(path, card_a).size == (20, 36)
    # The pixels are the transposed ones, not just the size.
    expected = np.asarray(img.transpose(Image.Transpose.ROTATE_270), dtype=np.float32)
    assert np.array_equal(np.asarray(loaded, dtype=np.float32), expected)
    jpeg = tmp_path / "rotated.jpg"
    img.save(jpeg, exif=exif.tobytes(), quality=95)
    assert load_image(jpeg).size == (20, 36)


@pytest.mark.parametrize("mode,alpha", [("L", False), ("1", False), ("P", False), ("CMYK", False), ("I;16", False),
                                        ("I", False), ("F", False), ("RGBA", True), ("LA", True), ("PA", True),
                                        ("RGBa", True), ("La", True), ("YCbCr", False), ("RGBX", False)])
def test_modes_are_accepted(mode: str, alpha: bool, make_image) -> None:
    img = make_image(6, 9, seed=2)
    if mode in ("I;16", "I"):
        arr = (np.asarray(img.convert("L"), dtype=np.uint16) * 257)
        img = Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else np.int32))
        assert img.mode == mode
    elif mode == "F":
        img = Image.fromarray(np.asarray(img.convert("L"), dtype=np.float32) / 255, "F")
    elif mode == "PA":
        img = img.convert("P").convert("PA")
    else:
        img = img.convert(mode)
    batch = to_batch(img)
    assert batch.pixels.shape == (1, 3, 6, 9) and batch.pixels.dtype == torch.float32
    assert 0 <= batch.pixels.min() and batch.pixels.max() <= 1
    assert (batch.alpha is not None) == alpha
    out = batch.restore(batch.pixels)
    assert out.mode == ("RGBA" if alpha else "RGB") and out.size == (9, 6)


def test_sixteen_bit_png_keeps_its_range(tmp_path: Path) -> None:
    arr = np.linspace(0, 65535, 8 * 8).reshape(8, 8).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    x = to_batch(load_image(path)).pixels
    torch.testing.assert_close(x[0, 0], torch.from_numpy(arr.astype(np.float32) / 65535), atol=1e-6, rtol=0)


def test_palette_with_transparency(tmp_path: Path, make_image) -> None:
    img = make_image(8, 8, seed=3).convert("P")
    img.info["transparency"] = 0
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    assert to_batch(load_image(path)).alpha is not None


def test_alpha_passes_through_untouched(random_engine, card_a, make_image) -> None:
    rgb = make_image(20, 24, seed=4)
    alpha = Image.fromarray(np.tile(np.arange(24, dtype=np.uint8) * 10, (20, 1)), "L")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    out = random_engine.stylize(rgba, card_a)
    assert out.mode == "RGBA" and out.size == rgba.size
    assert out.getchannel("A").tobytes() == alpha.tobytes()
    # Alpha does not influence the colours: the RGB result equals the opaque image's.
    assert out.convert("RGB").tobytes() == random_engine.stylize(rgb, card_a).tobytes()
    arr = np.asarray(rgba).astype(np.float32) / 255
    out_np = random_engine.stylize(arr, card_a)
    assert out_np.shape == (20, 24, 4) and np.array_equal(out_np[..., 3], arr[..., 3])
    t = torch.from_numpy(arr).permute(2, 0, 1)[None]
    out_t = random_engine.stylize(t, card_a)
    assert out_t.shape == (1, 4, 20, 24) and torch.equal(out_t[:, 3], t[:, 3])


def test_numpy_and_torch_round_trip_types(random_engine, card_a, make_image) -> None:
    u8 = np.asarray(make_image(12, 20, seed=5))
    out = random_engine.stylize(u8, card_a)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (12, 20, 3)
    f32 = u8.astype(np.float32) / 255
    out = random_engine.stylize(f32, card_a)
    assert out.dtype == np.float32 and out.shape == (12, 20, 3) and 0 <= out.min() and out.max() <= 1
    f64 = f32.astype(np.float64)
    assert random_engine.stylize(f64, card_a).dtype == np.float64
    u16 = (u8.astype(np.uint16) * 257)
    assert random_engine.stylize(u16, card_a).dtype == np.uint16
    grey = u8[..., 0]
    assert random_engine.stylize(grey, card_a).shape == (12, 20, 3)
    t = torch.from_numpy(f32).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    t[1] = t[1].flip(-1)
    out_t = random_engine.stylize(t, card_a)
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (2, 3, 12, 20) and out_t.dtype == torch.float32
    # Batch in → batch out: each item equals the item stylised alone.
    torch.testing.assert_close(out_t[1:], random_engine.stylize(t[1:], card_a), atol=1e-5, rtol=0)
    chw = random_engine.stylize(t[0], card_a)
    assert chw.shape == (3, 12, 20)
    half = random_engine.stylize(t.to(torch.float16), card_a)
    assert half.dtype == torch.float16
    # Non-contiguous (permuted, host-style BHWC → BCHW) input works.
    bhwc = torch.from_numpy(f32)[None].contiguous()
    assert random_engine.stylize(bhwc.permute(0, 3, 1, 2), card_a).shape == (1, 3, 12, 20)


def test_bad_image_files(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such image file"):
        load_image(tmp_path / "missing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="0 bytes"):
        load_image(empty)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    with pytest.raises(ImageLoadError, match="cannot read image"):
        load_image(corrupt)
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "red").save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageLoadError):
        load_image(cut)


def test_bad_array_inputs() -> None:
    with pytest.raises(ValueRangeError, match="NaN"):
        to_batch(torch.full((1, 3, 4, 4), float("nan")))
    with pytest.raises(ValueRangeError, match="NaN"):
        to_batch(np.full((4, 4, 3), np.inf, dtype=np.float32))
    with pytest.raises(ShapeError, match=r"expected shape .*got \(4, 4, 2\)"):
        to_batch(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ShapeError):
        to_batch(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ShapeError):
        to_batch(torch.zeros(4, 4))
    with pytest.raises(ValueRangeError, match="numpy dtype int64 is not supported"):
        to_batch(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueRangeError, match="not floating point"):
        to_batch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ImageLoadError, match="unsupported input type"):
        to_batch([[0.0]])  # type: ignore[arg-type]


def test_save_image_is_atomic_and_refuses_overwrite(tmp_path: Path, make_image) -> None:
    img = make_image(8, 8)
    path = save_image(img, tmp_path / "out.png")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        save_image(make_image(8, 8, seed=9), path)
    assert path.read_bytes() == before
    save_image(make_image(8, 8, seed=9), path, overwrite=True)
    assert path.read_bytes() != before
    rgba = img.copy()
    rgba.putalpha(128)
    assert load_image(save_image(rgba, tmp_path / "flat.jpg")).mode == "RGB"
    with pytest.raises(ValueError, match="unknown output image extension"):
        save_image(img, tmp_path / "out.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.jpg", "out.png"]
