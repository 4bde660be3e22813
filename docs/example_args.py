"""What the README's example scripts share (``docs/make_*_example.py``): their command line (where the eval images are,
where the example image goes), the eval files by name, the kite photo and the painting's inset."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from adain_core.images import load_image

ROOT = Path(__file__).resolve().parents[1]


def example_parser(doc: str, image: str) -> argparse.ArgumentParser:
    """A parser with ``--data`` (the eval folder with ``content/`` and ``style/``, default ``../shared/data/eval``) and
    ``--out`` (default ``docs/images/<image>``); ``doc``'s first paragraph is its description."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eval")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / image)
    return parser


def eval_file(data: Path, kind: str, ending: str) -> Path:
    """The eval image of ``kind`` (``content`` or ``style``) whose file name ends with ``ending``."""
    return sorted((data / kind).glob(f"*{ending}"))[0]


def kite(data: Path, side: int = 512) -> Image.Image:
    """The examples' photo: the kite in a clear sky, RGB, its longer side ``side`` px."""
    photo = load_image(eval_file(data, "content", "000000007784.jpg")).convert("RGB")
    photo.thumbnail((side, side))
    return photo


def paste_inset(tile: Image.Image, style_path: Path, size: int, corner: str = "right") -> Image.Image:
    """``tile`` with the painting's thumbnail (longer side ``size`` px) pasted 4 px into its top ``corner``
    (``left`` or ``right``); returns ``tile``."""
    thumb = load_image(style_path).convert("RGB")
    thumb.thumbnail((size, size))
    tile.paste(thumb, (4 if corner == "left" else tile.width - thumb.width - 4, 4))
    return tile
