"""Time of one training step with the frozen encoder's passes made every step and with them cached
(``--cached-crops``, once every crop has been encoded), interleaved in the same run, with the real encoder and the
CPU recipe's settings.

    python bench/train_step.py [--batch-size 8] [--crop 128] [--repeat 6] [--threads 2] [--decoder-width 1]

Prints the median seconds per step of each path and their ratio (cached / every step). Synthetic images: the step's
cost does not depend on what they show.
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

from adain_core.adain import calc_mean_std  # noqa: E402
from adain_core.networks import TAPS  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.loop import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=6, help="timed steps of each path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decoder-width", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # the stretch-9 recipe: palette mode, colour term, structure term, λ 7
        cfg = TrainConfig(out_dir=tmp, threads=args.threads, crop=args.crop, batch_size=args.batch_size,
                          decoder_width=args.decoder_width, palette=True, colour_weight=10, style_weight=7,
                          structure_weight=0.75, precision="fp32", progress=False)
        trainer = Trainer(cfg, folder_data=False)
        gen = torch.Generator().manual_seed(0)
        content = torch.rand(args.batch_size, 3, args.crop, args.crop, generator=gen)
        style = torch.rand(args.batch_size, 3, args.crop, args.crop, generator=gen)
        with torch.no_grad():
            fc = trainer.encoder(content, trainer.content_taps)
            stats = {t: calc_mean_std(f) for t, f in trainer.encoder(style, TAPS).items()}

        def every_step() -> None:
            trainer.train_step(content, style)

        def cached() -> None:
            trainer.train_step(None, style, encoded=(fc, stats))

        times: dict[str, list[float]] = {"every step": [], "cached": []}
        every_step(), cached()  # warm-up
        for _ in range(args.repeat):  # interleaved: a change of machine load hits both alike
            for name, step in (("every step", every_step), ("cached", cached)):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"batch {args.batch_size} × {args.crop}² px, decoder width {args.decoder_width}, "
          f"{args.threads} threads, median of {args.repeat}")
    for name, value in med.items():
        print(f"  {name:>10}: {value:6.2f} s/step")
    print(f"  cached / every step: {med['cached'] / med['every step']:.2f}")


if __name__ == "__main__":
    main()
