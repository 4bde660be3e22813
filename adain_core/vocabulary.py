"""The words every layer and adapter shares: colour modes, backdrop modes, precisions, tile modes, file suffixes.
Defined here once and imported everywhere (the GIMP plug-in, which cannot import the engine, mirrors the colour modes
under a test)."""

from __future__ import annotations

__all__ = ["COLOR_MODES", "BACKDROP_MODES", "PRECISIONS", "TILE_MODES", "SCALE_AUTO", "CARD_SUFFIX", "WEIGHTS_SUFFIX",
           "MODEL_SUFFIXES", "DEFAULT_MARKS", "UPSAMPLES", "is_card_path"]

#: Where the result's colours come from: the painting's own palette (its RGB mean and covariance given to the
#: result, then half-way its spread of lights and darks); the style's as the decoder renders them; the content's (style recoloured to them before encoding); or the
#: content's chroma with stylised luminance. The first is the default.
COLOR_MODES = ("palette", "style", "preserve", "luminance")
#: What a style image's flat backdrop (a cut-out figure's plain white or black surround, or transparent pixels)
#: counts for: left out of the style's statistics and palette, or kept like any other pixel. The first is the default.
BACKDROP_MODES = ("ignore", "keep")
#: Network precisions; ``auto`` picks fp16 on CUDA, bf16 on CPUs with native bf16, else fp32.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Tiling besides a core tile size in px: ``auto`` tiles only when one pass does not fit the memory budget.
TILE_MODES = ("auto", "off")
#: The working-resolution setting besides a factor in (0, 1]: pick the factor from a pixel budget.
SCALE_AUTO = "auto"
#: The ``marks`` strength (the painting's own marks in the photo's flat areas, :mod:`adain_core.marks`) that the API,
#: the CLI and the hosts start at; 0 turns them off. The worker protocol's absent field means 0 (older clients).
DEFAULT_MARKS = 0.5
#: A decoder's ×2 upsampling: ``nearest`` (the paper's; each cell becomes a 2 × 2 block, which a decoder trained for
#: it leaves as a faint 2 and 4 px grid in flat areas) or ``bilinear`` (no blocks). A decoder is trained for one; a
#: model file's metadata (``decoder_upsample``) says which, ``nearest`` when absent.
UPSAMPLES = ("nearest", "bilinear")
#: A style card file (a style's statistics, see :class:`adain_core.StyleCard`).
CARD_SUFFIX = ".adainstyle.safetensors"
#: Every weights file the engine writes (models, encoders, cards).
WEIGHTS_SUFFIX = ".safetensors"
#: Model files the engine reads: its own, and the original release's ``decoder.pth``.
MODEL_SUFFIXES = (WEIGHTS_SUFFIX, ".pth")


def is_card_path(path: str) -> bool:
    """Whether a style given as a path is a saved card rather than an image (any ``.safetensors`` file)."""
    return str(path).endswith(WEIGHTS_SUFFIX)
