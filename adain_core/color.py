"""Colour modes around the network: CORAL mean/covariance transfer (``preserve``) and luminance-only
stylisation that keeps the content's chroma (``luminance``, in YUV via kornia)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["COLOR_MODES", "color_stats", "coral", "match_colors", "keep_chroma"]

COLOR_MODES = ("style", "preserve", "luminance")


def color_stats(img: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the RGB pixels of each image.

    Args:
        img: (B, 3, H, W) float in [0, 1].

    Returns:
        ``(mean, cov)``: (B, 3) and (B, 3, 3), float64.
    """
    x = img.double().reshape(img.shape[0], 3, -1)
    mean = x.mean(dim=2)
    xc = x - mean[..., None]
    cov = xc @ xc.transpose(1, 2) / max(x.shape[2] - 1, 1)
    return mean, cov


def _sqrtm(cov: Tensor, inverse: bool) -> Tensor:
    vals, vecs = torch.linalg.eigh(cov + 1e-5 * torch.eye(3, dtype=cov.dtype, device=cov.device))
    vals = vals.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return vecs @ torch.diag_embed(vals**power) @ vecs.transpose(-1, -2)


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
    s_mean, s_cov = color_stats(x)
    flat = x.double().reshape(3, -1) - s_mean[0][:, None]
    transform = _sqrtm(target_cov.double(), False) @ _sqrtm(s_cov[0], True)
    out = transform @ flat + target_mean.double()[:, None]
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


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

    def stats(x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.reshape(x.shape[0], 3, -1)
        step = max(1, flat.shape[2] // max_pixels)
        return color_stats(flat[:, :, ::step].reshape(x.shape[0], 3, 1, -1))

    i_mean, i_cov = stats(image)
    r_mean, r_cov = stats(reference)
    out = torch.empty(image.shape, dtype=torch.float32, device=image.device)
    for b in range(image.shape[0]):
        transform = (_sqrtm(r_cov[b], False) @ _sqrtm(i_cov[b], True)).float()
        shift = (r_mean[b] - transform.double() @ i_mean[b]).float()
        out[b] = torch.einsum("ij,jhw->ihw", transform, image[b].float()) + shift[:, None, None]
    return out.clamp(0, 1)


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
