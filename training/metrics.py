"""Evaluation metrics of stylised images, as pure functions of encoder features and pixels.

"gap" metrics are ratios: distance(output, style) / distance(content, style), so 1 = the output is no closer to
the painting than the untouched photo, 0 = it matches the painting on that measure. The painting's side may be
weighted by a map of its painted pixels (``weight``: (1, 1, H, W) in [0, 1] at the image's size, e.g.
:func:`adain_core.backdrop.painted_weights`), so that a flat backdrop the engine leaves out is left out here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from adain_core.adain import tap_stats
from adain_core.networks import TAPS

from .losses import gram_matrices, grid_ratios, luma_loss, sliced_wasserstein, unit_directions

__all__ = ["Stats", "feature_stats", "stat_gap", "style_gap_ratio", "gram", "gram_gap_ratio", "colour_gap_ratio",
           "style_vector", "spread", "content_corr", "layout_corr", "grid_ratio", "psnr", "SPREAD_TAPS",
           "COLOUR_DIRECTIONS", "LAYOUT_RADIUS"]

Stats = dict[str, tuple[Tensor, Tensor]]  # tap → (mean (C,), std (C,))

SPREAD_TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
COLOUR_DIRECTIONS = 64  # fixed random unit directions of the colour metric (seed 0)
LAYOUT_RADIUS = 1 / 32  # box radius of the layout metric's blur per px of the shorter side (8 px at 256 px)


def feature_stats(features: dict[str, Tensor], weight: Tensor | None = None) -> Stats:
    """Channel means and stds (each (C,), float32) of single-image features (1, C, h, w) per tap, the pixels
    weighted by ``weight`` (see the module docstring; ``None``: equally)."""
    stats = tap_stats({tap: f.float() for tap, f in features.items()}, weight)
    return {tap: (m.flatten(), s.flatten()) for tap, (m, s) in stats.items()}


def stat_gap(a: Stats, style: Stats) -> float:
    """G(a, s) = mean over relu1_1…relu4_1 of (‖μ_a−μ_s‖² + ‖σ_a−σ_s‖²) / (‖μ_s‖² + ‖σ_s‖²)."""
    terms = []
    for tap in TAPS:
        am, asd = a[tap]
        sm, ssd = style[tap]
        num = (am - sm).pow(2).sum() + (asd - ssd).pow(2).sum()
        den = sm.pow(2).sum() + ssd.pow(2).sum()
        terms.append(float(num / den.clamp_min(1e-12)))
    return sum(terms) / len(terms)


def style_gap_ratio(output: Stats, content: Stats, style: Stats) -> float:
    """G(output, style) / G(content, style): 1.0 = no more styled than the content, 0 = statistics matched."""
    return stat_gap(output, style) / max(stat_gap(content, style), 1e-12)


def gram(feat: Tensor, weight: Tensor | None = None) -> Tensor:
    """Gram matrix F·Fᵀ/(h·w) of single-image features (1, C, h, w) → (C, C) float32; with ``weight`` (see the
    module docstring) F·diag(w)·Fᵀ/Σw (:func:`training.losses.gram_matrices`)."""
    return gram_matrices(feat, weight)[0]


def _gram_distance(a: dict[str, Tensor], style_grams: dict[str, Tensor]) -> float:
    terms = []
    for tap in TAPS:
        gs = style_grams[tap]
        terms.append(float((gram(a[tap]) - gs).pow(2).sum() / gs.pow(2).sum().clamp_min(1e-12)))
    return sum(terms) / len(terms)


def gram_gap_ratio(output: dict[str, Tensor], content: dict[str, Tensor], style: dict[str, Tensor],
                   style_weight: Tensor | None = None) -> float:
    """Texture gap: mean over relu1_1…relu4_1 of ‖Gram(out) − Gram(style)‖² / ‖Gram(style)‖², divided by the same for
    the content. Arguments are tap → (1, C, h, w) features of each image; ``style_weight`` weights the painting's
    pixels (see the module docstring)."""
    grams = {tap: gram(style[tap], style_weight) for tap in TAPS}
    return _gram_distance(output, grams) / max(_gram_distance(content, grams), 1e-12)


COLOUR_PIXELS = 1 << 14  # pixels per image the colour metric uses (an evenly strided subset of larger images)


def _pixels(x: Tensor, weight: Tensor | None = None) -> Tensor:
    """(3, H, W) or (1, 3, H, W) → (1, 3, 1, n): all pixels (with ``weight``: those weighted ≥ 0.5), or an evenly
    strided subset of :data:`COLOUR_PIXELS`."""
    flat = x.float().reshape(1, 3, 1, -1)
    if weight is not None and bool((weight >= 0.5).any()):
        flat = flat[..., weight.reshape(-1) >= 0.5]
    step = max(1, flat.shape[-1] // COLOUR_PIXELS)
    return flat[..., ::step]


def colour_gap_ratio(output: Tensor, content: Tensor, style: Tensor, style_weight: Tensor | None = None) -> float:
    """Colour gap: sliced Wasserstein distance between the RGB pixel distributions of output and style (64 fixed
    random unit directions; at most 16,384 evenly strided pixels per image), divided by the same for content and
    style.

    Args:
        output, content, style: (3, H, W) or (1, 3, H, W) float in [0, 1] (sizes may differ).
        style_weight: the painting's pixels weighted ≥ 0.5 are its distribution (see the module docstring).
    """
    dirs = unit_directions(COLOUR_DIRECTIONS, seed=0)
    o, c, s = _pixels(output), _pixels(content), _pixels(style, style_weight)
    return float(sliced_wasserstein(o, s, dirs)[0]) / max(float(sliced_wasserstein(c, s, dirs)[0]), 1e-12)


def style_vector(stats: Stats) -> Tensor:
    """An image's look as one vector: per tap of :data:`SPREAD_TAPS`, its channel means and stds concatenated and
    normalised to unit length; the taps concatenated. (Σ C·2,) float32."""
    parts = []
    for tap in SPREAD_TAPS:
        m, s = stats[tap]
        v = torch.cat([m, s]).float()
        parts.append(v / v.norm().clamp_min(1e-12))
    return torch.cat(parts)


def _mean_pairwise(vectors: Sequence[Tensor]) -> float:
    if len(vectors) < 2:
        return 0.0
    x = torch.stack(list(vectors))
    d = torch.cdist(x[None], x[None])[0]
    n = len(vectors)
    return float(d.sum() / (n * (n - 1)))


def spread(outputs: Sequence[Stats], styles: Sequence[Stats]) -> float:
    """How much one photo's outputs differ across paintings, relative to how much the paintings differ: the mean
    pairwise distance between the outputs' :func:`style_vector`s over that of the styles'. ~0 = the decoder ignores
    the style; ~1 = the outputs are as varied as the paintings."""
    return _mean_pairwise([style_vector(s) for s in outputs]) / max(
        _mean_pairwise([style_vector(s) for s in styles]), 1e-12)


def content_corr(out_feat: Tensor, content_feat: Tensor, eps: float = 1e-8) -> float:
    """Mean of the product of instance-normalised relu4_1 features (1, C, h, w) of output and content.

    Equals the mean over channels of the spatial Pearson correlation: 1 = structure kept, 0 = unrelated.
    Channels that are constant over the content image (dead ReLUs, common at small sizes) carry no structure
    and are left out of the mean; otherwise ``content_corr(x, x)`` would fall below 1.
    """
    def norm(f: Tensor) -> tuple[Tensor, Tensor]:
        f = f.float().reshape(f.shape[0], f.shape[1], -1)
        var = f.var(dim=2, unbiased=False, keepdim=True)
        return (f - f.mean(dim=2, keepdim=True)) / (var + eps).sqrt(), var

    o, _ = norm(out_feat)
    c, var_c = norm(content_feat)
    active = (var_c > 1e-6 * var_c.mean().clamp_min(1e-12)).flatten()
    per_channel = (o * c).mean(dim=2).flatten()
    if not bool(active.any()):
        return 0.0
    return float(per_channel[active].mean())


def layout_corr(output: Tensor, content: Tensor) -> float:
    """Whether the output keeps the photo's broad layout of light and dark: the correlation of the two images' luma
    after a box blur of radius :data:`LAYOUT_RADIUS` × the shorter side (``1 − luma_loss / 2``).

    A wide pale or dark halo round an object, or a light region painted dark, lowers it; strokes finer than the blur
    and the palette's brightness and contrast do not. 1 = layout kept, 0 = unrelated.

    Args:
        output: (1, 3, H, W) float in [0, 1].
        content: (1, 3, H, W) float in [0, 1], the photo, same size.
    """
    radius = max(1, round(min(content.shape[-2:]) * LAYOUT_RADIUS))
    return 1.0 - float(luma_loss(output, content, radius)) / 2


def grid_ratio(output: Tensor) -> float:
    """How much of a regular 2 and 4 px grid the image carries (what nearest-neighbour upsampling in a decoder leaves
    in flat areas): :func:`training.losses.grid_ratios` in float64.

    About 1 for photos and paintings (no such grid); measured 3-12 on the shipped decoder's outputs (2026-12-05).

    Args:
        output: (1, 3, H, W) float in [0, 1], H and W at least 16.
    """
    return float(grid_ratios(output.double())[0])


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB between two images in [0, 1] (values clamped)."""
    mse = float((a.float().clamp(0, 1) - b.float().clamp(0, 1)).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
