"""Working resolution: the size a stylisation runs at for a scale F, and the edge-aware upsampling that brings a
low-resolution result back to the content's full size.

The upsampling is a fast guided filter (He & Sun, "Fast Guided Filter", 2015) in its detail form. At the working
resolution a local linear model ``p ≈ A·I + b`` of the stylised image ``p`` in the (downscaled) content ``I`` is
fitted per pixel and colour channel (``I`` the content's luma; ``A`` regularised by ``eps`` and box-averaged over a
radius, ``b = p − A·I`` kept per pixel); the result at full size applies the upscaled model to the full-size luma::

    out = up(A) · I_full + up(b)  ≈  up(p) + up(A) · (I_full − up(I_low))

So the stylised texture (brush strokes) keeps its look at the working resolution, and edges that the stylisation
follows snap back to the content's sharp edges. Where the stylisation ignores the content (``A`` ≈ 0) nothing is
added. Layer 1: pure tensor functions; the full-size part runs in row bands to bound memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AUTO_PIXELS", "working_size", "downscale", "box_filter", "luma", "guided_upsample"]

#: ``scale="auto"``: the largest number of pixels (per image) a stylisation runs at; smaller images run at full size.
AUTO_PIXELS = 1_500_000
#: Rows of the full-size image processed at once by :func:`guided_upsample` (about 2048 px × 30 B per row per image).
_BAND_ROWS = 256


def working_size(height: int, width: int, scale: float | str) -> tuple[int, int]:
    """The (h, w) a (height, width) image is stylised at for a scale.

    Args:
        height, width: the content's size in px (≥ 1).
        scale: a factor F in (0, 1] (sides rounded, at least 1 px), or ``"auto"``: the F ≤ 1 that brings the image
            down to at most :data:`AUTO_PIXELS` pixels (never upscales).

    Example:
        >>> working_size(4000, 6000, 0.5), working_size(100, 100, "auto")
        ((2000, 3000), (100, 100))
    """
    factor = min(1.0, math.sqrt(AUTO_PIXELS / (height * width))) if scale == "auto" else float(scale)
    if factor >= 1.0:
        return height, width
    return max(1, round(height * factor)), max(1, round(width * factor))


def downscale(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, H, W) → (B, C, h, w) with an antialiased bilinear filter (h ≤ H, w ≤ W); float32 out."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    return F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)


def _window_sum(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sum over ``[i − r, i + r]`` along ``dim`` (zeros outside), by adding shifted slices (exact, fast on CPUs)."""
    n = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim % x.ndim) + [radius, radius]
    padded = F.pad(x, pad)
    total = padded.narrow(dim, 0, n).clone()
    for shift in range(1, 2 * radius + 1):
        total += padded.narrow(dim, shift, n)
    return total


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over a (2r+1)² window, (B, C, H, W) → same shape; at the borders the mean of the window's part inside."""
    if radius <= 0:
        return x
    ones = torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
    count = _window_sum(_window_sum(ones, radius, -2), radius, -1)
    return _window_sum(_window_sum(x, radius, -2), radius, -1) / count


def luma(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB → (B, 1, H, W) Rec. 601 luma (the guide of the linear model)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _linear_model(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Per-pixel linear model ``src ≈ a·guide + b`` fitted over (2r+1)² windows, one (a, b) per src channel.

    Args:
        guide: (B, 1, h, w) float32 (the content's luma).
        src: (B, 3, h, w) float32.

    Returns:
        (B, 6, h, w): channels 0…2 the slopes ``a`` (box-averaged over the window), 3…5 the offsets
        ``b = src − a·guide`` per pixel (not averaged, so ``a·guide + b`` reproduces ``src`` exactly and its
        texture survives).
    """
    stats = box_filter(torch.cat([guide, guide * guide, src, src * guide], 1), radius)
    mean_i, mean_ii, mean_p, mean_ip = stats[:, 0:1], stats[:, 1:2], stats[:, 2:5], stats[:, 5:8]
    a = box_filter((mean_ip - mean_p * mean_i) / (mean_ii - mean_i * mean_i + eps), radius)
    return torch.cat([a, src - a * guide], 1)


def _bilinear_rows(n_out: int, n_in: int, start: int, stop: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of output positions ``[start, stop)`` for an ``n_in`` → ``n_out`` bilinear resize
    (half-pixel centres, as ``F.interpolate(..., align_corners=False)``)."""
    pos = ((torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = pos.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (pos - i0).clamp(0, 1)


def _upscale_band(x: Tensor, size: tuple[int, int], rows: tuple[int, int]) -> Tensor:
    """Rows ``[r0, r1)`` of the bilinear resize (half-pixel centres, as ``F.interpolate``) of (B, C, h, w) ``x`` to
    ``size``: (B, C, r1 − r0, W). Only the low-resolution rows the band needs are widened."""
    i0, i1, wy = _bilinear_rows(size[0], x.shape[-2], *rows, x.device)
    first, last = int(i0[0]), int(i1[-1]) + 1
    wide = F.interpolate(x[:, :, first:last], size=(last - first, size[1]), mode="bilinear", align_corners=False)
    return torch.lerp(wide[:, :, i0 - first], wide[:, :, i1 - first], wy[:, None])


def guided_upsample(low: Tensor, guide: Tensor, *, radius: int = 2, eps: float = 1e-3,
                    guide_low: Tensor | None = None, clamp: bool = True) -> Tensor:
    """Bring a low-resolution stylised image back to the guide's size, edge-aware (see the module docstring).

    Args:
        low: (B, 3, h, w) the stylised image at the working resolution, float (in [0, 1] unless ``clamp`` is
            off).
        guide: (B, 3, H, W) the full-resolution content, float in [0, 1] (H ≥ h, W ≥ w).
        radius: window radius in working-resolution pixels for the local linear model.
        eps: regularisation of the model (in [0, 1]² units): larger keeps less of the content's detail.
        guide_low: the content at (h, w) as it was stylised; default: ``downscale(guide, (h, w))``.
        clamp: clamp the result to [0, 1] (off for a decoder's raw output that a colour mode maps later).

    Returns:
        (B, 3, H, W) float32 (in [0, 1] with ``clamp``) on ``low``'s device; equal to ``low`` (as float32) when the
        sizes match.
    """
    size = tuple(guide.shape[-2:])
    low = low.float()
    if tuple(low.shape[-2:]) == size:
        return low
    guide_low = downscale(guide, low.shape[-2:]) if guide_low is None else guide_low.float()
    model = _linear_model(luma(guide_low.to(low.device)), low, radius, eps)  # (B, 6, h, w)
    out = torch.empty(low.shape[0], 3, *size, dtype=torch.float32, device=low.device)
    for r0 in range(0, size[0], _BAND_ROWS):
        rows = (r0, min(size[0], r0 + _BAND_ROWS))
        ab = _upscale_band(model, size, rows)
        y = luma(guide[:, :, rows[0]:rows[1]].to(low.device, torch.float32))
        band = torch.addcmul(ab[:, 3:], ab[:, :3], y)
        out[:, :, rows[0]:rows[1]] = band.clamp_(0, 1) if clamp else band
    return out
