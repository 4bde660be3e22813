"""The painting's own marks where the photo is flat: pure tensor functions behind the ``marks`` option.

Where a photo is flat (a clear sky) its normalised features are near zero, so the AdaIN target there is the
painting's mean feature and the decoder paints the same default dabs whatever the painting. These functions
take the painting's most *typical* blocks of normalised features (blocks whose own channel statistics are
closest to the whole painting's: texture, not a figure or a blotch; only blocks that are all painting, not a flat
backdrop), lay them out on a grid in image coordinates, and add them, weighted by how flat the photo is, to the
photo's normalised features (``docs/TRAINING_LOG.md``, stretch 30).

Everything is a function of image coordinates and of the content statistics passed in, so tiles, frames and a
one-pass image agree: a tile asks for its window of the same grid.

Shapes: relu4_1 features are (B, 512, H/8, W/8); relu3_1 (B, 256, H/4, W/4). A block is :data:`BLOCK` relu4_1 cells
(32 px) square, and the same 32 px at every tap.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .networks import TAP_SCALE

__all__ = ["BLOCK", "FLAT_LEVEL", "Bank", "typical_blocks", "quilt", "flatness", "mark_fields"]

#: a block's side in relu4_1 cells (32 px; 8 cells at relu3_1)
BLOCK = 4
#: mean |normalised feature| (over channels, averaged over 5 × 5 relu4_1 cells) at and above which the photo counts
#: as textured and gets no marks; measured: its 75th percentile is 0.71-0.80 on the eight eval photos
FLAT_LEVEL = 0.75
#: share of the painting's candidate blocks kept (the most typical ones), and the most kept
KEEP = 0.25
MAX_BLOCKS = 64

#: tap → (N, C, b, b) blocks of normalised features, the same N blocks (the same places of the painting) at each tap
Bank = dict[str, Tensor]


def _side(tap: str) -> int:
    """A block's side in cells of ``tap``."""
    return BLOCK * TAP_SCALE["relu4_1"] // TAP_SCALE[tap]


def typical_blocks(z: dict[str, Tensor], painted: Tensor | None = None) -> Bank:
    """The painting's most typical blocks of normalised features, the same places at each tap.

    Args:
        z: tap → (1, C, h, w) the painting's features normalised by its own channel mean and std (``"relu4_1"``
            required; other taps of :data:`adain_core.networks.TAP_SCALE` at their own scale).
        painted: (1, 1, H, W) weights in [0, 1] of the painting's pixels (0 on a flat backdrop), or ``None``.

    Returns:
        tap → (N, C, b, b): the :data:`KEEP` share (at most :data:`MAX_BLOCKS`) of the relu4_1 blocks
        (:data:`BLOCK` cells square, every position) whose own channel mean and std are closest to 0 and 1, among
        those at least 90 % painted everywhere; N ≥ 1 (the most typical block if none is painted enough).

    Raises:
        ValueError: a painting smaller than one block (32 px) at relu4_1.
    """
    z4 = z["relu4_1"].float()
    h, w = z4.shape[-2:]
    if h < BLOCK or w < BLOCK:
        raise ValueError(f"a painting of {w * 8}x{h * 8} px is smaller than one {BLOCK * 8} px block of marks")
    mean = F.avg_pool2d(z4, BLOCK, 1)
    std = (F.avg_pool2d(z4 ** 2, BLOCK, 1) - mean ** 2).clamp_min(0).sqrt()
    odd = (mean ** 2 + (std - 1) ** 2).mean(1)[0]  # (h', w'): how far a block's statistics are from the whole's
    ok = torch.ones_like(odd, dtype=torch.bool)
    if painted is not None:
        cover = -F.max_pool2d(-F.adaptive_avg_pool2d(painted.float(), (h, w)), BLOCK, 1)[0, 0]
        ok = cover >= 0.9
    n = min(MAX_BLOCKS, max(1, int(KEEP * int(ok.sum()))))
    order = torch.where(ok, odd, odd + float("inf")).flatten().argsort()[:n]
    ys, xs = (order // odd.shape[1]).tolist(), (order % odd.shape[1]).tolist()
    bank = {}
    for tap, zt in z.items():
        b, k = _side(tap), _side(tap) // BLOCK
        bank[tap] = torch.stack([zt[0, :, y * k:y * k + b, x * k:x * k + b].float() for y, x in zip(ys, xs)])
    return bank


def quilt(blocks: Tensor, y0: int, x0: int, h: int, w: int) -> Tensor:
    """The window (rows ``y0 … y0+h``, columns ``x0 … x0+w``, in cells of the blocks' tap) of an endless grid of
    ``blocks``, the block of each grid square chosen by a hash of its position (the same for every window).

    Args:
        blocks: (N, C, b, b).

    Returns:
        (1, C, h, w).
    """
    n, c, b, _ = blocks.shape
    rows = torch.arange(y0 // b, (y0 + h - 1) // b + 1)
    cols = torch.arange(x0 // b, (x0 + w - 1) // b + 1)
    pick = ((rows[:, None] * 73856093) ^ (cols[None, :] * 19349663)) % n
    grid = blocks[pick.flatten()].reshape(len(rows), len(cols), c, b, b).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(1, c, len(rows) * b, len(cols) * b)
    dy, dx = y0 - int(rows[0]) * b, x0 - int(cols[0]) * b
    return grid[:, :, dy:dy + h, dx:dx + w]


def flatness(z4: Tensor) -> Tensor:
    """How flat the photo is around each relu4_1 cell: 1 where its normalised features are zero, 0 at and above
    :data:`FLAT_LEVEL`.

    Args:
        z4: (B, 512, h, w) the photo's relu4_1 features normalised by their channel mean and std.

    Returns:
        (B, 1, h, w) in [0, 1].
    """
    level = F.avg_pool2d(z4.abs().mean(1, keepdim=True), 5, 1, 2, count_include_pad=False)
    return (1 - level / FLAT_LEVEL).clamp(0, 1)


def mark_fields(feats: dict[str, Tensor], content_stats: dict[str, list[tuple[Tensor, Tensor]]],
                banks: Sequence[Bank | None], strength: float, origin: tuple[int, int] = (0, 0)
                ) -> dict[str, list[Tensor | None]]:
    """Per tap and style region, the marks to add to the photo's normalised features.

    Args:
        feats: tap → (B, C, h, w) the photo's features (``"relu4_1"`` required); a window of the image.
        content_stats: tap → per region (mean, std) (B, C, 1, 1), those the AdaIN target uses.
        banks: per region its :func:`typical_blocks`, or ``None`` (no marks in that region).
        strength: ≥ 0; 1 adds a whole painting block where the photo is quite flat.
        origin: the window's top-left pixel (y, x) in the image, multiples of 8 (whole relu4_1 cells).

    Returns:
        tap → per region (B, C, h, w) float32, or ``None``.
    """
    z4 = feats["relu4_1"]
    fields: dict[str, list[Tensor | None]] = {t: [] for t in feats}
    for r, bank in enumerate(banks):
        if bank is None or strength <= 0:
            for t in feats:
                fields[t].append(None)
            continue
        mean, std = content_stats["relu4_1"][r]
        flat = strength * flatness((z4.float() - mean) / std)
        for t, f in feats.items():
            s = TAP_SCALE[t]
            weight = flat if t == "relu4_1" else F.interpolate(flat, size=f.shape[-2:], mode="bilinear",
                                                               align_corners=False)
            fields[t].append(weight * quilt(bank[t].to(f.device), origin[0] // s, origin[1] // s, *f.shape[-2:]))
    return fields
