"""Working resolution through the engine: scale=F stylises at F × the size and upsamples to exactly the input's
size; F = 1 is the full-size path; masks, tiles, colour modes and frames work with it."""

from __future__ import annotations

import pytest
import torch

from adain_core import StylizeOptions, ValueRangeError
from kornia.color import rgb_to_yuv

from adain_core.color import color_stats
from adain_core.images import pil_to_tensor
from adain_core.upsample import downscale, guided_upsample, working_size


@pytest.fixture(scope="module")
def content(make_image) -> torch.Tensor:
    return pil_to_tensor(make_image(96, 128, seed=3))[0]


@pytest.mark.parametrize("bad", [-0.5, 1.5, float("nan"), "half", True, False, None])
def test_bad_scales_name_the_value(bad) -> None:
    with pytest.raises(ValueRangeError, match=r"scale must be 'auto' \(or 0\) or a number in \(0, 1\].*got"):
        StylizeOptions(scale=bad)
    assert StylizeOptions(scale="0.5").scale == 0.5 and StylizeOptions(scale="auto").scale == "auto"
    assert StylizeOptions(scale=0).scale == "auto" == StylizeOptions(scale="0").scale  # the hosts' sliders' auto


def test_scale_one_and_auto_on_small_images_are_the_full_size_path(random_engine, card_a, content) -> None:
    full = random_engine.stylize(content, card_a)
    assert torch.equal(random_engine.stylize(content, card_a, scale=1), full)
    assert torch.equal(random_engine.stylize(content, card_a, scale="auto"), full)


@pytest.mark.parametrize("scale", [0.5, 0.25, 0.013])
def test_output_has_the_input_size(random_engine, card_a, content, make_image, scale) -> None:
    out = random_engine.stylize(content, card_a, scale=scale)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    img = make_image(37, 51, seed=4)
    assert random_engine.stylize(img, card_a, scale=scale).size == img.size


def test_half_scale_is_the_downscaled_stylisation_upsampled(random_engine, card_a, content) -> None:
    small = downscale(content, working_size(96, 128, 0.5))  # the network path (palette mode: test_color.py)
    expected = guided_upsample(random_engine.stylize(small, card_a, color="style"), content, guide_low=small)
    torch.testing.assert_close(random_engine.stylize(content, card_a, scale=0.5, color="style"), expected, atol=1e-6,
                               rtol=0)


def test_tiles_at_the_working_resolution(random_engine, card_a, content) -> None:
    one_pass = random_engine.stylize(content, card_a, scale=0.5, tile="off")
    tiled = random_engine.stylize(content, card_a, scale=0.5, tile=64)
    torch.testing.assert_close(tiled, one_pass, atol=2e-3, rtol=0)


def test_masks(random_engine, card_a, card_b, content) -> None:
    """Masks (any size, here the content's) are resized to the working resolution; a region without style keeps
    the content (α = 0 there)."""
    left = torch.zeros(1, 1, 96, 128)
    left[..., :64] = 1
    small = downscale(content, working_size(96, 128, 0.5))
    mixed = random_engine.stylize(content, [(card_a, left), (card_b, 1 - left)], scale=0.5, color="style")
    expected = random_engine.stylize(small, [(card_a, left), (card_b, 1 - left)], color="style")
    torch.testing.assert_close(mixed, guided_upsample(expected, content, guide_low=small), atol=1e-6, rtol=0)
    kept = random_engine.stylize(content, [(card_a, left)], scale=0.5, color="style")
    reconstructed = random_engine.stylize(content, card_a, alpha=0.0, scale=0.5, color="style")
    # (Near the boundary within the receptive field, which covers twice the full-size pixels at F = 0.5.)
    torch.testing.assert_close(kept[..., 112:], reconstructed[..., 112:], atol=0.02, rtol=0)


def test_colour_modes_at_full_size(random_engine, card_a, content) -> None:
    lum = random_engine.stylize(content, card_a, scale=0.5, color="luminance")
    # The content's chroma at full size (except where the YUV → RGB clamp moves it).
    assert (rgb_to_yuv(lum)[:, 1:] - rgb_to_yuv(content)[:, 1:]).abs().mean() < 0.005
    kept = random_engine.stylize(content, card_a, scale=0.5, color="preserve")
    (mean_k, _), (mean_c, _) = color_stats(kept), color_stats(content)
    torch.testing.assert_close(mean_k, mean_c, atol=0.03, rtol=0)


def test_frames_and_temporal_state(random_engine, card_a, content) -> None:
    frames = [content, content.flip(-1), content]
    plain = list(random_engine.stylize_frames(frames, card_a, scale=0.5))
    for frame, out in zip(frames, plain):
        torch.testing.assert_close(out, random_engine.stylize(frame, card_a, scale=0.5), atol=1e-6, rtol=0)
    smooth = list(random_engine.stylize_frames(frames, card_a, scale=0.5, temporal=0.9))
    assert torch.equal(smooth[0], plain[0]) and not torch.equal(smooth[1], plain[1])
    state = None
    for frame, expected in zip(frames, smooth):
        out, state = random_engine.stylize_frame(frame, card_a, scale=0.5, state=state, temporal=0.9)
        assert torch.equal(out, expected)
