"""Checkpoints: decoder, optimiser, step, RNG states and run bookkeeping in one ``torch.save`` file, written
atomically; loading also accepts bare decoder state dicts, ``{"decoder", "opt", "step"}`` files and model files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adain_core.errors import ModelError

__all__ = ["CHECKPOINT_FORMAT", "rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint",
           "load_decoder_state"]

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


def load_decoder_state(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Decoder weights from a checkpoint, a bare state dict (``.pt``/``.pth``) or a model ``.safetensors`` file.

    Returns:
        ``(state_dict, info)``; ``info`` holds ``step`` and the model metadata when known.

    Raises:
        ModelError: unreadable or no decoder weights.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from adain_core.store import read_model

        model = read_model(path)
        return {k: v.float() for k, v in model.decoder.items()}, {"step": model.metadata.get("steps", 0),
                                                                   "metadata": model.metadata}
    if not path.is_file():
        raise ModelError(f"{path}: decoder weights not found")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and "decoder" in data:
        return data["decoder"], {"step": data.get("step", 0)}
    if isinstance(data, dict) and all(isinstance(v, Tensor) for v in data.values()):
        return data, {"step": 0}
    raise ModelError(f"{path}: no decoder weights found")
