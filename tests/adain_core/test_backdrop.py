"""A style image's flat backdrop: found on cut-outs, not on paintings, and left out of the card's statistics and
palette unless the caller keeps it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adain_core import StyleCard, ValueRangeError, mix
from adain_core.backdrop import flat_backdrop, painted_weights
from adain_core.cards import CARD_SUFFIX

GREEN = (0.2, 0.6, 0.3)


def cut_out(backdrop: float = 1.0, size: int = 64) -> torch.Tensor:
    """(1, 3, size, size): a textured green disc on a flat backdrop of grey level ``backdrop``."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    figure = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    x = torch.full((1, 3, size, size), backdrop)
    texture = torch.tensor(GREEN)[:, None, None] + 0.1 * torch.rand(3, size, size, generator=g)
    return torch.where(figure, texture, x).clamp(0, 1)


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


@pytest.mark.parametrize("level", [1.0, 0.0, 0.45])
def test_flat_backdrop_is_the_surround(level: float) -> None:
    x = cut_out(level)
    found = flat_backdrop(x)
    figure = (x - level).abs().amax(dim=1, keepdim=True) > 0.05
    assert found.shape == (1, 1, 64, 64)
    assert bool((found[figure] == 0).all())
    assert bool((found[~figure] == 1).all())


def test_no_backdrop_on_paintings_or_paper(make_image) -> None:
    painting = torch.from_numpy(np.array(make_image(64, 64, seed=3))).permute(2, 0, 1)[None].float() / 255
    paper = cut_out(0.85) + 0.08 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    half = cut_out(1.0)  # flat white on less than half of the border
    half[..., :, :40] = torch.rand(1, 3, 64, 40, generator=torch.Generator().manual_seed(2))
    for image in (painting, paper.clamp(0, 1), half, torch.ones(1, 3, 32, 32)):
        assert float(flat_backdrop(image).sum()) == 0
        assert painted_weights(image) is None


def test_painted_weights_use_alpha() -> None:
    x = cut_out(1.0)
    alpha = torch.ones(1, 1, 64, 64)
    alpha[..., :10] = 0
    weights = painted_weights(x, alpha)
    assert float(weights[..., :10].max()) == 0 and float(weights[..., 32, 32]) == 1
    assert painted_weights(torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)) is None


def test_card_of_a_cut_out_has_the_figures_colours(random_engine, tmp_path: Path) -> None:
    style = tmp_path / "cut_out.png"
    to_pil(cut_out(1.0)).save(style)
    ignored = random_engine.encode_style(style, size=64)
    kept = random_engine.encode_style(style, size=64, backdrop="keep")
    assert kept.painted == [None]
    assert ignored.painted[0].dtype == torch.uint8 and ignored.painted[0].shape == (64, 64)
    mean_ignored, _ = ignored.palette()
    mean_kept, _ = kept.palette()
    figure = torch.tensor(GREEN, dtype=torch.float64) + 0.05
    assert float((mean_ignored - figure).abs().max()) < 0.03
    assert float(mean_kept.min()) > 0.5  # the white surround dominates
    assert not torch.equal(ignored.mean, kept.mean)
    # the same statistics as the figure given as a transparent PNG over black
    rgba = np.concatenate([np.asarray(to_pil(cut_out(0.0))), (ignored.painted[0].numpy()[..., None])], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    transparent = random_engine.encode_style(tmp_path / "transparent.png", size=64)
    torch.testing.assert_close(transparent.palette()[0], mean_ignored, atol=1e-3, rtol=0)
    with pytest.raises(ValueRangeError, match="backdrop must be one of ignore, keep, got 'drop'"):
        random_engine.encode_style(style, backdrop="drop")


def test_painted_maps_survive_save_load_and_mix(random_engine, card_a, tmp_path: Path) -> None:
    card = random_engine.encode_style(to_pil(cut_out(1.0)), size=64, name="cut")
    back = StyleCard.load(card.save(tmp_path / f"cut{CARD_SUFFIX}"), encoder_id=card.encoder_id)
    assert torch.equal(back.painted[0], card.painted[0])
    torch.testing.assert_close(back.palette()[0], card.palette()[0])
    mixed = mix([card, card_a])
    assert len(mixed.painted) == 2 and mixed.painted[1] is None and torch.equal(mixed.painted[0], card.painted[0])
    assert StyleCard.load(mixed.save(tmp_path / f"mix{CARD_SUFFIX}")).painted[1] is None
    with pytest.raises(Exception, match=r"painted.0 must be uint8 \(64, 64\)"):
        dataclasses.replace(card, painted=[card.painted[0][:8]]).check()


def test_preserve_mode_reads_the_painted_map(random_engine, tmp_path: Path) -> None:
    """The preserve mode re-encodes the recoloured style with the same pixels left out as the card."""
    card = random_engine.encode_style(to_pil(cut_out(1.0)), size=64)
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    whole = dataclasses.replace(card, painted=[None])
    assert not torch.equal(random_engine.stylize(content, card, color="preserve"),
                           random_engine.stylize(content, whole, color="preserve"))
