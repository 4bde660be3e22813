"""Cost of the colour steps around the network, each against its baseline in the same run (A B A B …, medians):

(1) the ``palette`` colour mode on a stylised result (the target from the photo's colours, the fit to the result, the
    affine map): (a) baseline, as the engine did before 2026-12-04: the result copied to the host, then the map
    blended through a region weight of ones; (b) now: on the result's device (:func:`adain_core.device.colour_device`),
    one painting everywhere mapped directly, then the finished image copied to the host;
(2) the ``palette`` mode's tone curve: the step of (1b) alone (the baseline) against the step with the tone curve,
    as the engine runs it since 2026-12-07 (the target luma quantiles from the photo's and the painting's, the
    curve's fit to the mapped result, the curve applied);
(3) encoding a style card of a figure cut out on a flat white backdrop (``backdrop="keep"``, the baseline: the whole
    image) against ``backdrop="ignore"`` (the backdrop found and left out of the statistics and the palette).

Neither needs trained weights (random ones; the time is the same).

    python bench/colour.py [--sizes 512,1920x1080,3840x2160] [--style-size 512] [--repeat 5] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import adain_core  # noqa: E402
from adain_core.color import apply_palettes, fit_palettes, fit_tones, palette_target  # noqa: E402
from adain_core.device import colour_device, to_device, to_host  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402
from adain_core.tone import TONE_KNOTS, tone_target  # noqa: E402
from bench.stylize import _parse_size, _time_pair  # noqa: E402  (one timing loop for both benchmarks)


def _figure_on_white(side: int, generator: torch.Generator) -> torch.Tensor:
    """(1, 3, side, side) in [0, 1]: a textured ellipse covering ~45 % of the picture on flat white, like the
    cut-out portraits the backdrop detection is for."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    inside = ((x / 0.6) ** 2 + (y / 0.75) ** 2) <= 1
    figure = 0.2 + 0.5 * torch.rand(1, 3, side, side, generator=generator)
    return torch.where(inside, figure, torch.ones(1, 3, side, side))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1920x1080", help="result sizes: N for N×N, or WxH")
    parser.add_argument("--style-size", type=int, default=512, help="style image side for the card encode")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per cell (median reported)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = adain_core.load(make_random_model(Path(tmp) / "random.safetensors", seed=0), device=args.device)
    device = engine.device
    painting = (torch.tensor([0.55, 0.45, 0.30], dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 0.03)
    print(f"device: {device}; torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeat}, "
          "baseline and new in turn")
    tones = torch.linspace(0.05, 0.95, TONE_KNOTS, dtype=torch.float64)
    print()
    print("| result size | palette: on the host, blended (s) | palette: on the device, direct (s) | speed-up | "
          "palette with the tone curve (s) | tone curve's cost |")
    print("|---:|---:|---:|---:|---:|---:|")
    for h, w in (_parse_size(s) for s in args.sizes.split(",") if s):
        photo = torch.rand(1, 3, h, w, generator=g)
        result = to_device(1.2 * torch.rand(1, 3, h, w, generator=g) - 0.1, device)  # a decoder's raw output
        photo_dev = to_device(photo, colour_device(device))
        ones = torch.ones(1, 1, h, w)

        def on_host() -> torch.Tensor:
            out = to_host(result)
            palettes = [(*palette_target(painting, photo, 1.0), ones)]
            return apply_palettes(out, palettes, fit_palettes(out, palettes))

        def on_device() -> torch.Tensor:
            out = result.to(colour_device(device))
            palettes = [(*palette_target(painting, photo_dev, 1.0), None)]
            return to_host(apply_palettes(out, palettes, fit_palettes(out, palettes)))

        def with_tones() -> torch.Tensor:
            out = result.to(colour_device(device))
            palettes = [(*palette_target(painting, photo_dev, 1.0), None)]
            fits = fit_palettes(out, palettes)
            curves = fit_tones(out, palettes, fits, [tone_target(tones, photo_dev, 1.0)])
            return to_host(apply_palettes(out, palettes, fits, curves))

        old, new = _time_pair(on_host, on_device, args.repeat, device)
        direct, toned = _time_pair(on_device, with_tones, args.repeat, device)
        label = f"{h}²" if h == w else f"{w}×{h}"
        print(f"| {label} | {old:.4f} | {new:.4f} | {old / new:.2f}× | {toned:.4f} | {toned / direct:.2f}× |",
              flush=True)

    style = _figure_on_white(args.style_size, g)
    keep, ignore = _time_pair(lambda: engine.encode_style(style, size=args.style_size, backdrop="keep"),
                                lambda: engine.encode_style(style, size=args.style_size, backdrop="ignore"),
                                args.repeat, device)
    print()
    print(f"| style card, {args.style_size}² figure on white | backdrop keep (s) | backdrop ignore (s) | cost |")
    print("|---|---:|---:|---:|")
    print(f"| encode_style | {keep:.3f} | {ignore:.3f} | {ignore / keep:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
