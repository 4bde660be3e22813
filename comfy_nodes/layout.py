"""The one place where ComfyUI tensors meet the engine's layout.

ComfyUI ``IMAGE`` is ``[B, H, W, C]`` float in [0, 1] (C = 3, sometimes 4), ``MASK`` is ``[B, H, W]`` (or ``[H, W]``)
float in [0, 1]; the engine takes ``(B, 3, H, W)`` float in [0, 1] and masks ``(B, 1, H, W)``. Nothing here imports
ComfyUI, so the conversions are unit-tested without a server.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["InputError", "image_to_engine", "engine_to_image", "mask_to_engine", "select_frame"]


class InputError(ValueError):
    """A node input has a shape or value the node cannot use; the message is shown to the user as is."""


def image_to_engine(image: Tensor, what: str = "image") -> Tensor:
    """Convert a ComfyUI ``IMAGE`` to the engine's layout.

    Args:
        image: ``[B, H, W, C]`` float in [0, 1], C in {1, 3, 4} (alpha dropped, grey repeated).
        what: name of the input, for error messages.

    Returns:
        ``(B, 3, H, W)`` float32 in [0, 1] on the input's device (values outside [0, 1] clamped; NaN raises).

    Raises:
        InputError: wrong number of dimensions, channels, an empty image or NaN/inf values.
    """
    if not isinstance(image, Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise InputError(f"{what}: expected a ComfyUI IMAGE [batch, height, width, channels], got {shape}")
    batch, height, width, channels = image.shape
    if batch == 0 or height == 0 or width == 0:
        raise InputError(f"{what}: the image is empty (shape {tuple(image.shape)})")
    if channels not in (1, 3, 4):
        raise InputError(f"{what}: expected 1, 3 or 4 channels, got {channels} (shape {tuple(image.shape)})")
    out = image.movedim(-1, 1).to(torch.float32)
    if channels == 1:
        out = out.expand(-1, 3, -1, -1)
    elif channels == 4:
        out = out[:, :3]
    if not torch.isfinite(out).all():
        raise InputError(f"{what}: the image contains NaN or infinite values")
    return out.clamp(0.0, 1.0).contiguous()


def engine_to_image(tensor: Tensor, device: torch.device | str = "cpu") -> Tensor:
    """Convert the engine's ``(B, 3, H, W)`` result back to a ComfyUI ``IMAGE``.

    Args:
        tensor: ``(B, 3, H, W)`` float.
        device: where ComfyUI wants intermediate results (``model_management.intermediate_device()``).

    Returns:
        ``[B, H, W, 3]`` float32 in [0, 1], contiguous, on ``device``.
    """
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise InputError(f"engine result: expected (B, 3, H, W), got {tuple(tensor.shape)}")
    return tensor.detach().to(device=device, dtype=torch.float32).clamp(0.0, 1.0).movedim(1, -1).contiguous()


def mask_to_engine(mask: Tensor, batch: int, height: int, width: int, what: str = "mask") -> Tensor:
    """Convert a ComfyUI ``MASK`` to ``(N, 1, H, W)`` float32 in [0, 1] for an image batch of the given size.

    Masks are never resized: one painted for another image size is a mistake worth reporting, not guessing.

    Args:
        mask: ``[B, H, W]`` or ``[H, W]`` float in [0, 1]; B must be 1 (same mask for every image) or ``batch``.
        batch, height, width: the image batch the mask applies to.
        what: name of the input, for error messages.

    Returns:
        ``(N, 1, height, width)`` with N = 1 or ``batch``.

    Raises:
        InputError: wrong dimensions, a size other than the image's, or a batch size that is neither 1 nor ``batch``.
    """
    if not isinstance(mask, Tensor) or mask.ndim not in (2, 3):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise InputError(f"{what}: expected a ComfyUI MASK [batch, height, width], got {shape}")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape[-2:]) != (height, width):
        raise InputError(
            f"{what} is {mask.shape[-1]}x{mask.shape[-2]} (width x height) but the image is {width}x{height}; "
            f"masks are not stretched: resize the mask to the image first"
        )
    if mask.shape[0] not in (1, batch):
        raise InputError(f"{what} has a batch of {mask.shape[0]} but the image batch has {batch}; use 1 mask or {batch}")
    out = mask.to(torch.float32)
    if not torch.isfinite(out).all():
        raise InputError(f"{what}: the mask contains NaN or infinite values")
    return out.clamp(0.0, 1.0).unsqueeze(1).contiguous()


def select_frame(tensor: Tensor | None, index: int) -> Tensor | None:
    """Item ``index`` of a batch as a batch of one, or the single item when the batch has one (``(1, …)``)."""
    if tensor is None:
        return None
    return tensor[index : index + 1] if tensor.shape[0] > 1 else tensor
