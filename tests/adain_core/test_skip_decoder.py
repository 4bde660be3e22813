"""Skip decoders (``networks.Decoder`` with a relu3_1 input beside relu4_1): a zero skip paints what the plain decoder
paints; in the engine the relu3_1 target goes through every path the relu4_1 one does — masks, tiles with global
statistics, frame smoothing, the colour modes that re-encode the painting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adain_core import CardError, style_transfer
from adain_core.engine import BORDER
from adain_core.images import pil_to_tensor
from adain_core.networks import build_decoder, decoder_inputs, decoder_skip, decoder_width, pad_to_multiple


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_zero_skip_paints_what_the_plain_decoder_paints(width: float) -> None:
    torch.manual_seed(0)
    plain, skip = build_decoder("vgg16", width), build_decoder("vgg16", width, skip=True)
    missing, unexpected = skip.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["skip.bias", "skip.weight"] and not unexpected
    t4, t3 = torch.rand(1, 512, 4, 6), torch.rand(1, 256, 8, 12)
    assert torch.equal(plain(t4), skip(t4, t3))
    state = skip.state_dict()
    assert decoder_skip(state) and not decoder_skip(plain.state_dict()) and decoder_width(state) == width
    assert skip.taps == ("relu3_1", "relu4_1") and plain.taps == ("relu4_1",)
    targets = {"relu4_1": t4, "relu3_1": t3}
    assert skip.input_taps == ("relu4_1", "relu3_1") and plain.input_taps == ("relu4_1",)
    assert torch.equal(skip(*(targets[t] for t in skip.input_taps)), skip(*decoder_inputs(targets)))
    with pytest.raises(ValueError, match="reads relu3_1 and relu4_1"):
        skip(t4)
    with pytest.raises(ValueError, match="reads relu4_1; got a skip input"):
        plain(t4, t3)


@pytest.fixture(scope="module")
def skip_card(random_skip_engine, make_image):
    return random_skip_engine.encode_style(make_image(48, 64, seed=7), size=48, name="a")


def test_the_relu3_1_target_reaches_the_picture(random_skip_engine, skip_card, make_image) -> None:
    """The card's relu3_1 statistics change the output (they would not if the engine fed relu4_1 alone)."""
    x, _ = pil_to_tensor(make_image(64, 64, seed=3))
    out = random_skip_engine.stylize(x, skip_card, color="style")
    mean, std = skip_card.taps["relu3_1"]
    shifted = dataclasses.replace(skip_card, taps={**skip_card.taps, "relu3_1": (mean * 1.5, std)})
    assert float((random_skip_engine.stylize(x, shifted, color="style") - out).abs().max()) > 1e-3
    without = dataclasses.replace(skip_card, taps={})
    with pytest.raises(CardError, match="has no relu3_1 statistics"):
        random_skip_engine.stylize(x, without)


def test_tiled_and_masked_skip_decoder_equals_the_one_pass_function(random_skip_engine, skip_card, make_image
                                                                    ) -> None:
    """Two soft-masked regions, tiled (global statistics at relu3_1 and relu4_1) == untiled ==
    ``style_transfer`` on the decoder's two taps (the method without the marks option, tiled in test_marks.py)."""
    engine = random_skip_engine
    card_b = engine.encode_style(make_image(40, 40, seed=8), size=40, name="b")
    x, _ = pil_to_tensor(make_image(200, 232, seed=1))
    ramp = torch.linspace(0, 1, 232).expand(1, 1, 200, 232)
    style = [(skip_card, ramp), (card_b, 1 - ramp)]
    untiled = engine.stylize(x, style, tile="off", color="style", marks=0)
    tiled = engine.stylize(x, style, tile=128, color="style", marks=0)
    assert float((tiled - untiled).abs().max()) <= 1e-4

    from adain_core.images import feature_mask

    padded, _ = pad_to_multiple(x, border=BORDER)
    stats = {"relu4_1": [(c.mean.reshape(1, -1, 1, 1), c.std.reshape(1, -1, 1, 1)) for c in (skip_card, card_b)],
             "relu3_1": [(c.taps["relu3_1"][0].reshape(1, -1, 1, 1), c.taps["relu3_1"][1].reshape(1, -1, 1, 1))
                         for c in (skip_card, card_b)]}
    masks = {tap: [feature_mask(m, 1, (200, 232), border=BORDER, cell=cell) for m in (ramp, 1 - ramp)]
             for tap, cell in (("relu3_1", 4), ("relu4_1", 8))}
    reference, used = style_transfer(lambda y: engine.features(y, engine.taps),
                                     lambda t: engine.decode(t["relu4_1"], t["relu3_1"]), padded, stats, masks)
    assert set(used) == {"relu3_1", "relu4_1"} and len(used["relu3_1"]) == 2
    reference = reference[:, :, BORDER:BORDER + 200, BORDER:BORDER + 232].clamp(0, 1)
    assert float((untiled - reference).abs().max()) <= 1e-4


def test_skip_decoder_frames_and_colour_modes(random_skip_engine, skip_card, make_image) -> None:
    """Chained frames equal ``stylize_frames`` (the smoothing carries both taps' statistics); the colour modes that
    re-encode the recoloured painting (preserve, luminance) and the palette mode run."""
    engine = random_skip_engine
    frames = [np.asarray(make_image(24, 32, seed=i)) for i in range(3)]
    expected = list(engine.stylize_frames(frames, skip_card, temporal=0.6, batch=2))
    state = None
    for frame, reference in zip(frames, expected):
        out, state = engine.stylize_frame(frame, skip_card, state=state, temporal=0.6)
        assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1
    assert len(state.stats) == 2  # one region at two taps
    for color in ("preserve", "luminance", "palette"):
        out = engine.stylize(frames[0], skip_card, color=color)
        assert out.shape == frames[0].shape
