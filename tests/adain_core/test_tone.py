"""Tone curves: luma quantiles (weighted, pooled over paintings), the curve that moves a result's quantiles part of
the way to a target while keeping its chroma, and the palette mode that applies it after the mean and covariance."""

from __future__ import annotations

import torch

from adain_core.color import color_stats, match_palettes
from adain_core.tone import (TONE_KNOTS, TONE_STRENGTH, apply_tone, luma_quantiles, mixture_tones, tone_curve,
                             tone_target)
from adain_core.upsample import luma

MIDPOINTS = (torch.arange(TONE_KNOTS, dtype=torch.float64) + 0.5) / TONE_KNOTS


def _quantiles(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) → its (K,) luma quantiles."""
    return luma_quantiles(luma(image).reshape(1, -1))[0]


def test_luma_quantiles_of_a_ramp_and_weights_that_leave_values_out() -> None:
    ramp = torch.linspace(0, 1, 4001)[None]
    torch.testing.assert_close(luma_quantiles(ramp)[0], MIDPOINTS, atol=1e-3, rtol=0)
    dark_half = (ramp <= 0.5).float()
    torch.testing.assert_close(luma_quantiles(ramp, dark_half)[0], MIDPOINTS / 2, atol=1e-3, rtol=0)
    torch.testing.assert_close(luma_quantiles(torch.tensor([[0.25]]))[0], torch.full((TONE_KNOTS,), 0.25,
                                                                          dtype=torch.float64))  # one pixel


def test_mixture_tones_pools_paintings_by_weight_and_leaves_backdrops_out() -> None:
    dark = torch.full((3, 8, 8), 51, dtype=torch.uint8)  # luma 0.2
    light = torch.full((3, 4, 4), 204, dtype=torch.uint8)  # luma 0.8, a quarter of the pixels: weights count, not size
    tones = mixture_tones([dark, light], [0.25, 0.75])
    assert tones.shape == (TONE_KNOTS,)
    assert torch.allclose(tones[:7], torch.tensor(0.2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(tones[9:], torch.tensor(0.8, dtype=torch.float64), atol=1e-6)
    backdrop = torch.full((3, 8, 8), 255, dtype=torch.uint8)
    backdrop[:, :, :4] = 51
    painted = torch.zeros(8, 8, dtype=torch.uint8)
    painted[:, :4] = 255  # the white half is a backdrop, left out
    torch.testing.assert_close(mixture_tones([backdrop], [1.0], [painted]), torch.full((TONE_KNOTS,), 0.2,
                                                                                      dtype=torch.float64))


def test_tone_target_runs_from_the_contents_tones_to_the_paintings_with_alpha() -> None:
    content = torch.linspace(0, 1, 64 * 64).reshape(1, 1, 64, 64).expand(1, 3, 64, 64)
    painting = torch.full((TONE_KNOTS,), 0.5, dtype=torch.float64)
    torch.testing.assert_close(tone_target(painting, content, 0.0)[0], MIDPOINTS, atol=1e-3, rtol=0)
    torch.testing.assert_close(tone_target(painting, content, 1.0)[0], painting)
    torch.testing.assert_close(tone_target(painting, content, 0.5)[0], (MIDPOINTS + 0.5) / 2, atol=1e-3, rtol=0)


def test_tone_curve_moves_the_quantiles_by_its_strength_and_keeps_the_chroma() -> None:
    gen = torch.Generator().manual_seed(0)
    grey = 0.4 + 0.2 * torch.rand(1, 1, 48, 48, generator=gen)  # mid-tones bunched
    image = grey + torch.tensor([0.05, 0.0, -0.05]).reshape(1, 3, 1, 1)  # a warm tint
    target = MIDPOINTS[None] * 0.8 + 0.1  # lights and darks spread over 0.1 … 0.9
    own = _quantiles(image)
    for strength in (0.0, 0.5, 1.0):
        out = apply_tone(image, tone_curve(image.reshape(1, 3, -1), target, None, strength))
        inner = slice(1, -1)  # the outer knots hold for the pixels beyond them
        torch.testing.assert_close(_quantiles(out)[inner], (own + strength * (target[0] - own))[inner],
                                   atol=0.01, rtol=0)
        torch.testing.assert_close(out[:, 0] - out[:, 1], image[:, 0] - image[:, 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(out[:, 2] - out[:, 1], image[:, 2] - image[:, 1], atol=1e-5, rtol=0)


def test_match_palettes_with_tones_moves_a_region_part_of_the_way_and_keeps_its_mean() -> None:
    """After the affine map the region's luma quantiles move TONE_STRENGTH of the way to the target; the mean colour
    stays the painting's (a symmetric curve), and pixels outside every region stay as they were."""
    gen = torch.Generator().manual_seed(1)
    image = 0.4 + 0.2 * torch.rand(1, 3, 40, 40, generator=gen)
    paint = (torch.tensor([0.5, 0.45, 0.4], dtype=torch.float64), torch.full((3, 3), 0.01, dtype=torch.float64)
             + 0.002 * torch.eye(3, dtype=torch.float64))
    region = torch.zeros(1, 1, 40, 40)
    region[..., :30, :] = 1
    spread = (MIDPOINTS[None] - 0.5) * 0.9 + 0.47  # wider at both ends than the affine map gives, same centre
    plain = match_palettes(image, [(*paint, region)])
    toned = match_palettes(image, [(*paint, region)], tones=[spread])
    before, after = _quantiles(plain[..., :30, :]), _quantiles(toned[..., :30, :])
    moved = (after - before)[2:-2] / (spread[0] - before)[2:-2]
    assert float((moved - TONE_STRENGTH).abs().max()) < 0.1, moved
    mean_before, _ = color_stats(plain[..., :30, :])
    mean_after, _ = color_stats(toned[..., :30, :])
    torch.testing.assert_close(mean_after, mean_before, atol=0.01, rtol=0)
    torch.testing.assert_close(toned[..., 30:, :], image[..., 30:, :])


def test_palette_mode_gives_the_result_the_paintings_tones(random_engine, card_a, make_image) -> None:
    """Through the engine (random weights): the palette result's luma quantiles sit closer to the painting's than
    the same decoder output given only the painting's mean and covariance, and a frame sequence keeps the curves."""
    from adain_core.images import pil_to_tensor

    content = make_image(48, 64, seed=6)
    toned, _ = pil_to_tensor(random_engine.stylize(content, card_a, color="palette"))
    plain, _ = pil_to_tensor(random_engine.stylize(content, card_a, color="style"))
    mean, cov = card_a.palette()
    plain = match_palettes(plain, [(mean, cov, None)])
    gap = {name: float((_quantiles(x) - card_a.tones()).abs().mean()) for name, x in (("toned", toned),
                                                                                       ("plain", plain))}
    assert gap["toned"] < 0.8 * gap["plain"], gap
    _, state = random_engine.stylize_frame(content, card_a, None)
    assert len(state.tone) == 1 and state.tone[0][0].shape == (1, TONE_KNOTS)
