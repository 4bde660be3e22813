"""AdaIN maths as small pure functions: channel statistics (whole, masked, streamed over tiles), the AdaIN
transform, the α blend, per-region mixing, and :func:`style_transfer`, the whole method in one pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["calc_mean_std", "masked_mean_std", "tap_stats", "adain", "blend_alpha", "AdaIN", "Stats", "Masks",
           "region_stats", "adain_target", "adain_targets", "StreamingStats", "style_transfer"]

#: Channel statistics of each style region: ``(mean, std)`` pairs, each (B|1, C, 1, 1).
Stats = list[tuple[Tensor, Tensor]]
#: Each style region's soft mask on one feature grid, (B|1, 1, h, w) in [0, 1], or ``None`` (everywhere).
Masks = Sequence[Union[Tensor, None]]


def calc_mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Channel-wise mean and standard deviation over the spatial dimensions.

    Args:
        feat: (B, C, H, W) features.
        eps: added to the variance before the square root.

    Returns:
        ``(mean, std)``, each (B, C, 1, 1), computed in float32 at least.

    Example:
        >>> m, s = calc_mean_std(torch.ones(1, 2, 3, 3))
        >>> m.flatten().tolist(), bool((s < 0.01).all())
        ([1.0, 1.0], True)
    """
    x = feat.float() if feat.dtype in (torch.float16, torch.bfloat16) else feat
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    mean = flat.mean(dim=2)
    var = flat.var(dim=2, unbiased=False) + eps
    return mean.reshape(b, c, 1, 1), var.sqrt().reshape(b, c, 1, 1)


