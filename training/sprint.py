"""``adain-train sprint``: a fixed-time training run from a training pack, built for a GPU lent for minutes.

The whole pack is decoded once into uint8 tensors on the device; every batch is a set of random resized crops and
flips made on the device (no data loader). The optimisation step is :meth:`training.loop.Trainer.train_step`, the
same code as ``adain-train train``. A decoder snapshot is rewritten every ``--snapshot-seconds`` so that a run cut
short still returns a usable model; at the end the decoder is evaluated on the pack's evaluation set.

Writes into ``--out`` (5 files, each well under 16 MB): ``decoder.safetensors`` (engine model format, fp16),
``metrics.json`` (throughput summary, arguments and the evaluation), ``sheet.png``, ``log.jsonl`` and ``loss.png``;
with ``--profile-steps N`` also ``profile.txt`` (:class:`training.profiling.StepProfiler`).

Imports only torch, numpy, Pillow, safetensors and this repository (no kornia, matplotlib, tqdm or platformdirs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from adain_core.adain import style_transfer, tap_stats
from adain_core.backdrop import painted_weights
from adain_core.color import after_pass, color_stats, match_palettes
from adain_core.engine import BORDER
from adain_core.networks import TAPS, Decoder, build_encoder, decoder_inputs, decoder_skip, pad_to_multiple
from adain_core.store import ENCODERS
from adain_core.tone import mixture_tones
from adain_core.vocabulary import BACKDROP_MODES, UPSAMPLES

from .checkpoint import load_decoder_state
from .config import LAYER_WEIGHT_PRESETS, TrainConfig
from .data import CROP_TRIES, PAINTED_SHARE
from .pack import read_pack
from .profiling import StepProfiler

__all__ = ["random_crops", "decoder_outputs", "run_sprint", "add_sprint_args", "SPRINT_RECIPE",
           "SPRINT_STRUCTURE_TAPS", "SPRINT_LAYER_WEIGHTS"]

# The sprint's default recipe: the shipped decoder's (stretches 47–48, docs/TRAINING_LOG.md: λ 10 with the shallow
# style terms doubled, structure × 1.5, colour × 20 on 4,096 sampled pixels, luma × 2, the grid term, palette mode)
# at the GPU's batch, size and learning rate; every value is an option.
SPRINT_RECIPE: dict[str, float] = {
    "batch": 32, "size": 256, "lr": 2e-4, "lr_decay": 2e-5, "style_weight": 10.0, "identity_pixel": 0.0,
    "identity_feature": 0.0, "identity_fraction": 0.25, "structure_weight": 1.5, "colour_weight": 20.0,
    "colour_pixels": 4096.0, "luma_weight": 2.0, "luma_radius": 8.0, "min_scale": 0.6, "palette": 1.0,
    "raw_colour_weight": 1.0, "grid_weight": 2.0, "palette_tone": 0.0, "gram_weight": 0.0,
}
SPRINT_STRUCTURE_TAPS: tuple[str, ...] = ("relu3_1", "relu4_1")  # the structure term's taps in that recipe
SPRINT_LAYER_WEIGHTS = "hed-std-shallow"  # the style terms' per-layer weights in that recipe (LAYER_WEIGHT_PRESETS)


def _window_shares(painted: Tensor, scale: Tensor, tx: Tensor, ty: Tensor, points: int = 8) -> Tensor:
    """The painted share of candidate windows, from ``points`` × ``points`` samples of each.

    Args:
        painted: (B, 1, S, S) float in [0, 1].
        scale, tx, ty: (T, B) window side (fraction of S) and centre (in [-1, 1]) of T candidates per image.

    Returns:
        (B, T) float in [0, 1].
    """
    tries, batch = scale.shape
    theta = torch.zeros(tries * batch, 2, 3, device=painted.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale.flatten()
    theta[:, 0, 2], theta[:, 1, 2] = tx.flatten(), ty.flatten()
    grid = F.affine_grid(theta, [tries * batch, 1, points, points], align_corners=False)
    grid = grid.view(tries, batch, points, points, 2).transpose(0, 1).reshape(batch, tries * points, points, 2)
    samples = F.grid_sample(painted, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return samples.view(batch, tries, points * points).mean(dim=2)


def random_crops(images: Tensor, batch: int, size: int, generator: torch.Generator,
                 min_scale: float = 0.6) -> Tensor:
    """Random resized crops with random horizontal flips, made on the images' device.

    Paintings with a fourth (painted) channel (:class:`training.pack.Pack`) are cropped as ``adain-train train
    --backdrop ignore`` crops them (:func:`training.data.random_crop`): the first of :data:`training.data.CROP_TRIES`
    windows that is at least :data:`training.data.PAINTED_SHARE` painting, else the most painted one; a crop with no
    painting at all counts as painting throughout.

    Args:
        images: (N, C, S, S) uint8 training images, C = 3, or 4 with the painted channel (255 = painting).
        batch: number of crops.
        size: output side in px.
        generator: a generator on the images' device.
        min_scale: smallest crop side as a fraction of S (each crop's side is uniform in [min_scale, 1]·S).

    Returns:
        (batch, C, size, size) float32 in [0, 1].
    """
    dev = images.device
    tries = CROP_TRIES if images.shape[1] == 4 else 1
    idx = torch.randint(images.shape[0], (batch,), device=dev, generator=generator)
    scale = torch.rand(tries, batch, device=dev, generator=generator) * (1 - min_scale) + min_scale
    tx = (torch.rand(tries, batch, device=dev, generator=generator) * 2 - 1) * (1 - scale)
    ty = (torch.rand(tries, batch, device=dev, generator=generator) * 2 - 1) * (1 - scale)
    flip = torch.where(torch.rand(batch, device=dev, generator=generator) < 0.5, -1.0, 1.0)
    src = images[idx].float().div_(255.0)
    if tries > 1:
        share = _window_shares(src[:, 3:], scale, tx, ty)
        enough = share >= PAINTED_SHARE
        pick = torch.where(enough.any(dim=1), enough.int().argmax(dim=1), share.argmax(dim=1))[None]
        scale, tx, ty = (v.gather(0, pick) for v in (scale, tx, ty))
    theta = torch.zeros(batch, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = scale[0] * flip, tx[0]
    theta[:, 1, 1], theta[:, 1, 2] = scale[0], ty[0]
    grid = F.affine_grid(theta, [batch, images.shape[1], size, size], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False).clamp_(0, 1)
    if tries > 1:
        painted = out[:, 3:]
        out[:, 3:] = torch.where(painted.amax(dim=(2, 3), keepdim=True) > 0, painted, torch.ones_like(painted))
    return out


@torch.no_grad()
def decoder_outputs(encoder: torch.nn.Module, decoder: Decoder, contents: list[Tensor], styles: list[Tensor],
                    device: torch.device, amp_dtype: torch.dtype | None, palette: bool = False,
                    painted: list[Tensor | None] | None = None) -> tuple[list[list[Tensor]], list[float]]:
    """Stylise every content × style pair at α = 1 with the engine's one-pass method
    (:func:`adain_core.adain.style_transfer`; inputs padded by the engine's mirrored border and to a multiple of 8,
    outputs cropped and clamped; with
    ``palette``, then given the painting's RGB mean and covariance and the tone curve towards its luma quantiles,
    as the engine's palette colour mode does) and
    decode each photo from its own features. A painting's statistics and palette weigh its pixels by ``painted``,
    as the engine's style card does.

    Args:
        contents, styles: (1, 3, H, W) float in [0, 1] each.
        painted: per painting (1, 1, H, W) float in [0, 1] (0 on a flat backdrop) or ``None`` (every pixel alike);
            ``None``: every painting whole.

    Returns:
        ``(outputs[c][s], reconstructions[c])``: (1, 3, H, W) float CPU tensors in [0, 1].
    """
    def encode(x: Tensor) -> dict[str, Tensor]:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return {t: f.float() for t, f in encoder(x, decoder.taps).items()}

    def decode(targets: dict[str, Tensor]) -> Tensor:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return decoder(*decoder_inputs(targets)).float()

    def finish(out: Tensor, hw: tuple[int, int], mode: str = "style") -> Tensor:
        out = out[..., BORDER:BORDER + hw[0], BORDER:BORDER + hw[1]]
        return after_pass(mode, out, out).cpu()  # as the engine: palette mode maps the unclamped output

    def stats(style: Tensor, weight: Tensor | None) -> dict[str, list[tuple[Tensor, Tensor]]]:
        feats = encode(pad_to_multiple(style.to(device))[0])
        padded = None if weight is None else pad_to_multiple(weight.to(device))[0]
        return {t: [ms] for t, ms in tap_stats(feats, padded).items()}

    weights = painted if painted is not None else [None] * len(styles)
    style_stats = [stats(s, w) for s, w in zip(styles, weights)]
    palettes = [[(*color_stats(s.cpu(), w), None)] for s, w in zip(styles, weights)]
    tones = [[mixture_tones([s[0].cpu()], [1.0], [None if w is None else w[0, 0].cpu()])[None]]
             for s, w in zip(styles, weights)]
    outputs, recon = [], []
    for c in contents:
        padded, hw = pad_to_multiple(c.to(device), border=BORDER)
        row = [finish(style_transfer(encode, decode, padded, stats)[0], hw, "palette" if palette else "style")
               for stats in style_stats]
        outputs.append([match_palettes(o, p, tones=t) for o, p, t in zip(row, palettes, tones)] if palette else row)
        recon.append(finish(decode(encode(padded)), hw))
    return outputs, recon


def _plot_losses(records: list[dict[str, float]], path: Path, width: int = 720, height: int = 360) -> None:
    """Loss curves (log scale) with Pillow only: the total and each weighted term against the step.

    A term that is switched off (zero at every logged step) is left out, so that it does not stretch the scale.
    """
    from PIL import Image, ImageDraw

    colours = {"loss": (0, 0, 0), "content": (31, 119, 180), "style": (214, 39, 40), "identity_pixel": (44, 160, 44),
               "identity_feature": (148, 103, 189), "colour": (255, 127, 14)}
    keys = [k for k in colours if any(r.get(k, 0.0) > 0 for r in records)]
    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    values = [math.log10(max(r[k], 1e-6)) for r in records for k in keys if k in r]
    steps = [r["step"] for r in records]
    if not values or len(steps) < 2:
        im.save(path)
        return
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1
    x0, x1 = min(steps), max(steps)
    x1 = x1 if x1 > x0 else x0 + 1
    left, right, top, bottom = 50, width - 10, 10, height - 25

    def xy(step: float, v: float) -> tuple[float, float]:
        return (left + (step - x0) / (x1 - x0) * (right - left),
                bottom - (math.log10(max(v, 1e-6)) - lo) / (hi - lo) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline=(160, 160, 160))
    draw.text((4, top), f"1e{hi:.1f}", fill=(0, 0, 0))
    draw.text((4, bottom - 10), f"1e{lo:.1f}", fill=(0, 0, 0))
    draw.text((left, bottom + 6), f"step {x0}", fill=(0, 0, 0))
    draw.text((right - 80, bottom + 6), f"step {x1}", fill=(0, 0, 0))
    for i, k in enumerate(keys):
        col = colours[k]
        pts = [xy(r["step"], r[k]) for r in records if k in r]
        if len(pts) > 1:
            draw.line(pts, fill=col, width=2)
        draw.text((left + 8 + 110 * i, top + 4), k, fill=col)
    im.save(path)


def add_sprint_args(p: argparse.ArgumentParser) -> None:
    r = SPRINT_RECIPE
    p.add_argument("pack", help="training pack folder (adain-train pack)")
    p.add_argument("--out", required=True, help="output folder (decoder, metrics, sheet, log, loss plot)")
    p.add_argument("--minutes", type=float, default=7.5, help="training wall time (default 7.5)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = time only)")
    p.add_argument("--device", default="auto", help="auto | cuda | cpu (default auto)")
    p.add_argument("--init", default="default",
                   help="decoder to start from: a model file, checkpoint, or 'default' (the shipped decoder)")
    p.add_argument("--batch", type=int, default=int(r["batch"]), help=f"batch size (default {int(r['batch'])})")
    p.add_argument("--size", type=int, default=int(r["size"]), help=f"crop side in px (default {int(r['size'])})")
    p.add_argument("--min-scale", type=float, default=r["min_scale"],
                   help=f"smallest crop side as a fraction of the packed side (default {r['min_scale']})")
    p.add_argument("--lr", type=float, default=r["lr"], help=f"Adam learning rate (default {r['lr']})")
    p.add_argument("--lr-decay", type=float, default=r["lr_decay"], help=f"lr/(1+decay·step) (default {r['lr_decay']})")
    p.add_argument("--layer-weights", choices=sorted(LAYER_WEIGHT_PRESETS), default=SPRINT_LAYER_WEIGHTS,
                   help=f"per-layer weights of the style terms (default {SPRINT_LAYER_WEIGHTS})")
    p.add_argument("--style-weight", type=float, default=r["style_weight"], help=f"λ (default {r['style_weight']})")
    p.add_argument("--identity-pixel", type=float, default=r["identity_pixel"],
                   help=f"identity loss pixel weight (default {r['identity_pixel']})")
    p.add_argument("--identity-feature", type=float, default=r["identity_feature"],
                   help=f"identity loss feature weight (default {r['identity_feature']})")
    p.add_argument("--identity-fraction", type=float, default=r["identity_fraction"],
                   help=f"share of the batch used for identity losses (default {r['identity_fraction']})")
    p.add_argument("--structure-weight", type=float, default=r["structure_weight"],
                   help=f"instance-normalised feature (content_corr) loss weight per --structure-taps tap "
                        f"(default {r['structure_weight']})")
    p.add_argument("--structure-taps", nargs="+", metavar="TAP", choices=TAPS,
                   default=list(SPRINT_STRUCTURE_TAPS),
                   help="encoder taps of the structure term, each weighted --structure-weight (default "
                        f"{' '.join(SPRINT_STRUCTURE_TAPS)})")
    p.add_argument("--decoder-skip", type=int, choices=[0, 1], default=None,
                   help="1: the decoder also reads relu3_1 (a plain --init gets a zero-initialised skip); "
                        "default: as the --init weights")
    p.add_argument("--decoder-upsample", choices=UPSAMPLES, default=None,
                   help="the decoder's ×2 upsampling, nearest or bilinear (no 2 and 4 px grid); default: as the "
                        "--init weights")
    p.add_argument("--colour-weight", type=float, default=r["colour_weight"],
                   help=f"RGB sliced Wasserstein weight (default {r['colour_weight']})")
    p.add_argument("--colour-pixels", type=int, default=int(r["colour_pixels"]),
                   help="> 0: that term compares a random sample of this many pixels per image (default "
                        f"{int(r['colour_pixels'])}: all; the sort is 8 %% of a GPU step)")
    p.add_argument("--luma-weight", type=float, default=r["luma_weight"],
                   help=f"blurred-luma correlation loss weight (the photo's light/dark layout; default {r['luma_weight']})")
    p.add_argument("--luma-radius", type=int, default=int(r["luma_radius"]),
                   help=f"box radius of that blur in px (default {int(r['luma_radius'])})")
    p.add_argument("--grid-weight", type=float, default=r["grid_weight"],
                   help=f"weight of the output's regular 2 and 4 px grid beyond a photo's (default {r['grid_weight']})")
    p.add_argument("--gram-weight", type=float, default=r["gram_weight"],
                   help="weight of the Gram term: the output's feature correlations against the painting's at "
                        f"relu1_1-relu3_1 (default {r['gram_weight']})")
    p.add_argument("--backdrop", choices=BACKDROP_MODES, default=BACKDROP_MODES[0],
                   help="ignore: a painting's flat backdrop is left out of its statistics, palette and colour term "
                        "in training and evaluation, as the engine's style cards leave it out (needs a pack made "
                        "with --painted 1); keep: the whole painting counts")
    p.add_argument("--palette", type=int, choices=[0, 1], default=int(r["palette"]),
                   help=f"train and evaluate for the palette colour mode (default {int(r['palette'])})")
    p.add_argument("--palette-tone", type=float, default=r["palette_tone"],
                   help="with --palette: the losses also see the palette mode's tone curve at this strength (the "
                        f"engine's is 0.5; default {r['palette_tone']})")
    p.add_argument("--raw-colour-weight", type=float, default=r["raw_colour_weight"],
                   help="with --palette: L1 pulling the decoder's own output to its recoloured version (keeps it in "
                        f"range for the other colour modes; default {r['raw_colour_weight']})")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the decoder (costs compile time)")
    p.add_argument("--snapshot-seconds", type=float, default=60.0, help="rewrite the decoder this often (default 60)")
    p.add_argument("--log-seconds", type=float, default=5.0, help="print throughput this often (default 5)")
    p.add_argument("--eval-size", type=int, default=256, help="evaluation: shorter side of photos and paintings")
    p.add_argument("--no-eval", action="store_true", help="skip the end-of-run evaluation")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="profile this many steps after the first 10 and write profile.txt (wall vs device time, "
                        "the slowest operators; default 0: off)")
    p.add_argument("--seed", type=int, default=0)


def _init_path(spec: str) -> Path:
    if spec == "default":
        from adain_core.store import bundled_models

        return bundled_models()["default"]
    return Path(spec)


def run_sprint(args: argparse.Namespace) -> int:
    """Run ``adain-train sprint`` (see the module docstring)."""
    from adain_core.images import tensor_to_pil

    from .evaluate import EvalSet, format_comparison, padded_features, reference_outputs, score_outputs
    from .export import export_state
    from .loop import Trainer, hardware_name
    from .metrics import psnr
    from .report import save_grid

    t_start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pack = read_pack(args.pack)
    m = pack.manifest
    if args.backdrop == "ignore" and not pack.painted:
        print(f"adain-train sprint: {args.pack} has no painted pixels (packed with --painted 0 or before 2026-12-06): "
              "re-make it with adain-train pack, or pass --backdrop keep", file=sys.stderr)
        return 2
    encoder_id = m["encoder"].get("encoder_id", "vgg16-hed-bsds500")
    encoder = build_encoder(ENCODERS.get(encoder_id, "vgg16"))
    encoder.load_state_dict(pack.encoder_state)
    init = _init_path(args.init)
    weights, info = load_decoder_state(init)
    skip = decoder_skip(weights) if args.decoder_skip is None else bool(args.decoder_skip)
    cfg = TrainConfig(content_dirs=[], style_dirs=[], out_dir=str(out), encoder_id=encoder_id, crop=args.size,
                      decoder_skip=skip, decoder_upsample=args.decoder_upsample or info["decoder_upsample"],
                      style_weight=args.style_weight, layer_weights=args.layer_weights,
                      identity_pixel=args.identity_pixel,
                      identity_feature=args.identity_feature, identity_fraction=args.identity_fraction,
                      structure_weight=args.structure_weight, structure_taps=list(args.structure_taps),
                      colour_weight=args.colour_weight, colour_pixels=args.colour_pixels,
                      luma_weight=args.luma_weight, luma_radius=args.luma_radius, grid_weight=args.grid_weight,
                      gram_weight=args.gram_weight,
                      backdrop=args.backdrop, palette=bool(args.palette), palette_tone=args.palette_tone,
                      raw_colour_weight=args.raw_colour_weight, batch_size=args.batch,
                      lr=args.lr, lr_decay=args.lr_decay,
                      precision=args.precision, compile=args.compile, seed=args.seed, device=args.device,
                      channels_last=True, progress=False)
    trainer = Trainer(cfg, init_decoder=init, encoder=encoder, folder_data=False)
    trainer.images = {"content": int(pack.content.shape[0]), "style": int(pack.style.shape[0])}
    trainer.manifest = m["files"]["images.bin"]["sha256"]
    dev = trainer.device
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    content, style = pack.content.to(dev), pack.style[:, :4 if args.backdrop == "ignore" else 3].to(dev)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.amp_dtype]
    print(f"sprint: {dev} ({precision}), pack "
          f"{content.shape[0]} photos + {style.shape[0]} paintings at {content.shape[-1]} px, loaded in "
          f"{time.monotonic() - t_start:.1f} s; start step {trainer.step} from {init}", flush=True)

    start_step = trainer.step
    records: list[dict[str, float]] = []
    acc: dict[str, Tensor] = {}
    n_acc = 0
    log_file = open(out / "log.jsonl", "a")
    t0 = time.monotonic()
    deadline = t0 + args.minutes * 60
    last_log = last_snap = t0
    last_step = trainer.step
    decoder_path = out / "decoder.safetensors"
    profiler = StepProfiler(out / "profile.txt", args.profile_steps, dev) if args.profile_steps else None
    try:
        while time.monotonic() < deadline and (not args.max_steps or trainer.step - start_step < args.max_steps):
            if profiler is not None:
                profiler.tick(trainer.step - start_step)
            c = random_crops(content, args.batch, args.size, gen, args.min_scale)
            s = random_crops(style, args.batch, args.size, gen, args.min_scale)
            parts = trainer.train_step(c, s, as_floats=False)
            for k, v in parts.items():
                acc[k] = acc[k] + v if k in acc else v
            n_acc += 1
            now = time.monotonic()
            if now - last_log >= args.log_seconds:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                    now = time.monotonic()
                rate = (trainer.step - last_step) / (now - last_log)
                rec = {"step": trainer.step, **{k: float(v) / n_acc for k, v in acc.items()}, "steps_per_s": rate,
                       "images_per_s": rate * args.batch, "seconds": now - t0, "lr": trainer.lr_at(trainer.step)}
                if dev.type == "cuda":
                    rec["gpu_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
                records.append(rec)
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                print(f"step {trainer.step} | {rate:.2f} steps/s | {rate * args.batch:.1f} images/s | loss "
                      f"{rec['loss']:.3g}" + (f" | GPU {rec['gpu_mem_gib']:.1f} GiB" if "gpu_mem_gib" in rec else ""),
                      flush=True)
                acc, n_acc, last_log, last_step = {}, 0, now, trainer.step
                if not math.isfinite(rec["loss"]):
                    raise FloatingPointError(f"loss is {rec['loss']} at step {trainer.step}: stopping")
            if now - last_snap >= args.snapshot_seconds:
                export_state(trainer.state(), decoder_path, name="sprint")
                last_snap = now
    finally:
        log_file.close()
        if profiler is not None:
            profiler.close(trainer.step - start_step)
    train_seconds = time.monotonic() - t0
    trainer.wall_time += train_seconds
    steps = trainer.step - start_step
    hw = hardware_name(dev)
    trainer.hardware[hw] = trainer.hardware.get(hw, 0) + steps
    export_state(trainer.state(), decoder_path, name="sprint")
    _plot_losses(records, out / "loss.png")
    summary = {"steps": steps, "total_steps": trainer.step, "train_seconds": train_seconds,
               "steps_per_s": steps / max(train_seconds, 1e-9),
               "images_per_s": steps * args.batch / max(train_seconds, 1e-9), "batch": args.batch, "size": args.size,
               "device": str(dev), "hardware": hw}
    if dev.type == "cuda":
        summary["gpu_name"] = torch.cuda.get_device_name(dev)
        summary["gpu_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    print(f"trained {steps} steps in {train_seconds:.0f} s: {summary['steps_per_s']:.2f} steps/s, "
          f"{summary['images_per_s']:.1f} images/s", flush=True)
    result: dict[str, Any] = {"summary": summary, "args": vars(args)}
    if not args.no_eval:
        trainer.decoder.eval()
        size = args.eval_size

        def resized(x: Tensor) -> Tensor:
            scale = size / min(x.shape[-2:])
            return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False,
                                 antialias=scale < 1).clamp(0, 1) if scale != 1 else x

        paintings = [resized(x) for x in pack.eval_style]
        evalset = EvalSet(pack.eval_names[0], pack.eval_names[1], [resized(x) for x in pack.eval_content], paintings,
                          [painted_weights(x) for x in paintings] if args.backdrop == "ignore" else None)
        outputs, recon = decoder_outputs(trainer.encoder, trainer.decoder, evalset.contents, evalset.styles, dev,
                                         trainer.amp_dtype, palette=bool(args.palette), painted=evalset.painted)

        def enc_features(x: Tensor, taps: tuple[str, ...]) -> dict[str, Tensor]:
            return trainer.encoder(x.to(dev, memory_format=torch.channels_last), taps)

        features = padded_features(enc_features)
        models = {}
        with torch.no_grad():
            for ref, ref_outputs in reference_outputs(evalset).items():
                models[ref] = score_outputs(evalset, ref_outputs, features)["means"]
            scored = score_outputs(evalset, outputs, features)
        scored["means"]["recon_psnr"] = sum(psnr(r, c) for r, c in zip(recon, evalset.contents)) / len(recon)
        models["sprint"] = scored["means"]
        result["eval"] = {"size": size, "pairs": scored["pairs"], "spread": scored["spread"], "means": models}
        rows: list[list[Any]] = [[None, *(tensor_to_pil(s) for s in evalset.styles)]]
        rows += [[tensor_to_pil(c), *(tensor_to_pil(o) for o in row)] for c, row in zip(evalset.contents, outputs)]
        save_grid(rows, out / "sheet.png", cell=128)
        print(format_comparison({k: {"means": v} for k, v in models.items()}), flush=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {decoder_path} ({decoder_path.stat().st_size / 1e6:.1f} MB) and metrics into {out} "
          f"({time.monotonic() - t_start:.0f} s in all)", flush=True)
    return 0
