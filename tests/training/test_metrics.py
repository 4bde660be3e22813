"""Evaluation metrics and the extra loss terms: identity output → gaps 1 and spread 0, output = painting → gaps 0,
sliced Wasserstein distance properties, identity loss of a perfect reconstruction, what the luma and raw-colour
terms cost, the grid ratio and the grid term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adain_core.networks import TAPS
from adain_core.upsample import luma
from training.losses import (grid_loss, identity_loss, luma_loss, palette_recolour, raw_colour_loss,
                             sliced_wasserstein, tone_loss, unit_directions)
from training.loop import make_encoder
from training.metrics import (colour_gap_ratio, feature_stats, gram_gap_ratio, grid_ratio, layout_corr, spread,
                              style_gap_ratio, style_vector)


@pytest.fixture(scope="module")
def features():
    enc = make_encoder("random-vgg16")

    def run(x):
        with torch.no_grad():
            return enc(x, TAPS)
    return run


def _img(seed: int, h: int = 48, w: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 1, 1, generator=g)
    return (base + 0.3 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def test_identity_output_scores_one_and_zero_spread(features):
    content, style = _img(0), _img(1, 56, 48)
    fc, fs = features(content), features(style)
    assert style_gap_ratio(feature_stats(fc), feature_stats(fc), feature_stats(fs)) == pytest.approx(1.0)
    assert gram_gap_ratio(fc, fc, fs) == pytest.approx(1.0)
    assert colour_gap_ratio(content, content, style) == pytest.approx(1.0)
    assert layout_corr(content, content) == pytest.approx(1.0)
    styles = [feature_stats(features(_img(s))) for s in (1, 2, 3)]
    assert spread([feature_stats(fc)] * 3, styles) == pytest.approx(0.0, abs=1e-6)


def test_output_equal_to_the_style_scores_zero_and_full_spread(features):
    content = _img(0)
    styles = [_img(s, 56, 48) for s in (1, 2, 3)]
    fc = features(content)
    for s in styles:
        fs = features(s)
        assert style_gap_ratio(feature_stats(fs), feature_stats(fc), feature_stats(fs)) < 1e-6
        assert gram_gap_ratio(fs, fc, fs) < 1e-6
        assert colour_gap_ratio(s, content, s) < 1e-6
    stats = [feature_stats(features(s)) for s in styles]
    assert spread(stats, stats) == pytest.approx(1.0)


def test_weighted_painting_side_leaves_the_backdrop_out(features):
    """An output that matches only the painted part of a painting on a white backdrop scores ~0 when the backdrop
    is weighted out, and is far from the whole painting (white included)."""
    figure = _img(5, 48, 48)
    painting = torch.ones(1, 3, 48, 96)
    painting[..., :, :48] = figure
    weight = torch.zeros(1, 1, 48, 96)
    weight[..., :, :48] = 1
    fc, ff, fp = features(_img(0)), features(figure), features(painting)
    assert colour_gap_ratio(figure, _img(0), painting, weight) < 1e-6
    assert colour_gap_ratio(figure, _img(0), painting) > 0.3
    weighted = feature_stats(fp, weight)
    assert set(weighted) == set(TAPS)
    # relu1_1 sees 1-px context: away from the seam the weighted statistics are the figure's
    torch.testing.assert_close(weighted["relu1_1"][0], feature_stats(ff)["relu1_1"][0], atol=0.05, rtol=0.05)
    assert gram_gap_ratio(ff, fc, fp, weight) < gram_gap_ratio(ff, fc, fp)


def test_style_vector_is_unit_length_per_tap(features):
    v = style_vector(feature_stats(features(_img(4))))
    assert v.norm().item() == pytest.approx(3 ** 0.5, rel=1e-5)  # three unit-length parts


def test_sliced_wasserstein_sees_distributions_not_positions():
    dirs = unit_directions(64, seed=0)
    a = torch.rand(2, 3, 16, 16)
    shuffled = a.flatten(2)[:, :, torch.randperm(256)].reshape(2, 3, 16, 16)
    assert sliced_wasserstein(a, shuffled, dirs).abs().max() < 1e-6
    shift = torch.tensor([0.1, -0.2, 0.05]).reshape(1, 3, 1, 1)
    expected = (shift.reshape(3) @ dirs).abs().mean()
    assert torch.allclose(sliced_wasserstein(a, a + shift, dirs), expected.expand(2), atol=1e-5)
    # different sizes compare quantiles
    assert sliced_wasserstein(a[:1], torch.nn.functional.interpolate(a[:1], scale_factor=2), dirs)[0] < 0.02
    b = a.clone().requires_grad_(True)
    sliced_wasserstein(b, a + shift, dirs).sum().backward()
    assert b.grad is not None and b.grad.abs().sum() > 0


def test_sliced_wasserstein_on_a_pixel_sample_estimates_the_whole():
    dirs = unit_directions(32, seed=0)
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 64, 64, generator=gen) ** 2
    b = torch.rand(2, 3, 64, 64, generator=gen)
    whole = sliced_wasserstein(a, b, dirs)
    sampled = sliced_wasserstein(a, b, dirs, pixels=1024, seed=3)
    assert torch.allclose(sampled, whole, atol=0.01) and not torch.equal(sampled, whole)
    assert torch.equal(sampled, sliced_wasserstein(a, b, dirs, pixels=1024, seed=3))  # seeded
    assert not torch.equal(sampled, sliced_wasserstein(a, b, dirs, pixels=1024, seed=4))
    assert torch.equal(whole, sliced_wasserstein(a, b, dirs, pixels=64 * 64))  # a sample of all is all
    x = a.clone().requires_grad_(True)
    sliced_wasserstein(x, b, dirs, pixels=1024).sum().backward()
    touched = (x.grad.abs().sum(1) > 0).float().mean()  # the gradient reaches the sampled pixels only
    assert 0.2 < float(touched) <= 0.25


def test_grid_ratio_sees_a_2_and_4_px_grid_not_texture():
    gen = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(1, 3, 16, 24, generator=gen), scale_factor=8, mode="bilinear")
    noise = (smooth + 0.05 * torch.rand(1, 3, 128, 192, generator=gen)).clamp(0, 1)  # fine texture, no period
    stamp = torch.tensor([[0.0, 1.0, 0.0, -1.0]]).T @ torch.tensor([[1.0, 0.0, -1.0, 0.0]])  # a 4 × 4 cell pattern
    grid = (smooth + 0.03 * stamp.repeat(32, 48)).clamp(0, 1)
    lines = smooth.clone()
    lines[..., ::2, :] += 0.02  # every other row a little lighter: a 2 px grid
    assert grid_ratio(smooth) < 1.5 and grid_ratio(noise) < 1.5
    assert grid_ratio(grid) > 5 and grid_ratio(lines.clamp(0, 1)) > 5


def test_grid_term_costs_a_grid_not_texture_and_its_gradient_removes_the_grid():
    gen = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(2, 3, 16, 16, generator=gen), scale_factor=8, mode="bilinear")
    noise = (smooth + 0.05 * torch.rand(2, 3, 128, 128, generator=gen)).clamp(0, 1)
    stamp = torch.tensor([[0.0, 1.0, 0.0, -1.0]]).T @ torch.tensor([[1.0, 0.0, -1.0, 0.0]])
    grid = (smooth + 0.03 * stamp.repeat(32, 32)).requires_grad_()
    assert float(grid_loss(smooth)) < 0.5 and float(grid_loss(noise)) < 0.5
    before = float(grid_loss(grid).detach())
    assert before > 5
    opt = torch.optim.Adam([grid], lr=1e-3)  # pixels moved down the gradient lose the grid
    for _ in range(20):
        opt.zero_grad()
        grid_loss(grid).backward()
        opt.step()
    assert float(grid_loss(grid).detach()) < 0.2 * before


def test_luma_loss_costs_a_dark_band_but_not_a_new_palette_or_fine_texture():
    """A bright disc on a mid-grey ground: recoloured (brightness, contrast, hue) or given fine texture it keeps its
    layout of light and dark (cost near 0); a dark ring around the disc, a halo, costs; gradients reach the pixels."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = ((yy - 32) ** 2 + (xx - 32) ** 2).sqrt()
    photo = (0.4 + 0.5 * (r < 12).float()).expand(1, 3, 64, 64)
    recoloured = (0.2 + 0.5 * photo) * torch.tensor([1.0, 0.6, 0.3]).reshape(1, 3, 1, 1)
    textured = photo + 0.15 * torch.sign(torch.sin(xx * 2.5) * torch.sin(yy * 2.5))  # a 2–3 px pattern
    halo = photo - 0.35 * ((r >= 13) & (r < 19)).float()
    cost = {name: float(luma_loss(x, photo, radius=4)) for name, x in
            (("photo", photo), ("recoloured", recoloured), ("textured", textured), ("halo", halo))}
    assert cost["photo"] < 1e-6 and cost["recoloured"] < 1e-4 and cost["textured"] < 0.02
    assert cost["halo"] > 10 * cost["textured"]
    pixels = halo.clone().requires_grad_(True)
    luma_loss(pixels, photo, radius=4).backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one size"):
        luma_loss(photo, photo[..., :32, :32], radius=4)


