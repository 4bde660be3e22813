"""Tone curves: how a result spreads its lights and darks, which a mean and covariance leave free. The ``palette``
colour mode gives a result its painting's RGB mean and covariance (:mod:`adain_core.color`), then moves the result's
luma quantiles :data:`TONE_STRENGTH` of the way to the painting's with a monotone piecewise-linear curve; the
curve's knots are fitted separately from their use so that frames can smooth them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .upsample import luma

__all__ = ["TONE_KNOTS", "TONE_STRENGTH", "TONE_SAMPLES", "luma_quantiles", "mixture_tones", "tone_target",
           "tone_curve", "apply_tone"]

#: Quantiles a tone curve is fitted at: (i + ½) / K for i < K.
TONE_KNOTS = 32
#: How far the ``palette`` mode moves a result's luma quantiles towards the painting's (0 = the mean and covariance
#: alone, 1 = the painting's quantiles exactly). On the evaluation set (8 × 8 pairs, 256 px, shipped decoder) 0.5
#: took the colour gap from 0.209 to 0.151 for a content correlation 0.557 → 0.548; 0.75 gave 0.125 for 0.541.
TONE_STRENGTH = 0.5
#: Pixels per image (an evenly strided subset) that quantiles are taken from: 32 quantiles of 65,536 values sit within
#: about 0.002 of the whole image's, and sorting them costs 20 ms on a 2-core CPU against 380 ms for a 1080p frame's
#: million.
TONE_SAMPLES = 1 << 16
#: Entries of the table a curve is applied through (luma 0 … 1, linear between entries, so that the result stays
#: continuous in the image: a tiled result equals the one-pass one).
_TABLE = 1024


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation per row, held constant beyond the ends.

    Args:
        x: (B, N) points.
        xp: (B, K) non-decreasing knots (K ≥ 1; one knot: its value everywhere).
        fp: (B, K) values at the knots.

    Returns:
        (B, N), the dtype of ``x``.
    """
    if xp.shape[1] == 1:
        return fp.to(x.dtype).expand_as(x).clone()
    xp = xp.to(x.dtype).contiguous()
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.shape[1] - 1)
    x0, x1 = xp.gather(1, i - 1), xp.gather(1, i)
    f0, f1 = fp.gather(1, i - 1).to(x.dtype), fp.gather(1, i).to(x.dtype)
    t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def luma_quantiles(values: Tensor, weight: Tensor | None = None, knots: int = TONE_KNOTS) -> Tensor:
    """Weighted quantiles of luma values at (i + ½) / ``knots``.

    Args:
        values: (B, N) luma (any range).
        weight: (B|1, N) how much each value counts, ≥ 0 with a positive sum per row, or ``None``: all alike.
        knots: number of quantiles K.

    Returns:
        (B, K) float64, non-decreasing along K.
    """
    sorted_v, order = values.double().sort(dim=1)
    sorted_w = (torch.ones_like(sorted_v) if weight is None else
                weight.double().expand_as(sorted_v).gather(1, order))
    cum = sorted_w.cumsum(dim=1)
    total = cum[:, -1:].clamp_min(1e-12)
    position = (cum - 0.5 * sorted_w) / total  # where each value sits in (0, 1)
    q = (torch.arange(knots, dtype=torch.float64, device=sorted_v.device) + 0.5) / knots
    q = q.expand(sorted_v.shape[0], -1)
    return _interp(q, position, sorted_v).cummax(dim=1).values


