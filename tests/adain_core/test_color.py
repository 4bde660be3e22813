"""Colour modes: CORAL statistics, luminance keeps the content's chroma, preserve keeps the content's colours,
palette gives each region its painting's colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kornia.color import rgb_to_yuv

from adain_core import CardError, ValueRangeError
from adain_core.color import color_stats, coral, keep_chroma, match_palettes, mixture_stats
from adain_core.images import pil_to_tensor


def test_color_stats() -> None:
    x = torch.rand(2, 3, 5, 7)
    mean, cov = color_stats(x)
    flat = x.double().reshape(2, 3, -1)
    torch.testing.assert_close(mean, flat.mean(-1))
    torch.testing.assert_close(cov[0], torch.cov(flat[0]))


def test_coral_transfers_mean_and_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    src = 0.4 + 0.1 * torch.rand(3, 64, 64, generator=g)  # narrow, so the clamp to [0, 1] never bites
    target = 0.3 + 0.2 * torch.rand(1, 3, 32, 32, generator=g)
    target[:, 2] = 0.5 * target[:, 0] + 0.2  # correlated channels
    t_mean, t_cov = color_stats(target)
    out = coral(src, t_mean[0], t_cov[0])
    assert out.shape == src.shape
    o_mean, o_cov = color_stats(out[None])
    torch.testing.assert_close(o_mean[0], t_mean[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(o_cov[0], t_cov[0], atol=2e-4, rtol=0)  # 1e-5 ridge in the matrix square roots


def test_keep_chroma_function() -> None:
    gen = torch.Generator().manual_seed(0)
    stylized, content = torch.rand(2, 3, 8, 8, generator=gen), 0.25 + 0.5 * torch.rand(2, 3, 8, 8, generator=gen)
    out = keep_chroma(stylized, content)
    uv_out, uv_in = rgb_to_yuv(out)[:, 1:], rgb_to_yuv(content)[:, 1:]
    # Exact except where the recombined RGB leaves [0, 1] and is clamped.
    inside = ((out > 0) & (out < 1)).all(dim=1, keepdim=True).expand_as(uv_out)
    torch.testing.assert_close(uv_out[inside], uv_in[inside], atol=1e-5, rtol=0)
    y_inside = inside[:, :1]
    torch.testing.assert_close(rgb_to_yuv(out)[:, :1][y_inside], rgb_to_yuv(stylized)[:, :1][y_inside], atol=1e-5,
                               rtol=0)


def test_luminance_mode_keeps_content_chroma(random_engine, card_a, make_image) -> None:
    """Works with any weights: U, V of the output equal the content's up to clamping (stated: mean ≤ 0.01)."""
    content, _ = pil_to_tensor(make_image(48, 64, seed=4))
    out = random_engine.stylize(content, card_a, color="luminance")
    uv_out, uv_in = rgb_to_yuv(out)[:, 1:], rgb_to_yuv(content)[:, 1:]
    assert (uv_out - uv_in).abs().mean().item() < 0.01
    plain = random_engine.stylize(content, card_a, color="style")
    assert (rgb_to_yuv(plain)[:, 1:] - uv_in).abs().mean().item() > 3 * (uv_out - uv_in).abs().mean().item()


def test_preserve_mode_runs_and_needs_pixels(random_engine, card_a, card_b, make_image) -> None:
    import dataclasses

    from adain_core import mix

    content = make_image(24, 32, seed=5)
    out = random_engine.stylize(content, card_a, color="preserve")
    assert out.size == content.size
    # Mixed cards keep their sources' pixels, so preserve works on a mix too.
    assert random_engine.stylize(content, mix([card_a, card_b], [0.6, 0.4]), color="preserve").size == content.size
    stripped = dataclasses.replace(card_a, pixels=[])
    with pytest.raises(CardError, match="preserve"):
        random_engine.stylize(content, stripped, color="preserve")
    with pytest.raises(ValueRangeError, match="colour mode"):
        random_engine.stylize(content, card_a, color="sepia")


def _mean_colour_error(out: torch.Tensor, content: torch.Tensor) -> float:
    return float((out.mean(dim=(0, 2, 3)) - content.mean(dim=(0, 2, 3))).abs().max())


@pytest.mark.real
def test_preserve_keeps_content_mean_colour_better_than_style(real_engine, eval_content_paths,
                                                              eval_style_paths) -> None:
    """With trained weights: |mean colour(out) − mean colour(content)| per channel is ≤ 0.10 in preserve mode and
    smaller than in style mode, on average over content/style pairs (stated tolerance, 256 px contents)."""
    from adain_core.images import load_image

    errors = {"style": [], "preserve": []}
    pairs = list(zip(eval_content_paths[:3], eval_style_paths[:3]))
    for c_path, s_path in pairs:
        img = load_image(c_path).convert("RGB")
        img.thumbnail((256, 256))
        content, _ = pil_to_tensor(img)
        card = real_engine.encode_style(s_path, size=256)
        for mode in errors:
            errors[mode].append(_mean_colour_error(real_engine.stylize(content, card, color=mode), content))
    preserve, style = float(np.mean(errors["preserve"])), float(np.mean(errors["style"]))
    assert preserve <= 0.10, errors
    assert preserve < style, errors


