"""Make the training log's objective example (docs/images/objective_example.jpg): for one photo × painting pair,
the trained decoders' outputs beside the image that the training objective itself asks for — the pixels optimised
directly against the same loss (no decoder) — and print each one's loss terms.

If the optimised image lacks a flaw that the decoders show, the flaw is the decoder's (too few steps, too little
capacity), not the objective's. ``--fit N`` also trains a copy of the last decoder on this one pair for N steps: if
it gets near the optimised pixels' loss, the architecture can paint that image and what is missing is training.
``--fit-skip`` fits a second copy given the relu3_1 input as well (a skip decoder, its skip starting at zero), which
measures what that input adds.

The photo is the eval set's kite (MS-COCO val2017 7784), the painting the Wesnoth bear portrait (GPL, Debian's
wesnoth-data); both are read from ../shared/data (never committed). The loss is the training objective
(:meth:`training.loop.Trainer.objective`) with stretch 10's weights unless told otherwise.

Usage: python docs/make_objective_example.py [--model PATH ...] [--steps 250] [--pixel-init photo] [--fit 0]
       [--fit-skip] [--luma-weight 0] [--threads 1]
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from adain_core.adain import adain
from adain_core.images import load_image, pil_to_tensor, resize_shorter, tensor_to_pil
from adain_core.networks import SKIP_TAP, TAPS, Decoder, decoder_skip
from training.checkpoint import load_decoder_state
from training.config import TrainConfig
from training.losses import palette_recolour, style_stats
from training.loop import Trainer
from example_args import ROOT, example_parser

PANEL = 256  # px, the panels' shorter side


def main() -> None:
    parser = example_parser(__doc__, "objective_example.jpg")
    parser.add_argument("--model", action="append", type=Path,
                        help="decoder file or checkpoint to show (repeat; default: the shipped decoder)")
    parser.add_argument("--size", type=int, default=256, help="shorter side of photo and painting in px")
    parser.add_argument("--steps", type=int, default=250, help="Adam steps on the pixels (0: no such panel)")
    parser.add_argument("--pixel-init", choices=("photo", "decoder"), default="photo",
                        help="start the pixels from the photo, or from the last decoder's output (is its flaw a "
                             "minimum of the objective, or does the optimisation leave it?)")
    parser.add_argument("--fit", type=int, default=0, help="Adam steps of a copy of the last decoder on this pair")
    parser.add_argument("--fit-lr", type=float, default=1e-4)
    parser.add_argument("--fit-skip", action="store_true", help="also fit a copy with the relu3_1 input")
    parser.add_argument("--threads", type=int, default=1)
    # the objective: stretch 10's recipe (docs/TRAINING_LOG.md)
    parser.add_argument("--style-weight", type=float, default=7.0)
    parser.add_argument("--structure-weight", type=float, default=0.75)
    parser.add_argument("--structure-taps", nargs="+", default=["relu4_1"])
    parser.add_argument("--colour-weight", type=float, default=10.0)
    parser.add_argument("--luma-weight", type=float, default=0.0)
    parser.add_argument("--luma-radius", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(out_dir=tempfile.mkdtemp(prefix="adain-objective-"), style_weight=args.style_weight,
                      structure_weight=args.structure_weight, structure_taps=args.structure_taps,
                      colour_weight=args.colour_weight, luma_weight=args.luma_weight, luma_radius=args.luma_radius,
                      palette=True, precision="fp32", device="cpu", progress=False)

    def load(folder: str, pattern: str) -> torch.Tensor:
        path = sorted((args.data / folder).glob(pattern))[0]
        image = resize_shorter(pil_to_tensor(load_image(path).convert("RGB"))[0], args.size)
        h, w = image.shape[-2:]
        return image[..., : h - h % 8, : w - w % 8]  # whole relu4_1 cells, so that the skip input lines up

    photo, painting = load("content", "*000000007784.jpg"), load("style", "*monsters_bear.jpg")
    scorer = Trainer(cfg, folder_data=False)
    with torch.no_grad():
        fc = scorer.encoder(photo, TAPS)
        s_stats = style_stats(scorer.encoder(painting, TAPS))
        target = adain(fc["relu4_1"], *s_stats["relu4_1"])

    def decode(decoder: Decoder) -> torch.Tensor:
        return decoder(target, adain(fc[SKIP_TAP], *s_stats[SKIP_TAP]) if SKIP_TAP in decoder.taps else None)

    def score(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        out = palette_recolour(pixels, painting)
        loss, parts = scorer.objective(out, scorer.encoder(out, scorer.out_taps), fc, target, s_stats, painting,
                                       photo)
        return out, loss, parts

    def report(name: str, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        terms = "  ".join(f"{k} {float(parts[k]):.3f}" for k in ("content", "style", "structure", "colour", "luma")
                          if k in parts)
        print(f"{name:>28}: total {float(loss):.3f}  {terms}")

    panels, names = [photo, painting], ["photo", "painting"]
    for path in args.model or [ROOT / "adain_core" / "models" / "default.safetensors"]:
        skip = decoder_skip(load_decoder_state(path)[0])
        decoder = Trainer(replace(cfg, decoder_skip=skip), init_decoder=path, folder_data=False).decoder.eval()
        with torch.no_grad():
            last_output = decode(decoder)
            out, loss, parts = score(last_output)
        report(path.name, loss, parts)
        panels.append(out)
        names.append(path.name)

    last = path
    last_skip = decoder_skip(load_decoder_state(last)[0])  # a skip decoder is fitted as one only
    for skip in (True,) if last_skip else (False, True) if args.fit_skip else (False,):
        if not args.fit:
            break
        name = f"{last.name} fitted{' with relu3_1' if skip else ''}"
        decoder = Trainer(replace(cfg, decoder_skip=skip), init_decoder=last, folder_data=False).decoder
        optimiser = torch.optim.Adam(decoder.parameters(), lr=args.fit_lr)
        for step in range(args.fit):
            _, loss, parts = score(decode(decoder))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step % 50 == 0:
                report(f"{name}, step {step}", loss.detach(), parts)
        with torch.no_grad():
            last_output = decode(decoder)
            out, loss, parts = score(last_output)
        report(f"{name}, {args.fit} steps", loss, parts)
        panels.append(out)
        names.append(f"{name} to the pair")

    if args.steps:
        pixels = (photo if args.pixel_init == "photo" else last_output).clone().requires_grad_(True)
        optimiser = torch.optim.Adam([pixels], lr=0.02)
        for _ in range(args.steps):
            _, loss, _ = score(pixels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                pixels.clamp_(-0.5, 1.5)
        with torch.no_grad():
            out, loss, parts = score(pixels)
        report(f"pixels, {args.steps} Adam steps", loss, parts)
        panels.append(out)
        names.append(f"optimised pixels from the {args.pixel_init}")

    images = [tensor_to_pil(p.clamp(0, 1)) for p in panels]
    images = [im.resize((round(im.width * PANEL / im.height), PANEL), Image.LANCZOS) for im in images]
    sheet = Image.new("RGB", (sum(im.width for im in images) + 8 * (len(images) - 1), PANEL), "white")
    x = 0
    for im in images:
        sheet.paste(im, (x, 0))
        x += im.width + 8
    sheet.save(args.out, quality=88, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): {' | '.join(names)}")


if __name__ == "__main__":
    main()
