"""Exception types of the engine: every user-facing failure is an :class:`AdaINError` with a one-line message."""

from __future__ import annotations

__all__ = [
    "AdaINError",
    "ImageLoadError",
    "ModelError",
    "ChecksumError",
    "CardError",
    "ShapeError",
    "ValueRangeError",
    "MemoryPreflightError",
    "MissingDependencyError",
    "Cancelled",
]


class AdaINError(Exception):
    """Base class of all errors the engine raises for bad input or missing resources."""


class ImageLoadError(AdaINError):
    """An image file is missing, unreadable, corrupt, empty or of an unsupported mode."""


class ModelError(AdaINError):
    """A model or weight file is missing, truncated, of the wrong layout, or not yet available."""


class ChecksumError(ModelError):
    """A downloaded or given file does not have the expected sha256 or size."""


class CardError(AdaINError):
    """A style card is invalid or belongs to another encoder."""


class ShapeError(AdaINError):
    """A tensor or array has the wrong shape.

    Args:
        what: name of the offending input.
        expected: human-readable description of the expected shape.
        actual: the shape that came.
    """

    def __init__(self, what: str, expected: str, actual: object) -> None:
        super().__init__(f"{what}: expected shape {expected}, got {tuple(actual) if actual is not None else None}")
        self.what = what
        self.expected = expected
        self.actual = actual


class ValueRangeError(AdaINError):
    """A numeric argument or tensor lies outside its allowed range (or holds NaN/inf)."""


class MemoryPreflightError(AdaINError):
    """The job would need more memory than the budget allows and tiling is off."""

    def __init__(self, needed_bytes: int, budget_bytes: int, where: str) -> None:
        super().__init__(
            f"stylising this image in one pass needs about {needed_bytes / 2**30:.2f} GiB on {where}, "
            f"but only {budget_bytes / 2**30:.2f} GiB is allowed; use tiling (--tile auto or --tile 1024) "
            f"or raise --max-memory"
        )
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes


class MissingDependencyError(AdaINError):
    """An optional dependency (a pip extra such as ``video`` or ``convert``) is not installed; the message names
    the exact command for the Python that runs the engine."""


class Cancelled(AdaINError):
    """The caller's cancel hook asked to stop between tiles or frames."""