def mixture_tones(images: Sequence[Tensor], weights: Sequence[float], masks: Sequence[Tensor | None] | None = None,
                  knots: int = TONE_KNOTS) -> Tensor:
    """Luma quantiles of the pixels of several images pooled with weights (a card mixing paintings), as
    :func:`adain_core.color.mixture_stats` pools their mean and covariance.

    Args:
        images: each (3, h, w) uint8 or float in [0, 1] (uint8 is scaled by 1/255).
        weights: one per image, summing to 1.
        masks: per image, how much each pixel counts: (h, w) uint8 (255 = fully) or float in [0, 1], or ``None``
            (every pixel fully); ``None`` for all images.
        knots: number of quantiles K.

    Returns:
        (K,) float64 in [0, 1].
    """
    values, shares = [], []
    for img, w, mask in zip(images, weights, masks or [None] * len(images)):
        x = img.double() / 255 if img.dtype == torch.uint8 else img.double()
        m = (torch.ones(x.shape[-2:], dtype=torch.float64) if mask is None else
             mask.double() / 255 if mask.dtype == torch.uint8 else mask.double()).reshape(-1)
        step = max(1, m.numel() // TONE_SAMPLES)
        m = m[::step]
        values.append(luma(x.reshape(1, 3, -1)[:, :, ::step])[0, 0])
        shares.append(float(w) * m / m.sum().clamp_min(1e-12))
    return luma_quantiles(torch.cat(values)[None], torch.cat(shares)[None], knots)[0]


def tone_target(painting: Tensor, content: Tensor, alpha: float, max_pixels: int = TONE_SAMPLES) -> Tensor:
    """The luma quantiles the ``palette`` mode aims a result at, style strength α: the content's moved α (clamped
    to [0, 1]) of the way to the painting's, so α = 0 keeps the content's tones.

    Args:
        painting: (K,) luma quantiles, e.g. :meth:`adain_core.StyleCard.tones`.
        content: (B, 3, H, W) float in [0, 1].
        alpha: style strength.
        max_pixels: the content's quantiles use an evenly strided subset of at most this many pixels per image.

    Returns:
        (B, K) float64.
    """
    a = min(max(float(alpha), 0.0), 1.0)
    flat = content.reshape(content.shape[0], 3, -1)
    own = luma_quantiles(luma(flat[:, :, ::max(1, flat.shape[2] // max_pixels)])[:, 0], None, painting.shape[0])
    return a * painting.double().to(own.device) + (1 - a) * own


def tone_curve(image: Tensor, target: Tensor, weight: Tensor | None = None,
               strength: float = TONE_STRENGTH) -> tuple[Tensor, Tensor]:
    """The knots of the curve that moves ``image``'s luma quantiles ``strength`` of the way to ``target``.

    Args:
        image: (B, 3, N) float pixels (a strided sample of a result is enough).
        target: (B|1, K) luma quantiles (:func:`tone_target`).
        weight: (B|1, 1, N) how much each pixel counts (a region's mask), or ``None``: all alike.
        strength: in [0, 1].

    Returns:
        ``(x, y)``: (B, K) float64 each, the curve maps luma ``x`` to ``y`` (:func:`apply_tone`).
    """
    x = luma_quantiles(luma(image)[:, 0], None if weight is None else weight[:, 0], target.shape[-1])
    return x, x + strength * (target.double().to(x.device) - x)


def apply_tone(image: Tensor, curve: tuple[Tensor, Tensor]) -> Tensor:
    """Shift every pixel's RGB by what the curve adds to its luma (the chroma stays; beyond the outer knots the
    shift is the outer knots', and a luma outside [0, 1] takes the shift at 0 or 1), through a table of the curve.

    Args:
        image: (B, 3, H, W) float (in [0, 1] as the palette mode gives it).
        curve: ``(x, y)`` (B|1, K) as :func:`tone_curve` returns (possibly smoothed over frames).

    Returns:
        (B, 3, H, W) float32, not clamped.
    """
    b = image.shape[0]
    x, y = (t.to(image.device, torch.float64).expand(b, -1) for t in curve)
    grid = torch.linspace(0, 1, _TABLE, dtype=torch.float64, device=image.device).expand(b, -1)
    table = _interp(grid, x, y - x).float()
    position = luma(image.float()).reshape(b, -1).clamp(0, 1) * (_TABLE - 1)
    index = position.floor().clamp(max=_TABLE - 2).long()
    low = table.gather(1, index)
    shift = low + (position - index) * (table.gather(1, index + 1) - low)
    return image.float() + shift.reshape(b, 1, *image.shape[-2:])
