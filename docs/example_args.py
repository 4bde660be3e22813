"""The command line the README's example scripts share (``docs/make_*_example.py``): where the eval images are, and
where the example image goes."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def example_parser(doc: str, image: str) -> argparse.ArgumentParser:
    """A parser with ``--data`` (the eval folder with ``content/`` and ``style/``, default ``../shared/data/eval``) and
    ``--out`` (default ``docs/images/<image>``); ``doc``'s first paragraph is its description."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eval")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / image)
    return parser
