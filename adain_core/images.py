"""Images in and out: file loading (EXIF, odd modes, 16-bit, alpha), conversion between Pillow / numpy / torch
and the engine's ``(B, 3, H, W) float in [0, 1]`` RGB batches, and atomic saving."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .errors import ImageLoadError, ShapeError, ValueRangeError
from .files import naming, publish
from .networks import pad_to_multiple

__all__ = ["ImageLike", "MaskLike", "Batch", "load_image", "check_image_header", "pil_to_tensor", "tensor_to_pil",
           "to_batch", "save_image", "mask_to_tensor", "feature_mask", "resize_shorter", "resize_longer", "IMAGE_SUFFIXES"]

ImageLike = Union[Image.Image, np.ndarray, Tensor, str, Path]
MaskLike = Union[Image.Image, np.ndarray, Tensor, str, Path, None]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
Image.MAX_IMAGE_PIXELS = 400_000_000  # 16K x 16K artworks are legitimate input here; still bounded
#: bytes per pixel that loading costs at most before the engine sees the image (Pillow's decode buffers, the
#: EXIF transpose copy, the float32 RGB(A) conversion): the header-based pre-flight uses it.
DECODE_BYTES_PER_PIXEL = 32


def check_image_header(path: Path, width: int, height: int, max_pixels: int | None = None) -> None:
    """Refuse an image by its header alone, before any pixel is decoded: more pixels than ``max_pixels`` (default
    Pillow's ``MAX_IMAGE_PIXELS``), or more memory to decode than is available.

    Raises:
        ImageLoadError: too many pixels (the message names the file and its size), or not enough free memory.
    """
    from .device import free_memory_bytes

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    pixels = width * height
    if limit is not None and pixels > limit:
        raise ImageLoadError(f"{path}: {width}x{height} is {pixels / 1e6:.0f} megapixels, more than the "
                             f"{limit / 1e6:.0f} allowed")
    needed = pixels * DECODE_BYTES_PER_PIXEL
    budget = int(free_memory_bytes(torch.device("cpu")) * 0.8)
    if needed > budget:
        raise ImageLoadError(f"{path}: decoding {width}x{height} px needs about {needed / 2**30:.1f} GiB, but only "
                             f"{budget / 2**30:.1f} GiB of memory is free")


def load_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open an image file fully, EXIF-transposed; its size is checked from the header before decoding
    (:func:`check_image_header`), so a decompression bomb is refused without being decoded.

    Raises:
        ImageLoadError: missing, not a regular file, empty, unreadable, corrupt, too large or too large to decode
            in the free memory (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(f"{p}: no such image file")
    if p.stat().st_size == 0:
        raise ImageLoadError(f"{p}: file is empty (0 bytes)")
    try:
        with Image.open(p) as im:
            check_image_header(p, im.width, im.height, max_pixels)
            im.load()
            out = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"{p}: cannot read image ({exc})") from None
    return out


def _split_pil(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """PIL image of any mode → (H, W, 3) float32 RGB in [0, 1] and optional (H, W) alpha in [0, 1]."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    elif mode in ("PA", "La", "RGBa"):
        # Palette+alpha and premultiplied modes: Pillow converts them to straight alpha (whose channel is "A").
        img = img.convert("LA" if mode == "La" else "RGBA")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / top, 0, 1)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        grey = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        return np.repeat(grey[..., None], 3, axis=2), None
    alpha = None
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
    if mode == "1" or mode in ("L", "LA", "La"):
        rgb = img.convert("L").convert("RGB")
    elif mode in ("RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        rgb = img.convert("RGB")
    else:
        raise ImageLoadError(f"unsupported image mode {mode!r}")
    return np.asarray(rgb, dtype=np.float32) / 255.0, alpha


def pil_to_tensor(img: Image.Image) -> tuple[Tensor, Tensor | None]:
    """PIL image → ((1, 3, H, W) float32 RGB in [0, 1], (1, 1, H, W) alpha in [0, 1] or None)."""
    rgb, alpha = _split_pil(img)
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    a = None if alpha is None else torch.from_numpy(alpha)[None, None]
    return x, a


def tensor_to_pil(x: Tensor, alpha: Tensor | None = None) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] (+ optional alpha (H, W)-like) → RGB or RGBA uint8 PIL image."""
    x = x.detach().float().reshape(3, *x.shape[-2:]).clamp(0, 1)
    arr = (x.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if alpha is not None:
        a = (alpha.detach().float().reshape(*x.shape[-2:]).clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
        img.putalpha(Image.fromarray(a, "L"))
    return img


@dataclass
class Batch:
    """A content input turned into the engine's layout, with what is needed to give the caller its own type back.

    Attributes:
        pixels: (B, 3, H, W) float32 RGB in [0, 1], on the CPU or the caller's device.
        alpha: (B, 1, H, W) alpha in [0, 1] that passes through untouched, or None.
        restore: turns a (B, 3, H, W) result into the caller's type (alpha re-attached).
    """

    pixels: Tensor
    alpha: Tensor | None
    restore: Callable[[Tensor], object]


def _check_finite(x: Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueRangeError(f"{what}: input contains NaN or infinite values")


def _float_array(arr: np.ndarray, what: str) -> np.ndarray:
    """uint8 / uint16 / float numpy → contiguous float32 in [0, 1] (floats as given)."""
    if arr.dtype == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        f = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        f = arr.astype(np.float32)
    else:
        raise ValueRangeError(f"{what}: numpy dtype {arr.dtype} is not supported (use uint8, uint16 or float)")
    return np.ascontiguousarray(f)


def to_batch(content: ImageLike, what: str = "content") -> Batch:
    """Accept a PIL image, a path, numpy ``(H, W, 3|4)`` / ``(H, W)`` (uint8, uint16 or float in [0, 1]) or a torch
    ``(B, 3|4, H, W)`` / ``(3, H, W)`` float tensor in [0, 1], and return a :class:`Batch`.

    Raises:
        ShapeError: wrong number of dimensions or channels.
        ValueRangeError: NaN/inf values.
        ImageLoadError: unreadable file or unsupported mode.
    """
    if isinstance(content, (str, Path)):
        content = load_image(content)
    if isinstance(content, Image.Image):
        x, a = pil_to_tensor(content)
        _check_finite(x, what)  # a float (mode F) TIFF can hold NaN
        return Batch(x, a, lambda out: tensor_to_pil(out[0], None if a is None else a[0]))
    if isinstance(content, np.ndarray):
        arr = content
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ShapeError(what, "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)", content.shape)
        dtype = arr.dtype
        t = torch.from_numpy(_float_array(arr, what)).permute(2, 0, 1).unsqueeze(0)
        _check_finite(t, what)
        rgb = t[:, :3] if t.shape[1] >= 3 else t.expand(-1, 3, -1, -1)
        a = t[:, 3:4] if t.shape[1] == 4 else None

        def restore_np(out: Tensor) -> np.ndarray:
            o = out[0].permute(1, 2, 0).cpu().float().numpy()
            if a is not None:
                o = np.concatenate([o, a[0].permute(1, 2, 0).numpy()], axis=2)
            if dtype == np.uint8:
                return (np.clip(o, 0, 1) * 255.0 + 0.5).astype(np.uint8)
            if dtype == np.uint16:
                return (np.clip(o, 0, 1) * 65535.0 + 0.5).astype(np.uint16)
            return o.astype(dtype)

        return Batch(rgb.contiguous(), a, restore_np)
    if isinstance(content, Tensor):
        t = content
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[1] not in (1, 3, 4):
            raise ShapeError(what, "(B, 3, H, W), (B, 4, H, W) or (3, H, W)", content.shape)
        if not t.is_floating_point():
            raise ValueRangeError(f"{what}: tensor dtype {t.dtype} is not floating point (expected float in [0, 1])")
        _check_finite(t, what)
        squeeze = content.ndim == 3
        in_dtype = t.dtype
        a = t[:, 3:4] if t.shape[1] == 4 else None
        rgb = (t[:, :3] if t.shape[1] >= 3 else t.expand(-1, 3, -1, -1)).float()

        def restore_t(out: Tensor) -> Tensor:
            o = out.to(device=content.device, dtype=in_dtype)
            if a is not None:
                o = torch.cat([o, a], dim=1)
            return o[0] if squeeze else o

        return Batch(rgb.contiguous(), a, restore_t)
    raise ImageLoadError(f"{what}: unsupported input type {type(content).__name__}")


def mask_to_tensor(mask: MaskLike, what: str = "mask") -> Tensor:
    """Any soft mask → (B|1, 1, h, w) float32 on the CPU (values as given; see :func:`feature_mask`).

    Args:
        mask: a path or PIL image (its alpha when it has one, else its grey level), numpy ``(H, W)`` /
            ``(H, W, 1)`` (uint8, uint16 or float in [0, 1]), or a tensor ``(H, W)``, ``(B, H, W)`` or
            ``(B, 1, H, W)``.

    Raises:
        ShapeError: another shape or type. ImageLoadError: an unreadable file.
    """
    if isinstance(mask, (str, Path)):
        mask = load_image(mask)
    if isinstance(mask, Image.Image):
        rgb, alpha = _split_pil(mask)
        if alpha is not None:
            return torch.from_numpy(alpha)[None, None]
        return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous().mean(dim=1, keepdim=True)
    if isinstance(mask, np.ndarray):
        t = torch.from_numpy(_float_array(mask, what))
        t = t[..., 0] if t.ndim == 3 and t.shape[2] == 1 else t
        if t.ndim != 2:
            raise ShapeError(what, "(H, W) or (H, W, 1)", mask.shape)
        return t[None, None]
    if isinstance(mask, Tensor):
        t = mask.float()
        if t.ndim == 2:
            t = t[None, None]
        elif t.ndim == 3:
            t = t[:, None]
        if t.ndim != 4 or t.shape[1] != 1:
            raise ShapeError(what, "(H, W), (B, H, W) or (B, 1, H, W)", mask.shape)
        return t.cpu()
    raise ShapeError(what, "a PIL image, numpy array, tensor or path", None)


def feature_mask(mask: MaskLike, batch: int, size: tuple[int, int], what: str = "mask", border: int = 0,
                 cell: int = 8) -> Tensor:
    """A mask at any size → weights on the feature grid of the image padded by :func:`pad_to_multiple` (with
    ``border``): relu4_1's (``cell`` 8), or relu3_1's (``cell`` 4).

    Args:
        mask: see :func:`mask_to_tensor`.
        batch: the image batch size B (the mask's must be 1 or B).
        size: the image's (H, W) before padding; the mask is resized to it (bilinear), clamped to [0, 1],
            padded like the image and averaged over ``cell`` × ``cell`` cells.

    Returns:
        (B|1, 1, Hp/cell, Wp/cell) float32 in [0, 1].

    Raises:
        ValueRangeError: NaN or infinite values. ShapeError: another batch size.
    """
    m = mask_to_tensor(mask, what)
    if not torch.isfinite(m).all():
        raise ValueRangeError(f"{what}: contains NaN or infinite values")
    if m.shape[0] not in (1, batch):
        raise ShapeError(what, f"batch size 1 or {batch}", m.shape)
    m = m.clamp(0, 1)
    if m.shape[-2:] != size:
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    m, _ = pad_to_multiple(m, border=border)
    return F.avg_pool2d(m, cell)


def resize_shorter(x: Tensor, size: int) -> Tensor:
    """(B, 3, H, W) in [0, 1] → shorter side ``size`` px, aspect kept (bicubic, antialiased, clamped)."""
    h, w = x.shape[-2:]
    s = size / min(h, w)
    new = (max(1, round(h * s)), max(1, round(w * s)))
    if new == (h, w):
        return x
    return F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def resize_longer(x: Tensor, size: int) -> Tensor:
    """(B, C, H, W) → longer side at most ``size`` px, aspect kept (area averaging; never enlarged)."""
    h, w = x.shape[-2:]
    s = min(1.0, size / max(h, w))
    new = (max(1, round(h * s)), max(1, round(w * s)))
    return x if new == (h, w) else F.interpolate(x, size=new, mode="area")


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
            ".bmp": "BMP"}


def save_image(img: Image.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Save atomically (temp file in the same folder, then rename); format from the extension.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: unknown extension.
    """
    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"{p}: unknown output image extension (use one of {', '.join(_FORMATS)})")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p}: output exists (pass --overwrite to replace it)")
    if fmt in ("JPEG", "BMP") and img.mode == "RGBA":
        img = img.convert("RGB")
    with naming(p):
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix)
        os.close(fd)
        try:
            img.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
            publish(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return p
