"""The ``marks`` option: the painting's most typical blocks of normalised features, laid on a grid in image
coordinates and added where the photo is flat. The functions' claims, then the engine's: off changes nothing, on
changes the picture, and tiles, masks and frames agree with the one-pass image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adain_core import CardError, StylizeOptions, ValueRangeError
from adain_core.images import pil_to_tensor
from adain_core.marks import BLOCK, FLAT_LEVEL, flatness, mark_fields, quilt, typical_blocks
from adain_core.vocabulary import DEFAULT_MARKS


def _painting_features(h: int = 12, w: int = 16) -> dict[str, torch.Tensor]:
    """Normalised features of a made-up painting: unit noise, one 4 × 4 block of huge values (a figure) at the
    top left, with the relu3_1 map the same values at twice the resolution (so blocks can be matched across taps)."""
    g = torch.Generator().manual_seed(0)
    z4 = torch.randn(1, 8, h, w, generator=g)
    z4[..., :BLOCK, :BLOCK] += 6
    return {"relu4_1": z4, "relu3_1": z4.repeat_interleave(2, -2).repeat_interleave(2, -1)}


def test_typical_blocks_leave_out_figures_and_backdrops() -> None:
    z = _painting_features()
    bank = typical_blocks(z)
    n = bank["relu4_1"].shape[0]
    assert bank["relu4_1"].shape[1:] == (8, BLOCK, BLOCK) and bank["relu3_1"].shape == (n, 8, 2 * BLOCK, 2 * BLOCK)
    assert n == int(0.25 * 9 * 13)  # a quarter of the 9 × 13 block positions
    # the same places of the painting at both taps
    assert torch.equal(bank["relu3_1"], bank["relu4_1"].repeat_interleave(2, -2).repeat_interleave(2, -1))
    # no block touches the figure: its values are far from the whole's statistics
    assert float(bank["relu4_1"].max()) < 5
    # a backdrop on the right half (painted 0) is never sampled
    painted = torch.ones(1, 1, 96, 128)
    painted[..., 64:] = 0
    left = typical_blocks(z, painted)["relu4_1"]
    blocks = z["relu4_1"].unfold(-2, BLOCK, 1).unfold(-2, BLOCK, 1)[0].permute(1, 2, 0, 3, 4)  # (y, x, C, b, b)
    allowed = blocks[:, :8 - BLOCK + 1].reshape(-1, 8, BLOCK, BLOCK)
    assert all(any(torch.equal(b, a) for a in allowed) for b in left)
    with pytest.raises(ValueError, match="smaller than one 32 px block"):
        typical_blocks({"relu4_1": torch.zeros(1, 8, 3, 9)})


def test_a_window_of_the_quilt_is_the_same_window_of_the_whole() -> None:
    blocks = torch.randn(5, 3, 4, 4)
    whole = quilt(blocks, 0, 0, 40, 52)
    assert whole.shape == (1, 3, 40, 52)
    for y0, x0, h, w in ((0, 0, 9, 9), (6, 13, 20, 11), (17, 29, 23, 23)):
        assert torch.equal(quilt(blocks, y0, x0, h, w), whole[..., y0:y0 + h, x0:x0 + w])
    # every grid square is one of the blocks, and not all squares the same block
    squares = whole.unfold(-2, 4, 4).unfold(-2, 4, 4)[0].permute(1, 2, 0, 3, 4).reshape(-1, 3, 4, 4)
    used = {next(i for i, b in enumerate(blocks) if torch.equal(b, s)) for s in squares}
    assert len(used) > 1


def test_flatness_is_one_where_the_photo_is_flat_and_zero_where_textured() -> None:
    z = torch.zeros(1, 16, 10, 20)
    z[..., 10:] = 2 * FLAT_LEVEL
    flat = flatness(z)
    assert flat.shape == (1, 1, 10, 20)
    assert torch.equal(flat[..., :8], torch.ones(1, 1, 10, 8)) and torch.equal(flat[..., 12:], torch.zeros(1, 1, 10, 8))


def test_mark_fields_follow_the_flatness_and_the_strength() -> None:
    bank = typical_blocks(_painting_features())
    feats = {"relu4_1": torch.zeros(1, 8, 8, 12), "relu3_1": torch.zeros(1, 8, 16, 24)}
    stats = {t: [(torch.zeros(1, 8, 1, 1), torch.ones(1, 8, 1, 1))] for t in feats}
    one = mark_fields(feats, stats, [bank], 1.0)
    assert torch.equal(one["relu4_1"][0], quilt(bank["relu4_1"], 0, 0, 8, 12))  # a flat photo takes whole blocks
    assert torch.allclose(mark_fields(feats, stats, [bank], 0.5)["relu3_1"][0], 0.5 * one["relu3_1"][0])
    assert mark_fields(feats, stats, [None], 1.0) == {"relu4_1": [None], "relu3_1": [None]}
    textured = {t: torch.full_like(f, 3.0) for t, f in feats.items()}
    assert float(mark_fields(textured, stats, [bank], 1.0)["relu4_1"][0].abs().max()) == 0


def test_marks_are_validated() -> None:
    assert StylizeOptions().marks == DEFAULT_MARKS == 0.5 and StylizeOptions(marks="1.5").marks == 1.5
    for bad in (-0.1, 2.5, float("nan"), True, "much"):
        with pytest.raises(ValueRangeError, match="marks must be a number from 0 to 2"):
            StylizeOptions(marks=bad)


def test_marks_change_the_picture_and_agree_across_tiles_masks_and_frames(random_skip_engine, make_image) -> None:
    """The default is 0.5; on changes the picture; tiled == one pass with two soft-masked regions; chained frames
    equal ``stylize_frames``."""
    engine = random_skip_engine
    card_a = engine.encode_style(make_image(64, 80, seed=7), size=64, name="a")
    card_b = engine.encode_style(make_image(72, 64, seed=8), size=64, name="b")
    x, _ = pil_to_tensor(make_image(200, 232, seed=1))
    assert torch.equal(engine.stylize(x, card_a, marks=DEFAULT_MARKS), engine.stylize(x, card_a))
    on = engine.stylize(x, card_a, marks=1.0, color="style")
    assert float((on - engine.stylize(x, card_a, color="style")).abs().mean()) > 1e-3
    ramp = torch.linspace(0, 1, 232).expand(1, 1, 200, 232)
    style = [(card_a, ramp), (card_b, 1 - ramp)]
    untiled = engine.stylize(x, style, tile="off", color="style", marks=1.0)
    tiled = engine.stylize(x, style, tile=128, color="style", marks=1.0)
    assert float((tiled - untiled).abs().max()) <= 1e-4
    frames = [np.asarray(make_image(48, 64, seed=i)) for i in range(3)]
    expected = list(engine.stylize_frames(frames, card_a, temporal=0.6, batch=2, marks=1.0))
    state = None
    for frame, reference in zip(frames, expected):
        out, state = engine.stylize_frame(frame, card_a, state=state, temporal=0.6, marks=1.0)
        assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


def test_marks_need_the_cards_style_pixels_and_a_painting_of_one_block(random_engine, card_a, make_image) -> None:
    """A stripped card gets one line naming the way out; a painting smaller than one 32 px block (a tiny style
    size) lends no marks, so the default gives the picture of marks 0 instead of an error."""
    x = np.asarray(make_image(48, 48, seed=2))
    stripped = dataclasses.replace(card_a, pixels=[], painted=[])
    with pytest.raises(CardError, match="'a' carries no style pixels, which marks need: .*, or marks 0$"):
        random_engine.stylize(x, stripped, color="style")
    assert random_engine.stylize(x, stripped, color="style", marks=0).shape == x.shape
    tiny = random_engine.encode_style(make_image(20, 24, seed=3), size=20, name="tiny")
    assert np.array_equal(np.asarray(random_engine.stylize(x, tiny)), np.asarray(random_engine.stylize(x, tiny, marks=0)))
