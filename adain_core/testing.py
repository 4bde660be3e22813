"""Helpers for tests and adapters' test suites: complete model files with seeded random weights (no network)."""

from __future__ import annotations

from pathlib import Path

import torch

from .networks import build_decoder, build_encoder
from .store import ENCODERS, HED_ENCODER_ID, ModelFile, save_model

__all__ = ["make_random_model"]


def make_random_model(path: str | Path, seed: int = 0, encoder_id: str = HED_ENCODER_ID, skip: bool = False) -> Path:
    """Write a model .safetensors holding a seeded random encoder *and* decoder (about 26 MB, fp32 encoder,
    fp16 decoder) that :func:`adain_core.load` loads without the network. The encoder id is kept, so cards made
    with it are interchangeable with other random models of the same id (not with real ones in meaning).
    ``skip``: a skip decoder (:class:`adain_core.networks.Decoder`), its skip convolution random too."""
    gen = torch.Generator().manual_seed(seed)
    arch = ENCODERS[encoder_id]
    encoder, decoder = build_encoder(arch), build_decoder(arch, skip=skip)
    for module in (encoder, decoder):
        for p in module.parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.data = torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            else:
                p.data = torch.randn(p.shape, generator=gen) * 0.01
    model = ModelFile(encoder_id, arch, decoder.state_dict(), encoder.state_dict(),
                      {"name": f"random-{seed}{'-skip' if skip else ''}", "random": True, "seed": seed})
    return save_model(Path(path), model)
