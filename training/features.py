"""The frozen encoder's passes over fixed training crops, computed once per crop and reused every epoch.

Of a CPU training step (batch 8, 128 px crops, fp32) about a fifth is the two no-gradient encoder passes: the
photos' relu4_1 (the AdaIN input) and the paintings' channel statistics at the four style taps (the style loss
targets). Both are functions of the crop alone, but a random crop is almost never drawn twice. With
``cached_crops = N`` each image offers only N fixed crops (seeded positions and flips, drawn like
:func:`training.data.random_crop`), and a step draws one of them at random: the step is then exactly the step on
those pixels, and each crop is encoded on first use only (the batch's new crops in one pass per kind, as without
the cache), so a step is never slower than encoding every time and gets faster as crops repeat.

(Crops of one relu4_1 map of the whole photo would need one pass per photo, but they are not what the encoder gives
for the crop itself, whose border sees zero padding: with the decoder of step 9,207 the content loss on them was
33 % higher, 27 % in the crop's centre, so the step would train on different targets.)

The photos' features are kept at the taps the step needs (relu4_1, and the structure term's: ``content_taps``).
Kept in memory (a 128 px crop's relu4_1 as float16: 256 kB; relu3_1 512 kB more) and, with a folder, on disk as one
``.npz`` per crop under a key of encoder, sizes and image list, so a later run on the same machine skips the encoding.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from adain_core.adain import calc_mean_std
from adain_core.networks import TAPS, Encoder

from .data import ImageSource, mix_seed, random_crop, to_tensor

__all__ = ["FeatureCache", "EncodedBatch"]

#: One step's inputs: photo features tap → (B, C, h, w) float32 (relu4_1: (B, 512, crop/8, crop/8)); the photo crops
#: and the painting crops, (B, 3, crop, crop) float32 in [0, 1] each; painting statistics tap → (mean, std), each
#: (B, C, 1, 1) float32.
EncodedBatch = tuple[dict[str, Tensor], Tensor, Tensor, dict[str, tuple[Tensor, Tensor]]]


class FeatureCache:
    """Photos' features and paintings' style statistics of ``crops`` fixed crops per image, encoded on first use.

    Args:
        encoder: the frozen encoder (its device is where encoding runs).
        content, style: the training image sources (resized and cropped like the pixel pipeline).
        crops: fixed crops per image (≥ 1).
        encoder_id: names the encoder in the disk key.
        folder: where to keep the encodings between runs (``None``: memory only).
        content_taps: the photos' taps to keep (a stored crop without one of them is encoded again).
    """

    def __init__(self, encoder: Encoder, content: ImageSource, style: ImageSource, crops: int, encoder_id: str,
                 folder: str | Path | None = None, content_taps: tuple[str, ...] = ("relu4_1",)) -> None:
        if crops < 1:
            raise ValueError(f"cached crops per image must be ≥ 1, got {crops}")
        self.encoder, self.content, self.style, self.crops = encoder, content, style, crops
        self.content_taps = content_taps
        self.device = next(encoder.parameters()).device
        self.maps: dict[tuple[int, int], dict[str, np.ndarray]] = {}  # (photo, crop) → {tap: float16 map}
        self.stats: dict[tuple[int, int], dict[str, np.ndarray]] = {}  # (painting, crop) → {"<tap>/mean": …}
        self.folder: Path | None = None
        if folder is not None:
            key = hashlib.sha256(repr((encoder_id, content.resize, content.crop, style.resize, style.crop,
                                       [str(p) for p in content.paths], [str(p) for p in style.paths])).encode())
            self.folder = Path(folder).expanduser() / key.hexdigest()[:16]
            self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def crop(source: ImageSource, kind: str, index: int, variant: int) -> np.ndarray:
        """Fixed crop ``variant`` of image ``index`` of ``source`` (``kind`` content or style): (crop, crop, 3)
        uint8, the same on every call and every machine."""
        gen = torch.Generator().manual_seed(mix_seed("cached crop", kind, index, variant))
        return random_crop(source.get(index), source.crop, gen)

    def _load(self, name: str) -> dict[str, np.ndarray] | None:
        if self.folder is None:
            return None
        try:
            with np.load(self.folder / f"{name}.npz") as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None  # not written yet, or cut short: encode again

    def _save(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        if self.folder is not None:
            path = self.folder / f"{name}.npz"
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # processes of a DDP run may race
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            tmp.replace(path)

    @torch.no_grad()
    def _encode(self, crops: list[np.ndarray], taps: tuple[str, ...]) -> dict[str, Tensor]:
        """Encoder features at ``taps`` of equally sized (crop, crop, 3) uint8 crops, in one pass."""
        images = torch.stack([to_tensor(c) for c in crops]).to(self.device)
        return {t: v.float() for t, v in self.encoder(images, taps).items()}

    def _missing(self, kind: str, wanted: set[tuple[int, int]], memory: dict[tuple[int, int], dict[str, np.ndarray]],
                 names: tuple[str, ...]) -> list[tuple[int, int]]:
        """The crops of ``wanted`` (``(index, variant)`` pairs of ``kind`` content or style) with all arrays
        ``names`` in neither ``memory`` nor the folder; those in the folder are read into ``memory``."""
        todo = []
        for key in sorted(wanted - memory.keys()):
            stored = self._load(f"{kind}_{key[0]:06d}_{key[1]}")
            if stored is None or not set(names) <= stored.keys():
                todo.append(key)
            else:
                memory[key] = stored
        return todo

    def _keep(self, kind: str, key: tuple[int, int], memory: dict[tuple[int, int], dict[str, np.ndarray]],
              arrays: dict[str, np.ndarray]) -> None:
        """Keep a freshly encoded crop in ``memory`` and in the folder."""
        memory[key] = arrays
        self._save(f"{kind}_{key[0]:06d}_{key[1]}", arrays)

    def _fill(self, content: set[tuple[int, int]], style: set[tuple[int, int]]) -> None:
        """Make sure the photo crops ``content`` and painting crops ``style`` (``(index, variant)`` pairs) are in
        memory: read from the folder, else encoded together (one pass per kind) and written there."""
        todo = self._missing("content", content, self.maps, self.content_taps)
        if todo:
            feats = self._encode([self.crop(self.content, "content", *key) for key in todo], self.content_taps)
            fmaps = {tap: f.half().cpu().numpy() for tap, f in feats.items()}
            for i, key in enumerate(todo):
                self._keep("content", key, self.maps, {tap: fmaps[tap][i] for tap in self.content_taps})
        todo = self._missing("style", style, self.stats, tuple(f"{tap}/mean" for tap in TAPS))
        if todo:
            feats = self._encode([self.crop(self.style, "style", *key) for key in todo], TAPS)
            moments = {tap: [m.flatten(1).cpu().numpy() for m in calc_mean_std(feats[tap])] for tap in TAPS}
            for i, key in enumerate(todo):
                self._keep("style", key, self.stats, {f"{tap}/{name}": moments[tap][j][i] for tap in TAPS
                                                      for j, name in enumerate(("mean", "std"))})

    def batch(self, keys: list[tuple[int, int, int]]) -> EncodedBatch:
        """The step's inputs for sampler keys ``(content_index, style_index, crop_seed)`` (see :data:`EncodedBatch`):
        each key's seed picks one fixed crop of its photo and one of its painting; a pure function of the keys."""
        picks = []
        for ci, si, seed in keys:
            gen = torch.Generator().manual_seed(seed)
            vc, vs = (int(v) for v in torch.randint(0, self.crops, (2,), generator=gen))
            picks.append(((ci, vc), (si, vs)))
        self._fill({c for c, _ in picks}, {s for _, s in picks})
        maps = {tap: torch.stack([torch.from_numpy(self.maps[c][tap].astype(np.float32)) for c, _ in picks])
                for tap in self.content_taps}
        photos = torch.stack([to_tensor(self.crop(self.content, "content", *c)) for c, _ in picks])
        paintings = torch.stack([to_tensor(self.crop(self.style, "style", *s)) for _, s in picks])

        def stacked(name: str) -> Tensor:
            return torch.from_numpy(np.stack([self.stats[s][name] for _, s in picks]))[..., None, None]

        return maps, photos, paintings, {tap: (stacked(f"{tap}/mean"), stacked(f"{tap}/std")) for tap in TAPS}
