"""Make the README's marks example (docs/images/marks_example.jpg): the kite photo at 512 px with three paintings
(rows) at marks 0, 0.5 and 1 (columns), default settings otherwise, each output with its painting inset: the clear
sky, where the decoder alone paints the same dabs for every painting, takes each painting's own marks.

Usage: python docs/make_marks_example.py [--model default] [--data ../shared/data/eval]
"""

from __future__ import annotations

from PIL import Image

import adain_core
from example_args import eval_file, example_parser, kite, paste_inset

#: eval paintings shown, by file-name ending: S1's washes, Gauguin's flat patches, a Wesnoth dragon's scales
STYLES = ("S1.jpg", "tahiti_guaguin.jpg", "drakes_glider.jpg")
MARKS = (0.0, 0.5, 1.0)
INSET = 96  # px, longer side of the painting's thumbnail in the first column's corner


def main() -> None:
    parser = example_parser(__doc__, "marks_example.jpg")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    engine = adain_core.load(args.model)
    content = kite(args.data)
    w, h = content.size
    sheet = Image.new("RGB", (len(MARKS) * (w + 4) - 4, len(STYLES) * (h + 4) - 4), "white")
    for row, ending in enumerate(STYLES):
        style_path = eval_file(args.data, "style", ending)
        card = engine.encode_style(style_path)
        for col, marks in enumerate(MARKS):
            tile = engine.stylize(content, card, marks=marks)  # PIL in, PIL out
            if col == 0:
                paste_inset(tile, style_path, INSET, "left")
            sheet.paste(tile, (col * (w + 4), row * (h + 4)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85)
    print(args.out)


if __name__ == "__main__":
    main()
