"""Style cards: cached style statistics (relu4_1 mean/std plus the other taps' for metrics), with provenance,
a thumbnail and the style pixels (with which of them are painted, not backdrop) needed by the ``preserve`` and
``palette`` colour modes; saved as safetensors + JSON metadata.
Also :func:`mix`, the weighted mixture of cards."""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from .color import mixture_stats
from .errors import CardError, ValueRangeError
from .store import save_safetensors_atomic
from .tone import mixture_tones
from .validate import check_stats, check_uint8_image, check_weights
from .vocabulary import CARD_SUFFIX

__all__ = ["CARD_FORMAT", "CARD_SUFFIX", "StyleCard", "mix"]

CARD_FORMAT = "adain-style-card/1"


@dataclass
class StyleCard:
    """Statistics of one style (or a mixture of styles) for one encoder.

    Attributes:
        name: display name (the style file's stem by default).
        encoder_id: the encoder the statistics belong to; a card only works with that encoder.
        mean: (C,) float32 relu4_1 channel means.
        std: (C,) float32 relu4_1 channel stds.
        taps: tap name → ((C,), (C,)) mean/std at relu1_1 … relu3_1 (used by metrics, and relu3_1's by skip decoders).
        style_size: shorter side in px the style image was resized to (None = original size).
        sources: one entry per source image: ``{"name", "sha256", "weight"}``.
        thumbnail: (h, w, 3) uint8 preview, at most 128 px on the longer side.
        pixels: the style images at ``style_size`` as (3, h, w) uint8, parallel to ``sources``; needed by the
            ``preserve`` and ``palette`` colour modes (empty for stripped cards).
        painted: parallel to ``pixels``: how much each style pixel counts in the statistics, (h, w) uint8 (255 = the
            painting, 0 = a backdrop left out: :func:`adain_core.backdrop.painted_weights`), or ``None`` (all of
            it). Empty = all ``None``.
        derived: what an engine derived from ``pixels`` once and keeps with the card for later calls (the blocks
            of the ``marks`` option, keyed by the engine's taps, device and precision); never saved, never copied by
            ``dataclasses.replace``.
    """

    name: str
    encoder_id: str
    mean: Tensor
    std: Tensor
    taps: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    style_size: int | None = None
    sources: list[dict[str, object]] = field(default_factory=list)
    thumbnail: Tensor | None = None
    pixels: list[Tensor] = field(default_factory=list)
    painted: list[Tensor | None] = field(default_factory=list)
    derived: dict[Hashable, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def weights(self) -> list[float]:
        """Weights of the sources (sum to 1)."""
        return [float(s.get("weight", 1.0)) for s in self.sources]  # type: ignore[arg-type]

    @property
    def has_pixels(self) -> bool:
        """Whether the card carries a style picture for each source (a stripped card does not)."""
        return bool(self.pixels) and len(self.pixels) == len(self.sources)

    def palette(self) -> tuple[Tensor, Tensor]:
        """The RGB mean (3,) and covariance (3, 3), float64, of the card's paintings pooled by their weights.

        Raises:
            CardError: the card carries no style pixels (a stripped card).
        """
        self._need_pixels()
        return mixture_stats(self.pixels, self.weights, self.painted or None)

    def tones(self) -> Tensor:
        """The luma quantiles (K,) float64 in [0, 1] of the card's paintings pooled by their weights, at
        :data:`adain_core.tone.TONE_KNOTS` points: where the palette colour mode's tone curve aims.

        Raises:
            CardError: the card carries no style pixels (a stripped card).
        """
        self._need_pixels()
        return mixture_tones(self.pixels, self.weights, self.painted or None)

    def _need_pixels(self) -> None:
        """Refuse a card without its style pixels, naming the palette colour mode that needs them."""
        if not self.has_pixels:
            raise CardError(f"style card {self.name!r} carries no style pixels; the palette colour mode needs a card "
                            f"made by encode_style (or a mix of such cards)")

    def check(self, source: object | None = None) -> StyleCard:
        """Validate the statistics and pictures (see :func:`adain_core.validate.check_stats`); returns the card.

        Args:
            source: the file the card came from, named in messages.

        Raises:
            CardError: NaN/inf or negative std, wrong shapes or dtypes, or malformed provenance; names the field.
        """
        where = f"style card {self.name!r}" if source is None else source
        if not isinstance(self.name, str) or not isinstance(self.encoder_id, str):
            raise CardError(f"{where}: name and encoder_id must be strings")
        check_stats(self.mean, self.std, "relu4_1", source=where, error=CardError)
        for tap, pair in self.taps.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise CardError(f"{where}: {tap} must be a (mean, std) pair")
            check_stats(pair[0], pair[1], tap, source=where, error=CardError)
        if self.style_size is not None and (isinstance(self.style_size, bool) or not isinstance(self.style_size, int)
                                            or self.style_size <= 0):
            raise CardError(f"{where}: style_size must be a positive int or null, got {self.style_size!r}")
        if not isinstance(self.sources, list) or not all(isinstance(s, dict) for s in self.sources):
            raise CardError(f"{where}: sources must be a list of objects")
        try:
            if self.sources:
                check_weights([source.get("weight", 1.0) for source in self.sources], "source weights")
        except ValueRangeError as exc:
            raise CardError(f"{where}: {exc}") from None
        if self.thumbnail is not None:
            check_uint8_image(self.thumbnail, "thumbnail", "HWC", source=where, error=CardError)
        for i, px in enumerate(self.pixels):
            check_uint8_image(px, f"pixels.{i}", "CHW", source=where, error=CardError)
        if self.pixels and len(self.pixels) != len(self.sources):
            raise CardError(f"{where}: {len(self.pixels)} style pictures for {len(self.sources)} sources")
        if self.pixels and self.painted and len(self.painted) != len(self.pixels):
            raise CardError(f"{where}: {len(self.painted)} painted-pixel maps for {len(self.pixels)} style pictures")
        for i, (mask, px) in enumerate(zip(self.painted, self.pixels)):
            if mask is not None and (mask.dtype != torch.uint8 or tuple(mask.shape) != tuple(px.shape[1:])):
                raise CardError(f"{where}: painted.{i} must be uint8 {tuple(px.shape[1:])}, got {mask.dtype} "
                                f"{tuple(mask.shape)}")
        return self

    def check_encoder(self, encoder_id: str) -> None:
        """Raise :class:`CardError` if the card was made for another encoder."""
        if self.encoder_id != encoder_id:
            raise CardError(
                f"style card {self.name!r} was made for encoder {self.encoder_id!r}, but the model uses "
                f"{encoder_id!r}; re-encode the style image with this model"
            )

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the card atomically as safetensors with JSON metadata.

        Raises:
            FileExistsError: the path exists and ``overwrite`` is False.
        """
        p = Path(path)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p}: card file exists (pass --overwrite to replace it)")
        self.check()
        tensors: dict[str, Tensor] = {"relu4_1.mean": self.mean.float(), "relu4_1.std": self.std.float()}
        for tap, (m, s) in self.taps.items():
            tensors[f"{tap}.mean"] = m.float()
            tensors[f"{tap}.std"] = s.float()
        if self.thumbnail is not None:
            tensors["thumbnail"] = self.thumbnail.to(torch.uint8)
        for i, px in enumerate(self.pixels):
            tensors[f"pixels.{i}"] = px.to(torch.uint8)
        for i, (mask, _) in enumerate(zip(self.painted, self.pixels)):
            if mask is not None:
                tensors[f"painted.{i}"] = mask
        meta = {"format": CARD_FORMAT, "name": self.name, "encoder_id": self.encoder_id,
                "style_size": json.dumps(self.style_size), "sources": json.dumps(self.sources),
                "taps": json.dumps(sorted(self.taps))}
        save_safetensors_atomic(tensors, p, meta)
        return p

    @classmethod
    def load(cls, path: str | Path, encoder_id: str | None = None) -> StyleCard:
        """Read a card; with ``encoder_id`` also check it belongs to that encoder.

        Raises:
            CardError: missing, truncated or not a card file, invalid values (NaN/inf, negative std, wrong shapes or
                dtypes, malformed metadata: the message names the field), or made for another encoder.
        """
        p = Path(path)
        if not p.is_file():
            raise CardError(f"{p}: style card not found")
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CardError(f"{p}: not a readable style card ({exc})") from None
        if meta.get("format") != CARD_FORMAT:
            raise CardError(f"{p}: not a style card (metadata format={meta.get('format')!r})")
        try:
            tap_names = json.loads(meta["taps"])
            if not isinstance(tap_names, list) or not all(isinstance(t, str) for t in tap_names):
                raise CardError(f"{p}: metadata field taps must be a list of names, got {meta['taps'][:80]!r}")
            taps = {t: (tensors[f"{t}.mean"], tensors[f"{t}.std"]) for t in tap_names}
            n_px = len([k for k in tensors if k.startswith("pixels.")])
            card = cls(
                name=meta["name"], encoder_id=meta["encoder_id"],
                mean=tensors["relu4_1.mean"], std=tensors["relu4_1.std"], taps=taps,
                style_size=json.loads(meta["style_size"]), sources=json.loads(meta["sources"]),
                thumbnail=tensors.get("thumbnail"), pixels=[tensors[f"pixels.{i}"] for i in range(n_px)],
                painted=[tensors.get(f"painted.{i}") for i in range(n_px)],
            )
        except (KeyError, json.JSONDecodeError, RecursionError) as exc:
            raise CardError(f"{p}: style card is incomplete ({type(exc).__name__}: {str(exc)[:120]})") from None
        card.check(p)
        if encoder_id is not None:
            card.check_encoder(encoder_id)
        return card

    def __repr__(self) -> str:
        return (f"StyleCard(name={self.name!r}, encoder_id={self.encoder_id!r}, channels={self.mean.numel()}, "
                f"style_size={self.style_size}, sources={len(self.sources)})")


def mix(cards: Sequence[StyleCard], weights: Sequence[float] | None = None, name: str | None = None) -> StyleCard:
    """Weighted mixture of style cards.

    AdaIN is affine in (σ, μ) for a fixed content, so the mixed card's target equals the weighted sum of the
    single-style targets: ``mean = Σ wᵢ meanᵢ``, ``std = Σ wᵢ stdᵢ`` with weights normalised to sum to 1.

    Args:
        cards: one or more cards of the same encoder.
        weights: ≥ 0, not all 0, one per card (default: equal).
        name: name of the mixture (default: names joined with ``+``).

    Raises:
        CardError: no cards, or cards of different encoders.
        ValueRangeError: wrong number of weights, negative or all-zero weights.
    """
    if not cards:
        raise CardError("mix needs at least one style card")
    w = [1.0] * len(cards) if weights is None else list(weights)
    if len(w) != len(cards):
        raise ValueRangeError(f"mix got {len(cards)} cards but {len(w)} weights")
    w = check_weights(w, "mix weights")
    for c in cards:
        c.check()
    enc = cards[0].encoder_id
    for c in cards[1:]:
        if c.encoder_id != enc:
            raise CardError(f"cannot mix cards of different encoders: {enc!r} and {c.encoder_id!r} ({c.name!r})")
    mean = sum(wi * c.mean.float() for wi, c in zip(w, cards))
    std = sum(wi * c.std.float() for wi, c in zip(w, cards))
    common = set.intersection(*(set(c.taps) for c in cards))
    taps = {t: (sum(wi * c.taps[t][0].float() for wi, c in zip(w, cards)),
                sum(wi * c.taps[t][1].float() for wi, c in zip(w, cards))) for t in sorted(common)}
    sources: list[dict[str, object]] = []
    pixels: list[Tensor] = []
    painted: list[Tensor | None] = []
    keep_pixels = all(c.has_pixels for c in cards)
    for wi, c in zip(w, cards):
        for s, sw in zip(c.sources, c.weights):
            sources.append({**s, "weight": wi * sw})
        if keep_pixels:
            pixels.extend(c.pixels)
            painted.extend(c.painted or [None] * len(c.pixels))
    sizes = {c.style_size for c in cards}
    return StyleCard(
        name=name or "+".join(c.name for c in cards), encoder_id=enc, mean=mean, std=std, taps=taps,
        style_size=sizes.pop() if len(sizes) == 1 else None, sources=sources,
        thumbnail=max(zip(w, cards), key=lambda p: p[0])[1].thumbnail, pixels=pixels if keep_pixels else [],
        painted=painted if keep_pixels else [],
    )