def test_mixture_stats_pool_the_pixels() -> None:
    """Two equal-size images at weights 0.5/0.5 have the statistics of their pixels pooled."""
    gen = torch.Generator().manual_seed(1)
    a = (torch.rand(3, 8, 10, generator=gen) * 255).to(torch.uint8)
    b = (torch.rand(3, 8, 10, generator=gen) * 128).to(torch.uint8)
    mean, cov = mixture_stats([a, b], [0.5, 0.5])
    pooled = torch.cat([a, b], dim=2).double() / 255
    ref_mean, ref_cov = color_stats(pooled[None])
    torch.testing.assert_close(mean, ref_mean[0])
    n = pooled[0].numel()
    torch.testing.assert_close(cov, ref_cov[0] * (n - 1) / n, atol=2e-3, rtol=0)  # pooled: population covariances


def test_match_palettes_regions_and_uncovered_pixels() -> None:
    """Left half to one palette, right half to another, bottom row band uncovered (kept as it was)."""
    gen = torch.Generator().manual_seed(2)
    image = 0.4 + 0.2 * torch.rand(1, 3, 40, 40, generator=gen)
    warm = (torch.tensor([0.7, 0.4, 0.2], dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 1e-3)
    cold = (torch.tensor([0.2, 0.3, 0.6], dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 4e-3)
    left, right = torch.zeros(1, 1, 40, 40), torch.zeros(1, 1, 40, 40)
    left[..., :30, :20] = 1
    right[..., :30, 20:] = 1
    out = match_palettes(image, [(*warm, left), (*cold, right)])
    torch.testing.assert_close(out[..., :30, :20].mean(dim=(0, 2, 3)).double(), warm[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(out[..., :30, 20:].mean(dim=(0, 2, 3)).double(), cold[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(out[..., 30:, :], image[..., 30:, :])
    whole = match_palettes(image, [(*cold, None)])
    o_mean, o_cov = color_stats(whole)
    torch.testing.assert_close(o_mean[0], cold[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(o_cov[0], cold[1], atol=2e-4, rtol=0)


def test_match_palettes_one_region_everywhere_is_a_mask_of_ones() -> None:
    """A single painting without a mask (the engine's common case, mapped directly) gives what a mask of ones does
    through the blended path, unclamped input included."""
    gen = torch.Generator().manual_seed(3)
    image = 1.2 * torch.rand(2, 3, 24, 32, generator=gen) - 0.1
    warm = (torch.tensor([0.7, 0.4, 0.2], dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 2e-3)
    torch.testing.assert_close(match_palettes(image, [(*warm, None)]),
                               match_palettes(image, [(*warm, torch.ones(1, 1, 24, 32))]), atol=1e-5, rtol=0)


def test_palette_mode_gives_the_paintings_colours(random_engine, card_a, card_b, make_image) -> None:
    """Through the engine (random weights): the result's mean colour is the card's within 0.04 per channel (the clamp
    to [0, 1] is the only loss), far closer than in style mode; masks give each region its card's palette; tiles and
    a working resolution keep it; at α = 0 the content's colours; a stripped card is refused naming the mode."""
    import dataclasses

    content = make_image(48, 64, seed=6)
    for card in (card_a, card_b):
        target, _ = card.palette()
        for fields in ({}, {"tile": 64}, {"scale": 0.5}):
            out, _ = pil_to_tensor(random_engine.stylize(content, card, color="palette", **fields))
            assert float((out.double().mean(dim=(0, 2, 3)) - target).abs().max()) < 0.04, fields
        plain, _ = pil_to_tensor(random_engine.stylize(content, card, color="style"))
        assert float((plain.double().mean(dim=(0, 2, 3)) - target).abs().max()) > 0.04
    mask = np.zeros((48, 64), np.float32)
    mask[:, :32] = 1
    out, _ = pil_to_tensor(random_engine.stylize(content, [(card_a, mask), (card_b, 1 - mask)], color="palette"))
    for half, card in ((out[..., :, 4:28], card_a), (out[..., :, 36:60], card_b)):
        assert float((half.double().mean(dim=(0, 2, 3)) - card.palette()[0]).abs().max()) < 0.06
    # α moves the target from the content's colours (α = 0) to the painting's (α = 1); palette is the default mode
    photo, _ = pil_to_tensor(content)
    out, _ = pil_to_tensor(random_engine.stylize(content, card_a, alpha=0.0))
    assert float((out.double().mean(dim=(0, 2, 3)) - photo.double().mean(dim=(0, 2, 3))).abs().max()) < 0.04
    with pytest.raises(CardError, match="which the palette colour mode and marks need: .*, or colour mode style or "
                                        "luminance and marks 0$"):
        random_engine.stylize(content, dataclasses.replace(card_a, pixels=[]))  # the defaults