def test_layout_corr_sees_a_halo_but_not_a_new_palette():
    """A bright disc on grey at 256 px: recoloured it keeps its layout (~1); a wide pale ring round it, the
    decoder's halo, lowers the score; a picture of something else scores near 0."""
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    r = ((yy - 128) ** 2 + (xx - 128) ** 2).sqrt()
    photo = (0.3 + 0.6 * (r < 40).float()).expand(1, 3, 256, 256)
    recoloured = (0.1 + 0.7 * photo) * torch.tensor([1.0, 0.7, 0.4]).reshape(1, 3, 1, 1)
    halo = (photo + 0.4 * ((r >= 44) & (r < 80)).float()).clamp(0, 1)
    elsewhere = (0.3 + 0.6 * ((xx - 40) ** 2 + (yy - 200) ** 2 < 900).float()).expand(1, 3, 256, 256)
    assert layout_corr(recoloured, photo) > 0.999
    assert layout_corr(halo, photo) < 0.9
    assert abs(layout_corr(elsewhere, photo)) < 0.2


def test_identity_loss_is_zero_for_a_perfect_reconstruction(features):
    img = _img(5)
    f = features(img)
    layers = {t: 1.0 for t in TAPS}
    pix, feat = identity_loss(img, img, f, f, layers, 10.0, 1.0)
    assert float(pix) == 0 and float(feat) == 0
    pix, feat = identity_loss(img * 0.5, img, features(img * 0.5), f, layers, 10.0, 1.0)
    assert float(pix) > 0 and float(feat) > 0


