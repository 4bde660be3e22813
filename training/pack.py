"""Training packs: the training photos and paintings, the evaluation set and the frozen encoder in three files, small
enough to travel with the working tree to a machine that reaches nothing outside (``adain-train pack``), and read
back there without anything but torch, numpy, Pillow and safetensors (:func:`read_pack`).

Layout of a pack folder::

    manifest.json         counts, sizes, settings, per-image offsets, sha256 of the other two files
    images.bin            every image as WebP bytes, back to back (training images: square, ``side`` px;
                          evaluation images: shorter side ``eval_side`` px, uncropped); with the ``painted``
                          setting a training painting's alpha is its painted pixels (0 on a flat backdrop, found
                          on the whole resized image as ``adain-train train --backdrop ignore`` finds it)
    encoder.safetensors   the converted encoder weights (fp16), as the engine caches them
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .data import painted_alpha, scan_images

__all__ = ["PACK_FORMAT", "MAX_MB", "PackSettings", "make_pack", "read_pack", "Pack", "encode_square", "encode_shorter",
           "encode_painting"]

log = logging.getLogger("adain.training")

PACK_FORMAT = "adain-train-pack/1"
IMAGES_FILE, MANIFEST_FILE, ENCODER_FILE = "images.bin", "manifest.json", "encoder.safetensors"
SETS = ("content", "style", "eval_content", "eval_style")
#: default size limit of a pack in MB (10⁶ bytes): with the tracked tree (~20 MB) and the decoder the runbook's second
#: call carries (6 MB; training/SPRINT.md) it stays under 60 MiB of the 64 MiB the device tool carries.
MAX_MB = 36.0


@dataclass
class PackSettings:
    """What goes into a pack. Counts of 0 mean "as many as fit"."""

    content_dirs: Sequence[str | Path]
    style_dirs: Sequence[str | Path]
    eval_content: str | Path
    eval_style: str | Path
    max_mb: float = MAX_MB         # the whole pack folder, encoder and manifest included (MB = 10⁶ bytes)
    side: int = 256                # training images: centre square of this side after scaling the shorter side
    eval_side: int = 256           # evaluation images: shorter side
    quality: int = 75              # WebP quality of training images (evaluation images: 90)
    content_share: float = 0.5     # share of the image budget reserved for photos (unused share goes to paintings)
    max_content: int = 0
    max_style: int = 0
    seed: int = 0
    min_side: int = 32             # training images with a smaller shorter side are skipped with a warning
    painted: bool = True           # paintings carry their painted pixels as alpha (a flat backdrop: 0)


def _resized(path: Path, side: int, square: bool) -> Image.Image:
    with Image.open(path) as im:
        w, h = im.size
        scale = side / min(w, h)
        size = (max(side, round(w * scale)), max(side, round(h * scale)))
        if scale < 0.5:
            im.draft("RGB", size)
        im = im.convert("RGB").resize(size, Image.BICUBIC)
    if square:
        x, y = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((x, y, x + side, y + side))
    return im


def _webp(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=quality, method=4, exact=True)  # exact: keeps the colours under alpha 0
    return buf.getvalue()


def encode_square(path: Path, side: int, quality: int) -> bytes:
    """An image file → WebP bytes of its centre square, ``side`` px (shorter side scaled to ``side`` first)."""
    return _webp(_resized(path, side, square=True), quality)


def encode_painting(path: Path, side: int, quality: int) -> bytes:
    """:func:`encode_square` with the painting's painted pixels as alpha (255 = painting, 0 = a flat backdrop;
    :func:`adain_core.backdrop.painted_weights` of the whole resized image, then cropped); an image without a
    backdrop stays RGB."""
    im = _resized(path, side, square=False)
    rgb = np.asarray(im)
    alpha = painted_alpha(rgb)
    if alpha is not None:
        im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    x, y = (im.width - side) // 2, (im.height - side) // 2
    return _webp(im.crop((x, y, x + side, y + side)), quality)


def encode_shorter(path: Path, side: int, quality: int = 90) -> bytes:
    """An image file → WebP bytes of the whole image with its shorter side scaled to ``side``."""
    return _webp(_resized(path, side, square=False), quality)


def _ordered(dirs: Sequence[str | Path], seed: int, min_side: int) -> list[Path]:
    """Images of ``dirs``, the folders in the order given, each folder shuffled (seeded)."""
    out: list[Path] = []
    for d in dirs:
        files = scan_images([d], min_side=min_side)
        random.Random(f"{seed}:{Path(d).name}").shuffle(files)
        out += files
    return out


def _fill(paths: Sequence[Path], budget: int, limit: int, encode: Callable[[Path], bytes],
          blobs: list[bytes]) -> list[str]:
    """Encode ``paths`` in order into ``blobs`` while they fit in ``budget`` bytes (and ``limit`` images)."""
    names: list[str] = []
    used = 0
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        for start in range(0, len(paths), 64):
            chunk = paths[start:start + 64]
            for path, data in zip(chunk, pool.map(encode, chunk)):
                if used + len(data) > budget or (limit and len(names) >= limit):
                    return names
                blobs.append(data)
                names.append(path.name)
                used += len(data)
    return names


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_pack(out_dir: str | Path, settings: PackSettings, encoder_state: dict[str, Tensor],
              encoder_info: dict[str, str]) -> dict[str, Any]:
    """Write a pack into ``out_dir`` (created; existing pack files are replaced).

    Args:
        encoder_state: the converted encoder's state dict (stored fp16).
        encoder_info: ``encoder_id`` and provenance (e.g. the source file's sha256) for the manifest.

    Returns:
        The manifest.

    Raises:
        ValueError: the encoder and the evaluation set alone exceed ``max_mb``, or no training image fits.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = settings
    encoder_path = out / ENCODER_FILE
    save_file({k: v.detach().to("cpu", torch.float16).contiguous() for k, v in encoder_state.items()},
              str(encoder_path), metadata={"encoder_id": encoder_info.get("encoder_id", "")})
    blobs: list[bytes] = []
    sets: dict[str, list[str]] = {}
    for key, folder in (("eval_content", s.eval_content), ("eval_style", s.eval_style)):
        files = scan_images([folder], min_side=16)
        sets[key] = _fill(files, 1 << 40, 0, lambda p: encode_shorter(p, s.eval_side), blobs)
    content_paths = _ordered(s.content_dirs, s.seed, s.min_side)
    style_paths = _ordered(s.style_dirs, s.seed, s.min_side)
    names = sum(len(p.name) for p in (*content_paths, *style_paths))
    manifest_allowance = 4096 + names + 32 * (len(content_paths) + len(style_paths) + len(blobs))
    fixed = encoder_path.stat().st_size + sum(map(len, blobs)) + manifest_allowance
    budget = int(s.max_mb * 1e6) - fixed
    if budget <= 0:
        raise ValueError(f"--max-mb {s.max_mb}: the encoder and the evaluation set alone take {fixed / 1e6:.1f} MB")
    square = lambda p: encode_square(p, s.side, s.quality)  # noqa: E731
    painting = (lambda p: encode_painting(p, s.side, s.quality)) if s.painted else square  # noqa: E731
    before = sum(map(len, blobs))
    sets["content"] = _fill(content_paths, int(budget * s.content_share), s.max_content, square, blobs)
    used = sum(map(len, blobs)) - before
    sets["style"] = _fill(style_paths, budget - used, s.max_style, painting, blobs)
    if not sets["content"] or not sets["style"]:
        raise ValueError(f"--max-mb {s.max_mb}: no room for training images (content {len(sets['content'])}, "
                         f"style {len(sets['style'])})")
    offsets, pos = [], 0
    with open(out / IMAGES_FILE, "wb") as f:
        for blob in blobs:
            f.write(blob)
            offsets.append([pos, len(blob)])
            pos += len(blob)
    index, k = {}, 0
    for key in ("eval_content", "eval_style", "content", "style"):
        index[key] = {"names": sets[key], "offsets": offsets[k:k + len(sets[key])]}
        k += len(sets[key])
    manifest = {
        "format": PACK_FORMAT,
        "settings": {"side": s.side, "eval_side": s.eval_side, "quality": s.quality, "seed": s.seed,
                     "painted": s.painted,
                     "content_dirs": [Path(d).name for d in s.content_dirs],
                     "style_dirs": [Path(d).name for d in s.style_dirs], "max_mb": s.max_mb},
        "counts": {key: len(sets[key]) for key in SETS},
        "bytes": {key: sum(o[1] for o in index[key]["offsets"]) for key in SETS},
        "encoder": dict(encoder_info),
        "files": {name: {"bytes": (out / name).stat().st_size, "sha256": _sha256(out / name)}
                  for name in (IMAGES_FILE, ENCODER_FILE)},
        "sets": index,
    }
    data_bytes = sum(info["bytes"] for info in manifest["files"].values())
    total = 0
    for _ in range(3):  # the manifest counts itself: settle the number of digits
        manifest["total_bytes"] = total
        total = data_bytes + len(json.dumps(manifest).encode())
    manifest["total_bytes"] = total
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    if total > s.max_mb * 1e6:
        raise ValueError(f"pack is {total / 1e6:.2f} MB, over --max-mb {s.max_mb}")
    return manifest


@dataclass
class Pack:
    """A pack read back: training sets as uint8 tensors (N, 3, side, side), the paintings (N, 4, side, side) when
    the pack has their painted pixels (:attr:`painted`; channel 3: 255 = painting, 0 = a flat backdrop); evaluation
    images as a list of (1, 3, H, W) float tensors in [0, 1]; the encoder's state dict (float32) and the manifest."""

    content: Tensor
    style: Tensor
    eval_content: list[Tensor]
    eval_style: list[Tensor]
    eval_names: tuple[list[str], list[str]]
    encoder_state: dict[str, Tensor]
    manifest: dict[str, Any]

    @property
    def painted(self) -> bool:
        """Whether the paintings carry their painted pixels as a fourth channel."""
        return self.style.shape[1] == 4


def _decode(data: bytes, mode: str = "RGB") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode))


