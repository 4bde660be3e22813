"""Colour modes: CORAL statistics, luminance keeps the content's chroma, preserve keeps the content's colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kornia.color import rgb_to_yuv

from adain_core import CardError, ValueRangeError
from adain_core.color import color_stats, coral, keep_chroma
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