def test_tone_loss_measures_the_spread_of_lights_and_darks_not_the_hues():
    """The tone term compares luma distributions: the grey image of a painting's own luma costs nothing, a
    brightness shift of δ costs δ, and flattening the contrast costs more than nothing; the sizes may differ."""
    gen = torch.Generator().manual_seed(0)
    style = torch.rand(2, 3, 24, 24, generator=gen) * 0.5 + 0.25
    grey = luma(style).expand(-1, 3, -1, -1)
    torch.testing.assert_close(tone_loss(grey, style), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(tone_loss(style + 0.1, style), torch.full((2,), 0.1), atol=1e-5, rtol=0)
    flat = (style - 0.5) * 0.5 + 0.5
    assert bool((tone_loss(flat, style) > 0.02).all())
    small = F.interpolate(style, size=(12, 12), mode="nearest")
    assert bool((tone_loss(small, style) < 0.02).all())


def test_raw_colour_loss_moves_the_raw_output_without_changing_the_palette_image():
    """The raw-colour term pulls the decoder's own output towards its recoloured version; every point on the way has
    the same recoloured image, so the palette-mode losses do not see the pull."""
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(2, 3, 16, 16, generator=gen) * 0.5 - 0.4  # mostly below 0, as a drifted decoder's
    style = torch.rand(2, 3, 20, 20, generator=gen)
    recoloured = palette_recolour(raw, style)
    halfway = 0.5 * raw + 0.5 * recoloured
    torch.testing.assert_close(palette_recolour(halfway, style), recoloured, atol=1e-3, rtol=1e-3)
    assert float(raw_colour_loss(halfway, recoloured)) == pytest.approx(0.5 * float(raw_colour_loss(raw, recoloured)),
                                                                         rel=1e-5)
    assert float(raw_colour_loss(recoloured, recoloured)) == 0.0


def test_evaluation_reads_a_cut_out_painting_without_its_backdrop(tmp_path):
    """``adain-train evaluate`` (default ``--backdrop ignore``) finds a painting's white surround, and its colour
    transfer reference gives the photo the figure's colours; ``keep`` uses the whole image."""
    from PIL import Image

    from training.evaluate import load_eval_set, reference_outputs

    painting = torch.ones(1, 3, 64, 64)
    painting[..., 16:48, 16:48] = torch.tensor([0.2, 0.5, 0.2])[:, None, None]
    Image.fromarray((painting[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "cut.png")
    Image.fromarray((_img(0, 64, 64)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "p.png")
    ignored = load_eval_set([tmp_path / "p.png"], [tmp_path / "cut.png"], 64, 64)
    kept = load_eval_set([tmp_path / "p.png"], [tmp_path / "cut.png"], 64, 64, backdrop="keep")
    assert ignored.backdrop == "ignore" and float(ignored.painted[0].mean()) == 0.25
    assert kept.backdrop == "keep" and kept.style_weights() == [None]
    transfer = reference_outputs(ignored)["colour transfer (reference)"][0][0]
    torch.testing.assert_close(transfer.mean(dim=(2, 3))[0], torch.tensor([0.2, 0.5, 0.2]), atol=0.01, rtol=0)
    assert float(reference_outputs(kept)["colour transfer (reference)"][0][0].mean()) > 0.7
