"""Shared, generic fixtures for the whole test suite: a seeded random-weight model (no network), synthetic images,
and the evaluation images from ``../shared/data`` (synthetic stand-ins when that folder is absent).

Adapters' test folders keep their own ``conftest.py``; only cheap, host-independent helpers live here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import os

import pytest
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def synthetic_image(height: int, width: int, seed: int = 0) -> Image.Image:
    """A deterministic RGB test picture: smooth colour gradients with a few flat shapes and a little texture.

    Non-random structure on purpose: seams, colour shifts and flicker are visible on it, unlike on noise.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    phase = rng.uniform(0, 2 * math.pi, size=3)
    rgb = np.stack([
        0.5 + 0.4 * np.sin(2 * math.pi * (0.7 * x + 0.3 * y) + phase[0]),
        0.5 + 0.4 * np.cos(2 * math.pi * (0.4 * x - 0.8 * y) + phase[1]),
        0.3 + 0.5 * x * y + 0.1 * np.sin(6 * math.pi * x + phase[2]),
    ], axis=2)
    rgb = rgb + rng.normal(0, 0.02, size=rgb.shape).astype(np.float32)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = max(1.0, rng.uniform(0.1, 0.3) * min(height, width))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            draw.rectangle([cx - r, cy - r / 2, cx + r, cy + r / 2], fill=colour)
    return img


@pytest.fixture(scope="session")
def make_image() -> Callable[..., Image.Image]:
    """Factory: ``make_image(height, width, seed=0) -> PIL RGB`` (see :func:`synthetic_image`)."""
    return synthetic_image


def calibrated_random_model(path: Path, seed: int = 0, skip: bool = False) -> Path:
    """:func:`adain_core.testing.make_random_model`, then the decoder's last conv rescaled per channel so that a
    stylised synthetic picture comes out around 0.5 ± 0.2 instead of ±100 (which the final clamp turns into a
    black-and-white image that hides every numerical difference)."""
    import torch

    import adain_core
    from adain_core.adain import adain
    from adain_core.images import pil_to_tensor
    from adain_core.store import read_model, save_model
    from adain_core.testing import make_random_model

    make_random_model(path, seed=seed, skip=skip)
    engine = adain_core.load(path, device="cpu", precision="fp32")
    content, _ = pil_to_tensor(synthetic_image(96, 96, seed=11))
    card = engine.encode_style(synthetic_image(64, 64, seed=12), size=64)
    style = {"relu4_1": (card.mean, card.std), **card.taps}
    targets = {t: adain(f, *style[t]) for t, f in engine.features(content, engine.taps).items()}
    raw = engine.decode(targets["relu4_1"], targets.get("relu3_1"))
    mean, std = raw.mean(dim=(0, 2, 3)), raw.std(dim=(0, 2, 3))
    model = read_model(path)
    last = max(int(k.split(".")[0]) for k in model.decoder if k[0].isdigit())
    scale = 0.2 / std
    model.decoder[f"{last}.weight"] = model.decoder[f"{last}.weight"].float() * scale[:, None, None, None]
    model.decoder[f"{last}.bias"] = (model.decoder[f"{last}.bias"].float() - mean) * scale + 0.5
    model.metadata["calibrated"] = True
    # fp32 decoder: the calibrated last layer must not be rounded to fp16 (tight tolerances below rely on it).
    return save_model(path, model, dtype=torch.float32)


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete model file (encoder + decoder) with seeded random weights and a sane output range (see
    :func:`calibrated_random_model`), made once per session; no network."""
    return calibrated_random_model(tmp_path_factory.mktemp("random-model") / "random.safetensors", seed=0)


@pytest.fixture(scope="session")
def random_skip_engine(tmp_path_factory: pytest.TempPathFactory):
    """A random skip decoder (it also reads relu3_1; its skip convolution random, not zero) on the CPU in fp32."""
    import adain_core

    path = calibrated_random_model(tmp_path_factory.mktemp("random-skip") / "random-skip.safetensors", 0, skip=True)
    return adain_core.load(path, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def random_engine(random_model_path: Path):
    """The random model on the CPU in fp32 (deterministic enough for tight tolerances)."""
    import adain_core

    return adain_core.load(random_model_path, device="cpu", precision="fp32")


def _eval_paths(kind: str, tmp_path_factory: pytest.TempPathFactory, seed: int) -> list[Path]:
    folder = SHARED_DATA / "eval" / kind
    found = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if found:
        return found
    out = tmp_path_factory.mktemp(f"synthetic-{kind}")
    paths = []
    for i in range(4):
        p = out / f"synthetic_{kind}_{i}.png"
        synthetic_image(96, 128, seed=seed + i).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def eval_content_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Evaluation photos (``../shared/data/eval/content``), or synthetic pictures when the data is absent."""
    return _eval_paths("content", tmp_path_factory, seed=100)


@pytest.fixture(scope="session")
def eval_style_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Evaluation paintings (``../shared/data/eval/style``), or synthetic pictures when the data is absent."""
    return _eval_paths("style", tmp_path_factory, seed=200)


@pytest.fixture(scope="session")
def missing_host():
    """``missing_host(reason)`` for a host application that is not set up: skip with the reason, or fail when
    ``ADAIN_REQUIRE_HOSTS`` is set (CI), so that a broken host set-up can never pass as skipped tests."""

    def handle(reason: str) -> None:
        print(reason)
        if os.environ.get("ADAIN_REQUIRE_HOSTS"):
            pytest.fail(f"ADAIN_REQUIRE_HOSTS is set but {reason}")
        pytest.skip(reason)

    return handle


@pytest.fixture(autouse=True)
def _seeded_rng() -> None:
    """Every test starts from the same torch/numpy random state: random inputs make no test flaky."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