def read_pack(pack_dir: str | Path, verify: bool = True, threads: int = 0) -> Pack:
    """Read and decode a pack (checks the files' sha256 first when ``verify``).

    Raises:
        ValueError: not a pack, or a file does not match the manifest.
    """
    from safetensors.torch import load_file

    root = Path(pack_dir)
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(f"{root}: not a training pack (no {MANIFEST_FILE})")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != PACK_FORMAT:
        raise ValueError(f"{manifest_path}: unknown pack format {manifest.get('format')!r}")
    if verify:
        for name, info in manifest["files"].items():
            if _sha256(root / name) != info["sha256"]:
                raise ValueError(f"{root / name}: sha256 does not match the manifest (damaged or incomplete copy)")
    raw = (root / IMAGES_FILE).read_bytes()
    workers = threads or min(16, os.cpu_count() or 1)
    decoded: dict[str, list[np.ndarray]] = {}
    with ThreadPoolExecutor(workers) as pool:
        for key in SETS:
            mode = "RGBA" if key == "style" and manifest["settings"].get("painted") else "RGB"
            offs = manifest["sets"][key]["offsets"]
            decoded[key] = list(pool.map(lambda o, m=mode: _decode(raw[o[0]:o[0] + o[1]], m), offs))

    def stack(arrays: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def floats(arrays: list[np.ndarray]) -> list[Tensor]:
        return [torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float().div(255) for a in arrays]

    encoder = {k: v.float() for k, v in load_file(str(root / ENCODER_FILE)).items()}
    return Pack(stack(decoded["content"]), stack(decoded["style"]), floats(decoded["eval_content"]),
                floats(decoded["eval_style"]),
                (manifest["sets"]["eval_content"]["names"], manifest["sets"]["eval_style"]["names"]),
                encoder, manifest)
