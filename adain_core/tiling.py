"""Tile planning and the memory pre-flight for seam-free tiled stylisation.

A tile is a *core* (the part of the image it is responsible for, aligned to the 8-px feature grid) plus a margin
of context on every side. The margin covers the receptive fields of the encoder (relu4_1, about ±30 px) and the
decoder (about ±26 px) plus half the feather band, so each tile's output is exact (equal to the one-pass result) over
its core and the feather band; the cores' linear feather weights sum to 1, so the blend is seam-free by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["MARGIN", "FEATHER", "Tile", "plan_tiles", "feather_weights", "paste_feathered", "estimate_pass_bytes",
           "choose_tile_size"]

MARGIN = 96
FEATHER = 32
# Peak bytes per input pixel of one image in a single encode + decode pass, measured on this CPU (peak RSS growth
# between 512² and 1024²: 624 B/px bf16 autocast, 560 B/px fp32) with about 20 % headroom.
_BYTES_PER_PX = {"fp32": 720, "bf16": 800, "fp16": 800}
_FIXED_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Tile:
    """One tile: core rows/cols ``[y0, y1) x [x0, x1)`` and the context region ``[cy0, cy1) x [cx0, cx1)``
    that is encoded and decoded (both in padded-image pixels; core bounds are multiples of 8)."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def _spans(length: int, core: int) -> list[tuple[int, int]]:
    n = max(1, -(-length // core))
    # Even split, each span a multiple of 8 (length itself is a multiple of 8).
    step = -(-length // (8 * n)) * 8
    return [(s, min(s + step, length)) for s in range(0, length, step)]


def plan_tiles(height: int, width: int, tile: int, margin: int = MARGIN) -> list[Tile]:
    """Cover a padded image (both sides multiples of 8) with tiles of core size ≤ ``tile`` (rounded to 8).

    Args:
        height, width: padded image size in px (multiples of 8).
        tile: wanted core size in px (≥ 8).
        margin: context on each side in px (multiple of 8).
    """
    core = max(8, tile // 8 * 8)
    tiles = []
    for y0, y1 in _spans(height, core):
        for x0, x1 in _spans(width, core):
            tiles.append(Tile(y0, y1, x0, x1, max(0, y0 - margin), min(height, y1 + margin),
                              max(0, x0 - margin), min(width, x1 + margin)))
    return tiles


def feather_weights(lo: int, hi: int, start: int, stop: int, length: int, feather: int = FEATHER) -> torch.Tensor:
    """1-D blend weights over the context span ``[start, stop)`` for a core ``[lo, hi)`` of an axis of ``length``.

    The weight ramps linearly from 0 to 1 over ``[lo - feather/2, lo + feather/2)`` (not at the image border) and
    back down over ``[hi - feather/2, hi + feather/2)``; neighbouring tiles' weights sum to 1.
    """
    pos = torch.arange(start, stop, dtype=torch.float32) + 0.5
    half = feather / 2
    up = torch.ones_like(pos) if lo == 0 else ((pos - (lo - half)) / feather).clamp(0, 1)
    down = torch.ones_like(pos) if hi == length else (((hi + half) - pos) / feather).clamp(0, 1)
    return up * down


def paste_feathered(canvas: Tensor, out: Tensor, tile: Tile, feather: int = FEATHER) -> None:
    """Add a tile's result into ``canvas``: its core plus half the feather band on each side, weighted by
    :func:`feather_weights` (neighbouring tiles' weights sum to 1, so the canvas ends up seam-free).

    Args:
        canvas: (B, 3, Hp, Wp) float, the padded image being assembled (modified in place).
        out: (B, 3, cy1 - cy0, cx1 - cx0) the tile's decoded context region.
        tile: the tile's core and context bounds.
    """
    hp, wp = canvas.shape[-2:]
    t = tile
    oy0, oy1 = max(0, t.y0 - feather // 2), min(hp, t.y1 + feather // 2)
    ox0, ox1 = max(0, t.x0 - feather // 2), min(wp, t.x1 + feather // 2)
    wy = feather_weights(t.y0, t.y1, oy0, oy1, hp, feather)
    wx = feather_weights(t.x0, t.x1, ox0, ox1, wp, feather)
    piece = out[:, :, oy0 - t.cy0:oy1 - t.cy0, ox0 - t.cx0:ox1 - t.cx0].to(canvas.device)
    canvas[:, :, oy0:oy1, ox0:ox1] += piece * (wy[:, None] * wx[None, :])


def estimate_pass_bytes(height: int, width: int, batch: int, precision: str) -> int:
    """Estimated peak memory in bytes of one encode + AdaIN + decode pass over a (batch, 3, height, width) input."""
    return _FIXED_BYTES + batch * height * width * _BYTES_PER_PX[precision]


def choose_tile_size(budget: int, batch: int, precision: str, margin: int = MARGIN) -> int | None:
    """Largest core size (multiple of 64, 64…4096 px) whose context tile fits ``budget`` bytes; None if none fits."""
    best = None
    for core in range(64, 4097, 64):
        side = core + 2 * margin
        if estimate_pass_bytes(side, side, batch, precision) <= budget:
            best = core
        else:
            break
    return best
