"""AdaIN maths: channel statistics, the transform, the α blend, mixing and card-reuse identities, gradcheck."""

from __future__ import annotations

import pytest
import torch

from adain_core.images import pil_to_tensor
from adain_core import AdaIN, adain, blend_alpha, calc_mean_std, masked_mean_std, mix
from adain_core.adain import tap_stats


def _feat(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 3 + torch.arange(shape[1]).reshape(1, -1, 1, 1)
            ).to(dtype)


def test_calc_mean_std_matches_definition() -> None:
    x = _feat(2, 5, 7, 3)
    m, s = calc_mean_std(x, eps=1e-5)
    assert m.shape == s.shape == (2, 5, 1, 1)
    flat = x.reshape(2, 5, -1)
    torch.testing.assert_close(m.flatten(), flat.mean(-1).flatten())
    torch.testing.assert_close(s.flatten(), (flat.var(-1, unbiased=False) + 1e-5).sqrt().flatten())


def test_calc_mean_std_half_precision_computes_in_float32() -> None:
    m, s = calc_mean_std(_feat(1, 3, 8, 8, dtype=torch.bfloat16))
    assert m.dtype == s.dtype == torch.float32


def test_adain_formula() -> None:
    x = _feat(2, 4, 6, 5, seed=1)
    sm, ss = torch.randn(2, 4, 1, 1), torch.rand(2, 4, 1, 1) + 0.5
    cm, cs = calc_mean_std(x, 1e-5)
    torch.testing.assert_close(adain(x, sm, ss, eps=1e-5), ss * (x - cm) / cs + sm)


def test_adain_output_statistics_equal_the_style() -> None:
    x = _feat(3, 8, 9, 11, seed=2)
    sm, ss = torch.randn(8) * 4, torch.rand(8) * 3 + 0.1
    out = adain(x, sm, ss)
    om, os_ = calc_mean_std(out, eps=0)
    torch.testing.assert_close(om.reshape(3, 8), sm.expand(3, 8), atol=1e-4, rtol=1e-4)
    # σ(out) = σ(y)·σ(x)/sqrt(σ(x)² + eps): equal up to the eps term.
    torch.testing.assert_close(os_.reshape(3, 8), ss.expand(3, 8), atol=1e-4, rtol=1e-4)


def test_adain_accepts_given_content_statistics() -> None:
    x = _feat(1, 4, 5, 5, seed=3)
    sm, ss = torch.zeros(4), torch.ones(4)
    cm, cs = torch.full((1, 4, 1, 1), 2.0), torch.full((1, 4, 1, 1), 4.0)
    torch.testing.assert_close(adain(x, sm, ss, content_mean=cm, content_std=cs), (x - 2.0) / 4.0)


def test_alpha_zero_keeps_content_features_and_one_gives_target() -> None:
    f = _feat(2, 4, 3, 3, seed=4)
    t = adain(f, torch.randn(4), torch.rand(4) + 0.5)
    torch.testing.assert_close(blend_alpha(t, f, 0.0), f)
    torch.testing.assert_close(blend_alpha(t, f, 1.0), t)
    torch.testing.assert_close(blend_alpha(t, f, 0.25), 0.25 * t + 0.75 * f)
    # A spatial α map broadcasts over channels.
    amap = torch.zeros(1, 1, 3, 3)
    amap[..., 0] = 1
    out = blend_alpha(t, f, amap)
    torch.testing.assert_close(out[..., 0], t[..., 0])
    torch.testing.assert_close(out[..., 1:], f[..., 1:])


def test_module_wrapper_equals_function() -> None:
    x, y = _feat(1, 6, 5, 4, seed=5), _feat(1, 6, 7, 7, seed=6)
    module = AdaIN(eps=1e-5)
    assert "eps=1e-05" in repr(module)
    sm, ss = calc_mean_std(y)
    torch.testing.assert_close(module(x, y), adain(x, sm, ss))


def test_masked_mean_std_hard_mask_equals_crop() -> None:
    x = _feat(2, 3, 6, 8, seed=7)
    w = torch.zeros(2, 1, 6, 8)
    w[..., :, :3] = 1
    m, s = masked_mean_std(x, w)
    cm, cs = calc_mean_std(x[..., :, :3])
    torch.testing.assert_close(m, cm)
    torch.testing.assert_close(s, cs)


