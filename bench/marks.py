"""The ``marks`` option's cost: one stylisation with marks 0 against marks K, in one run, with the ratio.

A cached style card (512 px) stylises a content of each size; the two settings run in turn (A B A B, after one
warm-up of each, which also computes the card's blocks once) so that a machine whose speed drifts affects both alike;
medians are printed. Target: marks adds at most 15 % to a stylisation once the card's blocks are computed (they are
kept with the card, as its statistics are).

Uses the bundled default model if present, else a model with seeded random weights (the speed is the same).

    python bench/marks.py [--sizes 512,1024] [--marks 1] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import adain_core  # noqa: E402
from adain_core import store  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402

TARGET = 1.15


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024", help="comma-separated content sides in px (square)")
    parser.add_argument("--marks", type=float, default=1.0, help="the strength timed against 0")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="adain-marks-") as tmp:
        model = store.bundled_models().get("default") or make_random_model(Path(tmp) / "random.safetensors", seed=0)
        engine = adain_core.load(model, device="cpu")
    print(f"{engine.device}, {engine.precision}, {torch.get_num_threads()} threads; marks {args.marks:g} vs 0")
    gen = torch.Generator().manual_seed(0)
    card = engine.encode_style(torch.rand(1, 3, 512, 640, generator=gen), size=512)
    ok = True
    for side in (int(s) for s in args.sizes.split(",")):
        content = torch.rand(1, 3, side, side, generator=gen)
        times: dict[float, list[float]] = {0.0: [], args.marks: []}
        for run in range(args.repeat + 1):
            for marks in times:
                t0 = time.perf_counter()
                engine.stylize(content, card, marks=marks)
                if run:  # the first round warms up (and computes the card's blocks)
                    times[marks].append(time.perf_counter() - t0)
        base, with_marks = statistics.median(times[0.0]), statistics.median(times[args.marks])
        ratio = with_marks / base
        ok = ok and ratio <= TARGET
        print(f"{side}²: marks 0 {base:.2f} s, marks {args.marks:g} {with_marks:.2f} s, ratio {ratio:.3f}")
    print(f"target: marks adds at most {TARGET - 1:.0%}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
