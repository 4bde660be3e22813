"""Training data: recursive image folders, paper-style resize + random crop + flip, and infinite seeded samplers.

Every batch is a pure function of ``(seed, step, rank)``: resuming at step ``s`` replays exactly the batches an
uninterrupted run would have drawn, whatever the number of loader workers.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from adain_core.backdrop import painted_weights

__all__ = [
    "IMAGE_EXTENSIONS",
    "scan_images",
    "manifest_hash",
    "ImageSource",
    "PairDataset",
    "PairSampler",
    "make_loader",
    "to_tensor",
    "painted_alpha",
    "random_crop",
    "mix_seed",
    "PAINTED_SHARE",
    "CROP_TRIES",
]

log = logging.getLogger("adain.training")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
#: A painting crop with a fourth (painted) channel should show at least this share of painting, not backdrop:
#: :func:`random_crop` draws up to :data:`CROP_TRIES` windows for it.
PAINTED_SHARE = 0.25
#: How many windows :func:`random_crop` (and the sprint's crops) draw at most for such a crop.
CROP_TRIES = 8
_MASK64 = (1 << 63) - 1


def mix_seed(*parts: object) -> int:
    """A stable 63-bit seed from any tuple of ints/strings (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK64


def scan_images(dirs: Sequence[str | Path], min_side: int = 64, max_per_dir: int = 0, seed: int = 0) -> list[Path]:
    """All images under ``dirs`` (recursive; jpg/jpeg/png/webp/bmp), sorted, after a header check.

    Files that cannot be opened or whose shorter side is below ``min_side`` are skipped with one warning each.
    ``max_per_dir > 0`` keeps a seeded random subset of that many images per folder.

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    found: list[Path] = []
    for d in dirs:
        root = Path(d).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        good = []
        for p in files:
            try:
                with Image.open(p) as im:
                    w, h = im.size
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                log.warning("skipping unreadable image %s (%s)", p, exc)
                continue
            if min(w, h) < min_side:
                log.warning("skipping tiny image %s (%dx%d < %d px)", p, w, h, min_side)
                continue
            good.append(p)
        if max_per_dir and len(good) > max_per_dir:
            rng = random.Random(mix_seed(seed, "subset", str(root)))
            good = sorted(rng.sample(good, max_per_dir))
        found += good
    return found


def manifest_hash(*lists: Sequence[Path]) -> str:
    """sha256 over the file names and sizes of the given image lists (identifies the training data)."""
    h = hashlib.sha256()
    for i, paths in enumerate(lists):
        for p in paths:
            h.update(f"{i}\t{p.name}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


def to_tensor(array: np.ndarray) -> Tensor:
    """(H, W, C) uint8 → (C, H, W) float32 in [0, 1] (C = 3, or 4 with :class:`ImageSource`'s painted channel)."""
    # a copy: PIL's arrays are read-only
    return torch.from_numpy(np.array(array, order="C")).permute(2, 0, 1).float().div_(255.0)


def painted_alpha(rgb: np.ndarray) -> np.ndarray | None:
    """(H, W, 3) uint8 image → (H, W) uint8: how much each pixel belongs to the painting (255 = fully, 0 on a flat
    backdrop; :func:`adain_core.backdrop.painted_weights`), or ``None`` when the image has no backdrop."""
    weights = painted_weights(to_tensor(rgb)[None])
    return None if weights is None else (weights[0, 0].numpy() * 255 + 0.5).astype(np.uint8)


class ImageSource:
    """A list of image files, decoded to RGB and resized on demand (optionally cached in memory).

    The shorter side is scaled down to ``resize`` (up too with ``upscale``); images still smaller than ``crop`` are
    scaled up to it. A file that fails to decode is reported once and replaced by the next good one. With
    ``painted`` each image gets a fourth channel: how much each pixel belongs to the painting (255 = fully, 0 on a
    flat backdrop, found on the resized image as the engine finds it for a style card:
    :func:`adain_core.backdrop.painted_weights`).
    """

    def __init__(self, paths: Sequence[Path], resize: int, crop: int, upscale: bool = False, cache: bool = False,
                 painted: bool = False):
        if not paths:
            raise ValueError("no usable images")
        self.paths = list(paths)
        self.resize, self.crop, self.upscale, self.painted = resize, crop, upscale, painted
        self.cache: dict[int, np.ndarray] | None = {} if cache else None
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> np.ndarray | None:
        path = self.paths[index]
        try:
            with Image.open(path) as im:
                w, h = im.size
                scale = self.resize / min(w, h)
                if scale >= 1 and not self.upscale:
                    scale = 1.0
                scale = max(scale, self.crop / min(w, h))
                size = (max(self.crop, round(w * scale)), max(self.crop, round(h * scale)))
                if scale < 0.5:
                    im.draft("RGB", size)  # JPEG DCT downscale: much faster decoding of large photos
                im = im.convert("RGB")
                if im.size != size:
                    im = im.resize(size, Image.BICUBIC)
                arr = np.asarray(im)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("skipping corrupt image %s (%s)", path, exc)
            return None
        if not self.painted:
            return arr
        alpha = painted_alpha(arr)
        return np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8) if alpha is None else alpha])

    def get(self, index: int) -> np.ndarray:
        """The resized (H, W, 3) uint8 image at ``index`` ((H, W, 4) with ``painted``), or the next good one if
        that file is corrupt.

        Raises:
            RuntimeError: no image of the source can be decoded.
        """
        for k in range(len(self.paths)):
            i = (index + k) % len(self.paths)
            if i in self.bad:
                continue
            if self.cache is not None and i in self.cache:
                return self.cache[i]
            arr = self._decode(i)
            if arr is None:
                self.bad.add(i)
                continue
            if self.cache is not None:
                self.cache[i] = arr
            return arr
        raise RuntimeError("none of the images could be decoded")


