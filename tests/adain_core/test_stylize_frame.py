"""``Engine.stylize_frame``: the one-frame step of ``stylize_frames`` with explicit temporal state (used by the
engine worker to smooth frame sequences sent one request at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from adain_core import ValueRangeError
from adain_core.engine import FrameState


def test_chained_frames_equal_stylize_frames(random_engine, card_a, make_image) -> None:
    frames = [np.asarray(make_image(24, 32, seed=i)) for i in range(3)]
    expected = list(random_engine.stylize_frames(frames, card_a, temporal=0.6))
    state = None
    for frame, reference in zip(frames, expected):
        out, state = random_engine.stylize_frame(frame, card_a, state=state, temporal=0.6)
        assert isinstance(state, FrameState)
        assert np.array_equal(out, reference)
    # No state (the first frame) is the single-image result; the state of another layout is ignored.
    first, _ = random_engine.stylize_frame(frames[1], card_a, temporal=0.6)
    assert np.array_equal(first, random_engine.stylize(frames[1], card_a))
    two = np.stack([frames[0], frames[1]]).transpose(0, 3, 1, 2).astype(np.float32) / 255
    import torch

    batch_out, _ = random_engine.stylize_frame(torch.from_numpy(two), card_a, state=state, temporal=0.6)
    assert torch.equal(batch_out, random_engine.stylize(torch.from_numpy(two), card_a))
    with pytest.raises(ValueRangeError, match="temporal"):
        random_engine.stylize_frame(frames[0], card_a, temporal=1.0)