def test_masked_mean_std_soft_weights_and_empty_mask() -> None:
    x = _feat(1, 2, 4, 4, seed=8).double()
    w = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    m, s = masked_mean_std(x, w, eps=0)
    ref_m = (x * w).sum((2, 3), keepdim=True) / w.sum()
    ref_v = ((x - ref_m) ** 2 * w).sum((2, 3), keepdim=True) / w.sum()
    torch.testing.assert_close(m.double(), ref_m, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(s.double(), ref_v.sqrt(), atol=1e-6, rtol=1e-6)
    # An empty mask falls back to the unweighted statistics (never NaN).
    m0, s0 = masked_mean_std(x, torch.zeros(1, 1, 4, 4))
    fm, fs = calc_mean_std(x)
    torch.testing.assert_close(m0, fm)
    torch.testing.assert_close(s0, fs)


def test_tap_stats_weigh_each_tap_by_the_pixel_weights_on_its_grid() -> None:
    painted = torch.zeros(2, 1, 16, 16)
    painted[..., :, :8] = 1  # the left half of the image is the painting, the right half a backdrop
    feats = {"relu1_1": _feat(2, 4, 16, 16, seed=9), "relu2_1": _feat(2, 4, 8, 8, seed=10)}
    for tap, (mean, std) in tap_stats(feats, painted).items():
        half = feats[tap][..., :, : feats[tap].shape[-1] // 2]
        for got, want in zip((mean, std), calc_mean_std(half)):
            torch.testing.assert_close(got, want)
    for tap, (mean, std) in tap_stats(feats).items():
        for got, want in zip((mean, std), calc_mean_std(feats[tap])):
            torch.testing.assert_close(got, want)


def test_mixing_identity(card_a, card_b) -> None:
    """AdaIN is affine in (σ, μ): the mixed card's target equals the weighted sum of single-style targets."""
    f = _feat(1, card_a.mean.numel(), 4, 5, seed=9)
    for weights in ([0.7, 0.3], [2.0, 6.0], [1.0, 0.0]):
        mixed = mix([card_a, card_b], weights)
        w = torch.tensor(weights) / sum(weights)
        expected = w[0] * adain(f, card_a.mean, card_a.std) + w[1] * adain(f, card_b.mean, card_b.std)
        torch.testing.assert_close(adain(f, mixed.mean, mixed.std), expected, atol=1e-4, rtol=1e-5)
        assert sum(mixed.weights) == pytest.approx(1.0)


def test_mixing_identity_through_the_engine(random_engine, card_a, card_b, make_image) -> None:
    """Same identity end to end at relu4_1: decode(mix target) == decode(Σ w·targets), checked on the targets."""
    pixels, _ = pil_to_tensor(make_image(32, 40, seed=3))
    x = random_engine.features(pixels)["relu4_1"]
    mixed = mix([card_a, card_b], [0.25, 0.75])
    t_mix = adain(x, mixed.mean, mixed.std)
    t_sum = 0.25 * adain(x, card_a.mean, card_a.std) + 0.75 * adain(x, card_b.mean, card_b.std)
    torch.testing.assert_close(t_mix, t_sum, atol=1e-4, rtol=1e-5)


def test_gradcheck_adain_float64() -> None:
    x = _feat(1, 2, 3, 3, seed=10, dtype=torch.float64).requires_grad_()
    sm = torch.randn(1, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    ss = (torch.rand(1, 2, 1, 1, dtype=torch.float64) + 0.5).requires_grad_()
    assert adain(x, sm, ss).dtype == torch.float64
    assert torch.autograd.gradcheck(adain, (x, sm, ss))
    assert torch.autograd.gradcheck(lambda t: blend_alpha(adain(t, sm, ss), t, 0.6), (x,))


def test_gradcheck_masked_mean_std_float64() -> None:
    x = _feat(1, 2, 3, 3, seed=11, dtype=torch.float64).requires_grad_()
    w = (torch.rand(1, 1, 3, 3, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: masked_mean_std(a, b), (x, w))
    assert torch.autograd.gradcheck(lambda a: calc_mean_std(a), (x,))


def test_streaming_stats_equal_whole_image_stats_with_masks():
    """Statistics accumulated piece by piece (the tiled path's pass 1) equal those of the whole feature map."""
    from adain_core.adain import StreamingStats, region_stats

    f = torch.rand(2, 5, 9, 12, dtype=torch.float64)
    mask = torch.rand(1, 1, 9, 12, dtype=torch.float64)
    acc = StreamingStats(2)
    for x0, x1 in ((0, 4), (4, 12)):
        acc.add(f[..., x0:x1], [None, mask[..., x0:x1]])
    for (mean, std), (ref_mean, ref_std) in zip(acc.result(), region_stats(f, [None, mask])):
        torch.testing.assert_close(mean.double(), ref_mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(std.double(), ref_std, atol=1e-6, rtol=0)


def test_streaming_stats_of_an_absent_region_are_neutral():
    from adain_core.adain import StreamingStats

    acc = StreamingStats(1)
    acc.add(torch.rand(1, 3, 4, 4), [torch.zeros(1, 1, 4, 4)])
    mean, std = acc.result()[0]
    assert torch.equal(mean, torch.zeros(1, 3, 1, 1)) and torch.allclose(std, torch.ones(1, 3, 1, 1))
    with pytest.raises(ValueError, match="before any add"):
        StreamingStats(1).result()
