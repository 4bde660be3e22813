"""The engine: encode → AdaIN → decode with style cards, soft multi-style masks, colour modes, tiling with global
content statistics, a memory pre-flight and temporal smoothing of content statistics across frames."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .adain import adain, blend_alpha, calc_mean_std, masked_mean_std
from .cards import StyleCard
from .color import COLOR_MODES, color_stats, coral, keep_chroma, match_colors
from .device import autocast, free_memory_bytes, parse_size, pick_device, pick_precision
from .errors import (CardError, Cancelled, MemoryPreflightError, ShapeError, ValueRangeError)
from .validate import check_alpha
from .images import Batch, ImageLike, load_image, pil_to_tensor, to_batch
from .networks import TAPS, Encoder, pad_to_multiple
from .store import build_decoder_from, load_encoder, read_model, resolve_model, sha256_file
from .tiling import FEATHER, MARGIN, Tile, choose_tile_size, estimate_pass_bytes, feather_weights, plan_tiles

__all__ = ["Engine", "FrameState", "load", "MaskLike", "StyleSpec", "Progress", "CancelHook", "MAX_STYLE_SIDE"]

#: the longest side a style image may have after resizing to the style size (or the style size, if larger).
MAX_STYLE_SIDE = 8192

MaskLike = Union[Image.Image, np.ndarray, Tensor, str, Path, None]
StyleSpec = Union[StyleCard, Sequence[tuple[StyleCard, MaskLike]]]
Progress = Callable[[int, int], None]
CancelHook = Callable[[], bool]
# Content statistics of each style region: (mean, std), each (B, C, 1, 1) float32.
Stats = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class FrameState:
    """The running content statistics of a frame sequence (see :meth:`Engine.stylize_frame`); opaque to callers."""

    stats: Stats


@dataclass
class _Job:
    """A prepared stylisation: padded pixels, per-region style statistics and feature-resolution masks."""

    pixels: Tensor  # (B, 3, Hp, Wp) padded
    size: tuple[int, int]  # original (H, W)
    style_stats: list[tuple[Tensor, Tensor]]  # per region (B|1, C, 1, 1)
    masks: list[Tensor | None]  # per region (B|1, 1, Hp/8, Wp/8) or None (= everywhere)
    alpha: float
    color: str
    tiles: list[Tile] | None  # None = one pass


class Engine:
    """A loaded model (frozen encoder + decoder) on a device, with a precision.

    Create with :func:`load`. All image inputs are sRGB-encoded RGB in [0, 1] (see :mod:`adain_core.images`).
    """

    def __init__(self, encoder: Encoder, decoder: nn.Module, encoder_id: str, device: str | torch.device = "auto",
                 precision: str = "auto", metadata: dict[str, object] | None = None,
                 model_path: Path | None = None) -> None:
        self.device = pick_device(device)
        self._requested_precision = precision
        self.precision = pick_precision(precision, self.device)
        self.encoder_id = encoder_id
        self.metadata = dict(metadata or {})
        self.model_path = model_path
        fmt = torch.channels_last if self.device.type != "mps" else torch.contiguous_format
        self._memory_format = fmt
        self.encoder = encoder.to(self.device, memory_format=fmt).eval().requires_grad_(False)
        self.decoder = decoder.to(self.device, memory_format=fmt).eval().requires_grad_(False)

    def __repr__(self) -> str:
        return (f"Engine(encoder_id={self.encoder_id!r}, device={self.device}, precision={self.precision!r}, "
                f"model={str(self.model_path) if self.model_path else None!r})")

    def to(self, device: str | torch.device) -> Engine:
        """Move the networks to ``device`` (e.g. back to the CPU when a host frees VRAM); ``auto`` precision is
        resolved again for the new device. Returns ``self``."""
        self.device = pick_device(device)
        self.precision = pick_precision(self._requested_precision, self.device)
        self._memory_format = torch.channels_last if self.device.type != "mps" else torch.contiguous_format
        self.encoder.to(self.device, memory_format=self._memory_format)
        self.decoder.to(self.device, memory_format=self._memory_format)
        return self

    # -- networks -------------------------------------------------------------------------------------------
    def features(self, x: Tensor, taps: tuple[str, ...] = ("relu4_1",)) -> dict[str, Tensor]:
        """Encode (B, 3, H, W) RGB in [0, 1] (H, W multiples of 8) → float32 features at ``taps``."""
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.encoder(x.to(self.device, memory_format=self._memory_format), taps)
        return {k: v.float() for k, v in out.items()}

    def _decode(self, t: Tensor) -> Tensor:
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.decoder(t.to(memory_format=self._memory_format))
        return out.float()

    # -- styles ---------------------------------------------------------------------------------------------
    def encode_style(self, image: ImageLike, size: int | None = 512, name: str | None = None) -> StyleCard:
        """Encode a style image once into a reusable :class:`StyleCard`.

        Args:
            image: a path, PIL image, numpy (H, W, 3|4) or tensor (1, 3, H, W) / (3, H, W) in [0, 1]; alpha ignored.
            size: shorter side in px the style is resized to (keeping its aspect ratio), 16…4096; None keeps it.
                Smaller sizes give larger brush strokes. The longer side after resizing may be at most
                ``max(MAX_STYLE_SIDE, size)`` px (a 1x200 strip would otherwise become 512x102400).
            name: card name (default: the file stem, or "style").

        Raises:
            ImageLoadError, ShapeError, ValueRangeError: bad image or size.
        """
        sha = None
        if isinstance(image, (str, Path)):
            path = Path(image)
            pil = load_image(path)
            sha = sha256_file(path)
            name = name or path.name.split(".")[0]
            image = pil
        batch = to_batch(image, "style image")
        x = batch.pixels
        if x.shape[0] != 1:
            raise ShapeError("style image", "a single image (1, 3, H, W)", x.shape)
        if size is not None:
            if not 16 <= int(size) <= 4096:
                raise ValueRangeError(f"style size must be between 16 and 4096 px, got {size}")
            h, w = x.shape[-2:]
            longer = round(max(h, w) * int(size) / min(h, w))
            if longer > max(MAX_STYLE_SIDE, int(size)):
                raise ValueRangeError(
                    f"style image{f' {name}' if name else ''}: {w}x{h} px resized to a shorter side of {size} px "
                    f"would be {longer} px long (more than {max(MAX_STYLE_SIDE, int(size))}); crop it to a less "
                    f"extreme aspect ratio or lower the style size")
            x = _resize_shorter(x, int(size))
        px = (x[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        if sha is None:
            sha = hashlib.sha256(px.numpy().tobytes()).hexdigest()
        stats = self._style_stats(px.float()[None] / 255, TAPS)
        thumb = _resize_longer(px.float()[None] / 255, 128)
        return StyleCard(
            name=name or "style", encoder_id=self.encoder_id, mean=stats["relu4_1"][0], std=stats["relu4_1"][1],
            taps={t: stats[t] for t in TAPS if t != "relu4_1"}, style_size=None if size is None else int(size),
            sources=[{"name": name or "style", "sha256": sha, "weight": 1.0}],
            thumbnail=(thumb[0].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8), pixels=[px],
        )

    def _style_stats(self, x: Tensor, taps: tuple[str, ...]) -> dict[str, tuple[Tensor, Tensor]]:
        padded, _ = pad_to_multiple(x)
        feats = self.features(padded, taps)
        out = {}
        for t, f in feats.items():
            m, s = calc_mean_std(f)
            out[t] = (m.flatten().cpu(), s.flatten().cpu())
        return out

    def _preserve_stats(self, card: StyleCard, content: Tensor) -> tuple[Tensor, Tensor]:
        """Per-image style stats after giving the card's style pixels each content image's colours (CORAL)."""
        if len(card.pixels) != len(card.sources) or not card.pixels:
            raise CardError(f"style card {card.name!r} carries no style pixels; the preserve colour mode needs a "
                            f"card made by encode_style (or a mix of such cards)")
        c_mean, c_cov = color_stats(content)
        means, stds = [], []
        for b in range(content.shape[0]):
            m_acc = s_acc = 0.0
            for px, w in zip(card.pixels, card.weights):
                recoloured = coral(px.float() / 255, c_mean[b], c_cov[b])[None]
                m, s = self._style_stats(recoloured, ("relu4_1",))["relu4_1"]
                m_acc = m_acc + w * m
                s_acc = s_acc + w * s
            means.append(m_acc)
            stds.append(s_acc)
        return torch.stack(means)[..., None, None], torch.stack(stds)[..., None, None]

    # -- stylisation ----------------------------------------------------------------------------------------
    def stylize(self, content: ImageLike, style: StyleSpec, alpha: float = 1.0, color: str = "style",
                tile: str | int = "auto", max_memory: str | int | None = None, progress: Progress | None = None,
                cancel: CancelHook | None = None) -> object:
        """Stylise a content image or batch.

        Args:
            content: PIL image (any mode; alpha passes through), path, numpy (H, W, C) uint8/uint16/float, or tensor
                (B, 3, H, W) float in [0, 1]. Any H, W ≥ 1.
            style: a :class:`StyleCard`, or a list of ``(card, mask)`` pairs; masks are soft in [0, 1], any size
                (resized to the image), as PIL/numpy/tensor/path (a path or PIL image with alpha uses its alpha),
                ``None`` meaning everywhere. Where the masks sum to less than 1 the content is kept.
            alpha: style strength, 0 = content reconstruction, 1 = full style (> 1 extrapolates; API only).
            color: ``"style"``, ``"preserve"`` (style recoloured to the content's colours before encoding) or
                ``"luminance"`` (stylise, keep the content's chroma).
            tile: ``"auto"`` (one pass when it fits the memory budget, tiles when not), ``"off"``, or a core tile
                size in px.
            max_memory: memory budget (bytes or e.g. ``"3GB"``); default: free RAM (CPU) or free VRAM (CUDA).
            progress: called as ``progress(done, total)`` after each pass/tile.
            cancel: called between tiles; returning True raises :class:`Cancelled`.

        Returns:
            The same type as ``content`` with exactly its size (PIL → PIL, numpy → numpy of the same dtype,
            tensor → tensor on its device).

        Raises:
            ValueRangeError, ShapeError, CardError, MemoryPreflightError, Cancelled.
        """
        batch = to_batch(content)
        job = self._prepare(batch.pixels, style, alpha, color, tile, max_memory)
        stats = self._content_stats(job, progress, cancel)
        out = self._render(job, stats, progress, cancel)
        return batch.restore(out)

    def stylize_frames(self, frames: Iterable[ImageLike], style: StyleSpec, temporal: float = 0.0,
                       alpha: float = 1.0, color: str = "style", tile: str | int = "auto",
                       max_memory: str | int | None = None, progress: Progress | None = None,
                       cancel: CancelHook | None = None, total: int | None = None) -> Iterator[object]:
        """Stylise a sequence of frames, smoothing the content statistics with an exponential moving average.

        ``temporal`` = S in [0, 1): the statistics used for frame n are ``S·used[n-1] + (1−S)·measured[n]``
        (the style card is fixed), which reduces flicker. ``progress(done, total)`` is called per frame
        (``total`` if given, else 0 when unknown); ``cancel`` is checked between frames and tiles.
        Each frame goes through :meth:`stylize_frame`.

        Yields:
            Each stylised frame, the same type as the input frame.
        """
        _check_temporal(temporal)
        state: FrameState | None = None
        for i, frame in enumerate(frames):
            _check_cancel(cancel)
            out, state = self._stylize_frame(to_batch(frame, f"frame {i}"), style, state, temporal, alpha, color,
                                             tile, max_memory, None, cancel)
            if progress is not None:
                progress(i + 1, total or 0)
            yield out

    def stylize_frame(self, content: ImageLike, style: StyleSpec, state: FrameState | None = None,
                      temporal: float = 0.0, alpha: float = 1.0, color: str = "style", tile: str | int = "auto",
                      max_memory: str | int | None = None, progress: Progress | None = None,
                      cancel: CancelHook | None = None) -> tuple[object, FrameState]:
        """Stylise one frame of a sequence, given the state the previous frame returned.

        The step behind :meth:`stylize_frames`, for callers that receive frames one at a time (the engine worker):
        feeding frames through it, each with the state of the previous call, gives exactly ``stylize_frames``.

        Args:
            content, style, alpha, color, tile, max_memory, progress, cancel: as :meth:`stylize`.
            state: what the previous frame's call returned; ``None`` for the first frame (no smoothing).
            temporal: S in [0, 1), as :meth:`stylize_frames`.

        Returns:
            ``(frame, state)``: the stylised frame (the type of ``content``) and the smoothed content statistics to
            pass with the next frame. The state is opaque; it belongs to this engine and style layout (a state of a
            different image batch size or number of style regions is ignored, as at a cut).

        Raises:
            ValueRangeError, ShapeError, CardError, MemoryPreflightError, Cancelled.
        """
        _check_temporal(temporal)
        return self._stylize_frame(to_batch(content, "frame"), style, state, temporal, alpha, color, tile, max_memory,
                                   progress, cancel)

    def _stylize_frame(self, batch: Batch, style: StyleSpec, state: FrameState | None, temporal: float,
                       alpha: float, color: str, tile: str | int, max_memory: str | int | None,
                       progress: Progress | None, cancel: CancelHook | None) -> tuple[object, FrameState]:
        job = self._prepare(batch.pixels, style, alpha, color, tile, max_memory)
        stats = self._content_stats(job, progress, cancel)
        if state is not None and temporal > 0 and _same_shape(state.stats, stats):
            stats = [(temporal * pm.to(m.device) + (1 - temporal) * m, temporal * ps.to(s.device) + (1 - temporal) * s)
                     for (pm, ps), (m, s) in zip(state.stats, stats)]
        out = self._render(job, stats, progress, cancel)
        return batch.restore(out), FrameState(stats)

    # -- internals ------------------------------------------------------------------------------------------
    def _prepare(self, pixels: Tensor, style: StyleSpec, alpha: float, color: str, tile: str | int,
                 max_memory: str | int | None) -> _Job:
        alpha = check_alpha(alpha)
        if color not in COLOR_MODES:
            raise ValueRangeError(f"colour mode must be one of {', '.join(COLOR_MODES)}, got {color!r}")
        regions = [(style, None)] if isinstance(style, StyleCard) else list(style)
        if not regions:
            raise CardError("no style given")
        for pair in regions:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], StyleCard)):
                raise CardError("style must be a StyleCard or a list of (StyleCard, mask) pairs")
            pair[0].check_encoder(self.encoder_id)
            pair[0].check()
        b, _, h, w = pixels.shape
        padded, size = pad_to_multiple(pixels.to(self.device))
        hp, wp = padded.shape[-2:]
        masks = [None if m is None else _feature_mask(m, b, h, w, hp, wp, i).to(self.device)
                 for i, (_, m) in enumerate(regions)]
        if color == "preserve":
            style_stats = [self._preserve_stats(card, pixels) for card, _ in regions]
        else:
            style_stats = [(card.mean.reshape(1, -1, 1, 1), card.std.reshape(1, -1, 1, 1)) for card, _ in regions]
        style_stats = [(m.to(self.device), s.to(self.device)) for m, s in style_stats]
        return _Job(padded, size, style_stats, masks, alpha, color, self._plan(b, hp, wp, tile, max_memory))

    def _plan(self, b: int, hp: int, wp: int, tile: str | int, max_memory: str | int | None) -> list[Tile] | None:
        budget = parse_size(max_memory) if max_memory is not None else int(free_memory_bytes(self.device) * 0.8)
        where = "the GPU" if self.device.type == "cuda" else "this machine"
        one_pass = estimate_pass_bytes(hp, wp, b, self.precision)
        if tile == "off":
            if one_pass > budget:
                raise MemoryPreflightError(one_pass, budget, where)
            return None
        if tile == "auto":
            if one_pass <= budget:
                return None
            # In and out canvases stay in memory while tiles run.
            canvas = 2 * b * 3 * hp * wp * 4
            core = choose_tile_size(budget - canvas, b, self.precision)
            if core is None:
                raise MemoryPreflightError(canvas + estimate_pass_bytes(64 + 2 * MARGIN, 64 + 2 * MARGIN, b,
                                                                        self.precision), budget, where)
            return plan_tiles(hp, wp, core)
        try:
            size = int(tile)
        except (TypeError, ValueError):
            raise ValueRangeError(f"tile must be 'auto', 'off' or a size in px, got {tile!r}") from None
        if size < 64:
            raise ValueRangeError(f"tile size must be at least 64 px, got {size}")
        return plan_tiles(hp, wp, size)

    def _content_stats(self, job: _Job, progress: Progress | None, cancel: CancelHook | None) -> Stats:
        """Exact content statistics per region, over the whole image (pass 1 when tiled)."""
        if job.tiles is None:
            f = self.features(job.pixels)["relu4_1"]
            job.__dict__["_features"] = f  # reused by _render: no second encode in one-pass mode
            return [calc_mean_std(f) if m is None else masked_mean_std(f, m) for m in job.masks]
        b = job.pixels.shape[0]
        sums: list[list[Tensor]] | None = None
        total = 2 * len(job.tiles)
        for i, t in enumerate(job.tiles):
            _check_cancel(cancel)
            f = self.features(job.pixels[:, :, t.cy0:t.cy1, t.cx0:t.cx1])["relu4_1"]
            core = f[:, :, (t.y0 - t.cy0) // 8:(t.y1 - t.cy0) // 8, (t.x0 - t.cx0) // 8:(t.x1 - t.cx0) // 8].double()
            parts = []
            for m in job.masks:
                wgt = (torch.ones_like(core[:, :1]) if m is None else
                       m[:, :, t.y0 // 8:t.y1 // 8, t.x0 // 8:t.x1 // 8].double().expand(b, -1, -1, -1))
                parts.append([wgt.sum(dim=(2, 3)), (core * wgt).sum(dim=(2, 3)), (core**2 * wgt).sum(dim=(2, 3))])
            sums = parts if sums is None else [[a + c for a, c in zip(acc, p)] for acc, p in zip(sums, parts)]
            if progress is not None:
                progress(i + 1, total)
        assert sums is not None
        stats = []
        for n, s1, s2 in sums:
            empty = n <= 1e-8
            mean = s1 / n.clamp_min(1e-8)
            var = (s2 / n.clamp_min(1e-8) - mean**2).clamp_min(0)
            if bool(empty.any()):
                # A region absent from an image: its statistics do not matter (its mask is 0 everywhere).
                mean = torch.where(empty, torch.zeros_like(mean), mean)
                var = torch.where(empty, torch.ones_like(var), var)
            stats.append((mean.float()[..., None, None], (var + 1e-5).sqrt().float()[..., None, None]))
        return stats

    def _target(self, f: Tensor, stats: Stats, job: _Job, window: tuple[int, int, int, int] | None) -> Tensor:
        """AdaIN target at relu4_1 for features ``f`` (of the feature window y0, y1, x0, x1 when tiled)."""
        f = f.float()
        masks = [None if m is None else (m if window is None else m[:, :, window[0]:window[1], window[2]:window[3]])
                 for m in job.masks]
        if len(masks) == 1 and masks[0] is None:
            (sm, ss), (cm, cs) = job.style_stats[0], stats[0]
            return blend_alpha(adain(f, sm, ss, content_mean=cm, content_std=cs), f, job.alpha)
        weights = [torch.ones_like(f[:, :1]) if m is None else m.expand(f.shape[0], -1, -1, -1) for m in masks]
        cover = sum(weights)
        scale = 1.0 / cover.clamp_min(1.0)
        out = f * (1 - cover * scale)
        for wgt, (sm, ss), (cm, cs) in zip(weights, job.style_stats, stats):
            out = out + wgt * scale * blend_alpha(adain(f, sm, ss, content_mean=cm, content_std=cs), f, job.alpha)
        return out

    def _finish(self, out: Tensor, content: Tensor, color: str) -> Tensor:
        out = out.clamp(0, 1)
        return keep_chroma(out, content) if color == "luminance" else out

    def _render(self, job: _Job, stats: Stats, progress: Progress | None, cancel: CancelHook | None) -> Tensor:
        h, w = job.size
        if job.tiles is None:
            f = job.__dict__.pop("_features", None)
            if f is None:
                f = self.features(job.pixels)["relu4_1"]
            out = self._decode(self._target(f, stats, job, None))
            out = self._finish(out, job.pixels, job.color)[:, :, :h, :w].cpu()
            if progress is not None:
                progress(1, 1)
            return self._keep_colors(out, job)
        b, _, hp, wp = job.pixels.shape
        canvas = torch.zeros(b, 3, hp, wp)
        n = len(job.tiles)
        for i, t in enumerate(job.tiles):
            _check_cancel(cancel)
            region = job.pixels[:, :, t.cy0:t.cy1, t.cx0:t.cx1]
            f = self.features(region)["relu4_1"]
            window = (t.cy0 // 8, t.cy1 // 8, t.cx0 // 8, t.cx1 // 8)
            out = self._finish(self._decode(self._target(f, stats, job, window)), region, job.color)
            # Each tile writes its core plus half the feather band on each side.
            oy0, oy1 = max(0, t.y0 - FEATHER // 2), min(hp, t.y1 + FEATHER // 2)
            ox0, ox1 = max(0, t.x0 - FEATHER // 2), min(wp, t.x1 + FEATHER // 2)
            wy = feather_weights(t.y0, t.y1, oy0, oy1, hp)
            wx = feather_weights(t.x0, t.x1, ox0, ox1, wp)
            piece = out[:, :, oy0 - t.cy0:oy1 - t.cy0, ox0 - t.cx0:ox1 - t.cx0].cpu()
            canvas[:, :, oy0:oy1, ox0:ox1] += piece * (wy[:, None] * wx[None, :])
            del f, out, piece
            if progress is not None:
                progress(n + i + 1, 2 * n)
        return self._keep_colors(canvas[:, :, :h, :w].clamp(0, 1), job)

    @staticmethod
    def _keep_colors(out: Tensor, job: _Job) -> Tensor:
        """``preserve`` mode, second half: the decoder can still shift colours, so the result is given the content's
        RGB mean and covariance (the style was already recoloured to them before encoding)."""
        if job.color != "preserve":
            return out
        h, w = job.size
        return match_colors(out, job.pixels[:, :, :h, :w].cpu())


def _check_cancel(cancel: CancelHook | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the caller")


def _check_temporal(temporal: float) -> None:
    if not 0.0 <= float(temporal) < 1.0:
        raise ValueRangeError(f"temporal smoothing must be in [0, 1), got {temporal}")


def _same_shape(a: Stats, b: Stats) -> bool:
    return len(a) == len(b) and all(x[0].shape == y[0].shape for x, y in zip(a, b))


def _resize_shorter(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    s = size / min(h, w)
    new = (max(1, round(h * s)), max(1, round(w * s)))
    if new == (h, w):
        return x
    return F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _resize_longer(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    s = min(1.0, size / max(h, w))
    new = (max(1, round(h * s)), max(1, round(w * s)))
    return x if new == (h, w) else F.interpolate(x, size=new, mode="area")


def _mask_tensor(mask: MaskLike, index: int) -> Tensor:
    """Any mask input → (B|1, 1, h, w) float in [0, 1]."""
    what = f"mask {index + 1}"
    if isinstance(mask, (str, Path)):
        mask = load_image(mask)
    if isinstance(mask, Image.Image):
        if mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info):
            m = np.asarray(mask.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        else:
            rgb, _ = pil_to_tensor(mask)
            return rgb.mean(dim=1, keepdim=True)
        return torch.from_numpy(m)[None, None]
    if isinstance(mask, np.ndarray):
        arr = mask.astype(np.float32) / (255.0 if mask.dtype == np.uint8 else 1.0)
        t = torch.from_numpy(np.ascontiguousarray(arr))
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


def _feature_mask(mask: MaskLike, b: int, h: int, w: int, hp: int, wp: int, index: int) -> Tensor:
    """A mask at any size → (B|1, 1, Hp/8, Wp/8) weights matching the padded image's feature grid."""
    m = _mask_tensor(mask, index)
    if not torch.isfinite(m).all():
        raise ValueRangeError(f"mask {index + 1}: contains NaN or infinite values")
    if m.shape[0] not in (1, b):
        raise ShapeError(f"mask {index + 1}", f"batch size 1 or {b}", m.shape)
    m = m.clamp(0, 1)
    if m.shape[-2:] != (h, w):
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    m, _ = pad_to_multiple(m)
    return F.avg_pool2d(m, 8)


def load(model: str | Path = "default", device: str | torch.device = "auto", precision: str = "auto") -> Engine:
    """Load a model into an :class:`Engine`.

    Args:
        model: ``"default"`` (the decoder bundled in the package), another bundled or imported name, ``"original"``
            (the original AdaIN release files, after ``adain models fetch original``), or a path to a model
            ``.safetensors`` or an original ``decoder.pth``.
        device: ``"auto"`` (CUDA → MPS → CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        precision: ``"auto"`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), ``"fp32"``, ``"bf16"``,
            ``"fp16"``.

    Raises:
        ModelError: the model or its encoder is missing or invalid (the message says what to run).
    """
    path = resolve_model(model)
    mf = read_model(path)
    encoder = load_encoder(mf.encoder_id, mf.encoder)
    decoder = build_decoder_from(mf)
    return Engine(encoder, decoder, mf.encoder_id, device, precision, mf.metadata, path)
