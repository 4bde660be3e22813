"""Speed of one stylisation on this machine: a straightforward baseline against the engine's fast path.

(a) baseline: fp32, the style image re-encoded on every call, contiguous (NCHW) memory, no caching;
(b) fast path: a cached style card, the engine's ``auto`` precision (bf16 autocast on capable CPUs, fp16 on CUDA),
    channels_last.

Uses the bundled default model if present, else a model with seeded random weights (the speed is the same).

    python bench/stylize.py [--sizes 256,512,1024] [--repeat 3] [--device auto]
    python bench/stylize.py --device cuda --sizes 512,1920x1080,3840x2160     # the GPU numbers of the README
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
from adain_core.adain import adain, calc_mean_std  # noqa: E402
from adain_core.networks import pad_to_multiple  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402


def _model_path(tmp: Path) -> tuple[Path, str]:
    bundled = store.bundled_models().get("default")
    if bundled is not None:
        return bundled, "bundled default"
    return make_random_model(tmp / "random.safetensors", seed=0), "random weights"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _baseline_once(engine: adain_core.Engine, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The reference implementation's way: encode style and content in fp32 NCHW, AdaIN, decode."""
    with torch.inference_mode():
        s, _ = pad_to_multiple(style.to(engine.device))
        c, size = pad_to_multiple(content.to(engine.device))
        fs = engine.encoder(s)["relu4_1"]
        fc = engine.encoder(c)["relu4_1"]
        sm, ss = calc_mean_std(fs)
        out = engine.decoder(adain(fc, sm, ss)).clamp(0, 1)[:, :, : size[0], : size[1]]
        return out.cpu()


def _time(fn, repeat: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up (allocator, oneDNN/cuDNN kernel choice)
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _parse_size(text: str) -> tuple[int, int]:
    """``"512"`` → (512, 512); ``"1920x1080"`` → (1080, 1920) as (height, width)."""
    w, _, h = text.strip().lower().partition("x")
    return (int(h), int(w)) if h else (int(w), int(w))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024",
                        help="comma-separated sizes in px: N for N×N, or WxH (e.g. 1920x1080)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median reported)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--style-size", type=int, default=512, help="style image side (baseline re-encodes it)")
    args = parser.parse_args(argv)
    sizes = [_parse_size(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        path, what = _model_path(Path(tmp))
        base = adain_core.load(path, device=args.device, precision="fp32")
        fast = adain_core.load(path, device=args.device, precision="auto")
    # The baseline runs NCHW fp32: undo the engine's channels_last on its copy of the networks.
    base.encoder.to(memory_format=torch.contiguous_format)
    base.decoder.to(memory_format=torch.contiguous_format)
    g = torch.Generator().manual_seed(0)
    style = torch.rand(1, 3, args.style_size, args.style_size, generator=g)
    card = fast.encode_style(style, size=args.style_size)
    print(f"model: {what}; device: {fast.device}; fast-path precision: {fast.precision}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; style {args.style_size} px; "
          f"median of {args.repeat}")
    print()
    print("| size | baseline fp32, style re-encoded (s) | fast path: card + "
          f"{fast.precision} + channels_last (s) | fast path frames/s | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for h, w in sizes:
        content = torch.rand(1, 3, h, w, generator=g)
        tb = _time(lambda: _baseline_once(base, content, style), args.repeat, base.device)
        tf = _time(lambda: fast.stylize(content, card, tile="off"), args.repeat, fast.device)
        label = f"{h}²" if h == w else f"{w}×{h}"
        print(f"| {label} | {tb:.3f} | {tf:.3f} | {1 / tf:.1f} | {tb / tf:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
