"""Throughput of ``stylize_many`` on a local Ray cluster with 1 and 2 worker actors, against the single-process
engine on the same frames (load PNG → stylise → save PNG, frame by frame, as ``adain stylize frames/`` does).

Reports, per run: the wall time (Ray start-up excluded, actor start and model load included), the steady rate
(frames/s from the first written frame to the last) and the overhead per frame versus the single process
(1/steady rate − 1/single-process rate, per worker).

    python bench/cluster.py [--model PATH] [--frames 32] [--size 256x192] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import adain_core  # noqa: E402
from adain_core import distributed, store  # noqa: E402
from adain_core.images import save_image  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402
from adain_core.video import list_frames, load_frame  # noqa: E402


def _synthetic(height: int, width: int, seed: int):  # type: ignore[no-untyped-def]
    sys.path.append(str(ROOT / "tests"))  # after the package: tests/adain_core must not shadow it
    from conftest import synthetic_image  # the tests' deterministic picture

    return synthetic_image(height, width, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file or name (default: bundled default, else random weights)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", default="256x192", help="frame WIDTHxHEIGHT")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--chunk-frames", type=int, default=4)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    counts = [int(v) for v in args.workers.split(",")]

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, what = args.model, args.model
        if model is None:
            model = store.bundled_models().get("default")
            what = "bundled default"
            if model is None:
                model, what = make_random_model(tmp / "random.safetensors"), "random weights"
        model = Path(model) if Path(str(model)).is_file() else model
        engine = adain_core.load(model, device="cpu", precision="fp32")
        card = engine.encode_style(_synthetic(256, 256, seed=2), size=256)
        source = tmp / "frames"
        source.mkdir()
        for i in range(args.frames):
            _synthetic(height, width, seed=100 + i).save(source / f"f{i:04d}.png")

        single_out = tmp / "single"
        single_out.mkdir()
        start = time.perf_counter()
        for i, path in enumerate(list_frames(source)):
            out = engine.stylize(load_frame(path), card)
            from PIL import Image

            save_image(Image.fromarray(out), single_out / f"{i:06d}.png")
        single = args.frames / (time.perf_counter() - start)

        start = time.perf_counter()
        distributed.connect("local", max(counts))
        ray_start = time.perf_counter() - start
        print(f"model: {what}; CPU fp32; {args.frames} frames of {width}x{height}; chunks of {args.chunk_frames}; "
              f"Ray {__import__('ray').__version__} local, start-up {ray_start:.1f} s (not counted below)")
        print()
        print("| run | wall s | steady frames/s | per worker | overhead per frame |")
        print("|---|---:|---:|---:|---:|")
        print(f"| single process | {args.frames / single:.1f} | {single:.2f} | {single:.2f} | — |")
        for workers in counts:
            stamps: list[tuple[float, int]] = []
            start = time.perf_counter()
            distributed.stylize_many([source], card, tmp / f"cluster-{workers}", cluster="local", workers=workers,
                                     model=model, device="cpu", precision="fp32", chunk_frames=args.chunk_frames,
                                     progress=lambda done, total: stamps.append((time.perf_counter(), done)))
            wall = time.perf_counter() - start
            first = next((t, d) for t, d in stamps if d > 0)
            last = stamps[-1]
            steady = (last[1] - first[1]) / max(1e-9, last[0] - first[0])
            overhead_ms = (workers / steady - 1 / single) * 1000
            print(f"| {workers} worker{'s' if workers > 1 else ''} | {wall:.1f} | {steady:.2f} | "
                  f"{steady / workers:.2f} | {overhead_ms:+.0f} ms |", flush=True)
        __import__("ray").shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
