"""Candidate CPU back-ends for the full-resolution path, against the engine's fp32 eager path, in one run.

Each candidate replaces the encoder (to the decoder's taps: relu4_1, and relu3_1 for a skip decoder) and the decoder;
the AdaIN step is the engine's. Printed per
candidate: the median time of one 512² stylisation (interleaved with the eager path, A B A B, so a drifting machine
affects both alike), the ratio, and the quality (mean and worst per-image mean absolute difference, in /255, against
the eager fp32 output) over the content images of ``--eval`` (or seeded synthetic images).

Candidates (each skipped with a note when its package is missing or it fails):
  compile   torch.compile (inductor, channels_last, freezing) for the fixed size
  int8      FX post-training quantisation (x86 backend, per-channel weights) calibrated on the content images
  onnxrt    ONNX Runtime (CPU execution provider) on the exported networks
  openvino  OpenVINO (CPU, fp32 inference precision) on the converted networks

    python bench/cpu_backends.py [--eval ../shared/data/eval] [--size 512] [--repeat 5] [--only compile,onnxrt]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import adain_core  # noqa: E402
from adain_core import store  # noqa: E402
from adain_core.adain import style_transfer  # noqa: E402
from adain_core.images import load_image, to_batch  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402

#: encode: (1, 3, H, W) in [0, 1] → the decoder's taps' features in ``decoder_inputs`` order (relu4_1 first);
#: decode: those targets → (1, 3, H, W)
Encode = Callable[[Tensor], tuple[Tensor, ...]]
Decode = Callable[..., Tensor]
Nets = tuple[Encode, Decode]


class _Taps(nn.Module):
    """The encoder as a plain tensor → tuple-of-tensors module (preprocessing included), for exporters and tracers:
    (1, 3, H, W) in [0, 1] → the features at ``taps``, in that order."""

    def __init__(self, encoder: nn.Module, taps: tuple[str, ...]) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(encoder)
        self.taps = taps

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        feats = self.encoder(x, self.taps)
        return tuple(feats[t] for t in self.taps)


def _eager(engine: adain_core.Engine) -> Nets:
    taps = engine.decoder.input_taps

    def encode(x: Tensor) -> tuple[Tensor, ...]:
        feats = engine.features(x, taps)
        return tuple(feats[t] for t in taps)
    return encode, engine.decode


def _compiled(engine: adain_core.Engine) -> Nets:
    import torch._inductor.config as cfg

    cfg.freezing = True
    enc = torch.compile(_Taps(engine.encoder, engine.decoder.input_taps).eval())
    dec = torch.compile(copy.deepcopy(engine.decoder))
    cl = torch.channels_last

    def encode(x: Tensor) -> tuple[Tensor, ...]:
        with torch.inference_mode():
            return tuple(f.float() for f in enc(x.contiguous(memory_format=cl)))

    def decode(*t: Tensor) -> Tensor:
        with torch.inference_mode():
            return dec(*(f.contiguous(memory_format=cl) for f in t)).float()
    return encode, decode


def _int8(engine: adain_core.Engine, calib: list[Tensor]) -> Nets:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    qmap = get_default_qconfig_mapping("x86")  # per-channel symmetric weights, histogram-calibrated activations
    enc_f = _Taps(engine.encoder, engine.decoder.input_taps).to(memory_format=torch.contiguous_format)
    dec_f = copy.deepcopy(engine.decoder).to(memory_format=torch.contiguous_format)
    enc_p = prepare_fx(enc_f, qmap, (calib[0],))
    dec_p = prepare_fx(dec_f, qmap, _eager(engine)[0](calib[0]))
    with torch.inference_mode():
        for x in calib:
            dec_p(*enc_p(x))
    enc_q, dec_q = convert_fx(enc_p), convert_fx(dec_p)

    def encode(x: Tensor) -> tuple[Tensor, ...]:
        with torch.inference_mode():
            return tuple(f.float() for f in enc_q(x))

    def decode(*t: Tensor) -> Tensor:
        with torch.inference_mode():
            return dec_q(*t).float()
    return encode, decode


def _names(n: int) -> list[str]:
    """ONNX input/output names of the decoder's n targets, in :attr:`Decoder.input_taps` order."""
    return [f"t{i}" for i in range(n)]


def _export_onnx(module: nn.Module, example: tuple[Tensor, ...], path: Path, inputs: list[str],
                 outputs: list[str]) -> None:
    torch.onnx.export(module, example, str(path), input_names=inputs, output_names=outputs, dynamo=False,
                      opset_version=17)


