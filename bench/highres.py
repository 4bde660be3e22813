"""Peak memory and time of one very large stylisation (default 7680×4320) under a memory budget, run through the
``adain`` CLI in a child process so that its peak RSS can be measured (``resource.getrusage(RUSAGE_CHILDREN)``).

Uses the bundled default model if present, else a model with seeded random weights (same memory and time).

    python bench/highres.py [--size 7680x4320] [--max-memory 3GB] [--precision auto] [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adain_core import store  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402


def synthetic_photo(width: int, height: int) -> Image.Image:
    """Smooth colour gradients with large shapes: compresses well, so writing and reading it stays cheap."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = ((0.5 + 0.4 * np.sin(2 * math.pi * (0.7 * x + 0.3 * y))) * 255).astype(np.uint8)
    rgb[..., 1] = ((0.5 + 0.4 * np.cos(2 * math.pi * (0.4 * x - 0.8 * y))) * 255).astype(np.uint8)
    rgb[..., 2] = ((0.3 + 0.5 * x * y) * 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="7680x4320", help="WIDTHxHEIGHT of the content image")
    parser.add_argument("--max-memory", default="3GB", help="budget passed to --max-memory")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--tile", default="auto")
    parser.add_argument("--keep", type=Path, help="keep the input/output images in this folder")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="adain-highres-") as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        model = store.bundled_models().get("default")
        what = "bundled default"
        if model is None:
            model, what = make_random_model(tmp / "random.safetensors", seed=0), "random weights"
        content, style, out = tmp / "content.png", tmp / "style.png", tmp / "out.png"
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        synthetic_photo(width, height).save(content, compress_level=1)
        synthetic_photo(640, 512).transpose(Image.Transpose.ROTATE_90).save(style)
        prep = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "adain_core.cli", "stylize", str(content), "--style", str(style), "-o", str(out),
               "--max-memory", args.max_memory, "--tile", args.tile, "--precision", args.precision, "--model",
               str(model), "--device", "cpu"]
        print(f"model: {what}; content {width}×{height} ({width * height / 1e6:.1f} MP, written in {prep:.1f} s); "
              f"--max-memory {args.max_memory}; --precision {args.precision}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        with Image.open(out) as im:
            assert im.size == (width, height), im.size
        print()
        print("| image | budget | precision | wall time (s) | peak RSS (GiB) |")
        print("|---|---:|---|---:|---:|")
        print(f"| {width}×{height} | {args.max_memory} | {args.precision} | {elapsed:.1f} | {peak_kib / 2**20:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
