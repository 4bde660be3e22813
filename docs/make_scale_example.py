"""Make the README's working-resolution example (docs/images/scale_example.jpg): the same crop of a 12-megapixel
stylisation at scale 1, 0.5 and 0.25, beside the content's crop, and print the time of each run.

The content is an eval photo (Endless Sky landscape, GPL, from Debian's endless-sky-data) upscaled to 4240×2832; the
style is Gauguin's Tahiti painting (public domain). Both are read from ../shared/data (never committed).

Usage: python docs/make_scale_example.py [--model default] [--data ../shared/data/eval]
"""

from __future__ import annotations

import time

import torch
from PIL import Image

import adain_core
from adain_core.images import load_image, pil_to_tensor, tensor_to_pil
from example_args import example_parser

SIZE = (2832, 4240)  # (H, W): 12.0 MP, 3:2
CROP = 640  # px of the full-size image per panel (shown at PANEL px)
PANEL = 320


def main() -> None:
    parser = example_parser(__doc__, "scale_example.jpg")
    parser.add_argument("--model", default="default")
    parser.add_argument("--scales", default="1,0.5,0.25")
    args = parser.parse_args()
    engine = adain_core.load(args.model)
    photo = load_image(sorted((args.data / "content").glob("*city2.jpg"))[0]).convert("RGB")
    card = engine.encode_style(sorted((args.data / "style").glob("*tahiti*.jpg"))[0], size=512)
    x = torch.nn.functional.interpolate(pil_to_tensor(photo)[0], size=SIZE, mode="bicubic",
                                        align_corners=False).clamp(0, 1)
    top, left = SIZE[0] // 2 - CROP // 2, SIZE[1] // 3 - CROP // 2

    def crop(t: torch.Tensor) -> Image.Image:
        return tensor_to_pil(t[:, :, top:top + CROP, left:left + CROP]).resize((PANEL, PANEL), Image.LANCZOS)

    panels = [crop(x)]
    print(f"content {SIZE[1]}x{SIZE[0]} ({SIZE[0] * SIZE[1] / 1e6:.1f} MP), {engine.device} {engine.precision}, "
          f"{torch.get_num_threads()} threads")
    for scale in (float(s) for s in args.scales.split(",")):
        t0 = time.perf_counter()
        out = engine.stylize(x, card, scale=scale)
        print(f"scale {scale:g}: {time.perf_counter() - t0:.1f} s")
        panels.append(crop(out))
    sheet = Image.new("RGB", (PANEL * len(panels) + 8 * (len(panels) - 1), PANEL), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (PANEL + 8), 0))
    sheet.save(args.out, quality=85, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