def _onnxrt(engine: adain_core.Engine, example: Tensor, tmp: Path) -> Nets:
    import onnxruntime as ort

    enc_path, dec_path = tmp / "enc.onnx", tmp / "dec.onnx"
    targets = _eager(engine)[0](example)
    names = _names(len(targets))
    _export_onnx(_Taps(engine.encoder, engine.decoder.input_taps).float().to(memory_format=torch.contiguous_format),
                 (example,), enc_path, ["x"], names)
    _export_onnx(copy.deepcopy(engine.decoder).to(memory_format=torch.contiguous_format), targets, dec_path, names,
                 ["y"])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    enc_s = ort.InferenceSession(str(enc_path), opts, providers=["CPUExecutionProvider"])
    dec_s = ort.InferenceSession(str(dec_path), opts, providers=["CPUExecutionProvider"])

    def encode(x: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.from_numpy(f) for f in enc_s.run(None, {"x": x.contiguous().numpy()}))

    def decode(*t: Tensor) -> Tensor:
        return torch.from_numpy(dec_s.run(None, {n: f.contiguous().numpy() for n, f in zip(names, t)})[0])
    return encode, decode


def _openvino(engine: adain_core.Engine, example: Tensor) -> Nets:
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    taps = engine.decoder.input_taps
    enc_m = ov.convert_model(_Taps(engine.encoder, taps).to(memory_format=torch.contiguous_format),
                             example_input=example)
    dec_m = ov.convert_model(copy.deepcopy(engine.decoder).to(memory_format=torch.contiguous_format),
                             example_input=_eager(engine)[0](example))
    enc_c, dec_c = core.compile_model(enc_m, "CPU", cfg), core.compile_model(dec_m, "CPU", cfg)

    def encode(x: Tensor) -> tuple[Tensor, ...]:
        out = enc_c(x.contiguous().numpy())
        return tuple(torch.from_numpy(out[i].copy()) for i in range(len(taps)))

    def decode(*t: Tensor) -> Tensor:
        return torch.from_numpy(dec_c([f.contiguous().numpy() for f in t])[0].copy())
    return encode, decode


def _contents(folder: Path | None, size: int, n: int) -> list[Tensor]:
    if folder is not None and (folder / "content").is_dir():
        files = sorted(p for p in (folder / "content").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        out = []
        for p in files[:n]:
            x = to_batch(load_image(p)).pixels
            out.append(torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                                       align_corners=False).clamp(0, 1))
        return out
    g = torch.Generator().manual_seed(0)
    return [torch.nn.functional.avg_pool2d(torch.rand(1, 3, size, size, generator=g), 9, 1, 4) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, default=None, help="folder with content/ and style/ images")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--images", type=int, default=8, help="content images for the quality column")
    parser.add_argument("--only", default="compile,int8,onnxrt,openvino")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = store.bundled_models().get("default") or make_random_model(tmp / "random.safetensors", seed=0)
        engine = adain_core.load(model, device="cpu", precision="fp32")
        contents = _contents(args.eval, args.size, args.images)
        styles = sorted((args.eval / "style").iterdir()) if args.eval is not None else []
        card = engine.encode_style(styles[0] if styles else torch.rand(1, 3, 256, 256), size=512)
        taps = engine.decoder.input_taps
        card_stats = {"relu4_1": (card.mean, card.std), **card.taps}
        stats = {t: [(card_stats[t][0].reshape(1, -1, 1, 1), card_stats[t][1].reshape(1, -1, 1, 1))] for t in taps}

        def run(nets: Nets, x: Tensor) -> Tensor:
            encode, decode = nets
            return style_transfer(lambda y: dict(zip(taps, encode(y))), lambda t: decode(*(t[k] for k in taps)), x,
                                  stats)[0].clamp(0, 1)

        eager = _eager(engine)
        refs = [run(eager, x) for x in contents]
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.size}²; "
              f"{len(contents)} {'eval' if args.eval else 'synthetic'} images; median of {args.repeat}, interleaved")
        print()
        print("| candidate | build (s) | eager fp32 (s) | candidate (s) | speed-up | mean abs diff (/255) "
              "| worst image |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        builders = {
            "compile": lambda: _compiled(engine),
            "int8": lambda: _int8(engine, contents),
            "onnxrt": lambda: _onnxrt(engine, contents[0], tmp),
            "openvino": lambda: _openvino(engine, contents[0]),
        }
        for name in args.only.split(","):
            t0 = time.perf_counter()
            try:
                nets = builders[name]()
                outs = [run(nets, x) for x in contents]  # also the warm-up (compilation happens here)
            except Exception as exc:  # noqa: BLE001 - a failing candidate is a result, not a crash
                traceback.print_exc(limit=2, file=sys.stderr)
                print(f"| {name} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} | | | | | |",
                      flush=True)
                continue
            build = time.perf_counter() - t0
            diffs = [float((o - r).abs().mean()) * 255 for o, r in zip(outs, refs)]
            te, tc = [], []
            x = contents[0]
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                run(eager, x)
                te.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                run(nets, x)
                tc.append(time.perf_counter() - t0)
            me, mc = statistics.median(te), statistics.median(tc)
            print(f"| {name} | {build:.0f} | {me:.3f} | {mc:.3f} | {me / mc:.2f}× | {statistics.mean(diffs):.2f} | "
                  f"{max(diffs):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
