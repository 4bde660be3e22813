"""Make the README's two-style mask example: content | mask | style A | style B | result (docs/images/mask_example.jpg).

Usage: python docs/make_mask_example.py [--model default] [--data ../shared/data/eval]
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import adain_core
from adain_core.images import load_image, pil_to_tensor, tensor_to_pil
from example_args import example_parser


def main() -> None:
    parser = example_parser(__doc__, "mask_example.jpg")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    engine = adain_core.load(args.model)
    content_path = sorted((args.data / "content").glob("*city2.jpg"))[0]
    styles = sorted((args.data / "style").glob("*.jpg"))
    style_a, style_b = styles[2], styles[3]  # Gauguin's Tahiti, a starry night
    content = load_image(content_path).convert("RGB")
    content.thumbnail((512, 256))
    x, _ = pil_to_tensor(content)
    h, w = x.shape[-2:]
    # Soft left/right mask: style A on the left, style B on the right, a 20 % wide soft transition.
    ramp = torch.linspace(0, 1, w).clamp(0.4, 0.6).sub(0.4).div(0.2)
    mask_b = ramp.expand(h, w)
    cards = [engine.encode_style(p, size=384) for p in (style_a, style_b)]
    out = engine.stylize(x, [(cards[0], 1 - mask_b), (cards[1], mask_b)])
    tiles = [content, Image.fromarray((mask_b.numpy() * 255).astype(np.uint8)).convert("RGB")]
    for p in (style_a, style_b):
        s = load_image(p).convert("RGB")
        s.thumbnail((w, h))
        tiles.append(s)
    tiles.append(tensor_to_pil(out))
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), h), "white")
    x0 = 0
    for t in tiles:
        sheet.paste(t, (x0, (h - t.height) // 2))
        x0 += t.width + 4
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85)
    print(args.out)


if __name__ == "__main__":
    main()
