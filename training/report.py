"""Pictures for people: image grids (sample grids, contact sheets) and the loss-curve plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

__all__ = ["tensor_to_pil", "save_grid", "plot_loss_curve", "contact_sheet"]


def tensor_to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] → RGB PIL image."""
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr))


def _fit(im: Image.Image, cell: int) -> Image.Image:
    im = im.copy()
    im.thumbnail((cell, cell), Image.LANCZOS)
    canvas = Image.new("RGB", (cell, cell), (255, 255, 255))
    canvas.paste(im, ((cell - im.width) // 2, (cell - im.height) // 2))
    return canvas


def save_grid(rows: Sequence[Sequence[Tensor | Image.Image | None]], path: Path, cell: int = 0,
              pad: int = 2, labels: Sequence[str] | None = None) -> Path:
    """Write a grid of images (rows of tensors (3, H, W) or PIL images; ``None`` = blank) as PNG or JPEG.

    ``cell`` = square cell size in px (0: the first image's size). ``labels``: one text per row, drawn in its
    first cell.
    """
    pil_rows = [[tensor_to_pil(x) if isinstance(x, Tensor) else x for x in row] for row in rows]
    if not cell:
        first = next(x for row in pil_rows for x in row if x is not None)
        cell = max(first.size)
    n_cols = max(len(r) for r in pil_rows)
    sheet = Image.new("RGB", (n_cols * (cell + pad) + pad, len(pil_rows) * (cell + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(pil_rows):
        for c, im in enumerate(row):
            if im is None:
                continue
            sheet.paste(_fit(im, cell), (pad + c * (cell + pad), pad + r * (cell + pad)))
        if labels and labels[r]:
            draw.text((pad + 3, pad + r * (cell + pad) + 3), labels[r], fill=(255, 255, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(path, quality=88)
    else:
        sheet.save(path, optimize=True)
    return path


def plot_loss_curve(log_path: Path, out_path: Path, smooth: int = 20) -> Path | None:
    """Plot content and style losses (weighted terms, moving average over ``smooth`` records) from a JSONL log."""
    log_path = Path(log_path)
    if not log_path.is_file():
        return None
    records = []
    for line in log_path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in records])
    # smooth the warm-up and the AdaIN phase separately: a window across the switch would invent a ramp
    phase = np.array(["pixel_l1" in r for r in records])
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    colors = {"loss": "C0", "content": "C1", "style": "C2"}
    for key, label in (("loss", "total"), ("content", "content"), ("style", "style (before λ)")):
        vals = np.array([r.get(key, np.nan) for r in records], dtype=float)
        first = True
        for in_warmup in (True, False):
            sel = (phase == in_warmup) & np.isfinite(vals) & (vals > 0)
            if not sel.any():
                continue
            v = vals[sel]
            k = max(1, min(smooth, len(v) // 5 or 1))
            cum = np.cumsum(np.insert(v, 0, 0.0))
            idx = np.arange(1, len(v) + 1)
            lo = np.maximum(0, idx - k)
            sm = (cum[idx] - cum[lo]) / (idx - lo)  # trailing moving average, shorter at the start
            ax.plot(steps[sel], sm, color=colors[key], lw=1.2, label=label if first else None)
            first = False
    warm = [r["step"] for r in records if "pixel_l1" in r]
    if warm:
        ax.axvline(max(warm), color="grey", ls=":", lw=1, label="end of warm-up")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (weighted terms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


def contact_sheet(contents: Sequence[Image.Image], styles: Sequence[Image.Image],
                  outputs: Sequence[Sequence[Image.Image]], path: Path, cell: int = 128) -> Path:
    """Contact sheet: a header row of styles, then per content its photo followed by one output per style."""
    rows: list[list[Image.Image | None]] = [[None, *styles]]
    for content, outs in zip(contents, outputs):
        rows.append([content, *outs])
    return save_grid(rows, path, cell=cell)
