"""The working-resolution maths: the size a scale gives, and the edge-aware upsampling (pure tensor functions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adain_core import upsample
from adain_core.upsample import box_filter, downscale, guided_upsample, working_size


def test_working_size() -> None:
    assert working_size(4000, 6000, 0.5) == (2000, 3000)
    assert working_size(3, 5, 0.01) == (1, 1)
    assert working_size(300, 200, 1.0) == (300, 200)
    side = 4 * int(upsample.AUTO_PIXELS ** 0.5)
    h, w = working_size(side, side, "auto")
    assert h * w <= upsample.AUTO_PIXELS * 1.01 and h == w
    assert working_size(64, 48, "auto") == (64, 48)  # never upscales


def test_box_filter_is_the_mean_of_the_window_inside_the_image() -> None:
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    ones = torch.ones(1, 1, 17, 23, dtype=torch.float64)
    ref = F.avg_pool2d(F.pad(x, (2, 2, 2, 2)), 5, stride=1) / F.avg_pool2d(F.pad(ones, (2, 2, 2, 2)), 5, stride=1)
    torch.testing.assert_close(box_filter(x, 2), ref)
    assert box_filter(x, 0) is x


def test_same_size_is_the_identity() -> None:
    low = torch.rand(1, 3, 20, 30)
    assert torch.equal(guided_upsample(low, torch.rand(1, 3, 20, 30)), low)


def test_edges_follow_the_full_resolution_content() -> None:
    """A hard vertical edge at x = 101 in the content: bilinear upscaling of a 4× smaller result blurs it over
    several pixels; the guided upsampling puts the whole step between the two content pixels."""
    content = torch.zeros(1, 3, 256, 256)
    content[..., 101:] = 1
    low = downscale(content, (64, 64)) * 0.5 + 0.2  # a "stylisation" that follows the content
    out = guided_upsample(low, content)
    blurred = F.interpolate(low, size=(256, 256), mode="bilinear", align_corners=False)
    row = out[0, 0, 128]
    assert row[101] - row[100] > 0.4 and (row[:99] < 0.25).all() and (row[103:] > 0.65).all()
    assert (blurred[0, 0, 128, 101] - blurred[0, 0, 128, 100]) < 0.2


def test_texture_of_the_low_result_survives() -> None:
    """Where the content is flat, the result is the bilinear upscaling of the stylisation (its strokes)."""
    low = torch.rand(2, 3, 16, 24)
    content = torch.full((2, 3, 64, 96), 0.4)
    out = guided_upsample(low, content)
    torch.testing.assert_close(out, F.interpolate(low, size=(64, 96), mode="bilinear", align_corners=False),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(600, 7), (5, 3)])
def test_bands_and_odd_sizes(size: tuple[int, int]) -> None:
    """Row bands (600 rows > one band) and tiny odd sizes: shape, range, and equal to one band's result."""
    content = torch.rand(1, 3, *size)
    low = torch.rand(1, 3, max(1, size[0] // 3), max(1, size[1] // 2))
    out = guided_upsample(low, content)
    assert out.shape == (1, 3, *size) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    band = upsample._BAND_ROWS
    try:
        upsample._BAND_ROWS = 10 ** 6
        torch.testing.assert_close(out, guided_upsample(low, content), atol=1e-6, rtol=0)
    finally:
        upsample._BAND_ROWS = band
