"""Make the README's full-size detail (docs/images/detail_example.jpg): one photo at 512 px stylised with four paintings
by the default CLI settings, each output with its painting inset, so the strokes can be judged at the size an artist
works at (the gallery's tiles are too small to show them).

Usage: python docs/make_detail_example.py [--model default] [--data ../shared/data/eval]
"""

from __future__ import annotations

from PIL import Image

import adain_core
from example_args import eval_file, example_parser, kite, paste_inset

#: eval paintings shown, by file-name ending: S1, Goeritz's canvas, Gauguin's Tahiti, a starry night
STYLES = ("S1.jpg", "goeritz.jpg", "tahiti_guaguin.jpg", "stars2.jpg")
INSET = 128  # px, longer side of the painting's thumbnail in each output's corner


def main() -> None:
    parser = example_parser(__doc__, "detail_example.jpg")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    engine = adain_core.load(args.model)
    content = kite(args.data)
    tiles = []
    for ending in STYLES:
        style_path = eval_file(args.data, "style", ending)
        tiles.append(paste_inset(engine.stylize(content, engine.encode_style(style_path)), style_path, INSET))
    w, h = tiles[0].size
    sheet = Image.new("RGB", (2 * w + 4, 2 * h + 4), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % 2) * (w + 4), (i // 2) * (h + 4)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=88)
    print(args.out)


if __name__ == "__main__":
    main()
