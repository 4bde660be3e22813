"""Speed of one stylisation on this machine: the reference AdaIN way against the engine, in one run, with ratios.

(a) reference: what users of the original PyTorch AdaIN run: a VGG19-architecture encoder to relu4_1 and its
    decoder (seeded random weights: the speed is the weights' own), fp32, contiguous (NCHW) memory, the style image
    re-encoded on every call;
(b) engine: ``adain_core`` with a cached style card, the ``auto`` precision (bf16 autocast on CPUs with native bf16,
    fp16 on CUDA, else fp32) and channels_last.
The two run in turn (A B A B) so that a machine whose speed drifts affects both alike; medians are printed.
With ``--frames WxH`` (default on CUDA: 1920x1080) it also prints frames/s of a sequence of such frames run one per
forward pass and run in the batches the memory pre-flight chooses (``stylize_frames(batch="auto")``).

Uses the bundled default model if present, else a model with seeded random weights (the speed is the same).

    python bench/stylize.py [--sizes 256,512,1024] [--repeat 3] [--device auto] [--frames 1280x720 --count 8]
    python bench/stylize.py --device cuda --sizes 512,1920x1080,3840x2160 --repeat 5   # the README's GPU rows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import adain_core  # noqa: E402
from adain_core import store  # noqa: E402
from adain_core.adain import adain, calc_mean_std  # noqa: E402
from adain_core.networks import build_decoder, build_encoder, pad_to_multiple  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402


def _model_path(tmp: Path) -> tuple[Path, str]:
    bundled = store.bundled_models().get("default")
    if bundled is not None:
        return bundled, "bundled default"
    return make_random_model(tmp / "random.safetensors", seed=0), "random weights"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Reference:
    """The original AdaIN's networks and call: VGG19 to relu4_1 + mirror decoder, fp32, NCHW, style re-encoded."""

    def __init__(self, device: torch.device) -> None:
        torch.manual_seed(0)
        self.device = device
        self.encoder: nn.Module = build_encoder("vgg19").to(device).eval()
        self.decoder: nn.Module = build_decoder("vgg19").to(device).eval()

    def __call__(self, content: Tensor, style: Tensor) -> Tensor:
        with torch.inference_mode():
            s, _ = pad_to_multiple(style.to(self.device))
            c, size = pad_to_multiple(content.to(self.device))
            fs = self.encoder(s)["relu4_1"]
            fc = self.encoder(c)["relu4_1"]
            sm, ss = calc_mean_std(fs)
            out = self.decoder(adain(fc, sm, ss)).clamp(0, 1)[:, :, : size[0], : size[1]]
            return out.cpu()


def _time_pair(a: Callable[[], object], b: Callable[[], object], repeat: int,
               device: torch.device) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run in turn (A B A B …) after one warm-up each."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeat + 1):
        for fn, acc in ((a, times[0]), (b, times[1])):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if i:  # the first round warms up (allocator, oneDNN/cuDNN kernel choice)
                acc.append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


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
    parser.add_argument("--precision", default="auto", help="the engine's precision (the reference is fp32)")
    parser.add_argument("--style-size", type=int, default=512, help="style image side (the reference re-encodes it)")
    parser.add_argument("--frames", default=None,
                        help="WxH of a frame sequence to time one per pass and batched (default: 1920x1080 on CUDA, "
                             "none elsewhere; 'none' turns it off)")
    parser.add_argument("--count", type=int, default=16, help="frames in that sequence")
    args = parser.parse_args(argv)
    sizes = [_parse_size(s) for s in args.sizes.split(",") if s]

    with tempfile.TemporaryDirectory() as tmp:
        path, what = _model_path(Path(tmp))
        fast = adain_core.load(path, device=args.device, precision=args.precision)
    if fast.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    ref = Reference(fast.device)
    g = torch.Generator().manual_seed(0)
    style = torch.rand(1, 3, args.style_size, args.style_size, generator=g)
    card = fast.encode_style(style, size=args.style_size)
    name = torch.cuda.get_device_name(fast.device) if fast.device.type == "cuda" else "CPU"
    print(f"model: {what}; device: {fast.device} ({name}); engine precision: {fast.precision}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; style {args.style_size} px; "
          f"median of {args.repeat}, reference and engine in turn")
    if sizes:
        print()
        print("| size | reference: VGG19, fp32, style re-encoded (s) | engine: card + "
              f"{fast.precision} + channels_last (s) | engine images/s | speed-up |")
        print("|---:|---:|---:|---:|---:|")
    for h, w in sizes:
        content = torch.rand(1, 3, h, w, generator=g)
        tr, te = _time_pair(lambda: ref(content, style), lambda: fast.stylize(content, card, tile="off"),
                            args.repeat, fast.device)
        label = f"{h}²" if h == w else f"{w}×{h}"
        print(f"| {label} | {tr:.3f} | {te:.3f} | {1 / te:.1f} | {tr / te:.2f}× |", flush=True)

    frames = args.frames or ("1920x1080" if fast.device.type == "cuda" else "none")
    if frames != "none":
        h, w = _parse_size(frames)
        seq = [torch.rand(1, 3, h, w, generator=g) for _ in range(min(args.count, 4))]
        seq = [seq[i % len(seq)] for i in range(args.count)]
        chosen = min(fast.frames_per_pass(h, w), args.count)

        def run(batch: int) -> Callable[[], object]:
            return lambda: list(fast.stylize_frames(seq, card, temporal=0.5, batch=batch))

        t1, tb = _time_pair(run(1), run(chosen), max(1, args.repeat // 2), fast.device)
        print()
        print(f"| {w}×{h} frames ({args.count}, temporal 0.5) | B = 1 frames/s | B = {chosen} (pre-flight) "
              f"frames/s | speed-up |")
        print("|---|---:|---:|---:|")
        print(f"| {fast.precision} | {args.count / t1:.2f} | {args.count / tb:.2f} | {t1 / tb:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
