"""Colour modes around the network: CORAL mean/covariance transfer (``preserve``) and luminance-only
stylisation that keeps the content's chroma (``luminance``, in YUV via kornia)."""

from __future__ import annotations

import torch
from torch import Tensor

from .vocabulary import COLOR_MODES

__all__ = ["COLOR_MODES", "color_stats", "coral", "match_colors", "keep_chroma", "recolor_styles", "after_pass",
           "after_image"]


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


def after_pass(mode: str, out: Tensor, content: Tensor) -> Tensor:
    """After each decoder pass (whole image or tile): clamp to [0, 1]; ``luminance`` puts the content's chroma
    back. ``out`` and ``content``: (B, 3, H, W) over the same pixels."""
    out = out.clamp(0, 1)
    return keep_chroma(out, content) if mode == "luminance" else out


def after_image(mode: str, out: Tensor, content: Tensor) -> Tensor:
    """After the whole image is assembled: ``preserve`` gives the result the content's RGB mean and covariance
    (the decoder can still shift colours after the style was recoloured). (B, 3, H, W) in [0, 1]."""
    return match_colors(out, content) if mode == "preserve" else out
