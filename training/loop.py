"""The training loop: data → frozen encoder → AdaIN → decoder → loss, with checkpoints, logs, samples and DDP.

Run through ``adain-train train`` (one process) or ``torchrun --nproc_per_node N -m training.cli train`` (data
parallel; the same code, the process group is set up from the torchrun environment).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from adain_core.adain import adain, calc_mean_std, tap_stats
from adain_core.networks import TAPS, Encoder, build_decoder, build_encoder, decoder_inputs
from adain_core.store import ENCODERS, load_encoder

from .checkpoint import load_checkpoint, load_decoder_state, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data import ImageSource, PairDataset, PairSampler, make_loader, manifest_hash, scan_images
from .features import FeatureCache
from .losses import (AdaINLoss, LossWeights, gram_loss, gram_matrices, grid_loss, identity_loss, luma_loss,
                     palette_recolour, raw_colour_loss, sliced_wasserstein, structure_loss, tone_loss, unit_directions)
from .report import plot_loss_curve, save_grid

__all__ = ["Trainer", "make_encoder", "hardware_name", "RANDOM_ENCODER_ID"]

log = logging.getLogger("adain.training")

# A seeded random VGG16 encoder for tests and smoke runs (no download, no cache); never for real models.
RANDOM_ENCODER_ID = "random-vgg16"


def make_encoder(encoder_id: str) -> Encoder:
    """The frozen encoder of ``encoder_id`` (from the engine's cache), or the seeded random test encoder."""
    if encoder_id == RANDOM_ENCODER_ID:
        enc = build_encoder("vgg16")
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for m in enc.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * 9
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                    m.bias.zero_()
            enc.layers[0].weight.mul_(1 / 64)  # Caffe input range is ±128: keep activations O(1)
        return enc
    return load_encoder(encoder_id)


def hardware_name(device: torch.device) -> str:
    """Short description of the compute device (GPU name, or the CPU model and core count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


def _setup_distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def _pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype (None = fp32). ``auto``: bf16 on CUDA GPUs that have it else fp16; bf16 on CPUs with
    AVX-512 bf16 / AMX, fp32 on other CPUs."""
    if name == "fp32":
        return None
    if name in ("bf16", "fp16"):
        return torch.bfloat16 if name == "bf16" else torch.float16
    if name != "auto":
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {name!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    cpu_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    cpu_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.bfloat16 if (cpu_bf16 or cpu_amx) else None


class Trainer:
    """One training run (one process of a DDP group).

    Args:
        config: the settings.
        resume: a checkpoint to continue from (decoder, optimiser, step, RNG states; bit-for-bit when it was
            written by this trainer with the same settings).
        init_decoder: start from these decoder weights (checkpoint, state dict or model file) with a fresh
            optimiser, at ``init_step`` (default: the step recorded with the weights, else 0).
        encoder: use this encoder module instead of ``config.encoder_id`` (tests, training packs).
        folder_data: read the training images from ``config.content_dirs``/``style_dirs`` (for :meth:`run`);
            ``False`` when the caller feeds :meth:`train_step` itself (``adain-train sprint``).
    """

    def __init__(self, config: TrainConfig, resume: str | Path | None = None,
                 init_decoder: str | Path | None = None, init_step: int | None = None,
                 encoder: Encoder | None = None, folder_data: bool = True) -> None:
        self.cfg = cfg = config
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.rank, self.world, local_rank = _setup_distributed()
        self.device = _pick_device(cfg.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.amp_dtype = _pick_precision(cfg.precision, self.device)
        self.out_dir = Path(cfg.out_dir)
        self.is_main = self.rank == 0
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

        torch.manual_seed(cfg.seed + self.rank)
        self.encoder = (encoder if encoder is not None else make_encoder(cfg.encoder_id)).to(self.device).eval()
        self.encoder.requires_grad_(False)
        arch = ENCODERS.get(cfg.encoder_id, "vgg16")
        self.decoder = build_decoder(arch, cfg.decoder_width, cfg.decoder_skip, cfg.decoder_upsample).to(self.device)
        if cfg.channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr,
                                          fused=True if self.device.type == "cuda" else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16
                                           and self.device.type == "cuda")
        layers, content_weight = cfg.loss_weights()
        unknown = [t for t in cfg.structure_taps if t not in TAPS]
        if unknown or not cfg.structure_taps:
            raise ValueError(f"structure taps must be some of {', '.join(TAPS)}, got {cfg.structure_taps!r}")
        unknown = [t for t in cfg.gram_taps if t not in TAPS]
        if cfg.gram_weight > 0 and (unknown or not cfg.gram_taps):
            raise ValueError(f"gram taps must be some of {', '.join(TAPS)}, got {cfg.gram_taps!r}")
        if not 0 <= cfg.palette_tone <= 1:
            raise ValueError(f"palette tone must be in [0, 1], got {cfg.palette_tone}")
        #: the photos' taps a step needs: the decoder's AdaIN inputs and the structure term's
        self.content_taps = tuple(t for t in TAPS if t in self.decoder.taps or
                                  (cfg.structure_weight > 0 and t in cfg.structure_taps))
        self.loss_fn = AdaINLoss(LossWeights(cfg.style_weight, layers, content_weight))
        #: the output's taps the losses need: the style terms', the Gram term's and the photos'
        self.out_taps = tuple(t for t in TAPS if t in layers or t in self.content_taps or
                              (cfg.gram_weight > 0 and t in cfg.gram_taps))

        self.step = 0
        self.wall_time = 0.0
        self.hardware: dict[str, int] = {}
        self.history_source: str | None = None
        if resume is not None:
            state = load_checkpoint(Path(resume))
            self.decoder.load_state_dict(state["decoder"])
            if "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
            if "scaler" in state and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
            self.wall_time = float(state.get("wall_time", 0.0))
            self.hardware = dict(state.get("hardware", {}))
            if "rng" in state:
                set_rng_state(state["rng"][min(self.rank, len(state["rng"]) - 1)])
            self.history_source = str(resume)
        elif init_decoder is not None:
            weights, info = load_decoder_state(Path(init_decoder))
            # a plain decoder's weights start a skip decoder: its skip convolution stays at zero
            missing, unexpected = self.decoder.load_state_dict({k: v.float() for k, v in weights.items()},
                                                               strict=False)
            if unexpected or [k for k in missing if not k.startswith("skip.")]:
                hint = " (a skip decoder's: train with --decoder-skip 1)" if "skip.weight" in unexpected else ""
                raise ValueError(f"{init_decoder}: decoder weights do not fit this decoder{hint} (missing "
                                 f"{missing[:3]}, unexpected {unexpected[:3]})")
            # count on from the steps the weights already had (a model file's metadata), unless told otherwise
            self.step = int(init_step if init_step is not None else info.get("step") or 0)
            self.history_source = str(init_decoder)
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", cfg.lr)

        self.model: nn.Module = self.decoder
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.model = torch.compile(self.model)

        self.content_paths: list[Path] = []
        self.style_paths: list[Path] = []
        self.manifest = ""
        self.images: dict[str, int] = {}
        self.features: FeatureCache | None = None  # with ``cached_crops``
        if folder_data:
            self._setup_folder_data()

    def _setup_folder_data(self) -> None:
        cfg = self.cfg
        self.content_paths = scan_images(cfg.content_dirs, cfg.min_side, cfg.max_per_dir, cfg.seed)
        self.style_paths = scan_images(cfg.style_dirs, cfg.min_side, cfg.max_per_dir, cfg.seed)
        self.manifest = manifest_hash(self.content_paths, self.style_paths)
        cache = cfg.cache_images and cfg.num_workers == 0
        self.content = ImageSource(self.content_paths, cfg.resize, cfg.crop, cfg.upscale, cache)
        self.style = ImageSource(self.style_paths, cfg.resize, cfg.crop, cfg.upscale, cache,
                                 painted=cfg.backdrop == "ignore")
        self.dataset = PairDataset(self.content, self.style)
        self.images = {"content": len(self.content_paths), "style": len(self.style_paths)}
        if cfg.cached_crops:
            if cfg.backdrop == "ignore":
                raise ValueError("--cached-crops keeps the paintings' statistics with their backdrops: use it with "
                                 "--backdrop keep")
            if cfg.warmup_steps > self.step or cfg.identity_pixel + cfg.identity_feature > 0:
                raise ValueError("--cached-crops cannot serve the warm-up or the identity losses (they need the "
                                 "photos' pixels): turn one or the other off")
            self.features = FeatureCache(self.encoder, self.content, self.style, cfg.cached_crops, cfg.encoder_id,
                                         cfg.feature_dir or None, self.content_taps)
        if self.is_main:
            log.info("data: %d content, %d style images (manifest %s…)", len(self.content_paths),
                     len(self.style_paths), self.manifest[:12])

    # ------------------------------------------------------------------ one step
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def lr_at(self, step: int) -> float:
        return self.cfg.lr / (1.0 + self.cfg.lr_decay * step)

    def train_step(self, content: Tensor | None, style: Tensor, as_floats: bool = True,
                   encoded: tuple[dict[str, Tensor], dict[str, tuple[Tensor, Tensor]]] | None = None
                   ) -> dict[str, Any]:
        """One optimisation step on a batch ``content, style``: (B, 3, S, S) float in [0, 1] each (the style
        (B, 4, S, S) when a fourth channel says how much each pixel belongs to the painting: its flat backdrop is
        then left out of the paintings' statistics, palettes and colours, as the engine leaves it out); returns the
        weighted loss terms (``loss``, ``content``, ``style``, ``style/<tap>`` and, when enabled,
        ``identity_pixel``, ``identity_feature``, ``structure``, ``colour``, ``luma``, ``raw_colour``) as floats, or
        as detached 0-d tensors with ``as_floats=False`` (no device synchronisation: a GPU keeps running ahead).

        ``encoded``: the frozen encoder's passes made already (:class:`training.features.FeatureCache`): the photos'
        features at :attr:`content_taps`, tap → (B, C, h, w) (relu4_1: (B, 512, S/8, S/8)), and the paintings' channel
        statistics, tap → (mean, std) each (B, C, 1, 1); then ``content`` serves the luma term only (pass ``None``
        without it; no identity losses or warm-up)."""
        cfg = self.cfg
        warm = self.step < cfg.warmup_steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        style = style.to(self.device, non_blocking=True, memory_format=fmt)
        painted = style[:, 3:] if style.shape[1] == 4 else None
        style = style[:, :3]
        layers = self.loss_fn.weights.layers
        k = 0 if warm or cfg.identity_pixel + cfg.identity_feature <= 0 else \
            max(1, math.ceil(cfg.identity_fraction * style.shape[0]))
        if encoded is not None and (warm or k):
            raise ValueError("cached encoder features cannot serve the warm-up or the identity losses "
                             "(they need the photos' pixels)")
        if encoded is not None and cfg.gram_weight > 0:
            raise ValueError("cached encoder features cannot serve the Gram term (it needs the paintings' features)")
        fs: dict[str, Tensor] = {}  # the paintings' features (not with ``encoded``)
        raw: Tensor | None = None  # the decoder's own output, when the losses see it recoloured
        if content is not None:
            content = content.to(self.device, non_blocking=True, memory_format=fmt)
        with self._autocast():
            with torch.no_grad():
                if encoded is not None:
                    missing = [t for t in self.content_taps if t not in encoded[0]]
                    if missing:
                        raise ValueError(f"the encoded photos lack the taps {missing} this step needs")
                    fc = {t: v.to(self.device, non_blocking=True, memory_format=fmt) for t, v in encoded[0].items()}
                    s_stats = {t: (m.to(self.device), sd.to(self.device)) for t, (m, sd) in encoded[1].items()}
                else:
                    if content is None:
                        raise ValueError("train_step needs the photos or their encoded features")
                    fc = {t: v.float() for t, v in self.encoder(content, TAPS if k else self.content_taps).items()}
                    if not warm:
                        fs = {t: v.float() for t, v in self.encoder(style, TAPS).items()}
                    s_stats = tap_stats(fs, painted)
                targets = {t: fc[t] if warm else adain(fc[t], *s_stats[t]) for t in self.decoder.taps}
                target = targets["relu4_1"]
            if k:  # one decoder pass: the AdaIN targets, then the photos' and paintings' own features
                decoded = self._decode({t: torch.cat([v, fc[t][:k], fs[t][:k]]) for t, v in targets.items()})
                out, recon = decoded[:target.shape[0]], decoded[target.shape[0]:]
                if cfg.palette:  # the identity decodes too: each given its own image's palette
                    raw, out = out, palette_recolour(out, style, painted, cfg.palette_tone)
                    recon = palette_recolour(recon, torch.cat([content[:k], style[:k]]), tone=cfg.palette_tone)
                    decoded = torch.cat([out, recon])
                f_all = self.encoder(decoded, self.out_taps)
                fo = {t: v[:target.shape[0]] for t, v in f_all.items()}
                fr = {t: v[target.shape[0]:] for t, v in f_all.items()}
            else:
                out = self._decode(targets)
                if cfg.palette and not warm:
                    raw, out = out, palette_recolour(out, style, painted, cfg.palette_tone)
                fo = self.encoder(out, ("relu4_1",) if warm else self.out_taps)
        fo = {t: v.float() for t, v in fo.items()}
        if warm:
            loss, parts = self.loss_fn(fo, target, None)
            pixel = F.l1_loss(out.float(), content)
            parts["pixel_l1"] = pixel.detach()
            loss = loss + pixel
        else:
            with torch.no_grad():  # the paintings' texture, in float32 (outside the autocast)
                s_grams = {t: gram_matrices(fs[t], painted) for t in cfg.gram_taps} if cfg.gram_weight > 0 else {}
            loss, parts = self.objective(out, fo, fc, target, s_stats, style, content, painted, s_grams)
            if raw is not None and cfg.raw_colour_weight > 0:
                raw_term = cfg.raw_colour_weight * raw_colour_loss(raw, out)
                parts["raw_colour"] = raw_term.detach()
                loss = loss + raw_term
        if k:
            originals = torch.cat([content[:k], style[:k]])
            orig_feats = {t: torch.cat([fc[t][:k], fs[t][:k]]) for t in layers}
            pix, feat = identity_loss(recon, originals, fr, orig_feats, layers, cfg.identity_pixel,
                                      cfg.identity_feature)
            parts["identity_pixel"], parts["identity_feature"] = pix.detach(), feat.detach()
            loss = loss + pix + feat
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        result = {"loss": loss.detach(), **parts}
        return {k: float(v) for k, v in result.items()} if as_floats else result

    def _decode(self, targets: dict[str, Tensor], model: nn.Module | None = None) -> Tensor:
        """The decoder (by default :attr:`model`, the DDP/compiled wrapper) on AdaIN targets, tap → (B, C, h, w) at
        the decoder's taps → (B, 3, S, S)."""
        return (model or self.model)(*decoder_inputs(targets))

    def objective(self, out: Tensor, out_feats: dict[str, Tensor], content_feats: dict[str, Tensor], target: Tensor,
                  style_stats: dict[str, tuple[Tensor, Tensor]], style: Tensor, photo: Tensor | None = None,
                  painted: Tensor | None = None, style_grams: dict[str, Tensor] | None = None
                  ) -> tuple[Tensor, dict[str, Tensor]]:
        """The recipe's loss of stylised images (after the warm-up; the identity terms come on top): the paper's
        content and style terms, the structure, colour, tone, luma, grid and Gram terms, each as configured.

        Args:
            out: (B, 3, S, S) float, the images to score (decoded, or any pixels), already given the painting's
                palette when the recipe trains for it (:func:`training.losses.palette_recolour`).
            out_feats: their encoder features, tap → (B, C, h, w), at :attr:`out_taps`.
            content_feats: the photos' features at :attr:`content_taps`.
            target: (B, 512, S/8, S/8) the AdaIN target.
            style_stats: the paintings' channel statistics, tap → (mean, std) each (B, C, 1, 1).
            style: (B, 3, S', S') float in [0, 1], the paintings (for the colour and tone terms).
            photo: (B, 3, S, S) float in [0, 1], the photos (needed by the luma term only).
            painted: (B, 1, S', S') in [0, 1], how much each painting pixel counts in the colour and tone terms (0 on
                a flat backdrop), or ``None``: every pixel.
            style_grams: the paintings' Gram matrices, tap → (B, C, C) (:func:`training.losses.gram_matrices`,
                painted pixels only), needed by the Gram term only.

        Returns:
            ``(total, parts)``: the weighted terms as detached 0-d tensors (``content``, ``style``,
            ``style/<tap>``, ``structure``, ``colour``, ``tone``, ``luma``, ``grid``, ``gram``).

        Raises:
            ValueError: the recipe has a luma term and ``photo`` is missing, or a Gram term and ``style_grams`` is.
        """
        cfg = self.cfg
        loss, parts = self.loss_fn(out_feats, target, style_stats)
        if cfg.structure_weight > 0:
            structure = cfg.structure_weight * sum(structure_loss(out_feats[t], content_feats[t])
                                                   for t in cfg.structure_taps)
            parts["structure"] = structure.detach()
            loss = loss + structure
        if cfg.colour_weight > 0:
            dirs = unit_directions(32, seed=self.step, device=self.device)
            colour = cfg.colour_weight * sliced_wasserstein(out, style, dirs, cfg.colour_pixels, self.step,
                                                            painted).mean()
            parts["colour"] = colour.detach()
            loss = loss + colour
        if cfg.tone_weight > 0:
            tone = cfg.tone_weight * tone_loss(out, style, cfg.colour_pixels, self.step, painted).mean()
            parts["tone"] = tone.detach()
            loss = loss + tone
        if cfg.luma_weight > 0:
            if photo is None:
                raise ValueError("the luma term needs the photos' pixels")
            lum = cfg.luma_weight * luma_loss(out, photo, cfg.luma_radius)
            parts["luma"] = lum.detach()
            loss = loss + lum
        if cfg.grid_weight > 0:
            grid = cfg.grid_weight * grid_loss(out)
            parts["grid"] = grid.detach()
            loss = loss + grid
        if cfg.gram_weight > 0:
            if not style_grams:
                raise ValueError("the Gram term needs the paintings' Gram matrices")
            gram = cfg.gram_weight * gram_loss(out_feats, style_grams)
            parts["gram"] = gram.detach()
            loss = loss + gram
        return loss, parts

    # ------------------------------------------------------------------ bookkeeping
    def state(self) -> dict[str, Any]:
        rngs: list[dict[str, Any]] = [rng_state()]
        if self.world > 1:
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return {
            "decoder": self.decoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "step": self.step,
            "rng": rngs,
            "config": self.cfg.to_dict(),
            "wall_time": self.wall_time,
            "hardware": self.hardware,
            "images": self.images,
            "manifest_sha256": self.manifest,
            "world_size": self.world,
            "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype],
        }

    def save(self, keep: bool = False) -> Path | None:
        state = self.state()  # collective under DDP: every rank takes part
        if not self.is_main:
            return None
        path = save_checkpoint(self.out_dir / "checkpoint.pt", state)
        if keep:
            save_checkpoint(self.out_dir / f"checkpoint_{self.step:07d}.pt", state)
        return path

    def _fixed_samples(self, n: int = 4) -> tuple[Tensor, Tensor]:
        from .data import to_tensor

        k = self.cfg.crop
        cs, ss = [], []
        for i in range(n):
            for src, acc in ((self.content, cs), (self.style, ss)):
                a = src.get((i * 7919) % len(src))
                y, x = (a.shape[0] - k) // 2, (a.shape[1] - k) // 2
                acc.append(to_tensor(a[y:y + k, x:x + k, :3]))
        return torch.stack(cs), torch.stack(ss)

    @torch.no_grad()
    def write_samples(self) -> Path:
        content, style = self._fixed_samples()
        content, style = content.to(self.device), style.to(self.device)
        self.decoder.eval()
        with self._autocast():
            taps = self.decoder.taps
            fc, fs = self.encoder(content, taps), self.encoder(style, taps)
            targets = {t: adain(fc[t].float(), *calc_mean_std(fs[t].float())) for t in taps}
            out = self._decode(targets, self.decoder).float()
            out = (palette_recolour(out, style, tone=self.cfg.palette_tone) if self.cfg.palette else out).clamp(0, 1)
        self.decoder.train()
        rows = [torch.stack([c, s, o]) for c, s, o in zip(content.cpu(), style.cpu(), out.cpu())]
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        save_grid(rows, path)
        plot_loss_curve(self.out_dir / "log.jsonl", self.out_dir / "loss_curve.png")
        return path

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Train until ``config.steps`` (or ``max_minutes``, or SIGTERM/SIGINT), checkpointing on the way out."""
        cfg = self.cfg
        sampler = PairSampler(len(self.content), len(self.style), cfg.batch_size, cfg.seed, self.step,
                              self.rank, self.world)
        if self.features is not None:
            features = self.features
            loader: Iterator[Any] = (features.batch(keys) for keys in sampler)
        else:
            loader = iter(make_loader(self.dataset, sampler, cfg.num_workers))
        stop = {"flag": False}

        def _stop(signum: int, _frame: Any) -> None:
            log.warning("signal %d: stopping after this step", signum)
            stop["flag"] = True

        old_handlers = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not in the main thread
                old_handlers[sig] = signal.signal(sig, _stop)
        hw = hardware_name(self.device)
        log_file = open(self.out_dir / "log.jsonl", "a") if self.is_main else None
        bar = None
        if self.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True,
                       mininterval=1.0 if sys.stderr.isatty() else 60.0, file=sys.stderr)
        start = time.monotonic()
        deadline = start + cfg.max_minutes * 60 if cfg.max_minutes > 0 else math.inf
        last_t, last_step, acc = start, self.step, {}
        start_step = self.step
        try:
            while self.step < cfg.steps:
                t0 = time.monotonic()
                if self.features is not None:
                    feats, photos, style, stats = next(loader)
                    parts = self.train_step(photos if cfg.luma_weight > 0 else None, style, encoded=(feats, stats))
                else:
                    content, style = next(loader)
                    parts = self.train_step(content, style)
                now = time.monotonic()
                self.wall_time += now - t0
                self.hardware[hw] = self.hardware.get(hw, 0) + 1
                for k, v in parts.items():
                    acc[k] = acc.get(k, 0.0) + v
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{parts['loss']:.3g}", refresh=False)
                if self.step % cfg.log_every == 0 and log_file is not None:
                    n = self.step - last_step
                    rec = {"step": self.step, **{k: v / n for k, v in acc.items()}, "lr": self.lr_at(self.step - 1),
                           "sec_per_step": (now - last_t) / n, "wall_time": self.wall_time}
                    log_file.write(json.dumps(rec) + "\n")
                    log_file.flush()
                    last_t, last_step, acc = now, self.step, {}
                flag = torch.tensor(float(stop["flag"] or now > deadline))
                if self.world > 1:
                    dist.all_reduce(flag)  # every rank stops at the same step
                keep = bool(cfg.keep_every) and self.step % cfg.keep_every == 0
                if (keep or (cfg.ckpt_every and self.step % cfg.ckpt_every == 0)) and not flag:
                    self.save(keep=keep)
                if self.is_main and cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.write_samples()
                if flag:
                    break
        finally:
            if bar is not None:
                bar.close()
            if log_file is not None:
                log_file.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        self.save(keep=bool(cfg.keep_every) and self.step % cfg.keep_every == 0)
        if self.is_main:
            with contextlib.suppress(Exception):
                plot_loss_curve(self.out_dir / "log.jsonl", self.out_dir / "loss_curve.png")
        done = self.step - start_step
        elapsed = time.monotonic() - start
        return {"step": self.step, "steps_this_run": done, "seconds": elapsed,
                "sec_per_step": elapsed / max(done, 1), "checkpoint": str(self.out_dir / "checkpoint.pt")}

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
