"""Checkpoints: decoder, optimiser, step, RNG states and run bookkeeping in one ``torch.save`` file, written
atomically; loading also accepts bare decoder state dicts, ``{"decoder", "opt", "step"}`` files and model files;
the mean of several checkpoints' decoders (a weight average) is a checkpoint too."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adain_core.errors import ModelError

__all__ = ["CHECKPOINT_FORMAT", "rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint",
           "load_decoder_state", "average_checkpoints"]

CHECKPOINT_FORMAT = "adain-train-ckpt/1"


def rng_state() -> dict[str, Any]:
    """Torch CPU (and CUDA, when used) RNG states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (``weights_only``). Older or foreign ``{"decoder", "opt", "step"}`` files are
    normalised to this format with ``optimizer`` taken from ``opt`` and no RNG state.

    Raises:
        ModelError: missing file or no decoder in it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "decoder" not in data:
        raise ModelError(f"{path}: not a training checkpoint (no 'decoder' entry)")
    if "optimizer" not in data and "opt" in data:
        data["optimizer"] = data.pop("opt")
    data.setdefault("step", 0)
    return data


def _upsample(state: dict[str, Any]) -> str:
    """A checkpoint's decoder upsampling, from its config (``nearest`` when not recorded)."""
    return (state.get("config") or {}).get("decoder_upsample", "nearest")


def load_decoder_state(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Decoder weights from a checkpoint, a bare state dict (``.pt``/``.pth``) or a model ``.safetensors`` file.

    Returns:
        ``(state_dict, info)``; ``info`` holds ``step``, ``decoder_upsample`` (the decoder's upsampling, which the
        weights do not show: from the metadata or the checkpoint's config; ``nearest`` for a bare state dict) and
        the model metadata when known.

    Raises:
        ModelError: unreadable or no decoder weights.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from adain_core.store import read_model

        model = read_model(path)
        return {k: v.float() for k, v in model.decoder.items()}, {
            "step": model.metadata.get("steps", 0), "metadata": model.metadata,
            "decoder_upsample": model.metadata.get("decoder_upsample", "nearest")}
    if not path.is_file():
        raise ModelError(f"{path}: decoder weights not found")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and "decoder" in data:
        return data["decoder"], {"step": data.get("step", 0),
                                 "decoder_upsample": _upsample(data)}
    if isinstance(data, dict) and all(isinstance(v, Tensor) for v in data.values()):
        return data, {"step": 0, "decoder_upsample": "nearest"}
    raise ModelError(f"{path}: no decoder weights found")


def average_checkpoints(paths: Sequence[Path]) -> dict[str, Any]:
    """The uniform mean of several checkpoints' decoder weights, as a checkpoint to evaluate, export or start from.

    Meant for the kept checkpoints of one run (``--keep-every``): at a learning rate that barely changes between
    them the weights jitter from one to the next, and their mean (a stochastic weight average) smooths that out.
    The result is the newest checkpoint's (highest step) bookkeeping with the mean decoder (computed in float64,
    stored in the decoder's dtype), ``averaged_steps`` (each file's step, in the order given) and no optimiser, scaler
    or RNG state: resume a run from its last raw checkpoint, not from an average.

    Raises:
        ModelError: fewer than two files, a file missing or not a checkpoint, or a decoder whose tensor names,
            shapes or upsampling (``decoder_upsample``, which the weights do not show) differ from the first file's.
    """
    if len(paths) < 2:
        raise ModelError(f"averaging needs at least two checkpoints, got {len(paths)}")
    states = [load_checkpoint(Path(p)) for p in paths]
    first = states[0]["decoder"]
    for path, state in zip(paths[1:], states[1:]):
        dec = state["decoder"]
        if dec.keys() != first.keys() or any(dec[k].shape != first[k].shape for k in first):
            raise ModelError(f"{path}: its decoder does not match {paths[0]}'s (other tensor names or shapes)")
        if _upsample(state) != _upsample(states[0]):
            raise ModelError(f"{path}: its decoder upsamples {_upsample(state)}, {paths[0]}'s "
                             f"{_upsample(states[0])}; average checkpoints of one decoder only")
    newest = max(states, key=lambda st: int(st["step"]))
    averaged = {k: (sum(st["decoder"][k].double() for st in states) / len(states)).to(v.dtype)
                for k, v in first.items()}
    drop = {"format", "decoder", "optimizer", "scaler", "rng"}
    return {**{k: v for k, v in newest.items() if k not in drop}, "decoder": averaged,
            "averaged_steps": [int(st["step"]) for st in states]}
