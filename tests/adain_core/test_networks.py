"""Encoder/decoder factories: layer layout, tap shapes, preprocessing, padding to a multiple of 8."""

from __future__ import annotations

import pytest
import torch

from adain_core.networks import (
    ARCHS, CAFFE_MEAN_BGR, TAPS, build_decoder, build_encoder, decoder_width, pad_to_multiple, padded_size,
)


@pytest.mark.parametrize("arch", ARCHS)
def test_encoder_tap_shapes_and_frozen(arch: str) -> None:
    enc = build_encoder(arch)
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.training
    out = enc(torch.rand(2, 3, 32, 24), TAPS)
    assert list(out) == list(TAPS)
    for (name, f), (c, s) in zip(out.items(), [(64, 1), (128, 2), (256, 4), (512, 8)]):
        assert f.shape == (2, c, 32 // s, 24 // s), name


def test_encoder_stops_at_the_deepest_tap_asked_for() -> None:
    enc = build_encoder("vgg16")
    calls = []
    enc.layers[-1].register_forward_hook(lambda *a: calls.append(1))  # the relu4_1 ReLU
    out = enc(torch.rand(1, 3, 16, 16), ("relu2_1",))
    assert list(out) == ["relu2_1"] and not calls
    enc(torch.rand(1, 3, 16, 16))
    assert calls


@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_mirrors_the_encoder(arch: str) -> None:
    dec = build_decoder(arch)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) for m in dec.modules())
    assert sum(isinstance(m, torch.nn.Upsample) for m in dec) == 3
    assert isinstance(dec[-1], torch.nn.Conv2d) and dec[-1].out_channels == 3
    assert dec(torch.rand(1, 512, 3, 5)).shape == (1, 3, 24, 40)
    enc_convs = [m for m in build_encoder(arch).layers if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    dec_convs = [m for m in dec if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in dec_convs] == \
        [(m.out_channels, m.in_channels) for m in reversed(enc_convs)]


@pytest.mark.parametrize("arch", ARCHS)
def test_half_width_decoder_has_the_same_keys_and_a_quarter_of_the_weights(arch: str) -> None:
    full, half = build_decoder(arch), build_decoder(arch, width=0.5)
    assert list(full.state_dict()) == list(half.state_dict())
    assert half(torch.rand(1, 512, 3, 5)).shape == (1, 3, 24, 40)
    convs = [m for m in half if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 512 and convs[0].out_channels == 128 and convs[-1].out_channels == 3
    macs = {}
    for name, dec in (("full", full), ("half", half)):
        counts: list[int] = []
        for m in dec:
            if isinstance(m, torch.nn.Conv2d):  # multiply-adds = weights × output pixels
                m.register_forward_hook(lambda mod, _, out, c=counts: c.append(mod.weight.numel() * out[0, 0].numel()))
        dec(torch.rand(1, 512, 4, 4))
        macs[name] = sum(counts)
    assert 0.25 < macs["half"] / macs["full"] < 0.3  # ~4× fewer multiply-adds
    assert decoder_width(full.state_dict()) == 1.0 and decoder_width(half.state_dict()) == 0.5


@pytest.mark.parametrize("width", [0, -0.5, 1.5])
def test_decoder_width_out_of_range_is_rejected(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        build_decoder("vgg16", width=width)


def test_bilinear_decoder_has_the_same_weights_and_no_blocks() -> None:
    torch.manual_seed(0)
    nearest, bilinear = build_decoder("vgg16", skip=True), build_decoder("vgg16", skip=True, upsample="bilinear")
    bilinear.load_state_dict(nearest.state_dict())  # the same weights: the upsampling is not in them
    assert (nearest.upsample, bilinear.upsample) == ("nearest", "bilinear")
    x, skip = torch.rand(1, 512, 4, 4), torch.rand(1, 256, 8, 8)
    with torch.no_grad():
        a, b = nearest(x, skip), bilinear(x, skip)
    assert a.shape == b.shape == (1, 3, 32, 32) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="upsampling must be one of .*'cubic'"):
        build_decoder("vgg16", upsample="cubic")


def test_vgg19_keys_match_the_original_release_layout() -> None:
    # vgg_normalised.pth starts with a 1x1 conv at index 0, conv1_1 at 2; decoder.pth's first conv is at index 1.
    enc_keys = set(build_encoder("vgg19").state_dict())
    assert {"layers.0.weight", "layers.2.weight", "layers.5.weight", "layers.29.weight"} <= enc_keys
    assert build_encoder("vgg19").layers[0].kernel_size == (1, 1)
    dec_keys = list(build_decoder("vgg19").state_dict())
    assert dec_keys[0] == "1.weight" and dec_keys[-1] == "28.bias"


def test_vgg16_caffe_preprocessing() -> None:
    enc = build_encoder("vgg16")
    x = torch.rand(1, 3, 2, 2)
    pre = enc.preprocess(x)
    expected = torch.stack([x[:, 2], x[:, 1], x[:, 0]], dim=1) * 255 - torch.tensor(CAFFE_MEAN_BGR).reshape(1, 3, 1, 1)
    torch.testing.assert_close(pre, expected)
    assert torch.equal(build_encoder("vgg19").preprocess(x), x)


def test_unknown_arch_is_rejected() -> None:
    with pytest.raises(ValueError, match="arch"):
        build_encoder("resnet")
    with pytest.raises(ValueError, match="arch"):
        build_decoder("resnet")


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (8, 8), (9, 17), (513, 1023)])
def test_pad_to_multiple(size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    padded, orig = pad_to_multiple(x)
    assert orig == size
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    # At least 16 px (the decoder's reflection padding needs 2×2 relu4_1 maps), else less than one multiple more.
    assert padded.shape[-2] == max(16, -(-size[0] // 8) * 8) and padded.shape[-1] == max(16, -(-size[1] // 8) * 8)
    assert torch.equal(padded[..., : size[0], : size[1]], x)


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (40, 33), (513, 1023)])
def test_pad_to_multiple_with_a_border_mirrors_the_picture_around_it(size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    padded, orig = pad_to_multiple(x, border=32)
    h, w = orig
    assert orig == size and padded.shape[-2:] == padded_size(h, w, border=32)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert padded.shape[-2] - 64 - h < 8 and padded.shape[-1] - 64 - w < 8
    assert torch.equal(padded[..., 32:32 + h, 32:32 + w], x)
    if min(size) > 32:  # a mirror image beyond each edge, not a repeat of the edge
        assert torch.equal(padded[..., 31, 32:32 + w], x[..., 1, :])
        assert torch.equal(padded[..., 32:32 + h, 31], x[..., :, 1])
