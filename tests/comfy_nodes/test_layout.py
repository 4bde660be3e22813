"""Unit tests of the IMAGE/MASK ⇄ engine conversions (no ComfyUI needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "comfy_nodes" / "layout.py"
_spec = importlib.util.spec_from_file_location("adain_comfy_layout_under_test", _PATH)
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)


def comfy_image(b=2, h=5, w=7, c=3, seed=0) -> torch.Tensor:
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


def test_image_to_engine_layout_and_values():
    img = comfy_image()
    out = layout.image_to_engine(img)
    assert out.shape == (2, 3, 5, 7)
    assert out.dtype == torch.float32 and out.is_contiguous()
    # pixel (b, y, x, c) lands at (b, c, y, x)
    assert torch.equal(out[1, 2, 4, 6], img[1, 4, 6, 2])
    assert torch.equal(out.permute(0, 2, 3, 1), img)


def test_round_trip_is_exact():
    img = comfy_image(b=3, h=4, w=9)
    back = layout.engine_to_image(layout.image_to_engine(img))
    assert back.shape == img.shape and torch.equal(back, img)
    assert back.is_contiguous()


def test_non_contiguous_and_half_inputs():
    img = comfy_image(h=6, w=8).permute(0, 2, 1, 3)  # [B, W, H, C] view: non-contiguous [B, H', W', C]
    assert not img.is_contiguous()
    out = layout.image_to_engine(img)
    assert torch.equal(out.permute(0, 2, 3, 1), img)
    half = layout.image_to_engine(comfy_image().half())
    assert half.dtype == torch.float32


def test_alpha_dropped_and_grey_expanded():
    rgba = comfy_image(c=4)
    assert torch.equal(layout.image_to_engine(rgba), rgba[..., :3].permute(0, 3, 1, 2))
    grey = comfy_image(c=1)
    out = layout.image_to_engine(grey)
    assert out.shape == (2, 3, 5, 7) and torch.equal(out[:, 0], out[:, 2])


def test_out_of_range_clamped_nan_rejected():
    img = comfy_image() * 2 - 0.5
    out = layout.image_to_engine(img)
    assert out.min() >= 0 and out.max() <= 1
    img[0, 0, 0, 0] = float("nan")
    with pytest.raises(layout.InputError, match="NaN"):
        layout.image_to_engine(img)


@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 5, 7, 2), (0, 5, 7, 3), (1, 2, 5, 7, 3)])
def test_bad_image_shapes(shape):
    with pytest.raises(layout.InputError, match="image"):
        layout.image_to_engine(torch.rand(*shape))


def test_engine_to_image_device_dtype_and_clamp():
    t = torch.rand(2, 3, 4, 5, dtype=torch.float64) * 1.2
    out = layout.engine_to_image(t, "cpu")
    assert out.shape == (2, 4, 5, 3) and out.dtype == torch.float32 and out.max() <= 1
    with pytest.raises(layout.InputError):
        layout.engine_to_image(torch.rand(2, 4, 4, 5))


def test_mask_batch_single_and_2d():
    m = torch.rand(3, 5, 7)
    out = layout.mask_to_engine(m, batch=3, height=5, width=7)
    assert out.shape == (3, 1, 5, 7) and torch.equal(out[:, 0], m)
    one = layout.mask_to_engine(torch.rand(1, 5, 7), batch=3, height=5, width=7)
    assert one.shape == (1, 1, 5, 7)
    flat = layout.mask_to_engine(torch.rand(5, 7), batch=2, height=5, width=7)
    assert flat.shape == (1, 1, 5, 7)


def test_mask_wrong_size_names_both_sizes():
    with pytest.raises(layout.InputError, match=r"mask is 64x64 .* image is 7x5"):
        layout.mask_to_engine(torch.zeros(1, 64, 64), batch=1, height=5, width=7)


def test_mask_wrong_batch_and_dims():
    with pytest.raises(layout.InputError, match="batch of 2"):
        layout.mask_to_engine(torch.rand(2, 5, 7), batch=3, height=5, width=7)
    with pytest.raises(layout.InputError, match="MASK"):
        layout.mask_to_engine(torch.rand(1, 1, 5, 7), batch=1, height=5, width=7)


def test_mask_transposed_is_not_accepted():
    # A [H, W] vs [W, H] mix-up must not slip through as a silently stretched mask.
    with pytest.raises(layout.InputError):
        layout.mask_to_engine(torch.rand(1, 7, 5), batch=1, height=5, width=7)


def test_select_frame():
    batch = torch.arange(3).reshape(3, 1, 1, 1).float()
    assert layout.select_frame(batch, 2).item() == 2 and layout.select_frame(batch, 2).shape[0] == 1
    single = torch.ones(1, 1, 2, 2)
    assert layout.select_frame(single, 5) is single
    assert layout.select_frame(None, 0) is None
