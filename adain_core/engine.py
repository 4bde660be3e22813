"""The engine: encode → AdaIN → decode with style cards, soft multi-style masks, colour modes, tiling with global
content statistics, a memory pre-flight and temporal smoothing of content statistics across frames."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from torch import Tensor

from .adain import Masks, Stats, StreamingStats, adain_targets, style_transfer, tap_stats
from .backdrop import painted_weights
from .cards import StyleCard
from .color import (Palette, after_image, after_pass, apply_palettes, fit_palettes, fit_tones, fits_raw_output,
                    palette_target, recolor_styles)
from .device import (autocast, colour_device, free_memory_bytes, parse_size, pick_device, pick_precision, to_device,
                     to_host)
from .errors import CardError, Cancelled, MemoryPreflightError, ShapeError, ValueRangeError
from .fingerprint import sha256_bytes, sha256_file
from .images import (Batch, ImageLike, MaskLike, feature_mask, load_image, mask_to_tensor, resize_longer,
                     resize_shorter, to_batch)
from .marks import BLOCK, Bank, mark_fields, typical_blocks
from .networks import TAP_SCALE, TAPS, Decoder, Encoder, decoder_inputs, pad_to_multiple, padded_size
from .options import STYLE_SIZE_RANGE, StylizeOptions
from .store import build_decoder_from, load_encoder, read_model, resolve_model
from .tiling import MARGIN, Tile, choose_tile_size, estimate_pass_bytes, paste_feathered, plan_tiles
from .tone import tone_target
from .upsample import downscale, guided_upsample, working_size
from .vocabulary import BACKDROP_MODES

__all__ = ["Engine", "FrameState", "load", "MaskLike", "StyleSpec", "Progress", "CancelHook", "StylizeOptions",
           "MAX_STYLE_SIDE", "MAX_FRAMES_PER_PASS"]

#: the most frames :meth:`Engine.stylize_frames` puts into one forward pass when the pre-flight chooses.
MAX_FRAMES_PER_PASS = 8

#: px of mirrored picture stylised around the content and cropped off: the encoder's zero padding makes the
#: decoder paint a frame along the image's edges; this margin moves that frame outside the picture.
BORDER = 32

#: the longest side a style image may have after resizing to the style size (or the style size, if larger).
MAX_STYLE_SIDE = 8192

# bytes per full-size value (pixel × channel) that a working resolution's upsampling and colour mode hold at once
# (content and result in float32, the colour statistics' float64 copy, the mapped result, the bands, the tone curve's
# lookups)
_FULL_SIZE_BYTES = 48

StyleSpec = Union[StyleCard, Sequence[tuple[StyleCard, MaskLike]]]
Progress = Callable[[int, int], None]
CancelHook = Callable[[], bool]
Smoother = Callable[[Stats, str], Stats]  # (measured statistics, kind "stats" | "colour" | "tone") → those to use
Levels = dict[str, Stats]  # the decoder's input tap → per region (mean, std)


@dataclass(frozen=True)
class FrameState:
    """The running statistics of a frame sequence (see :meth:`Engine.stylize_frame`); opaque to callers: the content
    statistics used per region (at each of the decoder's input taps in turn), and in the ``palette`` colour mode the
    result's colour statistics the recolouring was fitted to (per region RGB mean (B, 3) and covariance (B, 3, 3))
    and the tone curves (per region knots (B, K), :func:`adain_core.color.fit_tones`), all smoothed across
    frames."""

    stats: Stats
    colour: Stats = ()
    tone: Stats = ()


@dataclass(frozen=True)
class _Job:
    """A prepared stylisation: padded pixels, per-region style statistics and feature-resolution masks."""

    pixels: Tensor  # (B, 3, Hp, Wp) padded (BORDER px around, then to a multiple of 8), on the engine's device
    size: tuple[int, int]  # original (H, W)
    style_stats: Levels  # decoder tap → per region (B|1, C, 1, 1)
    masks: dict[str, Masks]  # decoder tap → per region (B|1, 1, Hp/s, Wp/s) (s: TAP_SCALE) or None (= everywhere)
    options: StylizeOptions
    tiles: list[Tile] | None  # None = one pass
    banks: list[Bank | None] | None = None  # per region the painting's typical blocks (options.marks > 0), on the device

    def marks(self, feats: dict[str, Tensor], stats: Levels, origin: tuple[int, int] = (0, 0)
              ) -> dict[str, list[Tensor | None]] | None:
        """The marks (:func:`mark_fields`) of a window of the padded image at ``origin`` (y, x) px; None when off."""
        if self.banks is None:
            return None
        return mark_fields(feats, stats, self.banks, self.options.marks, origin)

    def crop(self, x: Tensor) -> Tensor:
        """The picture's own (B, C, H, W) out of a (B, C, Hp, Wp) result."""
        h, w = self.size
        return x[:, :, BORDER:BORDER + h, BORDER:BORDER + w]


class Engine:
    """A loaded model (frozen encoder + decoder) on a device, with a precision.

    Create with :func:`load`. All image inputs are sRGB-encoded RGB in [0, 1] (see :mod:`adain_core.images`).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, encoder_id: str, device: str | torch.device = "auto",
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

    def encode(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] (H, W multiples of 8) → (B, 512, H/8, W/8) float32 relu4_1 features."""
        return self.features(x)["relu4_1"]

    def decode(self, t: Tensor, skip: Tensor | None = None) -> Tensor:
        """(B, 512, h, w) relu4_1 features (e.g. an AdaIN target) → (B, 3, 8h, 8w) float32 RGB, not clamped.

        ``skip``: the (B, 256, 2h, 2w) relu3_1 target, which a skip decoder needs (:attr:`taps`) and a plain one
        refuses."""
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.decoder(t.to(memory_format=self._memory_format),
                               None if skip is None else skip.to(memory_format=self._memory_format))
        return out.float()

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps whose AdaIN targets the decoder reads: ``("relu4_1",)``, or ``("relu3_1", "relu4_1")``
        for a skip decoder."""
        return self.decoder.taps

    def _encode_taps(self, x: Tensor) -> dict[str, Tensor]:
        return self.features(x, self.taps)

    def _decode_taps(self, targets: dict[str, Tensor]) -> Tensor:
        return self.decode(*decoder_inputs(targets))

    # -- styles ---------------------------------------------------------------------------------------------
    def encode_style(self, image: ImageLike, size: int | None = 512, name: str | None = None,
                     backdrop: str = BACKDROP_MODES[0]) -> StyleCard:
        """Encode a style image once into a reusable :class:`StyleCard`.

        Args:
            image: a path, PIL image, numpy (H, W, 3|4) or tensor (1, 3|4, H, W) / (3|4, H, W) in [0, 1].
            size: shorter side in px the style is resized to (keeping its aspect ratio), 16…4096; None keeps it.
                Smaller sizes give larger brush strokes. The longer side after resizing may be at most
                ``max(MAX_STYLE_SIDE, size)`` px (a 1x200 strip would otherwise become 512x102400).
            name: card name (default: the file stem, or "style").
            backdrop: a mode of :data:`adain_core.vocabulary.BACKDROP_MODES`: ``ignore`` leaves a flat backdrop and
                transparent pixels out of the statistics and the palette (:func:`adain_core.backdrop.painted_weights`:
                a portrait cut out on white gives the figure's colours, not white); ``keep`` uses every pixel.

        Raises:
            ImageLoadError, ShapeError, ValueRangeError: bad image, size or backdrop mode.
        """
        if backdrop not in BACKDROP_MODES:
            raise ValueRangeError(f"backdrop must be one of {', '.join(BACKDROP_MODES)}, got {backdrop!r}")
        sha = None
        if isinstance(image, (str, Path)):
            path = Path(image)
            pil = load_image(path)
            sha = sha256_file(path)
            name = name or path.name.split(".")[0]
            image = pil
        batch = to_batch(image, "style image")
        x, alpha = batch.pixels, batch.alpha
        if x.shape[0] != 1:
            raise ShapeError("style image", "a single image (1, 3, H, W)", x.shape)
        if size is not None:
            low, high = STYLE_SIZE_RANGE
            if not low <= int(size) <= high:
                raise ValueRangeError(f"style size must be between {low} and {high} px, got {size}")
            h, w = x.shape[-2:]
            longer = round(max(h, w) * int(size) / min(h, w))
            if longer > max(MAX_STYLE_SIDE, int(size)):
                raise ValueRangeError(
                    f"style image{f' {name}' if name else ''}: {w}x{h} px resized to a shorter side of {size} px "
                    f"would be {longer} px long (more than {max(MAX_STYLE_SIDE, int(size))}); crop it to a less "
                    f"extreme aspect ratio or lower the style size")
            x = resize_shorter(x, int(size))
            alpha = None if alpha is None else resize_shorter(alpha, int(size))
        px = (x[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        if sha is None:
            sha = sha256_bytes(px.numpy().tobytes())
        weights = painted_weights(px.float()[None] / 255, alpha) if backdrop == "ignore" else None
        painted = None if weights is None else (weights[0, 0] * 255 + 0.5).to(torch.uint8)
        stats = self._style_stats(px.float()[None] / 255, TAPS, painted)
        thumb = resize_longer(px.float()[None] / 255, 128)
        return StyleCard(
            name=name or "style", encoder_id=self.encoder_id, mean=stats["relu4_1"][0], std=stats["relu4_1"][1],
            taps={t: stats[t] for t in TAPS if t != "relu4_1"}, style_size=None if size is None else int(size),
            sources=[{"name": name or "style", "sha256": sha, "weight": 1.0}],
            thumbnail=(thumb[0].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8), pixels=[px], painted=[painted],
        )

    def _style_features(self, x: Tensor, taps: tuple[str, ...], painted: Tensor | None = None
                        ) -> tuple[dict[str, Tensor], dict[str, tuple[Tensor, Tensor]], Tensor | None]:
        """One style image (1, 3, H, W) in [0, 1] encoded at ``taps``: its features (padded to a multiple of 8),
        their channel mean/std (1, C, 1, 1) with the pixels weighted by ``painted`` ((H, W) uint8, 255 = fully;
        ``None``: all equally), and those weights padded alike ((1, 1, Hp, Wp) in [0, 1], or ``None``)."""
        padded, _ = pad_to_multiple(x)
        feats = self.features(padded, taps)
        weight = None if painted is None else pad_to_multiple(painted.float()[None, None] / 255)[0]
        return feats, tap_stats(feats, weight), weight

    def _style_stats(self, x: Tensor, taps: tuple[str, ...],
                     painted: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """Channel mean/std (C,) at ``taps`` of one style image (1, 3, H, W) in [0, 1], its pixels weighted by
        ``painted`` ((H, W) uint8, 255 = fully; ``None``: all equally)."""
        stats = self._style_features(x, taps, painted)[1]
        return {t: (m.flatten().cpu(), s.flatten().cpu()) for t, (m, s) in stats.items()}

    def _region_bank(self, card: StyleCard) -> Bank | None:
        """The ``marks`` option's blocks of a card: each style picture's most typical blocks of normalised features
        (:func:`typical_blocks`) at each of :attr:`taps`, pooled, on the device; ``None`` when every picture is
        smaller than one block (a painting at a tiny style size lends no marks). Computed once per card, engine
        taps, device and precision (kept in ``card.derived``).

        The card carries its style pixels (:func:`_check_pixels`).
        """
        key = ("marks", self.taps, str(self.device), self.precision)
        if key in card.derived:
            return card.derived[key]  # type: ignore[return-value]
        banks = []
        for px, painted in zip(card.pixels, card.painted or [None] * len(card.pixels)):
            feats, stats, weight = self._style_features(px.float()[None] / 255, self.taps, painted)
            z = {t: (f - stats[t][0]) / stats[t][1] for t, f in feats.items()}
            if min(z["relu4_1"].shape[-2:]) >= BLOCK:
                banks.append(typical_blocks(z, weight))
        bank = card.derived[key] = (
            {t: torch.cat([b[t] for b in banks]).to(self.device) for t in self.taps} if banks else None)
        return bank

    def _region_style_stats(self, card: StyleCard, color: str, content: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """The style statistics a region uses at each of :attr:`taps`: the card's, or (colour hooks) those of its
        recoloured style images, weighted like the card's sources. Tap → (mean, std), (B|1, C, 1, 1) each."""
        recoloured = recolor_styles(color, card.pixels, content)
        if recoloured is None:
            stats = {"relu4_1": (card.mean, card.std), **card.taps}
            missing = [t for t in self.taps if t not in stats]
            if missing:
                raise CardError(f"style card {card.name!r} has no {', '.join(missing)} statistics, which this model's "
                                f"decoder reads; encode the style again")
            return {t: (stats[t][0].reshape(1, -1, 1, 1), stats[t][1].reshape(1, -1, 1, 1)) for t in self.taps}
        means: dict[str, list[Tensor]] = {t: [] for t in self.taps}
        stds: dict[str, list[Tensor]] = {t: [] for t in self.taps}
        painted = card.painted or [None] * len(card.pixels)
        for images in recoloured:
            acc = {t: (0.0, 0.0) for t in self.taps}
            for image, w, mask in zip(images, card.weights, painted):
                for t, (m, s) in self._style_stats(image, self.taps, mask).items():
                    acc[t] = (acc[t][0] + w * m, acc[t][1] + w * s)
            for t, (m, s) in acc.items():
                means[t].append(m)
                stds[t].append(s)
        return {t: (torch.stack(means[t])[..., None, None], torch.stack(stds[t])[..., None, None]) for t in self.taps}

    # -- stylisation ----------------------------------------------------------------------------------------
    def stylize(self, content: ImageLike, style: StyleSpec, options: StylizeOptions | None = None, *,
                progress: Progress | None = None, cancel: CancelHook | None = None, **fields: object) -> object:
        """Stylise a content image or batch.

        Args:
            content: PIL image (any mode; alpha passes through), path, numpy (H, W, C) uint8/uint16/float, or tensor
                (B, 3, H, W) float in [0, 1]. Any H, W ≥ 1.
            style: a :class:`StyleCard`, or a list of ``(card, mask)`` pairs; masks are soft in [0, 1], any size
                (resized to the image), as PIL/numpy/tensor/path (a path or PIL image with alpha uses its alpha),
                ``None`` meaning everywhere. Where the masks sum to less than 1 the content is kept.
            options: a :class:`StylizeOptions` (alpha, colour mode, tiling, memory budget); default: its defaults.
            progress: called as ``progress(done, total)`` after each pass/tile.
            cancel: called between tiles; returning True raises :class:`Cancelled`.
            **fields: :class:`StylizeOptions` fields overriding ``options``, e.g. ``alpha=0.5, color="luminance"``.

        Returns:
            The same type as ``content`` with exactly its size (PIL → PIL, numpy → numpy of the same dtype,
            tensor → tensor on its device).

        Raises:
            ValueRangeError, ShapeError, CardError, MemoryPreflightError, Cancelled.
        """
        opts = StylizeOptions.of(options, **fields)
        batch = to_batch(content)
        out, _ = self._run(batch.pixels, style, opts, None, progress, cancel)
        return batch.restore(out)

    def stylize_frames(self, frames: Iterable[ImageLike], style: StyleSpec, options: StylizeOptions | None = None,
                       *, temporal: float = 0.0, progress: Progress | None = None, cancel: CancelHook | None = None,
                       total: int | None = None, batch: int | str = 1, **fields: object) -> Iterator[object]:
        """Stylise a sequence of frames, smoothing the content statistics with an exponential moving average.

        ``temporal`` = S in [0, 1): the statistics used for frame n are ``S·used[n-1] + (1−S)·measured[n]``
        (the style card is fixed), which reduces flicker. ``options``/``fields`` as :meth:`stylize`.
        ``progress(done, total)`` is called per frame (``total`` if given, else 0 when unknown); ``cancel`` is
        checked between passes and tiles.

        ``batch``: frames per forward pass. Consecutive single frames of the same size run ``batch`` at a time (the
        smoothing stays frame by frame); ``"auto"`` lets the memory pre-flight choose (see :meth:`frames_per_pass`).
        ``batch=1`` (the default) is exactly :meth:`stylize_frame` applied in turn; larger batches give the same
        frames up to float rounding (at most 1/255 on an 8-bit output), faster where the device has room.

        Yields:
            Each stylised frame, the same type as the input frame.

        Raises:
            ValueRangeError: ``temporal`` outside [0, 1) or a ``batch`` that is neither ``"auto"`` nor ≥ 1; and as
                :meth:`stylize`.
        """
        _check_temporal(temporal)
        if batch != "auto" and (isinstance(batch, str) or int(batch) < 1):
            raise ValueRangeError(f"frames per pass (batch) must be 'auto' or at least 1, got {batch!r}")
        opts = StylizeOptions.of(options, **fields)
        state: FrameState | None = None
        done = 0
        for group in _same_size_runs(frames, batch, lambda hw: self.frames_per_pass(*hw, opts)):
            _check_cancel(cancel)
            outs, state = self._stylize_group(group, done, style, state, temporal, opts, cancel)
            for out in outs:
                done += 1
                if progress is not None:
                    progress(done, total or 0)
                yield out

    def frames_per_pass(self, height: int, width: int, options: StylizeOptions | None = None, *,
                        limit: int = MAX_FRAMES_PER_PASS, **fields: object) -> int:
        """How many (height × width) frames one forward pass may take: the most (up to ``limit``) whose pass fits
        the memory budget of ``options``/``fields`` (``max_memory``, else 80 % of the free memory) without tiling;
        1 when tiling is asked for or needed.

        Raises:
            ValueRangeError: a malformed ``max_memory``.
        """
        opts = StylizeOptions.of(options, **fields)
        if opts.tile not in ("auto", "off"):
            return 1
        hp, wp = padded_size(height, width, border=BORDER)
        budget = parse_size(opts.max_memory) if opts.max_memory is not None else int(
            free_memory_bytes(self.device) * 0.8)
        best = 1
        for b in range(2, max(1, int(limit)) + 1):
            if estimate_pass_bytes(hp, wp, b, self.precision) > budget:
                break
            best = b
        return best

    def stylize_frame(self, content: ImageLike, style: StyleSpec, options: StylizeOptions | None = None, *,
                      state: FrameState | None = None, temporal: float = 0.0, progress: Progress | None = None,
                      cancel: CancelHook | None = None, **fields: object) -> tuple[object, FrameState]:
        """Stylise one frame of a sequence, given the state the previous frame returned.

        The step behind :meth:`stylize_frames`, for callers that receive frames one at a time (the engine worker):
        feeding frames through it, each with the state of the previous call, gives exactly ``stylize_frames``.

        Args:
            content, style, options, progress, cancel, fields: as :meth:`stylize`.
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
        opts = StylizeOptions.of(options, **fields)
        return self._stylize_frame(content, "frame", style, state, temporal, opts, progress, cancel)

    def _stylize_frame(self, content: ImageLike, what: str, style: StyleSpec, state: FrameState | None,
                       temporal: float, options: StylizeOptions, progress: Progress | None,
                       cancel: CancelHook | None) -> tuple[object, FrameState]:
        batch = to_batch(content, what)
        out, used = self._run(batch.pixels, style, options, _smoother(state, temporal), progress, cancel)
        return batch.restore(out), used

    def _stylize_group(self, group: list[Batch], first: int, style: StyleSpec, state: FrameState | None,
                       temporal: float, options: StylizeOptions,
                       cancel: CancelHook | None) -> tuple[list[object], FrameState]:
        """Frames ``first …`` (each a single image, all one size) in one pass; the smoothing runs frame by frame.
        A group of one frame may be a batch of images (smoothed as one, like :meth:`stylize_frame`)."""
        if len(group) == 1:
            out, last = self._run(group[0].pixels, style, options, _smoother(state, temporal), None, cancel)
            return [group[0].restore(out)], last
        used: dict[str, list[Stats]] = {"stats": [], "colour": [], "tone": []}

        def smooth(stats: Stats, kind: str) -> Stats:
            prev = None if state is None else getattr(state, kind)
            for i in range(len(group)):
                prev = _smooth(prev, [(m[i:i + 1], s[i:i + 1]) for m, s in stats], temporal)
                used[kind].append(prev)
            return [(torch.cat([u[r][0] for u in used[kind]]), torch.cat([u[r][1] for u in used[kind]]))
                    for r in range(len(stats))]

        pixels = torch.cat([to_device(b.pixels, self.device) for b in group])
        out, _ = self._run(pixels, style, options, smooth, None, cancel)
        last = FrameState(*(used[kind][-1] if used[kind] else () for kind in ("stats", "colour", "tone")))
        return [b.restore(out[i:i + 1]) for i, b in enumerate(group)], last

    # -- internals ------------------------------------------------------------------------------------------
    def _run(self, pixels: Tensor, style: StyleSpec, options: StylizeOptions, smooth: Smoother | None,
             progress: Progress | None, cancel: CancelHook | None) -> tuple[Tensor, FrameState]:
        """(B, 3, H, W) in [0, 1] → the stylised (B, 3, H, W) on the CPU, and the content statistics used with
        (palette mode) the colour statistics and tone curves the recolouring was fitted to.

        Working resolution: below full size the image is stylised at :func:`working_size` and brought back with
        :func:`guided_upsample` (on the device where the colour modes run, or the CPU if the full-size image would
        take more than half the GPU's free memory); the colour mode is applied again at full size (content chroma /
        colours exact).
        ``smooth(stats, kind)``, for frames: the statistics to use given those measured, ``kind`` ``"stats"``
        (content, before decoding), ``"colour"`` (the result's, before the palette recolouring) or ``"tone"`` (the
        tone curves, after it).
        """
        regions = _regions(style)
        h, w = pixels.shape[-2:]
        size = working_size(h, w, options.scale)
        content_smooth = None if smooth is None else (lambda st: _levels(smooth(_flat(st), "stats"), self.taps))
        if size == (h, w):
            out, content, stats = self._run_full(pixels, regions, options, content_smooth, progress, cancel)
        else:
            small = downscale(pixels, size)
            out, _, stats = self._run_full(small, regions, options, content_smooth, progress, cancel)
            fits = pixels.numel() * _FULL_SIZE_BYTES <= free_memory_bytes(out.device) // 2
            where = out.device if fits else torch.device("cpu")  # a full-size image too big for the GPU: the host
            content = pixels.to(where, torch.float32)
            out = guided_upsample(out.to(where), content, guide_low=small, clamp=not fits_raw_output(options.color))
            out = after_image(options.color, after_pass(options.color, out, content), content)
        if options.color != "palette":
            return to_host(out), FrameState(_flat(stats))
        palettes = _palettes(regions, content, options.alpha)
        fits = fit_palettes(out, palettes)
        if smooth is not None:
            fits = smooth(fits, "colour")
        curves = fit_tones(out, palettes, fits, [tone_target(card.tones(), content, options.alpha)
                                                 for card, _ in regions])
        if smooth is not None:
            curves = smooth(curves, "tone")
        return to_host(apply_palettes(out, palettes, fits, curves)), FrameState(_flat(stats), fits, curves)

    def _run_full(self, pixels: Tensor, regions: list[tuple[StyleCard, MaskLike | None]], options: StylizeOptions,
                  smooth: Callable[[Levels], Levels] | None, progress: Progress | None,
                  cancel: CancelHook | None) -> tuple[Tensor, Tensor, Levels]:
        """:meth:`_run` at the pixels' own size, before the palette recolouring (whose input is not clamped:
        :func:`fits_raw_output`). Returns the result and the content pixels, both (B, 3, H, W) on the device where
        the colour modes run (:func:`colour_device`; the CPU for a tiled image, whose canvas is there), and the
        content statistics used at each of :attr:`taps`."""
        job = self._prepare(pixels, regions, options)
        color = options.color
        if job.tiles is None:
            out, stats = style_transfer(self._encode_taps, self._decode_taps, job.pixels, job.style_stats, job.masks,
                                        options.alpha, smooth, job.marks)
            out, content = job.crop(after_pass(color, out, job.pixels)), job.crop(job.pixels)
            where = colour_device(self.device)
            out, content = out.to(where), content.to(where)
            if progress is not None:
                progress(1, 1)
        else:
            stats = self._tiled_stats(job, progress, cancel)
            if smooth is not None:
                stats = smooth(stats)
            out, content = job.crop(self._render_tiles(job, stats, progress, cancel)), pixels.cpu()
        return after_image(color, out, content), content, stats

    def _prepare(self, pixels: Tensor, regions: list[tuple[StyleCard, MaskLike | None]],
                 options: StylizeOptions) -> _Job:
        for card, _ in regions:
            card.check_encoder(self.encoder_id)
            _check_pixels(card, options)
        b, _, h, w = pixels.shape
        padded, size = pad_to_multiple(to_device(pixels, self.device), border=BORDER)
        hp, wp = padded.shape[-2:]
        masks = {tap: [None if m is None else feature_mask(m, b, (h, w), f"mask {i + 1}", BORDER,
                                                           TAP_SCALE[tap]).to(self.device)
                       for i, (_, m) in enumerate(regions)] for tap in self.taps}
        per_region = [self._region_style_stats(card, options.color, pixels) for card, _ in regions]
        style_stats = {tap: [(r[tap][0].to(self.device), r[tap][1].to(self.device)) for r in per_region]
                       for tap in self.taps}
        banks = [self._region_bank(card) for card, _ in regions] if options.marks > 0 else None
        return _Job(padded, size, style_stats, masks, options, self._plan(b, hp, wp, options), banks)

    def _plan(self, b: int, hp: int, wp: int, options: StylizeOptions) -> list[Tile] | None:
        tile, max_memory = options.tile, options.max_memory
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
        return plan_tiles(hp, wp, int(tile))

    def _tiled_stats(self, job: _Job, progress: Progress | None, cancel: CancelHook | None) -> Levels:
        """Pass 1 of the tiled path: exact content statistics per region over the whole image, from the cores, at
        each of :attr:`taps`."""
        acc = {tap: StreamingStats(len(masks)) for tap, masks in job.masks.items()}
        total = 2 * len(job.tiles)
        for i, t in enumerate(job.tiles):
            _check_cancel(cancel)
            for tap, f in self._encode_taps(job.pixels[:, :, t.cy0:t.cy1, t.cx0:t.cx1]).items():
                s = TAP_SCALE[tap]
                core = f[:, :, (t.y0 - t.cy0) // s:(t.y1 - t.cy0) // s, (t.x0 - t.cx0) // s:(t.x1 - t.cx0) // s]
                acc[tap].add(core, [None if m is None else m[:, :, t.y0 // s:t.y1 // s, t.x0 // s:t.x1 // s]
                                    for m in job.masks[tap]])
            if progress is not None:
                progress(i + 1, total)
        return {tap: a.result() for tap, a in acc.items()}

    def _render_tiles(self, job: _Job, stats: Levels, progress: Progress | None, cancel: CancelHook | None) -> Tensor:
        """Pass 2 of the tiled path: each tile decoded with the global statistics, feathered into a CPU canvas."""
        b, _, hp, wp = job.pixels.shape
        canvas = torch.zeros(b, 3, hp, wp)
        n = len(job.tiles)
        for i, t in enumerate(job.tiles):
            _check_cancel(cancel)
            region = job.pixels[:, :, t.cy0:t.cy1, t.cx0:t.cx1]
            masks = {tap: [None if m is None else m[:, :, t.cy0 // TAP_SCALE[tap]:t.cy1 // TAP_SCALE[tap],
                                                     t.cx0 // TAP_SCALE[tap]:t.cx1 // TAP_SCALE[tap]] for m in ms]
                     for tap, ms in job.masks.items()}
            feats = self._encode_taps(region)
            targets = adain_targets(feats, job.style_stats, stats, masks, job.options.alpha,
                                    job.marks(feats, stats, (t.cy0, t.cx0)))
            paste_feathered(canvas, after_pass(job.options.color, self._decode_taps(targets), region), t)
            if progress is not None:
                progress(n + i + 1, 2 * n)
        return canvas


def _regions(style: StyleSpec) -> list[tuple[StyleCard, MaskLike | None]]:
    """A style spec as validated ``(card, mask)`` pairs (``None`` = everywhere).

    Raises:
        CardError: no style, a malformed spec, or an invalid card.
    """
    regions = [(style, None)] if isinstance(style, StyleCard) else list(style)
    if not regions:
        raise CardError("no style given")
    for pair in regions:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], StyleCard)):
            raise CardError("style must be a StyleCard or a list of (StyleCard, mask) pairs")
        pair[0].check()
    return regions


def _check_pixels(card: StyleCard, options: StylizeOptions) -> None:
    """Refuse, in one line naming what needs them and the way out, a card without its style pixels (a stripped card)
    where the palette or preserve colour mode or the marks need them."""
    if card.has_pixels:
        return
    colour = options.color in ("palette", "preserve")
    needs = [f"the {options.color} colour mode"] * colour + ["marks"] * (options.marks > 0)
    ways = ["colour mode style or luminance"] * colour + ["marks 0"] * (options.marks > 0)
    if needs:
        raise CardError(f"style card {card.name!r} carries no style pixels, which {' and '.join(needs)} need: use a "
                        f"card made by encode_style (or a mix of such cards), or {' and '.join(ways)}")


def _palettes(regions: list[tuple[StyleCard, MaskLike | None]], pixels: Tensor, alpha: float) -> list[Palette]:
    """The ``palette`` colour mode's targets: each region's painting colours at strength ``alpha`` for the content
    ``pixels`` (B, 3, H, W), and the region's mask as given (any size)."""
    return [(*palette_target(card.palette(), pixels, alpha),
             None if mask is None else mask_to_tensor(mask, f"mask {i + 1}")) for i, (card, mask) in enumerate(regions)]


def _flat(stats: Levels) -> Stats:
    """Per-tap statistics as one list (the taps in turn, each with all its regions): the layout of
    :class:`FrameState` and of the smoothing hooks."""
    return [pair for per_region in stats.values() for pair in per_region]


def _levels(flat: Stats, taps: tuple[str, ...]) -> Levels:
    """The inverse of :func:`_flat` for the decoder's ``taps``."""
    n = len(flat) // len(taps)
    return {tap: flat[i * n:(i + 1) * n] for i, tap in enumerate(taps)}


def _check_cancel(cancel: CancelHook | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the caller")


def _check_temporal(temporal: float) -> None:
    if not 0.0 <= float(temporal) < 1.0:
        raise ValueRangeError(f"temporal smoothing must be in [0, 1), got {temporal}")


def _same_shape(a: Stats, b: Stats) -> bool:
    return len(a) == len(b) and all(x[0].shape == y[0].shape for x, y in zip(a, b))


def _smooth(previous: Stats | None, stats: Stats, temporal: float) -> Stats:
    """One frame's statistics to use: ``S·previous + (1−S)·measured`` (the measured ones at the start or a cut)."""
    if previous is None or temporal <= 0 or not _same_shape(previous, stats):
        return stats
    return [(temporal * pm.to(m.device) + (1 - temporal) * m, temporal * ps.to(s.device) + (1 - temporal) * s)
            for (pm, ps), (m, s) in zip(previous, stats)]


def _smoother(state: FrameState | None, temporal: float) -> Smoother:
    """The smoothing hook of :meth:`Engine._run` for one frame (or a batch smoothed as one) after ``state``."""
    return lambda stats, kind: _smooth(None if state is None else getattr(state, kind), stats, temporal)


def _same_size_runs(frames: Iterable[ImageLike], batch: int | str,
                    choose: Callable[[tuple[int, int]], int]) -> Iterator[list[Batch]]:
    """Group consecutive single frames of one size into runs of up to ``batch`` frames (``"auto"``:
    ``choose((H, W))``).

    Yields lists of :class:`~adain_core.images.Batch`; a frame of another size than the run so far starts a new run,
    and a frame that is itself a batch of images runs alone."""
    group: list[Batch] = []
    size: tuple[int, int] | None = None
    limit = 1
    for i, frame in enumerate(frames):
        b = to_batch(frame, f"frame {i}")
        hw = (int(b.pixels.shape[-2]), int(b.pixels.shape[-1]))
        single = b.pixels.shape[0] == 1
        if group and (not single or hw != size or len(group) >= limit):
            yield group
            group = []
        if not group:
            size = hw
            limit = (choose(hw) if batch == "auto" else int(batch)) if single else 1
        group.append(b)
    if group:
        yield group


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
