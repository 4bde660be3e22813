"""Working resolution: time and quality of ``--scale 1`` against 0.5 and 0.25 on the same large content, in one run.

Each content (shared eval photos upscaled to SIZE², or a synthetic picture when ../shared/data is absent) is stylised
with a cached style card at every scale; the script prints seconds per scale, the speed-up over scale 1, and the
``adain-train evaluate`` metrics of each output (gram_gap: texture, colour_gap: colours; lower = closer to the
style) with their change relative to scale 1. Targets (issue 15): scale 0.5 at 2048² ≥ 3× faster than scale 1 with
gram_gap and colour_gap within 15 % of scale 1.

Uses the bundled default model (random weights when it is missing: the times hold, the metrics mean nothing).

    python bench/scale.py [--size 2048] [--scales 1,0.5,0.25] [--pairs 1] [--precision auto] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import adain_core  # noqa: E402
from adain_core import store  # noqa: E402
from adain_core.images import load_image, pil_to_tensor  # noqa: E402
from adain_core.networks import TAPS, pad_to_multiple  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402
from adain_core.upsample import downscale  # noqa: E402
from training.metrics import colour_gap_ratio, gram_gap_ratio  # noqa: E402

EVAL = ROOT.parent / "shared" / "data" / "eval"
TARGET_SPEEDUP, TARGET_METRIC = 3.0, 0.15


def _pairs(n: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, content (1, 3, h, w), style (1, 3, h, w)) pairs: eval photos × paintings, else synthetic."""
    contents = sorted((EVAL / "content").glob("*.jpg"))
    styles = sorted((EVAL / "style").glob("*.jpg"))
    if contents and styles:
        return [(f"{c.stem[:28]} × {s.stem[:24]}", pil_to_tensor(load_image(c).convert("RGB"))[0],
                 pil_to_tensor(load_image(s).convert("RGB"))[0])
                for c, s in zip(contents[:n], styles[2:] + styles[:2])]
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import synthetic_image  # the test suite's deterministic picture

    return [(f"synthetic {i}", pil_to_tensor(synthetic_image(384, 512, seed=i))[0],
             pil_to_tensor(synthetic_image(512, 512, seed=100 + i))[0]) for i in range(n)]


def _upscale(x: torch.Tensor, side: int) -> torch.Tensor:
    """Centre square crop, bicubic to side² (a stand-in for a large photo)."""
    h, w = x.shape[-2:]
    s = min(h, w)
    crop = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return torch.nn.functional.interpolate(crop, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)


def _features(engine: adain_core.Engine, x: torch.Tensor) -> dict[str, torch.Tensor]:
    padded, _ = pad_to_multiple(x)
    return engine.features(padded, TAPS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="side of the square content in px")
    parser.add_argument("--scales", default="1,0.5,0.25", help="comma-separated scales; the first is the reference")
    parser.add_argument("--pairs", type=int, default=1, help="content/style pairs")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--metric-size", type=int, default=1024,
                        help="side the outputs are downscaled to for the metrics (memory); 0 = full size")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = [float(s) for s in args.scales.split(",")]

    with tempfile.TemporaryDirectory(prefix="adain-scale-") as tmp:
        model = store.bundled_models().get("default")
        what = "bundled default"
        if model is None:
            model, what = make_random_model(Path(tmp) / "random.safetensors", seed=0), "random weights (metrics meaningless)"
        engine = adain_core.load(model, device="cpu", precision=args.precision)
    print(f"model: {what}; {engine.device}, {engine.precision}, {torch.get_num_threads()} threads; "
          f"content {args.size}x{args.size}")
    engine.stylize(torch.rand(1, 3, 256, 256), engine.encode_style(torch.rand(1, 3, 64, 64), size=64))  # warm-up

    rows: dict[float, list[tuple[float, float, float]]] = {s: [] for s in scales}
    for name, content_small, style in _pairs(args.pairs):
        content = _upscale(content_small, args.size)
        card = engine.encode_style(style, size=512)
        metric_side = args.metric_size or args.size
        c_metric = downscale(content, (metric_side, metric_side))
        c_feats, s_feats = _features(engine, c_metric), _features(engine, style)
        print(f"\n{name}")
        for scale in scales:
            t0 = time.perf_counter()
            out = engine.stylize(content, card, scale=scale)
            seconds = time.perf_counter() - t0
            o_metric = downscale(out, (metric_side, metric_side))
            gram = gram_gap_ratio(_features(engine, o_metric), c_feats, s_feats)
            colour = colour_gap_ratio(o_metric, c_metric, style)
            rows[scale].append((seconds, gram, colour))
            print(f"  scale {scale:<5g} {seconds:7.2f} s   gram_gap {gram:.4f}   colour_gap {colour:.4f}")

    ref = scales[0]
    mean = {s: [sum(v) / len(v) for v in zip(*rows[s])] for s in scales}
    print(f"\nmean over {args.pairs} pair(s), relative to scale {ref:g}:")
    print(f"{'scale':>6} {'seconds':>8} {'speed-up':>9} {'gram_gap':>9} {'Δ':>7} {'colour_gap':>11} {'Δ':>7}")
    ok = True
    for s in scales:
        seconds, gram, colour = mean[s]
        speedup = mean[ref][0] / seconds
        d_gram, d_colour = gram / mean[ref][1] - 1, colour / mean[ref][2] - 1
        print(f"{s:>6g} {seconds:8.2f} {speedup:8.2f}× {gram:9.4f} {d_gram:+7.1%} {colour:11.4f} {d_colour:+7.1%}")
        if s == 0.5:
            ok = speedup >= TARGET_SPEEDUP and abs(d_gram) <= TARGET_METRIC and abs(d_colour) <= TARGET_METRIC
            print(f"target at 0.5: ≥ {TARGET_SPEEDUP:g}× and metrics within {TARGET_METRIC:.0%}: "
                  f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