def masked_mean_std(feat: Tensor, weight: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Channel-wise mean and std weighted by a soft spatial mask.

    Args:
        feat: (B, C, H, W) features.
        weight: (B, 1, H, W) weights ≥ 0 (a soft mask at feature resolution).
        eps: added to the variance.

    Returns:
        ``(mean, std)``, each (B, C, 1, 1), float32 (float64 for float64 input). Where the mask is empty the
        unweighted stats are returned.
    """
    # Half precision is upcast; float64 stays float64 (gradcheck, training diagnostics).
    x = feat.float() if feat.dtype in (torch.float16, torch.bfloat16) else feat
    w = weight.to(x.dtype)
    total = w.sum(dim=(2, 3), keepdim=True)
    safe = total.clamp_min(1e-8)
    mean = (x * w).sum(dim=(2, 3), keepdim=True) / safe
    var = ((x - mean) ** 2 * w).sum(dim=(2, 3), keepdim=True) / safe
    std = (var + eps).sqrt()
    empty = total <= 1e-8
    if bool(empty.any()):  # the whole-image pass only where it is needed (it is a third of the cost)
        full_mean, full_std = calc_mean_std(x, eps)
        mean, std = torch.where(empty, full_mean, mean), torch.where(empty, full_std, std)
    return mean, std


def tap_stats(feats: dict[str, Tensor], weight: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """tap → (B, C, h, w) features ⇒ tap → their channel ``(mean, std)``, each (B, C, 1, 1), float32 at least.

    ``weight``: (B, 1, H, W) ≥ 0 at the image's pixel size (a style's painted pixels,
    :func:`adain_core.backdrop.painted_weights`), area-averaged onto each tap's grid; ``None``: every position alike.
    """
    if weight is None:
        return {t: calc_mean_std(f) for t, f in feats.items()}
    return {t: masked_mean_std(f, F.adaptive_avg_pool2d(weight.float(), f.shape[-2:]).to(f.device))
            for t, f in feats.items()}


def adain(
    content_feat: Tensor,
    style_mean: Tensor,
    style_std: Tensor,
    eps: float = 1e-5,
    content_mean: Tensor | None = None,
    content_std: Tensor | None = None,
) -> Tensor:
    """Adaptive instance normalisation: ``σ(y)·(x − μ(x))/σ(x) + μ(y)``.

    Args:
        content_feat: (B, C, H, W) content features ``x``.
        style_mean: (B|1, C, 1, 1) or (C,) style channel means ``μ(y)``.
        style_std: same shape as ``style_mean``, style channel stds ``σ(y)``.
        eps: variance epsilon used when the content statistics are computed here.
        content_mean: optional precomputed (B, C, 1, 1) content means (global tile statistics, temporal EMA, masks).
        content_std: optional precomputed content stds, given together with ``content_mean``.

    Returns:
        (B, C, H, W) target features (float32, or float64 for float64 input) whose channel mean/std equal the
        style's.
    """
    # Half precision is upcast to float32; float64 stays float64 (gradcheck).
    x = content_feat.float() if content_feat.dtype in (torch.float16, torch.bfloat16) else content_feat
    c = x.shape[1]
    s_mean = style_mean.to(x.dtype).reshape(-1, c, 1, 1)
    s_std = style_std.to(x.dtype).reshape(-1, c, 1, 1)
    if content_mean is None or content_std is None:
        content_mean, content_std = calc_mean_std(x, eps)
    return s_std * (x - content_mean.to(x.dtype)) / content_std.to(x.dtype) + s_mean


def blend_alpha(target: Tensor, content_feat: Tensor, alpha: float | Tensor) -> Tensor:
    """α blend at relu4_1: ``α·t + (1 − α)·f_c``; α = 0 reconstructs the content.

    Args:
        target: (B, C, H, W) AdaIN target ``t``.
        content_feat: (B, C, H, W) content features ``f_c``.
        alpha: scalar, or a (B|1, 1, H, W) map.
    """
    f = content_feat.float() if content_feat.dtype in (torch.float16, torch.bfloat16) else content_feat
    return alpha * target + (1 - alpha) * f


class AdaIN(nn.Module):
    """Module wrapper of :func:`adain` taking style features (not statistics) as the second input."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, content_feat: Tensor, style_feat: Tensor) -> Tensor:
        s_mean, s_std = calc_mean_std(style_feat, self.eps)
        return adain(content_feat, s_mean, s_std, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def region_stats(feat: Tensor, masks: Masks) -> Stats:
    """Content statistics of each style region: over the whole image where its mask is ``None``, else weighted.

    Args:
        feat: (B, C, H, W) features.
        masks: per region, (B|1, 1, H, W) weights in [0, 1] or ``None`` (everywhere).
    """
    return [calc_mean_std(feat) if m is None else masked_mean_std(feat, m) for m in masks]


def adain_target(feat: Tensor, style_stats: Stats, content_stats: Stats, masks: Masks, alpha: float,
                 marks: Sequence[Tensor | None] | None = None) -> Tensor:
    """The decoder's input: each region's AdaIN target blended with α, the regions mixed by their soft masks.

    Where the masks sum to less than 1 the content features show through; where they overlap they share.

    Args:
        feat: (B, C, H, W) content features.
        style_stats: per region, style ``(mean, std)`` (B|1, C, 1, 1).
        content_stats: per region, content ``(mean, std)`` (B, C, 1, 1) (global ones when tiled, smoothed ones
            for frames).
        masks: per region, (B|1, 1, H, W) weights in [0, 1] aligned with ``feat``, or ``None`` (everywhere).
        alpha: style strength (0 = content features).
        marks: per region, (B|1, C, H, W) normalised features added to the content's before the style's statistics
            are given to them (:func:`adain_core.marks.mark_fields`), or ``None``; default: none.

    Returns:
        (B, C, H, W) float32 target features.
    """
    f = feat.float()
    marks = [None] * len(masks) if marks is None else marks

    def styled(r: int) -> Tensor:
        (sm, ss), (cm, cs), mark = style_stats[r], content_stats[r], marks[r]
        target = adain(f, sm, ss, content_mean=cm, content_std=cs)
        return blend_alpha(target if mark is None else target + ss.to(f.dtype) * mark.to(f.dtype), f, alpha)

    if len(masks) == 1 and masks[0] is None:
        return styled(0)
    weights = [torch.ones_like(f[:, :1]) if m is None else m.expand(f.shape[0], -1, -1, -1) for m in masks]
    cover = sum(weights)
    scale = 1.0 / cover.clamp_min(1.0)
    out = f * (1 - cover * scale)
    for r, wgt in enumerate(weights):
        out = out + wgt * scale * styled(r)
    return out


class StreamingStats:
    """Exact per-region channel mean/std of an image seen piece by piece (the tiles' cores), in float64.

    Example:
        >>> f = torch.rand(1, 4, 6, 6)
        >>> acc = StreamingStats(1)
        >>> acc.add(f[..., :3], [None]); acc.add(f[..., 3:], [None])
        >>> mean, std = acc.result()[0]
        >>> torch.allclose(mean, calc_mean_std(f)[0]) and torch.allclose(std, calc_mean_std(f)[1], atol=1e-6)
        True
    """

    def __init__(self, regions: int) -> None:
        self.regions = regions
        self._sums: list[list[Tensor]] | None = None

    def add(self, feat: Tensor, masks: Masks) -> None:
        """Accumulate a piece: ``feat`` (B, C, h, w) and, per region, its mask window (B|1, 1, h, w) or ``None``."""
        core = feat.double()
        b = core.shape[0]
        parts = []
        for m in masks:
            wgt = torch.ones_like(core[:, :1]) if m is None else m.double().expand(b, -1, -1, -1)
            parts.append([wgt.sum(dim=(2, 3)), (core * wgt).sum(dim=(2, 3)), (core**2 * wgt).sum(dim=(2, 3))])
        self._sums = parts if self._sums is None else [[a + c for a, c in zip(acc, p)]
                                                       for acc, p in zip(self._sums, parts)]

    def result(self, eps: float = 1e-5) -> Stats:
        """Per region ``(mean, std)``, each (B, C, 1, 1) float32. A region absent from the image (its mask 0
        everywhere) gets mean 0, std 1: its statistics never matter.

        Raises:
            ValueError: nothing was added.
        """
        if self._sums is None:
            raise ValueError("StreamingStats.result() before any add()")
        stats = []
        for n, s1, s2 in self._sums:
            empty = n <= 1e-8
            mean = s1 / n.clamp_min(1e-8)
            var = (s2 / n.clamp_min(1e-8) - mean**2).clamp_min(0)
            if bool(empty.any()):
                mean = torch.where(empty, torch.zeros_like(mean), mean)
                var = torch.where(empty, torch.ones_like(var), var)
            stats.append((mean.float()[..., None, None], (var + eps).sqrt().float()[..., None, None]))
        return stats


def adain_targets(feats: dict[str, Tensor], style_stats: dict[str, Stats], content_stats: dict[str, Stats],
                  masks: dict[str, Masks], alpha: float,
                  marks: dict[str, Sequence[Tensor | None]] | None = None) -> dict[str, Tensor]:
    """The decoder's inputs: :func:`adain_target` at each of its taps (relu4_1, and relu3_1 for a skip decoder).

    Args:
        feats: tap → (B, C, h, w) content features.
        style_stats, content_stats, masks, marks: tap → that tap's per-region arguments of :func:`adain_target`
            (``marks`` optional).
        alpha: style strength (0 = content features).

    Returns:
        tap → (B, C, h, w) float32 target features.
    """
    return {t: adain_target(f, style_stats[t], content_stats[t], masks[t], alpha, None if marks is None else marks[t])
            for t, f in feats.items()}


def style_transfer(encode: Callable[[Tensor], dict[str, Tensor]], decode: Callable[[dict[str, Tensor]], Tensor],
                   content: Tensor, style_stats: dict[str, Stats], masks: dict[str, Masks] | None = None,
                   alpha: float = 1.0, smooth: Callable[[dict[str, Stats]], dict[str, Stats]] | None = None,
                   marks: Callable[[dict[str, Tensor], dict[str, Stats]], dict[str, Sequence[Tensor | None]]]
                   | None = None) -> tuple[Tensor, dict[str, Stats]]:
    """The method in one pass: encode → content statistics → AdaIN per region → mix → α → decode, at each of the
    decoder's input taps (relu4_1; and relu3_1 for a skip decoder, see :class:`adain_core.networks.Decoder`).

    The engine's one-pass path is this function; its tiled path is tested against it.

    Args:
        encode: (B, 3, H, W) RGB in [0, 1] (H, W multiples of 8) → tap → features, e.g.
            ``{"relu4_1": (B, 512, H/8, W/8)}``.
        decode: tap → AdaIN target → (B, 3, H, W) RGB (not clamped).
        content: (B, 3, H, W) float in [0, 1].
        style_stats: tap → per region, style ``(mean, std)`` (B|1, C, 1, 1).
        masks: tap → per region, weights in [0, 1] on that tap's grid ((B|1, 1, H/8, W/8) at relu4_1) or ``None``;
            default: every region everywhere.
        alpha: style strength.
        smooth: optional hook given the measured content statistics (tap → per region), returning those to use
            (temporal smoothing).
        marks: optional hook given the features and the content statistics used, returning the ``marks`` of
            :func:`adain_targets` (:func:`adain_core.marks.mark_fields`).

    Returns:
        ``(image, content_stats)``: the decoded (B, 3, H, W) image and the content statistics used (tap → per
        region).
    """
    feats = encode(content)
    if masks is None:
        masks = {t: [None] * len(style_stats[t]) for t in feats}
    stats = {t: region_stats(f, masks[t]) for t, f in feats.items()}
    if smooth is not None:
        stats = smooth(stats)
    fields = None if marks is None else marks(feats, stats)
    return decode(adain_targets(feats, style_stats, stats, masks, alpha, fields)), stats
