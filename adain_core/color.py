"""Colour modes around the network: CORAL mean/covariance transfer towards the content (``preserve``) or towards
the painting (``palette``, followed by a tone curve towards the painting's luma quantiles: :mod:`adain_core.tone`),
and luminance-only stylisation that keeps the content's chroma (``luminance``, in YUV
via kornia)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ValueRangeError
from .tone import TONE_SAMPLES, apply_tone, tone_curve
from .vocabulary import COLOR_MODES

__all__ = ["COLOR_MODES", "Palette", "color_stats", "mixture_stats", "sqrtm_spd", "coral_transform", "coral",
           "match_colors", "palette_target", "fit_palettes", "fit_tones", "apply_palettes", "match_palettes",
           "keep_chroma",
           "recolor_styles", "fits_raw_output", "after_pass", "after_image"]

#: A region's target colours: RGB mean (B|1, 3) or (3,), covariance (B|1, 3, 3) or (3, 3), and where it applies
#: ((B|1, 1, h, w) soft weights in [0, 1] at any size, or ``None`` for everywhere).
Palette = tuple[Tensor, Tensor, Union[Tensor, None]]


def color_stats(img: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the RGB pixels of each image.

    Args:
        img: (B, 3, H, W) float in [0, 1].
        weight: (B|1, 1, H, W) how much each pixel counts, ≥ 0 with a positive sum per image (a painting's backdrop
            left out: :func:`adain_core.backdrop.painted_weights`), or ``None``: every pixel alike. The covariance
            divides by N − 1 without weights and by the weights' sum with them (as :func:`mixture_stats` does).

    Returns:
        ``(mean, cov)``: (B, 3) and (B, 3, 3), float64.
    """
    if weight is not None:
        return _weighted_stats(img.reshape(img.shape[0], 3, -1), weight.reshape(weight.shape[0], 1, -1))
    x = img.double().reshape(img.shape[0], 3, -1)
    mean = x.mean(dim=2)
    xc = x - mean[..., None]
    cov = xc @ xc.transpose(1, 2) / max(x.shape[2] - 1, 1)
    return mean, cov


