"""A style image's flat backdrop: the uniform colour a digital cut-out (a character portrait on white, a figure on
black) sits on, which is not part of the painting's colours or brushwork. Found as the pixels connected to the image
border whose colour stays within :data:`TOLERANCE` of the border's median colour; scanned paper and painted skies
vary more than that and are kept."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["TOLERANCE", "BORDER_SHARE", "MIN_SHARE", "flat_backdrop", "painted_weights"]

#: Largest per-channel difference from the border's median colour a backdrop pixel may have (about 4 of 255 levels;
#: JPEG keeps a flat fill within 1–2 levels, while paper scans and painted gradients vary by more).
TOLERANCE = 0.015
#: The backdrop colour must cover at least this share of the 1-px border (a backdrop surrounds the figure).
BORDER_SHARE = 0.5
#: A backdrop counts only if it covers at least this share of the image and leaves at least this share painted.
MIN_SHARE = 0.05
# The flood fill runs on cells of _CELL x _CELL px (a cell joins when all its pixels are near the border colour), then
# _CELL more 1-px steps at full resolution reach into the cells' edges; it checks for its end every _CHECK_EVERY steps.
_CELL = 4
_CHECK_EVERY = 16


def _border(x: Tensor) -> Tensor:
    """The 1-px border of (C, H, W) as (C, 2H + 2W)."""
    return torch.cat([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], dim=1)


def _flood(reached: Tensor, allowed: Tensor, steps: int | None = None) -> Tensor:
    """Grow (1, 1, H, W) ``reached`` by 8-connected 1-px steps within ``allowed`` (same shape, {0, 1}): ``steps``
    steps, or until it stops growing."""
    reached = reached * allowed
    if steps is not None:
        for _ in range(steps):
            reached = F.max_pool2d(reached, 3, stride=1, padding=1) * allowed
        return reached
    for _ in range(0, sum(allowed.shape[-2:]), _CHECK_EVERY):
        before = reached
        reached = _flood(reached, allowed, _CHECK_EVERY)
        if torch.equal(reached, before):
            break
    return reached


def _edges(grid: Tensor) -> Tensor:
    """(1, 1, H, W): 1 on the 1-px border, 0 inside."""
    edges = torch.zeros_like(grid)
    edges[..., 0, :] = edges[..., -1, :] = edges[..., :, 0] = edges[..., :, -1] = 1
    return edges


def _one_backdrop(image: Tensor) -> Tensor:
    """:func:`flat_backdrop` of one (3, H, W) image → (H, W) float in {0, 1}."""
    seed = _border(image).median(dim=1).values
    near = ((image - seed[:, None, None]).abs().amax(dim=0) <= TOLERANCE).float()
    if float((_border(near[None]) > 0).float().mean()) < BORDER_SHARE:
        return torch.zeros_like(near)
    grid = near[None, None]
    cells = -F.max_pool2d(-grid, _CELL, ceil_mode=True)
    coarse = _flood(_edges(cells), cells)
    h, w = near.shape
    start = F.interpolate(coarse, scale_factor=_CELL, mode="nearest")[..., :h, :w]
    reached = _flood(torch.maximum(start, _edges(grid)), grid, _CELL)
    share = float(reached.mean())
    return reached[0, 0] if MIN_SHARE <= share <= 1 - MIN_SHARE else torch.zeros_like(near)


def flat_backdrop(image: Tensor) -> Tensor:
    """Where each image shows a flat backdrop (see the module docstring): 1 there, 0 on the painting. An image
    without one (its border varies, or the flat part is under :data:`MIN_SHARE` or over 1 − :data:`MIN_SHARE` of
    it) is all 0. Backdrop reaching into the figure through a gap narrower than 4 px is followed only 4 px.

    Args:
        image: (B, 3, H, W) float in [0, 1].

    Returns:
        (B, 1, H, W) float32 in {0, 1}.

    Example:
        >>> x = torch.ones(1, 3, 32, 32); x[..., 8:24, 8:24] = 0.2
        >>> flat_backdrop(x).mean().item()
        0.75
    """
    x = image.float()
    return torch.stack([_one_backdrop(x[b]) for b in range(x.shape[0])])[:, None]


def painted_weights(image: Tensor, alpha: Tensor | None = None) -> Tensor | None:
    """How much each pixel of a style image belongs to the painting: its alpha, times 0 on a flat backdrop
    (:func:`flat_backdrop`); ``None`` when that is 1 everywhere (use the whole image).

    Args:
        image: (B, 3, H, W) float in [0, 1].
        alpha: (B, 1, H, W) float in [0, 1] (transparent = 0), or ``None``.

    Returns:
        (B, 1, H, W) float32 in [0, 1], or ``None``.
    """
    weights = 1 - flat_backdrop(image)
    if alpha is not None:
        weights = weights * alpha.float().clamp(0, 1)
    return None if bool((weights >= 1).all()) else weights
