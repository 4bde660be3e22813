"""Evaluation of decoders on content × style pairs, several models compared in one run, with two reference rows
(the photo itself, and a plain colour transfer with no network).

Per pair: ``style_gap_ratio``, ``gram_gap``, ``colour_gap``, ``content_corr``, ``layout_corr``, ``grid_ratio``, seconds
per image; per photo: ``spread``; per model: reconstruction PSNR; means of all, and a contact sheet. Metrics use the
model's own frozen encoder (see :mod:`training.metrics` for the definitions). A painting's flat backdrop
(:mod:`adain_core.backdrop`) is left out of its card and of the metrics' painting side, as the engine does, unless
``--backdrop keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from adain_core.backdrop import painted_weights
from adain_core.networks import TAPS, pad_to_multiple
from adain_core.vocabulary import BACKDROP_MODES

from .data import IMAGE_EXTENSIONS
from .metrics import (colour_gap_ratio, content_corr, feature_stats, gram_gap_ratio, grid_ratio, layout_corr, psnr,
                      spread, style_gap_ratio)

__all__ = ["EvalSet", "load_eval_set", "score_outputs", "engine_outputs", "reference_outputs", "evaluate_model",
           "run_evaluate", "model_file_for", "METRICS", "REFERENCES"]

FeatureFn = Callable[[Tensor], dict[str, Tensor]]  # (1, 3, H, W) in [0, 1] → tap → (1, C, h, w)

# Mean metrics in table order, and the reference rows every evaluation prints beside the models.
METRICS: tuple[str, ...] = ("style_gap_ratio", "gram_gap", "colour_gap", "content_corr", "layout_corr", "grid_ratio",
                            "spread", "recon_psnr", "seconds_per_image")
REFERENCES: tuple[str, ...] = ("content (reference)", "colour transfer (reference)")


@dataclass
class EvalSet:
    """Photos and paintings of an evaluation, loaded once: names and (1, 3, H, W) float tensors in [0, 1]; and per
    painting the (1, 1, H, W) weights of its painted pixels, or ``None`` (all of it; also for every painting when
    ``painted`` is ``None``)."""

    content_names: list[str]
    style_names: list[str]
    contents: list[Tensor]
    styles: list[Tensor]
    painted: list[Tensor | None] | None = None

    @property
    def backdrop(self) -> str:
        """The :data:`adain_core.vocabulary.BACKDROP_MODES` mode the cards are made with."""
        return BACKDROP_MODES[0] if self.painted is not None else "keep"

    def style_weights(self) -> list[Tensor | None]:
        """Per painting its painted-pixel weights or ``None``."""
        return self.painted if self.painted is not None else [None] * len(self.styles)

    def images(self, which: str) -> list[Image.Image]:
        from adain_core.images import tensor_to_pil

        return [tensor_to_pil(t) for t in (self.contents if which == "content" else self.styles)]


def _list_images(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images in {root}")
    return files


def _load_resized(path: Path, size: int) -> Tensor:
    """An image file → (1, 3, H, W) float in [0, 1], shorter side ``size`` (bicubic)."""
    import numpy as np

    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = size / min(im.size)
        if scale != 1:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def load_eval_set(contents: Sequence[Path], styles: Sequence[Path], size: int, style_size: int,
                  backdrop: str = BACKDROP_MODES[0]) -> EvalSet:
    """Load photos (shorter side ``size``) and paintings (shorter side ``style_size``), with the paintings' painted
    pixels unless ``backdrop`` is ``keep``."""
    painting = [_load_resized(p, style_size) for p in styles]
    painted = None if backdrop == "keep" else [painted_weights(x) for x in painting]
    return EvalSet([p.name for p in contents], [p.name for p in styles],
                   [_load_resized(p, size) for p in contents], painting, painted)


def padded_features(features: Callable[[Tensor, tuple[str, ...]], dict[str, Tensor]]) -> FeatureFn:
    """Wrap an encoder call ``features(x, taps)`` so that any image size works (padded to a multiple of 8)."""
    def run(x: Tensor) -> dict[str, Tensor]:
        padded, _ = pad_to_multiple(x)
        return {k: v.float().cpu() for k, v in features(padded, TAPS).items()}
    return run


def score_outputs(evalset: EvalSet, outputs: Sequence[Sequence[Tensor]], features: FeatureFn,
                  seconds: Sequence[Sequence[float]] | None = None) -> dict[str, Any]:
    """Metrics of ``outputs[content][style]`` ((1, 3, H, W) in [0, 1] each) against the evaluation set.

    Returns:
        ``{"pairs": [...], "spread": [per photo], "means": {...}}``.
    """
    c_feats = [features(c) for c in evalset.contents]
    s_feats = [features(s) for s in evalset.styles]
    s_weights = [None if w is None else pad_to_multiple(w)[0] for w in evalset.style_weights()]
    c_stats = [feature_stats(f) for f in c_feats]
    s_stats = [feature_stats(f, w) for f, w in zip(s_feats, s_weights)]
    pairs, spreads = [], []
    for ci, row in enumerate(outputs):
        row_stats = []
        for si, out in enumerate(row):
            f_out = features(out)
            o_stats = feature_stats(f_out)
            row_stats.append(o_stats)
            pairs.append({
                "content": evalset.content_names[ci], "style": evalset.style_names[si],
                "seconds": seconds[ci][si] if seconds is not None else 0.0,
                "style_gap_ratio": style_gap_ratio(o_stats, c_stats[ci], s_stats[si]),
                "gram_gap": gram_gap_ratio(f_out, c_feats[ci], s_feats[si], s_weights[si]),
                "colour_gap": colour_gap_ratio(out, evalset.contents[ci], evalset.styles[si],
                                               evalset.style_weights()[si]),
                "content_corr": content_corr(f_out["relu4_1"], c_feats[ci]["relu4_1"]),
                "layout_corr": layout_corr(out, evalset.contents[ci]),
                "grid_ratio": grid_ratio(out),
            })
        spreads.append(spread(row_stats, s_stats))
    means = {k: sum(p[k] for p in pairs) / len(pairs)
             for k in ("style_gap_ratio", "gram_gap", "colour_gap", "content_corr", "layout_corr", "grid_ratio")}
    means["spread"] = sum(spreads) / len(spreads)
    means["seconds_per_image"] = sum(p["seconds"] for p in pairs) / len(pairs)
    return {"pairs": pairs, "spread": spreads, "means": means}


def engine_outputs(engine: Any, evalset: EvalSet, progress: Callable[[str], None] | None = None,
                   color: str = "style", marks: float = 0.0
                   ) -> tuple[list[list[Tensor]], list[list[float]], list[float]]:
    """Stylise every pair with an :class:`adain_core.Engine` at α = 1 in colour mode ``color`` with the painting's
    marks at strength ``marks``, and reconstruct every photo from its own card (in style mode, without marks: the
    decoder's own reconstruction).

    Returns:
        ``(outputs, seconds, recon_psnr)``: outputs[c][s] (1, 3, H, W) in [0, 1], timings, PSNR per photo.
    """
    from adain_core.images import pil_to_tensor, tensor_to_pil

    cards = [engine.encode_style(tensor_to_pil(s), size=None, name=n, backdrop=evalset.backdrop)
             for s, n in zip(evalset.styles, evalset.style_names)]
    outputs, seconds = [], []
    for c, cname in zip(evalset.contents, evalset.content_names):
        im = tensor_to_pil(c)
        row, times = [], []
        for card, sname in zip(cards, evalset.style_names):
            t0 = time.perf_counter()
            out = engine.stylize(im, card, alpha=1.0, color=color, marks=marks)
            times.append(time.perf_counter() - t0)
            row.append(pil_to_tensor(out)[0])
            if progress:
                progress(f"{cname} × {sname}")
        outputs.append(row)
        seconds.append(times)
    recon = []
    for c, cname in zip(evalset.contents, evalset.content_names):
        im = tensor_to_pil(c)
        out = engine.stylize(im, engine.encode_style(im, size=None, name=cname), alpha=1.0)
        recon.append(psnr(pil_to_tensor(out)[0], c))
    return outputs, seconds, recon


def reference_outputs(evalset: EvalSet) -> dict[str, list[list[Tensor]]]:
    """The two reference rows: the photo itself for every painting, and the photo given the painting's RGB mean and
    covariance (CORAL colour transfer, no network; of its painted pixels, as the engine's palette)."""
    from adain_core.color import coral, mixture_stats

    identity = [[c for _ in evalset.styles] for c in evalset.contents]
    palettes = [mixture_stats([s[0]], [1.0], [None if w is None else w[0, 0]])
                for s, w in zip(evalset.styles, evalset.style_weights())]
    transfer = [[coral(c, mean, cov) for mean, cov in palettes] for c in evalset.contents]
    return dict(zip(REFERENCES, (identity, transfer)))


def write_sheet(evalset: EvalSet, outputs: Sequence[Sequence[Tensor]], path: Path, cell: int = 128) -> Path:
    """Contact sheet: paintings across, photos down, one output per pair."""
    from adain_core.images import tensor_to_pil

    from .report import contact_sheet

    rows = [[tensor_to_pil(o) for o in row] for row in outputs]
    return contact_sheet(evalset.images("content"), evalset.images("style"), rows, path, cell=cell)


def evaluate_model(engine: Any, contents: Sequence[Path], styles: Sequence[Path], size: int, style_size: int,
                   cell: int = 128, sheet: Path | None = None, progress: Callable[[str], None] | None = None,
                   backdrop: str = BACKDROP_MODES[0]) -> dict[str, Any]:
    """All content × style pairs at α = 1 plus reconstructions with one loaded engine.

    Returns:
        ``{"pairs": [...], "spread": [...], "reconstruction": [...], "means": {...}}``.
    """
    evalset = load_eval_set(contents, styles, size, style_size, backdrop)
    outputs, seconds, recon = engine_outputs(engine, evalset, progress)
    result = score_outputs(evalset, outputs, padded_features(engine.features), seconds)
    result["reconstruction"] = [{"content": n, "psnr": v} for n, v in zip(evalset.content_names, recon)]
    result["means"]["recon_psnr"] = sum(recon) / len(recon)
    if sheet is not None:
        write_sheet(evalset, outputs, sheet, cell)
    return result


def model_file_for(spec: str, tmp: Path) -> Path:
    """A model file for ``spec``: model files and names pass through; training checkpoints (``.pt``) are exported
    (fp16, as shipped) into ``tmp`` first."""
    path = Path(spec)
    if path.suffix in (".pt", ".ckpt") and path.is_file():
        from .export import export_checkpoint

        out = tmp / f"{path.stem}-{abs(hash(str(path.resolve()))) % 10**8}.safetensors"
        return export_checkpoint(path, out)
    return path


def _fmt(value: float | None, width: int, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'–':>{width}s}"
    return f"{value:{width}.{digits}f}"


def format_comparison(models: dict[str, dict[str, Any]]) -> str:
    """The comparison table of the means: one row per model (references included)."""
    head = (f"{'model':30s} {'style_gap':>9s} {'gram_gap':>9s} {'colour_gap':>10s} {'content_corr':>12s} "
            f"{'layout':>6s} {'grid':>5s} {'spread':>7s} {'recon dB':>8s} {'s/img':>6s}")
    lines = [head]
    for name, r in models.items():
        m = r["means"]
        lines.append(f"{name[:30]:30s} {_fmt(m['style_gap_ratio'], 9, 3)} {_fmt(m['gram_gap'], 9, 3)} "
                     f"{_fmt(m['colour_gap'], 10, 3)} {_fmt(m['content_corr'], 12, 3)} {_fmt(m['layout_corr'], 6, 3)} "
                     f"{_fmt(m.get('grid_ratio'), 5, 2)} {_fmt(m['spread'], 7, 3)} "
                     f"{_fmt(m.get('recon_psnr'), 8, 2)} {_fmt(m['seconds_per_image'], 6, 2)}")
    return "\n".join(lines)


def _format_pairs(name: str, result: dict[str, Any]) -> str:
    lines = [f"== {name}", f"{'content':32s} {'style':32s} {'gap':>6s} {'gram':>6s} {'colour':>6s} {'corr':>6s} "
                           f"{'layout':>6s} {'grid':>5s}"]
    for p in result["pairs"]:
        lines.append(f"{p['content'][:32]:32s} {p['style'][:32]:32s} {p['style_gap_ratio']:6.3f} "
                     f"{p['gram_gap']:6.3f} {p['colour_gap']:6.3f} {p['content_corr']:6.3f} {p['layout_corr']:6.3f} "
                     f"{p['grid_ratio']:5.2f}")
    for r in result.get("reconstruction", []):
        lines.append(f"reconstruction {r['content'][:60]:60s} PSNR {r['psnr']:6.2f} dB")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """``adain-train evaluate``: per-pair tables and a comparison of the means (the references first); writes
    results.json and one contact sheet per model (``sheet_<name>.jpg``) into ``--out``."""
    import adain_core

    if args.threads:
        torch.set_num_threads(args.threads)
    evalset = load_eval_set(_list_images(args.content), _list_images(args.style), args.size, args.style_size,
                            args.backdrop)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"settings": {"size": args.size, "style_size": args.style_size,
                                            "backdrop": args.backdrop,
                                            "contents": evalset.content_names, "styles": evalset.style_names},
                               "models": {}}
    n_pairs = len(evalset.contents) * len(evalset.styles)
    with tempfile.TemporaryDirectory(prefix="adain-eval-") as tmp:
        for index, spec in enumerate(args.model):
            model_name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).stem, "", spec)
            engine = adain_core.load(model_file_for(path, Path(tmp)), device=args.device)
            features = padded_features(engine.features)
            if index == 0 and not args.no_references:  # references scored with the first model's encoder
                for ref, outputs in reference_outputs(evalset).items():
                    result = score_outputs(evalset, outputs, features)
                    result["means"]["recon_psnr"] = None
                    results["models"][ref] = result
            for color, marks in ((c, k) for c in args.color for k in args.marks):
                name = model_name + ("" if color == "style" else f"+{color}") + (f"+marks{marks:g}" if marks else "")
                done = [0]

                def _progress(what: str, name: str = name) -> None:
                    done[0] += 1
                    if done[0] % len(evalset.styles) == 0:
                        print(f"[{name}] {done[0]}/{n_pairs} pairs", file=sys.stderr, flush=True)

                outputs, seconds, recon = engine_outputs(engine, evalset, _progress, color, marks)
                result = score_outputs(evalset, outputs, features, seconds)
                result["reconstruction"] = [{"content": n, "psnr": v} for n, v in zip(evalset.content_names, recon)]
                result["means"]["recon_psnr"] = sum(recon) / len(recon)
                write_sheet(evalset, outputs, out_dir / f"sheet_{name}.{args.sheet_format}", args.cell)
                result["model"] = path
                result["color"] = color
                result["marks"] = marks
                result["metadata_steps"] = engine.metadata.get("steps")
                results["models"][name] = result
            results["settings"]["precision"] = str(engine.precision)
            results["settings"]["device"] = str(engine.device)
            if args.verbose_pairs:
                print(_format_pairs(name, result), flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print("\n== comparison (means; gaps: 1 = no closer to the painting than the photo, 0 = matched)")
    print(format_comparison(results["models"]))
    return 0