def mixture_stats(images: Sequence[Tensor], weights: Sequence[float],
                  masks: Sequence[Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
    """RGB mean and covariance of the pixels of several images pooled with weights (a card mixing paintings).

    Args:
        images: each (3, h, w) uint8 or float in [0, 1] (uint8 is scaled by 1/255).
        weights: one per image, summing to 1.
        masks: per image, how much each pixel counts: (h, w) uint8 (255 = fully) or float in [0, 1], or ``None``
            (every pixel fully); ``None`` for all images.

    Returns:
        ``(mean, cov)``: (3,) and (3, 3), float64.
    """
    mean = torch.zeros(3, dtype=torch.float64)
    second = torch.zeros(3, 3, dtype=torch.float64)
    for img, w, mask in zip(images, weights, masks or [None] * len(images)):
        x = img.double() / 255 if img.dtype == torch.uint8 else img.double()
        if mask is None:
            m, c = color_stats(x.reshape(1, 3, *x.shape[-2:]))
        else:
            share = mask.double() / 255 if mask.dtype == torch.uint8 else mask.double()
            m, c = _weighted_stats(x.reshape(1, 3, -1), share.reshape(1, 1, -1))
        mean += w * m[0]
        second += w * (c[0] + m[0][:, None] * m[0][None, :])
    return mean, second - mean[:, None] * mean[None, :]


def _weighted_stats(x: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean (B, 3) and covariance (B, 3, 3), float64, of pixels ``x`` (B, 3, N) under weights ``w`` (B|1, 1, N), or
    every pixel alike (``None``)."""
    x = x.double()
    if w is None:
        mean = x.mean(dim=2)
        xc = x - mean[..., None]
        return mean, xc @ xc.transpose(1, 2) / x.shape[2]
    w = w.double().expand(x.shape[0], 1, -1)
    total = w.sum(dim=2).clamp_min(1e-12)
    mean = (x * w).sum(dim=2) / total
    xc = x - mean[..., None]
    cov = (xc * w) @ xc.transpose(1, 2) / total[..., None]
    return mean, cov


def sqrtm_spd(cov: Tensor, inverse: bool = False) -> Tensor:
    """Symmetric square root (or inverse square root) of covariances (..., 3, 3), with a 1e-5 ridge, by
    eigendecomposition (no stable gradient where eigenvalues meet: forward use).

    Raises:
        ValueRangeError: NaN/inf or degenerate statistics.
    """
    if not bool(torch.isfinite(cov).all()):
        raise ValueRangeError("colour covariance contains NaN or infinite values (a degenerate image or card)")
    try:
        vals, vecs = torch.linalg.eigh(cov + 1e-5 * torch.eye(3, dtype=cov.dtype, device=cov.device))
    except torch.linalg.LinAlgError as exc:
        raise ValueRangeError(f"colour statistics are degenerate; use another colour mode ({exc})") from None
    vals = vals.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return vecs @ torch.diag_embed(vals**power) @ vecs.transpose(-1, -2)


def coral_transform(src_mean: Tensor, src_cov: Tensor, dst_mean: Tensor, dst_cov: Tensor) -> tuple[Tensor, Tensor]:
    """The affine colour map ``x ↦ T·x + shift`` that gives pixels with RGB mean/covariance ``src`` the ``dst`` ones.

    Args:
        src_mean, dst_mean: (..., 3) RGB means.
        src_cov, dst_cov: (..., 3, 3) RGB covariances (batch dimensions broadcast).

    Returns:
        ``(T, shift)``: (..., 3, 3) and (..., 3), float64.

    Raises:
        ValueRangeError: NaN/inf or degenerate statistics.
    """
    transform = sqrtm_spd(dst_cov.double(), False) @ sqrtm_spd(src_cov.double(), True)
    shift = dst_mean.double() - (transform @ src_mean.double()[..., None])[..., 0]
    return transform, shift


def coral(source: Tensor, target_mean: Tensor, target_cov: Tensor) -> Tensor:
    """Give ``source`` the RGB mean and covariance of a target (CORAL / mean-covariance colour transfer).

    Args:
        source: (3, H, W) or (1, 3, H, W) float in [0, 1], e.g. the style image.
        target_mean: (3,) target RGB mean (e.g. the content's).
        target_cov: (3, 3) target RGB covariance.

    Returns:
        Same shape as ``source``, clamped to [0, 1].
    """
    x = source.reshape(1, 3, *source.shape[-2:])
    transform, shift = coral_transform(*color_stats(x), target_mean, target_cov)
    out = transform[0] @ x.double().reshape(3, -1) + shift[0][:, None]
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def _strided_stats(x: Tensor, max_pixels: int) -> tuple[Tensor, Tensor]:
    """:func:`color_stats` of (B, 3, H, W) on an evenly strided subset of at most ``max_pixels`` pixels per image."""
    flat = x.reshape(x.shape[0], 3, -1)
    step = max(1, flat.shape[2] // max_pixels)
    return color_stats(flat[:, :, ::step].reshape(x.shape[0], 3, 1, -1))


def match_colors(image: Tensor, reference: Tensor, max_pixels: int = 1 << 20) -> Tensor:
    """Give each image the RGB mean and covariance of its reference image (CORAL applied to a result).

    Args:
        image: (B, 3, H, W) float in [0, 1], e.g. a stylised result.
        reference: (B, 3, H', W') float in [0, 1], e.g. the content.
        max_pixels: statistics are computed on an evenly strided subset of at most this many pixels per image
            (exact for smaller images; keeps 8K images cheap).

    Returns:
        (B, 3, H, W) float32 in [0, 1].
    """

    transform, shift = coral_transform(*_strided_stats(image, max_pixels), *_strided_stats(reference, max_pixels))
    return (torch.einsum("bij,bjhw->bihw", transform.float(), image.float())
            + shift.float()[..., None, None]).clamp(0, 1)


def palette_target(painting: tuple[Tensor, Tensor], content: Tensor, alpha: float,
                   max_pixels: int = 1 << 20) -> tuple[Tensor, Tensor]:
    """The colours the ``palette`` mode gives a result at style strength α: the content's RGB mean and covariance
    moved α (clamped to [0, 1]) of the way to the painting's, so α = 0 keeps the content's colours.

    Args:
        painting: RGB mean (3,) and covariance (3, 3), e.g. :meth:`adain_core.StyleCard.palette`.
        content: (B, 3, H, W) float in [0, 1].
        alpha: style strength.
        max_pixels: as :func:`match_colors`.

    Returns:
        ``(mean, cov)``: (B, 3) and (B, 3, 3), float64.
    """
    a = min(max(float(alpha), 0.0), 1.0)
    c_mean, c_cov = _strided_stats(content, max_pixels)
    p_mean, p_cov = (t.double().to(c_mean.device) for t in painting)
    return a * p_mean + (1 - a) * c_mean, a * p_cov + (1 - a) * c_cov


def _region_weights(palettes: Sequence[Palette], size: tuple[int, int],
                    device: torch.device) -> list[Tensor | None]:
    """Each region's weights (B|1, 1, H, W) in [0, 1]: its mask resized (bilinear), or ``None`` for everywhere."""
    out: list[Tensor | None] = []
    for _, _, mask in palettes:
        if mask is None:
            out.append(None)
            continue
        weight = mask.float().to(device).clamp(0, 1)
        out.append(weight if weight.shape[-2:] == size else
                   F.interpolate(weight, size=size, mode="bilinear", align_corners=False))
    return out


def fit_palettes(image: Tensor, palettes: Sequence[Palette], max_pixels: int = 1 << 20) -> list[tuple[Tensor, Tensor]]:
    """The colour statistics of a result under each region's weights, which :func:`apply_palettes` maps to the
    region's target (fitted separately so that frames can smooth them). Runs on ``image``'s device.

    Args:
        image: (B, 3, H, W) float, a stylised result (unclamped: see :func:`fits_raw_output`).
        palettes: one :data:`Palette` per region.
        max_pixels: statistics use an evenly strided subset of at most this many pixels per image.

    Returns:
        Per region ``(mean, cov)``: (B, 3) and (B, 3, 3), float64.
    """
    b = image.shape[0]
    flat = image.float().reshape(b, 3, -1)
    step = max(1, flat.shape[2] // max_pixels)
    return [_weighted_stats(flat[:, :, ::step],
                            None if weight is None else weight.reshape(weight.shape[0], 1, -1)[:, :, ::step])
            for weight in _region_weights(palettes, tuple(image.shape[-2:]), image.device)]


def fit_tones(image: Tensor, palettes: Sequence[Palette], fits: Sequence[tuple[Tensor, Tensor]],
              targets: Sequence[Tensor], max_pixels: int = TONE_SAMPLES) -> list[tuple[Tensor, Tensor]]:
    """Each region's tone curve (:func:`adain_core.tone.tone_curve`): fitted to the region's pixels of the result
    after its affine map (``fits``, clamped to [0, 1]) and aimed at the region's target luma quantiles; fitted
    apart from :func:`apply_palettes` so that frames can smooth the curves. Runs on ``image``'s device.

    Args:
        image: (B, 3, H, W) float, a stylised result (unclamped: see :func:`fits_raw_output`).
        palettes: one :data:`Palette` per region.
        fits: per region ``(mean, cov)`` as :func:`fit_palettes` returns (possibly smoothed over frames).
        targets: per region (B|1, K) luma quantiles (:func:`adain_core.tone.tone_target`).
        max_pixels: the curves use an evenly strided subset of at most this many pixels per image.

    Returns:
        Per region the curve's knots ``(x, y)``, (B, K) float64 each.
    """
    b = image.shape[0]
    flat = image.float().reshape(b, 3, -1)
    step = max(1, flat.shape[2] // max_pixels)
    sample = flat[:, :, ::step].reshape(b, 3, 1, -1)
    weights = _region_weights(palettes, tuple(image.shape[-2:]), image.device)
    return [tone_curve(_recolour(sample, target, fit).clamp(0, 1).reshape(b, 3, -1), goal,
                       None if weight is None else weight.reshape(weight.shape[0], 1, -1)[:, :, ::step])
            for target, fit, weight, goal in zip(palettes, fits, weights, targets)]


def apply_palettes(image: Tensor, palettes: Sequence[Palette], fits: Sequence[tuple[Tensor, Tensor]],
                   curves: Sequence[tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """Give each region of a result its target colours (``palette`` colour mode): the affine map taking the region's
    fitted statistics (:func:`fit_palettes`) to its target, then the region's tone curve (:func:`fit_tones`),
    applied to the whole image and blended by the regions' weights. Where the weights sum to less than 1 the image
    is kept in part (as the engine keeps the content there); where they sum to more they are normalised. Runs on
    ``image``'s device.

    Args:
        image: (B, 3, H, W) float (unclamped: see :func:`fits_raw_output`).
        palettes: one :data:`Palette` per region.
        fits: per region ``(mean, cov)`` as :func:`fit_palettes` returns (possibly smoothed over frames).
        curves: per region ``(x, y)`` as :func:`fit_tones` returns (possibly smoothed), or ``None``: the affine
            maps alone.

    Returns:
        (B, 3, H, W) float32 in [0, 1].
    """
    weights = _region_weights(palettes, tuple(image.shape[-2:]), image.device)
    maps = [_recolour(image, target, fit) for target, fit in zip(palettes, fits)]
    if curves is not None:
        maps = [apply_tone(recoloured.clamp(0, 1), curve) for recoloured, curve in zip(maps, curves)]
    if len(maps) == 1 and weights[0] is None:  # one painting everywhere: the map alone
        return maps[0].clamp(0, 1)
    blended = torch.zeros(image.shape, device=image.device)
    cover = torch.zeros(1, 1, *image.shape[-2:], device=image.device)
    for recoloured, weight in zip(maps, weights):
        blended = blended + (recoloured if weight is None else weight * recoloured)
        cover = cover + (1 if weight is None else weight)
    keep = (1 - cover).clamp_min(0)
    return (blended / cover.clamp_min(1) + keep * image.float()).clamp(0, 1)


def _recolour(image: Tensor, target: Palette, fit: tuple[Tensor, Tensor]) -> Tensor:
    """``image`` (B, 3, H, W) under the affine map taking the colour statistics ``fit`` to ``target``'s (float32,
    not clamped)."""
    mean, cov, _ = target
    transform, shift = coral_transform(fit[0].to(image.device), fit[1].to(image.device), mean.to(image.device),
                                       cov.to(image.device))
    return torch.einsum("bij,bjhw->bihw", transform.float(), image.float()) + shift.float()[..., None, None]


def match_palettes(image: Tensor, palettes: Sequence[Palette], max_pixels: int = 1 << 20,
                   tones: Sequence[Tensor] | None = None) -> Tensor:
    """:func:`apply_palettes` with the statistics of ``image`` itself (:func:`fit_palettes`): each region of a
    result given its painting's RGB mean and covariance, and with ``tones`` (per region (B|1, K) target luma
    quantiles, :func:`adain_core.tone.tone_target`) the tone curve towards them (:func:`fit_tones`).
    (B, 3, H, W) float (unclamped) → float32 in [0, 1]."""
    fits = fit_palettes(image, palettes, max_pixels)
    curves = None if tones is None else fit_tones(image, palettes, fits, tones)
    return apply_palettes(image, palettes, fits, curves)


def keep_chroma(stylized: Tensor, content: Tensor) -> Tensor:
    """Luminance-only result: the stylised image's luma (Y) with the content's chroma (U, V).

    Args:
        stylized: (B, 3, H, W) float in [0, 1].
        content: (B, 3, H, W) float in [0, 1], same size.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    from kornia.color import rgb_to_yuv, yuv_to_rgb  # only this mode needs kornia: the rest imports without it

    y = rgb_to_yuv(stylized.float())[:, :1]
    uv = rgb_to_yuv(content.float())[:, 1:]
    return yuv_to_rgb(torch.cat([y, uv], dim=1)).clamp(0, 1)


# -- colour modes as hooks around the network: before encoding the style, after each pass, after the whole image --
def recolor_styles(mode: str, style_pixels: list[Tensor], content: Tensor) -> list[list[Tensor]] | None:
    """Before encoding: the style images to encode for each content image, or ``None`` to use the card's stats.

    ``preserve`` gives every style image each content image's RGB mean and covariance (CORAL).

    Args:
        mode: a colour mode.
        style_pixels: the card's style images, each (3, h, w) uint8.
        content: (B, 3, H, W) float in [0, 1].

    Returns:
        ``None``, or per content image the recoloured style images, each (1, 3, h, w) float in [0, 1].
    """
    if mode != "preserve":
        return None
    c_mean, c_cov = color_stats(content)
    return [[coral(px.float() / 255, c_mean[b], c_cov[b])[None] for px in style_pixels]
            for b in range(content.shape[0])]


def fits_raw_output(mode: str) -> bool:
    """Whether colour mode ``mode`` is fitted to the decoder's own, unclamped colours: ``palette``, whose affine map
    is fitted to what the decoder produced, as in training (``training.losses.palette_recolour``). Clamping first
    would lose what lies outside [0, 1]: a decoder trained for this mode need not keep its own output in range."""
    return mode == "palette"


def after_pass(mode: str, out: Tensor, content: Tensor) -> Tensor:
    """After each decoder pass (whole image or tile): clamp to [0, 1], except for a mode that
    :func:`fits_raw_output` (it clamps after its own map); ``luminance`` puts the content's chroma back. ``out`` and
    ``content``: (B, 3, H, W) over the same pixels."""
    if fits_raw_output(mode):
        return out
    out = out.clamp(0, 1)
    return keep_chroma(out, content) if mode == "luminance" else out


def after_image(mode: str, out: Tensor, content: Tensor) -> Tensor:
    """After the whole image is assembled: ``preserve`` gives the result the content's RGB mean and covariance
    (the decoder can still shift colours after the style was recoloured). (B, 3, H, W) in [0, 1]. (``palette`` is
    applied by the engine with :func:`fit_palettes` / :func:`fit_tones` / :func:`apply_palettes`, whose statistics
    and curves frames smooth.)"""
    return match_colors(out, content) if mode == "preserve" else out
