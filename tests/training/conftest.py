"""Fixtures for the training tests: tiny synthetic image folders (≤ 64 px) and a tiny training configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.config import TrainConfig


def _pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour pattern (sums of sinusoids) plus a little noise, uint8 (h, w, 3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 6.3)
            img[..., c] += np.sin(fx * x + fy * y + ph)
    img = (img - img.min()) / (np.ptp(img) + 1e-6)
    img += rng.normal(0, 0.05, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _portrait(rng: np.random.Generator, size: int = 96, figure: int = 40) -> np.ndarray:
    """A painted square of ``figure`` px (random colours) centred on a flat white backdrop, (size, size, 3) uint8."""
    img = np.full((size, size, 3), 255, np.uint8)
    lo = (size - figure) // 2
    img[lo:lo + figure, lo:lo + figure] = rng.integers(20, 180, (figure, figure, 3), dtype=np.uint8)
    return img


@pytest.fixture(scope="session")
def portrait() -> Callable[..., np.ndarray]:
    """``portrait(rng, size=96, figure=40)``: a painted square of ``figure`` px centred on a flat white backdrop,
    (size, size, 3) uint8."""
    return _portrait


@pytest.fixture(scope="session")
def image_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """content/ (6 images, one in a subfolder, + a corrupt file) and style/ (5 images + a tiny one)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    content, style = root / "content", root / "style"
    (content / "nested").mkdir(parents=True)
    style.mkdir()
    for i in range(6):
        folder = content / "nested" if i == 0 else content
        Image.fromarray(_pattern(rng, 56, 64)).save(folder / f"c{i}.png")
    for i in range(5):
        Image.fromarray(_pattern(rng, 48, 48)).save(style / f"s{i}.jpg", quality=95)
    (content / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    Image.new("RGB", (8, 8)).save(style / "tiny.png")
    (style / "notes.txt").write_text("not an image")
    return content, style


@pytest.fixture()
def tiny_config(image_dirs: tuple[Path, Path], tmp_path: Path) -> TrainConfig:
    content, style = image_dirs
    return TrainConfig(
        content_dirs=[str(content)], style_dirs=[str(style)], out_dir=str(tmp_path / "run"),
        encoder_id="random-vgg16", resize=48, crop=32, min_side=32, steps=6, batch_size=2, lr=1e-3,
        layer_weights="paper", style_weight=1.0, precision="fp32", threads=1, log_every=2, ckpt_every=3,
        keep_every=0, sample_every=0, progress=False,
    )


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)
