"""Export a training checkpoint to the engine's model format (fp16 safetensors + metadata describing the run)."""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path
from typing import Any

import torch

from adain_core.errors import ModelError
from adain_core.store import ENCODERS, HED_ENCODER_ID, ModelFile, save_model

from .checkpoint import load_checkpoint
from .compare import read_result
from .config import TrainConfig

__all__ = ["export_checkpoint", "export_state", "run_export", "training_metadata"]

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def training_metadata(state: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a checkpoint's run: λ, layer weights, steps, batch, data, hardware, wall time."""
    cfg = TrainConfig.from_dict(state.get("config") or {})
    has_config = bool(state.get("config"))
    layers, content_weight = cfg.loss_weights()
    meta: dict[str, Any] = {
        "steps": int(state.get("step", 0)),
        "trainer": "adain-style-transfer training/ (adain-train)",
        "exported": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if has_config:
        meta.update({
            "style_weight": cfg.style_weight,
            "layer_weights_preset": cfg.layer_weights,
            "layer_weights": layers,
            "content_weight": content_weight,
            "batch_size": cfg.batch_size * int(state.get("world_size", 1)),
            "crop": cfg.crop,
            "resize": cfg.resize,
            "lr": cfg.lr,
            "lr_decay": cfg.lr_decay,
            "warmup_steps": cfg.warmup_steps,
            "decoder_width": cfg.decoder_width,
            "decoder_skip": cfg.decoder_skip,
            "decoder_upsample": cfg.decoder_upsample,
            "channels_last": cfg.channels_last,
            "identity_pixel": cfg.identity_pixel,
            "identity_feature": cfg.identity_feature,
            "identity_fraction": cfg.identity_fraction,
            "structure_weight": cfg.structure_weight,
            "structure_taps": list(cfg.structure_taps),
            "colour_weight": cfg.colour_weight,
            "colour_pixels": cfg.colour_pixels,
            "tone_weight": cfg.tone_weight,
            "luma_weight": cfg.luma_weight,
            "luma_radius": cfg.luma_radius,
            "grid_weight": cfg.grid_weight,
            "gram_weight": cfg.gram_weight,
            "gram_taps": list(cfg.gram_taps),
            "palette": cfg.palette,
            "palette_tone": cfg.palette_tone,
            "backdrop": cfg.backdrop,
            "precision": state.get("precision", cfg.precision),
            "data_dirs": {"content": [Path(d).name for d in cfg.content_dirs],
                          "style": [Path(d).name for d in cfg.style_dirs]},
        })
    if "images" in state:
        meta["images"] = state["images"]
    if "manifest_sha256" in state:
        meta["data_manifest_sha256"] = state["manifest_sha256"]
    if "hardware" in state:
        meta["hardware_steps"] = state["hardware"]
    if "averaged_steps" in state:
        meta["averaged_steps"] = list(state["averaged_steps"])
    if "wall_time" in state:
        meta["wall_time_hours"] = round(float(state["wall_time"]) / 3600, 3)
    return meta


def export_checkpoint(checkpoint: Path, out: Path, *, eval_means: dict[str, Any] | None = None,
                      dtype: torch.dtype = torch.float16, name: str = "", embed_encoder: bool = False,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write ``checkpoint``'s decoder as an engine model file at ``out`` (see :func:`export_state`).

    ``checkpoint`` may also be a model ``.safetensors`` file (e.g. the CPU run's resume file): its weights and run
    metadata are kept, and ``name``, ``eval_means`` and ``extra`` replace theirs, so the file a run left behind can be
    shipped as it is.

    Raises:
        ModelError: an unreadable checkpoint or model file.
    """
    if Path(checkpoint).suffix == ".safetensors":
        return _retag_model(Path(checkpoint), out, eval_means=eval_means, dtype=dtype, name=name,
                            embed_encoder=embed_encoder, extra=extra)
    return export_state(load_checkpoint(Path(checkpoint)), out, eval_means=eval_means, dtype=dtype, name=name,
                        embed_encoder=embed_encoder, extra=extra)


def _retag_model(source: Path, out: Path, *, eval_means: dict[str, Any] | None, dtype: torch.dtype, name: str,
                 embed_encoder: bool, extra: dict[str, Any] | None) -> Path:
    """A model file written again with new ``name`` / ``eval`` / ``extra`` metadata and the same weights."""
    from adain_core.store import load_encoder, read_model

    model = read_model(source)
    meta = {k: v for k, v in model.metadata.items() if k != "eval"}
    meta["exported"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if name:
        meta["name"] = name
    if eval_means:
        meta["eval"] = eval_means
    meta.update(extra or {})
    encoder = model.encoder
    if encoder is None and embed_encoder:
        encoder = load_encoder(model.encoder_id).state_dict()
    return save_model(Path(out), ModelFile(model.encoder_id, model.arch, model.decoder, encoder, meta), dtype)


def export_state(state: dict[str, Any], out: Path, *, eval_means: dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float16, name: str = "", embed_encoder: bool = False,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write a training state (a checkpoint's contents, or ``Trainer.state()``) as an engine model file at ``out``.

    A run trained with the seeded random test encoder is exported with that encoder embedded (and marked
    ``random_encoder``) so that the file loads anywhere; real runs reference the encoder by id unless
    ``embed_encoder``.
    """
    cfg = TrainConfig.from_dict(state.get("config") or {})
    meta = training_metadata(state)
    if name:
        meta["name"] = name
    if eval_means:
        meta["eval"] = eval_means
    if extra:
        meta.update(extra)
    encoder_state = None
    encoder_id = cfg.encoder_id
    if encoder_id not in ENCODERS:
        from .loop import make_encoder

        encoder_state = make_encoder(encoder_id).state_dict()
        meta["random_encoder"] = encoder_id
        encoder_id = HED_ENCODER_ID
    elif embed_encoder:
        from adain_core.store import load_encoder

        encoder_state = load_encoder(encoder_id).state_dict()
    meta["encoder_id"] = encoder_id
    model = ModelFile(encoder_id, ENCODERS[encoder_id], dict(state["decoder"]), encoder_state, meta)
    return save_model(Path(out), model, dtype)


def run_export(args: argparse.Namespace) -> int:
    """``adain-train export``."""
    eval_means = None
    if args.eval_json:
        try:
            result = read_result(args.eval_json, args.eval_name)
        except ValueError as exc:
            print(f"adain-train export: {exc}", file=sys.stderr)
            return 2
        eval_means = dict(result["means"])
        eval_means.update({k: v for k, v in result["settings"].items() if k in ("size", "style_size")})
        eval_means["pairs"] = len(result["pairs"])
    try:
        path = export_checkpoint(Path(args.checkpoint), Path(args.out), eval_means=eval_means,
                                 dtype=_DTYPES[args.dtype], name=args.name, embed_encoder=args.embed_encoder)
    except ModelError as exc:
        print(f"adain-train export: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
