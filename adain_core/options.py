"""How one stylisation should look and run (strength, colour mode, tiling, memory budget, style size): one value
object that the engine, the CLI, the worker and the adapters pass along instead of repeating keyword lists."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import ValueRangeError
from .validate import check_alpha, check_marks, check_scale
from .vocabulary import COLOR_MODES, DEFAULT_MARKS, TILE_MODES

__all__ = ["StylizeOptions", "MIN_TILE", "STYLE_SIZE_RANGE"]

#: The smallest core tile, in px.
MIN_TILE = 64
#: Shorter side a style image may be resized to, in px (inclusive).
STYLE_SIZE_RANGE = (16, 4096)


@dataclass(frozen=True)
class StylizeOptions:
    """Validated options of one stylisation (frozen; make variants with :meth:`replace`).

    Attributes:
        alpha: style strength, 0 = content reconstruction, 1 = full style (> 1 extrapolates; API only).
        color: a colour mode of :data:`adain_core.vocabulary.COLOR_MODES`.
        tile: ``"auto"`` (one pass when it fits the memory budget, tiles when not), ``"off"``, or a core tile
            size in px (≥ 64).
        max_memory: memory budget (bytes or e.g. ``"3GB"``); ``None``: free RAM (CPU) or free VRAM (CUDA).
        style_size: shorter side in px style *images* are resized to before encoding (16…4096; smaller gives larger
            brush strokes); ``None`` keeps their size. Cards already carry their statistics.
        scale: working resolution: a factor F in (0, 1] (stylise at F × the content's size, then upsample edge-aware
            to the content's size: faster, and larger strokes relative to the image), or ``"auto"`` (the F that
            brings the image down to :data:`adain_core.upsample.AUTO_PIXELS` pixels; never above 1), which 0 also
            means (the hosts' sliders put auto at 0). 1 = full size.
        marks: 0…2, how strongly the painting's own typical marks fill the photo's flat areas (a clear sky), where
            the decoder alone paints the same dabs for every painting (:mod:`adain_core.marks`); 0 = off, default
            :data:`adain_core.vocabulary.DEFAULT_MARKS`. Other than 0 it needs cards that carry their style pixels
            (those of :meth:`adain_core.Engine.encode_style` and their mixes); a painting smaller than one 32 px
            block lends none.

    Raises:
        ValueRangeError: a value out of range, naming it.

    Examples:
        >>> StylizeOptions(alpha=0.5).replace(color="luminance")
        StylizeOptions(alpha=0.5, color='luminance', tile='auto', max_memory=None, style_size=512, scale=1.0, marks=0.5)
    """

    alpha: float = 1.0
    color: str = COLOR_MODES[0]
    tile: str | int = "auto"
    max_memory: str | int | None = None
    style_size: int | None = 512
    scale: float | str = 1.0
    marks: float = DEFAULT_MARKS

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))  # finite and ≥ 0
        if self.color not in COLOR_MODES:
            raise ValueRangeError(f"colour mode must be one of {', '.join(COLOR_MODES)}, got {self.color!r}")
        if self.tile not in TILE_MODES:
            try:
                size = int(self.tile)
            except (TypeError, ValueError):
                raise ValueRangeError(f"tile must be 'auto', 'off' or a size in px, got {self.tile!r}") from None
            if size < MIN_TILE:
                raise ValueRangeError(f"tile size must be at least {MIN_TILE} px, got {size}")
            object.__setattr__(self, "tile", size)
        if self.style_size is not None:
            low, high = STYLE_SIZE_RANGE
            if not low <= int(self.style_size) <= high:
                raise ValueRangeError(f"style size must be between {low} and {high} px, got {self.style_size}")
            object.__setattr__(self, "style_size", int(self.style_size))
        object.__setattr__(self, "scale", check_scale(self.scale))
        object.__setattr__(self, "marks", check_marks(self.marks))

    def replace(self, **changes: Any) -> StylizeOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, options: StylizeOptions | None = None, **changes: Any) -> StylizeOptions:
        """``options`` (default: the defaults) with ``changes`` applied: lets callers pass either a value object
        or the fields as keywords (``engine.stylize(x, card, alpha=0.5)``).

        Raises:
            TypeError: a keyword that is not a field.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise TypeError(f"unknown stylize option(s) {', '.join(unknown)}; options are {', '.join(sorted(fields))}")
        base = options if options is not None else cls()
        return base.replace(**changes) if changes else base
