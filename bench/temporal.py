"""Flicker of stylised frame sequences with and without temporal smoothing of the content statistics.

A synthetic camera move over one photo (the first evaluation photo in ../shared/data, else a synthetic picture):
(1) pan + zoom: flicker ratio = mean |Δ output| / mean |Δ input| between consecutive frames (the issue's metric);
(2) pure pan by whole pixels: the same ratio after motion compensation (outputs compared on the overlapping part),
    which isolates the flicker from the motion itself.
Lower is steadier; each temporal S is compared with S = 0 (no smoothing).

    python bench/temporal.py [--model PATH] [--frames 16] [--frame-size 192] [--temporal 0,0.5,0.7,0.9]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import adain_core  # noqa: E402
from adain_core import store  # noqa: E402
from adain_core.images import load_image, pil_to_tensor  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "eval"


def _photo(kind: str, seed: int) -> Image.Image:
    found = sorted((SHARED / kind).glob("*.jpg")) if (SHARED / kind).is_dir() else []
    if found:
        return load_image(found[0]).convert("RGB")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import synthetic_image  # the tests' deterministic picture

    return synthetic_image(384, 576, seed=seed)


def pan_zoom(photo: Image.Image, frames: int, size: int) -> list[torch.Tensor]:
    """Crops moving left to right while zooming in from 100 % to 80 % of the photo's height, resized to size²."""
    w, h = photo.size
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        side = min(h, w) * (1.0 - 0.2 * t)
        cx = side / 2 + t * (w - side)
        cy = h / 2
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        out.append(pil_to_tensor(photo.resize((size, size), Image.Resampling.BILINEAR, box=box))[0])
    return out


def pan(photo: Image.Image, frames: int, size: int, step: int) -> list[torch.Tensor]:
    """Crops of size² moving right by ``step`` px per frame (photo scaled so that the whole move fits)."""
    need_w = size + step * (frames - 1)
    scale = max(need_w / photo.size[0], size / photo.size[1])
    big = photo.resize((max(need_w, round(photo.size[0] * scale)), max(size, round(photo.size[1] * scale))),
                       Image.Resampling.BICUBIC)
    x, _ = pil_to_tensor(big)
    top = (x.shape[-2] - size) // 2
    return [x[..., top:top + size, i * step:i * step + size] for i in range(frames)]


def ratio(frames: list[torch.Tensor], outs: list[torch.Tensor], step: int = 0) -> float:
    """Mean |Δ output| / mean |Δ input|; with ``step`` the outputs are compared after undoing the pan."""
    d_in = np.mean([float((frames[i + 1] - frames[i]).abs().mean()) for i in range(len(frames) - 1)])
    if step:
        m = 16  # ignore the columns where new content enters
        d_out = np.mean([float((outs[i][..., step + m:-m] - outs[i + 1][..., m:-step - m]).abs().mean())
                         for i in range(len(outs) - 1)])
    else:
        d_out = np.mean([float((outs[i + 1] - outs[i]).abs().mean()) for i in range(len(outs) - 1)])
    return float(d_out / d_in)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file or name (default: bundled default, else random weights)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--frame-size", type=int, default=192)
    parser.add_argument("--step", type=int, default=8, help="pan speed in px per frame (pure pan)")
    parser.add_argument("--temporal", default="0,0.5,0.7,0.9")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    values = [float(v) for v in args.temporal.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        model, what = args.model, args.model
        if model is None:
            model = store.bundled_models().get("default")
            what = "bundled default"
            if model is None:
                model, what = make_random_model(Path(tmp) / "random.safetensors"), "random weights"
        engine = adain_core.load(model, device="auto", precision=args.precision)
    photo, painting = _photo("content", 1), _photo("style", 2)
    card = engine.encode_style(painting, size=256)
    sequences = {"pan + zoom": (pan_zoom(photo, args.frames, args.frame_size), 0),
                 "pan, motion-compensated": (pan(photo, args.frames, args.frame_size, args.step), args.step)}
    print(f"model: {what}; {engine.device}, {engine.precision}; {args.frames} frames of {args.frame_size}² "
          f"from a photo; flicker ratio = mean |Δ output| / mean |Δ input| (lower = steadier)")
    print()
    print("| temporal S | " + " | ".join(sequences) + " |")
    print("|---:|" + "---:|" * len(sequences))
    base: dict[str, float] = {}
    for s in values:
        cells = []
        for name, (frames, step) in sequences.items():
            outs = list(engine.stylize_frames(frames, card, temporal=s))
            r = ratio(frames, outs, step)
            base.setdefault(name, r)
            cells.append(f"{r:.3f} ({r / base[name]:.2f}× of S=0)")
        print(f"| {s:g} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
