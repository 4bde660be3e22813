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


def test_batched_frames_equal_one_at_a_time(random_engine, card_a, make_image) -> None:
    """B frames per forward pass: the same frames (up to float rounding) and the same smoothing chain as B = 1,
    across a size change (a cut) inside a batch and a batch that does not divide the sequence."""
    frames = [np.asarray(make_image(24, 32, seed=i)) for i in range(5)] + [np.asarray(make_image(16, 40, seed=9))]
    one = list(random_engine.stylize_frames(frames, card_a, temporal=0.6, batch=1))
    for batch in (2, 4, "auto"):
        calls: list[tuple[int, int]] = []
        many = list(random_engine.stylize_frames(frames, card_a, temporal=0.6, batch=batch,
                                                 progress=lambda d, t: calls.append((d, t))))
        assert [m.shape for m in many] == [o.shape for o in one]
        assert all(np.abs(m.astype(int) - o.astype(int)).max() <= 1 for m, o in zip(many, one)), batch
        assert calls == [(i, 0) for i in range(1, 7)]
    # Smoothing is applied frame by frame inside a batch: a batch of 4 at temporal 0.6 differs from temporal 0.
    plain = list(random_engine.stylize_frames(frames[:4], card_a, batch=4))
    assert np.abs(plain[3].astype(int) - one[3].astype(int)).max() > 1
    for bad in (0, -2, "many"):
        with pytest.raises(ValueRangeError, match="batch"):
            list(random_engine.stylize_frames(frames, card_a, batch=bad))


def test_frames_per_pass_follows_the_memory_budget(random_engine) -> None:
    assert random_engine.frames_per_pass(720, 1280, max_memory="64GB") == 8
    assert random_engine.frames_per_pass(720, 1280, max_memory="64GB", tile=512) == 1
    assert random_engine.frames_per_pass(720, 1280, max_memory="300MB") == 1
    assert 1 < random_engine.frames_per_pass(720, 1280, max_memory="3GB") < 8
