"""AdaIN arbitrary style transfer engine (Huang & Belongie, ICCV 2017): encoder, AdaIN, decoder, style cards,
mixing, colour modes, masks, tiling and frames, shared by the CLI and the ComfyUI, GIMP and Blender adapters.

Example:
    >>> import adain_core                                     # doctest: +SKIP
    >>> engine = adain_core.load("default")                   # doctest: +SKIP
    >>> card = engine.encode_style("painting.jpg", size=512)  # doctest: +SKIP
    >>> out = engine.stylize(photo, card, alpha=1.0)          # doctest: +SKIP
"""

from .adain import AdaIN, adain, blend_alpha, calc_mean_std, masked_mean_std, style_transfer
from .cards import StyleCard, mix
from .engine import Engine, FrameState, load
from .options import StylizeOptions
from .errors import (AdaINError, Cancelled, CardError, ChecksumError, ImageLoadError, MemoryPreflightError,
                     MissingDependencyError, ModelError, ShapeError, ValueRangeError)

__version__ = "0.1.0"

__all__ = [
    "AdaIN", "adain", "blend_alpha", "calc_mean_std", "masked_mean_std", "style_transfer",
    "StyleCard", "mix", "Engine", "FrameState", "load", "StylizeOptions",
    "AdaINError", "Cancelled", "CardError", "ChecksumError", "ImageLoadError", "MemoryPreflightError",
    "MissingDependencyError", "ModelError", "ShapeError", "ValueRangeError",
]
