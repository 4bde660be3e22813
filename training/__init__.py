"""Training package: train, evaluate and export AdaIN decoders for the ``adain_core`` engine.

Entry point: the ``adain-train`` command (:func:`training.cli.main`); the pieces are importable on their own.
"""

from __future__ import annotations

from .config import LAMBDA_PRESETS, LAYER_WEIGHT_PRESETS, TrainConfig
from .losses import AdaINLoss, LossWeights

__all__ = ["TrainConfig", "LAMBDA_PRESETS", "LAYER_WEIGHT_PRESETS", "AdaINLoss", "LossWeights"]
