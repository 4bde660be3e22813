"""Checks applied at every boundary where numbers or names enter the engine: style statistics, weights, α, weight
tensors, names that become file names. Each raises the engine's own error with one line naming the input (the file
when there is one) and the field; nothing here changes a value.

Layer 1 (tensors and plain numbers only): used by cards, the model store, the engine and the worker.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from .errors import AdaINError, ValueRangeError
from .vocabulary import SCALE_AUTO

__all__ = ["check_stats", "check_uint8_image", "check_weights", "check_alpha", "check_marks", "check_scale",
           "check_state_finite", "check_name", "MAX_MARKS"]


def _where(source: object | None) -> str:
    return f"{source}: " if source is not None else ""


def check_stats(mean: object, std: object, field: str, *, source: object | None = None,
                error: type[AdaINError] = ValueRangeError, channels: int | None = None) -> None:
    """Channel statistics ``(C,)`` mean and std: floating tensors of one shape, finite, std ≥ 0.

    Args:
        mean, std: the tensors to check.
        field: their name in messages (``"relu4_1"``).
        source: the file they came from, if any (named first in the message).
        error: the exception class to raise (e.g. :class:`~adain_core.errors.CardError`).
        channels: the required C, if known.

    Raises:
        error: wrong type, dtype, shape, NaN/inf, or a negative std.
    """
    where = _where(source)
    for part, t in (("mean", mean), ("std", std)):
        if not isinstance(t, Tensor):
            raise error(f"{where}{field}.{part} is not a tensor ({type(t).__name__})")
        if not t.is_floating_point():
            raise error(f"{where}{field}.{part} has dtype {t.dtype}; expected a floating-point tensor")
        if t.ndim != 1 or t.numel() == 0:
            raise error(f"{where}{field}.{part} has shape {tuple(t.shape)}; expected (C,) channel statistics")
        if not bool(torch.isfinite(t).all()):
            raise error(f"{where}{field}.{part} contains NaN or infinite values")
    if mean.shape != std.shape:  # type: ignore[union-attr]
        raise error(f"{where}{field}: mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")  # type: ignore[union-attr]
    if channels is not None and mean.numel() != channels:  # type: ignore[union-attr]
        raise error(f"{where}{field} has {mean.numel()} channels, expected {channels}")  # type: ignore[union-attr]
    if bool((std < 0).any()):  # type: ignore[operator]
        raise error(f"{where}{field}.std has negative values (a standard deviation is ≥ 0)")


def check_uint8_image(t: object, field: str, layout: str, *, source: object | None = None,
                      error: type[AdaINError] = ValueRangeError) -> None:
    """A stored picture: a uint8 tensor of ``layout`` ``"HWC"`` (h, w, 3) or ``"CHW"`` (3, h, w), non-empty."""
    where = _where(source)
    if not isinstance(t, Tensor) or t.dtype != torch.uint8:
        raise error(f"{where}{field} must be a uint8 tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    channel_axis = 2 if layout == "HWC" else 0
    if t.ndim != 3 or t.shape[channel_axis] != 3 or t.numel() == 0:
        expected = "(h, w, 3)" if layout == "HWC" else "(3, h, w)"
        raise error(f"{where}{field} has shape {tuple(t.shape)}; expected {expected}")


def _as_float(value: object, message: str) -> float:
    """``float(value)``, or :class:`ValueRangeError` ``"<message>, got <value>"``."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise ValueRangeError(f"{message}, got {value!r:.40}") from None


def check_weights(weights: Sequence[object], field: str = "weights", *, count: int | None = None) -> list[float]:
    """Mix weights: finite numbers ≥ 0 whose sum is positive and finite. Returns them normalised to sum to 1.

    Raises:
        ValueRangeError: wrong count, a non-number, NaN/inf, negative, all zero, or a sum that overflows.
    """
    if count is not None and len(weights) != count:
        raise ValueRangeError(f"{field}: {len(weights)} given for {count} styles")
    values: list[float] = []
    for w in weights:
        x = _as_float(w, f"{field} must be numbers")
        if not math.isfinite(x) or x < 0:
            raise ValueRangeError(f"{field} must be finite and ≥ 0, got {values + [w]}")
        values.append(x)
    top = max(values, default=0.0)
    if top <= 0:
        raise ValueRangeError(f"{field} must be ≥ 0 and not all 0, got {values}")
    # Normalise by the largest first: a sum of large finite weights (1e308 + 1e308) would overflow to inf.
    scaled = [x / top for x in values]
    total = math.fsum(scaled)
    return [x / total for x in scaled]


def check_alpha(alpha: object) -> float:
    """Style strength α: a finite number ≥ 0 (1 = full style, > 1 extrapolates). Returns it as float."""
    value = _as_float(alpha, "alpha must be a number ≥ 0 (1 = full style)")
    if not math.isfinite(value) or value < 0:
        raise ValueRangeError(f"alpha must be a finite number ≥ 0 (1 = full style), got {alpha!r}")
    return value


#: the largest ``marks`` strength (:class:`adain_core.options.StylizeOptions`): at 2 the painting's blocks outweigh
#: the photo's own features in flat areas twice over
MAX_MARKS = 2.0


def check_marks(marks: object) -> float:
    """Strength of the painting's own marks in flat areas: a number in [0, :data:`MAX_MARKS`] (0 = none, not a
    bool). Returns it as float."""
    message = f"marks must be a number from 0 to {MAX_MARKS:g} (0 = none)"
    if isinstance(marks, bool):
        raise ValueRangeError(f"{message}, got {marks!r}")
    value = _as_float(marks, message)
    if not 0.0 <= value <= MAX_MARKS:  # also rejects NaN
        raise ValueRangeError(f"{message}, got {marks!r:.40}")
    return value


def check_scale(scale: object) -> float | str:
    """Working resolution: a factor F in (0, 1] (not a bool), returned as float; or ``"auto"``, also spelt 0 (the
    hosts' sliders put auto at 0), returned as :data:`adain_core.vocabulary.SCALE_AUTO`."""
    message = "scale must be 'auto' (or 0) or a number in (0, 1] (1 = full resolution)"
    if scale == SCALE_AUTO:
        return SCALE_AUTO
    if isinstance(scale, bool):
        raise ValueRangeError(f"{message}, got {scale!r:.40}")
    value = _as_float(scale, message)
    if value == 0.0:
        return SCALE_AUTO
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueRangeError(f"{message}, got {scale!r:.40}")
    return value


def check_state_finite(state: Mapping[str, Tensor], what: str, error: type[AdaINError]) -> None:
    """Network weights: every tensor floating-point and finite.

    Raises:
        error: names ``what`` (the file or network) and the first offending tensor.
    """
    for key, t in state.items():
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise error(f"{what}: weight {key} has dtype {getattr(t, 'dtype', type(t).__name__)}; "
                        f"expected floating point")
        if not bool(torch.isfinite(t).all()):
            raise error(f"{what}: weight {key} contains NaN or infinite values")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_name(name: str, what: str, error: type[AdaINError] = ValueRangeError,
               reserved: Iterable[str] = ()) -> str:
    """A name that becomes a file name inside a managed folder: letters, digits, ``. _ + -``, at most 128
    characters, not starting with a dot (so never ``..``, a path, or a hidden file).

    Raises:
        error: anything else.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in set(reserved):
        raise error(f"{what} {name!r} is not a valid name: use letters, digits, '.', '_', '+', '-' "
                    f"(no paths, not starting with '.')")
    return name