def random_crop(arr: np.ndarray, crop: int, gen: torch.Generator) -> np.ndarray:
    """A seeded random ``crop`` × ``crop`` window of an (H, W, C) image (H, W ≥ crop), mirrored half of the time.

    With a fourth (painted) channel (:class:`ImageSource`) the first of up to :data:`CROP_TRIES` windows that is at
    least :data:`PAINTED_SHARE` painting is taken, else the most painted one; a window with no painting at all
    counts as painting throughout (its statistics are then the whole window's)."""
    h, w = arr.shape[:2]
    tries = CROP_TRIES if arr.shape[2] == 4 else 1
    out, best_share = arr, -1.0
    for _ in range(tries):
        y = int(torch.randint(0, h - crop + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - crop + 1, (1,), generator=gen))
        window = arr[y:y + crop, x:x + crop]
        share = float(window[..., 3].mean()) / 255 if tries > 1 else 1.0
        if share > best_share:
            out, best_share = window, share
        if share >= PAINTED_SHARE:
            break
    if best_share == 0:
        out = out.copy()
        out[..., 3] = 255
    if bool(torch.rand((), generator=gen) < 0.5):
        out = out[:, ::-1]
    return out


class PairDataset(Dataset):
    """Map-style dataset whose index is ``(content_index, style_index, crop_seed)`` → (content, style) crops,
    each (3, crop, crop) float32 in [0, 1] (the style (4, crop, crop) when its source has the painted channel)."""

    def __init__(self, content: ImageSource, style: ImageSource) -> None:
        self.content, self.style = content, style

    def __len__(self) -> int:
        return len(self.content) * len(self.style)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
        ci, si, seed = key
        gen = torch.Generator().manual_seed(seed)
        c = random_crop(self.content.get(ci), self.content.crop, gen)
        s = random_crop(self.style.get(si), self.style.crop, gen)
        return to_tensor(c), to_tensor(s)


class PairSampler:
    """Infinite batch sampler: each step yields ``batch_size`` keys ``(content_index, style_index, crop_seed)``.

    Content and style are each walked through their own seeded permutation per epoch, so sets of different sizes
    pair freely. The ``n``-th sample of rank ``r`` in a world of ``W`` processes is global sample ``n·W + r``
    (a distributed sampler without overlap). Start at any step: the sequence is a function of the step.
    """

    def __init__(self, n_content: int, n_style: int, batch_size: int, seed: int = 0, start_step: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.n = {"content": n_content, "style": n_style}
        self.batch_size, self.seed, self.step = batch_size, seed, start_step
        self.rank, self.world_size = rank, world_size
        self._perms: dict[tuple[str, int], Tensor] = {}

    def _index(self, kind: str, g: int) -> int:
        n = self.n[kind]
        epoch, pos = divmod(g, n)
        key = (kind, epoch)
        if key not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            gen = torch.Generator().manual_seed(mix_seed(self.seed, kind, epoch))
            self._perms[key] = torch.randperm(n, generator=gen)
        return int(self._perms[key][pos])

    def batch(self, step: int) -> list[tuple[int, int, int]]:
        keys = []
        for i in range(self.batch_size):
            g = (step * self.batch_size + i) * self.world_size + self.rank
            keys.append((self._index("content", g), self._index("style", g), mix_seed(self.seed, "crop", g)))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.step
        while True:
            yield self.batch(step)
            step += 1


def make_loader(dataset: PairDataset, sampler: PairSampler, num_workers: int = 0) -> DataLoader:
    """A DataLoader over the infinite sampler; yields ``(content, style)`` batches (B, 3, crop, crop)."""
    # Own generator: creating the loader must not draw from the global RNG (resume restores that bit for bit).
    gen = torch.Generator().manual_seed(mix_seed(sampler.seed, "loader", sampler.rank))
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, generator=gen,
                      persistent_workers=num_workers > 0, pin_memory=False)

