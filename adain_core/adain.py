"""AdaIN maths as small pure functions: channel statistics, the AdaIN transform and the α blend."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["calc_mean_std", "masked_mean_std", "adain", "blend_alpha", "AdaIN"]


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
    full_mean, full_std = calc_mean_std(x, eps)
    empty = total <= 1e-8
    mean = torch.where(empty, full_mean, mean)
    std = torch.where(empty, full_std, (var + eps).sqrt())
    return mean, std


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
