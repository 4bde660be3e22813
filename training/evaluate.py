"""Evaluation of decoders on content × style pairs: style_gap_ratio, content_corr, reconstruction PSNR, seconds per
image, and a contact sheet; several models compared in one run. Metrics use the model's own (frozen) encoder."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from adain_core.adain import calc_mean_std
from adain_core.networks import TAPS, pad_to_multiple

from .data import IMAGE_EXTENSIONS

__all__ = ["Stats", "feature_stats", "stat_gap", "style_gap_ratio", "content_corr", "psnr", "evaluate_model",
           "run_evaluate", "model_file_for"]

Stats = dict[str, tuple[Tensor, Tensor]]  # tap → (mean (C,), std (C,))


def feature_stats(features: dict[str, Tensor]) -> Stats:
    """Channel means and stds (each (C,), float32) of single-image features (1, C, h, w) per tap."""
    out = {}
    for tap, f in features.items():
        m, s = calc_mean_std(f.float())
        out[tap] = (m.flatten(), s.flatten())
    return out


def stat_gap(a: Stats, style: Stats) -> float:
    """G(a, s) = mean over relu1_1…relu4_1 of (‖μ_a−μ_s‖² + ‖σ_a−σ_s‖²) / (‖μ_s‖² + ‖σ_s‖²)."""
    terms = []
    for tap in TAPS:
        am, asd = a[tap]
        sm, ssd = style[tap]
        num = (am - sm).pow(2).sum() + (asd - ssd).pow(2).sum()
        den = sm.pow(2).sum() + ssd.pow(2).sum()
        terms.append(float(num / den.clamp_min(1e-12)))
    return sum(terms) / len(terms)


def style_gap_ratio(output: Stats, content: Stats, style: Stats) -> float:
    """G(output, style) / G(content, style): 1.0 = no more styled than the content, 0 = statistics matched."""
    return stat_gap(output, style) / max(stat_gap(content, style), 1e-12)


def content_corr(out_feat: Tensor, content_feat: Tensor, eps: float = 1e-8) -> float:
    """Mean of the product of instance-normalised relu4_1 features (1, C, h, w) of output and content.

    Equals the mean over channels of the spatial Pearson correlation: 1 = structure kept, 0 = unrelated.
    Channels that are constant over the content image (dead ReLUs, common at small sizes) carry no structure
    and are left out of the mean; otherwise ``content_corr(x, x)`` would fall below 1.
    """
    def norm(f: Tensor) -> tuple[Tensor, Tensor]:
        f = f.float().reshape(f.shape[0], f.shape[1], -1)
        var = f.var(dim=2, unbiased=False, keepdim=True)
        return (f - f.mean(dim=2, keepdim=True)) / (var + eps).sqrt(), var

    o, _ = norm(out_feat)
    c, var_c = norm(content_feat)
    active = (var_c > 1e-6 * var_c.mean().clamp_min(1e-12)).flatten()
    per_channel = (o * c).mean(dim=2).flatten()
    if not bool(active.any()):
        return 0.0
    return float(per_channel[active].mean())


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB between two images in [0, 1] (values clamped)."""
    mse = float((a.float().clamp(0, 1) - b.float().clamp(0, 1)).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _list_images(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images in {root}")
    return files


def _load_resized(path: Path, size: int) -> Image.Image:
    from adain_core.images import load_image

    im = load_image(path).convert("RGB")
    scale = size / min(im.size)
    if scale != 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
    return im


def _to_tensor(im: Image.Image) -> Tensor:
    from adain_core.images import pil_to_tensor

    return pil_to_tensor(im)[0]


def model_file_for(spec: str, tmp: Path) -> Path:
    """A model file for ``spec``: model files and names pass through; training checkpoints (``.pt``) are exported
    (fp16, as shipped) into ``tmp`` first."""
    path = Path(spec)
    if path.suffix in (".pt", ".ckpt") and path.is_file():
        from .export import export_checkpoint

        out = tmp / f"{path.stem}-{abs(hash(str(path.resolve()))) % 10**8}.safetensors"
        return export_checkpoint(path, out)
    return path


def evaluate_model(engine: Any, contents: Sequence[Path], styles: Sequence[Path], size: int, style_size: int,
                   cell: int = 128, sheet: Path | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All content × style pairs at α = 1 plus reconstructions with one loaded engine.

    Returns:
        ``{"pairs": [...], "reconstruction": [...], "means": {...}}``.
    """
    def feats(x: Tensor) -> dict[str, Tensor]:
        padded, _ = pad_to_multiple(x)
        return engine.features(padded, TAPS)

    content_imgs = [_load_resized(p, size) for p in contents]
    content_feats = [feats(_to_tensor(im)) for im in content_imgs]
    content_stats = [feature_stats(f) for f in content_feats]
    cards, style_stats, style_thumbs = [], [], []
    for p in styles:
        im = _load_resized(p, style_size)
        cards.append(engine.encode_style(im, size=None, name=p.stem))
        style_stats.append(feature_stats(feats(_to_tensor(im))))
        style_thumbs.append(im)
    pairs, outputs = [], []
    for ci, (cp, cim) in enumerate(zip(contents, content_imgs)):
        row = []
        for si, sp in enumerate(styles):
            t0 = time.perf_counter()
            out = engine.stylize(cim, cards[si], alpha=1.0)
            seconds = time.perf_counter() - t0
            f_out = feats(_to_tensor(out))
            pairs.append({
                "content": cp.name, "style": sp.name, "seconds": seconds,
                "style_gap_ratio": style_gap_ratio(feature_stats(f_out), content_stats[ci], style_stats[si]),
                "content_corr": content_corr(f_out["relu4_1"], content_feats[ci]["relu4_1"]),
            })
            row.append(out)
            if progress:
                progress(f"{cp.name} × {sp.name}")
        outputs.append(row)
    recon = []
    for cp, cim in zip(contents, content_imgs):
        card = engine.encode_style(cim, size=None, name=cp.stem)
        out = engine.stylize(cim, card, alpha=1.0)
        recon.append({"content": cp.name, "psnr": psnr(_to_tensor(out), _to_tensor(cim))})
    means = {
        "style_gap_ratio": sum(p["style_gap_ratio"] for p in pairs) / len(pairs),
        "content_corr": sum(p["content_corr"] for p in pairs) / len(pairs),
        "recon_psnr": sum(r["psnr"] for r in recon) / len(recon),
        "seconds_per_image": sum(p["seconds"] for p in pairs) / len(pairs),
    }
    if sheet is not None:
        from .report import contact_sheet

        contact_sheet(content_imgs, style_thumbs, outputs, sheet, cell=cell)
    return {"pairs": pairs, "reconstruction": recon, "means": means}


def _format_table(name: str, result: dict[str, Any]) -> str:
    lines = [f"== {name}", f"{'content':40s} {'style':40s} {'gap':>6s} {'corr':>6s} {'s/img':>6s}"]
    for p in result["pairs"]:
        lines.append(f"{p['content'][:40]:40s} {p['style'][:40]:40s} {p['style_gap_ratio']:6.3f} "
                     f"{p['content_corr']:6.3f} {p['seconds']:6.2f}")
    for r in result["reconstruction"]:
        lines.append(f"reconstruction {r['content'][:60]:60s} PSNR {r['psnr']:6.2f} dB")
    m = result["means"]
    lines.append(f"MEAN style_gap_ratio {m['style_gap_ratio']:.3f}  content_corr {m['content_corr']:.3f}  "
                 f"recon_psnr {m['recon_psnr']:.2f} dB  seconds/image {m['seconds_per_image']:.2f}")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """``adain-train evaluate``: prints per-pair tables and a comparison of the means; writes results.json and one
    contact sheet per model (``sheet_<name>.jpg``) into ``--out``."""
    import adain_core

    if args.threads:
        torch.set_num_threads(args.threads)
    contents, styles = _list_images(args.content), _list_images(args.style)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"settings": {"size": args.size, "style_size": args.style_size,
                                            "contents": [p.name for p in contents],
                                            "styles": [p.name for p in styles]}, "models": {}}
    with tempfile.TemporaryDirectory(prefix="adain-eval-") as tmp:
        for spec in args.model:
            name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).stem, "", spec)
            engine = adain_core.load(model_file_for(path, Path(tmp)), device=args.device)
            done = [0]

            def _progress(what: str, name: str = name) -> None:
                done[0] += 1
                if done[0] % len(styles) == 0:
                    print(f"[{name}] {done[0]}/{len(contents) * len(styles)} pairs", file=sys.stderr, flush=True)

            result = evaluate_model(engine, contents, styles, args.size, args.style_size, args.cell,
                                    out_dir / f"sheet_{name}.{args.sheet_format}", progress=_progress)
            result["model"] = path
            result["metadata_steps"] = engine.metadata.get("steps")
            results["models"][name] = result
            results["settings"]["precision"] = str(engine.precision)
            results["settings"]["device"] = str(engine.device)
            print(_format_table(name, result), flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print("\n== comparison (means)")
    print(f"{'model':24s} {'style_gap_ratio':>16s} {'content_corr':>13s} {'recon PSNR dB':>14s} {'s/image':>8s}")
    for name, r in results["models"].items():
        m = r["means"]
        print(f"{name[:24]:24s} {m['style_gap_ratio']:16.3f} {m['content_corr']:13.3f} {m['recon_psnr']:14.2f} "
              f"{m['seconds_per_image']:8.2f}")
    return 0
