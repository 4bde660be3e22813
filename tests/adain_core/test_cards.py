"""Style cards: save/load, encoder checks, mixing rules, and the card-reuse identity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from adain_core import CardError, StyleCard, ValueRangeError, mix
from adain_core.cards import CARD_SUFFIX


def test_card_contents(card_a, random_engine) -> None:
    assert card_a.encoder_id == random_engine.encoder_id
    assert card_a.mean.shape == card_a.std.shape == (512,)
    assert bool((card_a.std > 0).all())
    assert set(card_a.taps) == {"relu1_1", "relu2_1", "relu3_1"}
    assert card_a.style_size == 48 and card_a.weights == [1.0]
    assert len(card_a.sources[0]["sha256"]) == 64
    assert card_a.thumbnail.dtype == torch.uint8 and max(card_a.thumbnail.shape[:2]) <= 128
    assert len(card_a.pixels) == 1 and min(card_a.pixels[0].shape[1:]) == 48
    assert "channels=512" in repr(card_a)


def test_save_load_round_trip(tmp_path: Path, card_a) -> None:
    path = card_a.save(tmp_path / f"a{CARD_SUFFIX}")
    back = StyleCard.load(path, encoder_id=card_a.encoder_id)
    assert torch.equal(back.mean, card_a.mean) and torch.equal(back.std, card_a.std)
    assert back.name == card_a.name and back.sources == card_a.sources and back.style_size == card_a.style_size
    assert torch.equal(back.pixels[0], card_a.pixels[0]) and torch.equal(back.thumbnail, card_a.thumbnail)
    for tap, (m, s) in card_a.taps.items():
        assert torch.equal(back.taps[tap][0], m) and torch.equal(back.taps[tap][1], s)


def test_save_refuses_to_overwrite(tmp_path: Path, card_a, card_b) -> None:
    path = card_a.save(tmp_path / "c.adainstyle.safetensors")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        card_b.save(path)
    assert path.read_bytes() == before
    card_b.save(path, overwrite=True)
    assert StyleCard.load(path).name == "b"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_card_of_another_encoder_is_rejected(tmp_path: Path, card_a, random_engine, make_image) -> None:
    other = dataclasses.replace(card_a, encoder_id="vgg19-normalised-original")
    path = other.save(tmp_path / "other.adainstyle.safetensors")
    with pytest.raises(CardError, match="made for encoder 'vgg19-normalised-original'"):
        StyleCard.load(path, encoder_id=random_engine.encoder_id)
    with pytest.raises(CardError, match="re-encode"):
        random_engine.stylize(make_image(16, 16), StyleCard.load(path))
    with pytest.raises(CardError, match="different encoders"):
        mix([card_a, other])


def test_bad_card_files(tmp_path: Path, card_a) -> None:
    with pytest.raises(CardError, match="not found"):
        StyleCard.load(tmp_path / "missing.adainstyle.safetensors")
    garbage = tmp_path / "garbage.adainstyle.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CardError, match="not a readable style card"):
        StyleCard.load(garbage)
    full = card_a.save(tmp_path / "full.adainstyle.safetensors").read_bytes()
    truncated = tmp_path / "truncated.adainstyle.safetensors"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(CardError):
        StyleCard.load(truncated)
    model_like = tmp_path / "model.safetensors"
    save_file({"x": torch.zeros(1)}, str(model_like), metadata={"format": "adain-model/1"})
    with pytest.raises(CardError, match="not a style card"):
        StyleCard.load(model_like)
    incomplete = tmp_path / "incomplete.adainstyle.safetensors"
    save_file({"x": torch.zeros(1)}, str(incomplete), metadata={"format": "adain-style-card/1"})
    with pytest.raises(CardError, match="incomplete"):
        StyleCard.load(incomplete)


def test_mix_rules(card_a, card_b) -> None:
    m = mix([card_a, card_b], [3, 1])
    torch.testing.assert_close(m.mean, 0.75 * card_a.mean + 0.25 * card_b.mean)
    torch.testing.assert_close(m.std, 0.75 * card_a.std + 0.25 * card_b.std)
    assert m.weights == pytest.approx([0.75, 0.25]) and m.name == "a+b"
    assert len(m.pixels) == 2 and set(m.taps) == set(card_a.taps)
    stripped = dataclasses.replace(card_a, pixels=[])
    assert m.has_pixels and card_a.has_pixels and not stripped.has_pixels
    assert not mix([stripped, card_b]).has_pixels  # one stripped card strips the mix
    assert mix([card_a, card_b]).weights == pytest.approx([0.5, 0.5])
    nested = mix([m, card_b], [0.5, 0.5])  # mixes of mixes keep per-source weights summing to 1
    assert sum(nested.weights) == pytest.approx(1.0) and len(nested.sources) == 3
    with pytest.raises(CardError, match="at least one"):
        mix([])
    with pytest.raises(ValueRangeError, match="2 cards but 1 weights"):
        mix([card_a, card_b], [1.0])
    for bad in ([-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueRangeError, match="≥ 0"):
            mix([card_a, card_b], bad)


def test_card_reuse_identity(tmp_path: Path, random_engine, make_image) -> None:
    """Encoding a style once and reusing its (saved) card gives the same result as re-encoding it every time."""
    style = tmp_path / "style.png"
    make_image(40, 56, seed=21).save(style)
    card = StyleCard.load(random_engine.encode_style(style, size=32).save(tmp_path / "s.adainstyle.safetensors"))
    for seed in (1, 2):
        content = make_image(24, 32, seed=seed)
        reused = random_engine.stylize(content, card)
        fresh = random_engine.stylize(content, random_engine.encode_style(style, size=32))
        assert reused.tobytes() == fresh.tobytes()
    t = torch.rand(1, 3, 24, 24)
    torch.testing.assert_close(random_engine.stylize(t, card),
                               random_engine.stylize(t, random_engine.encode_style(style, size=32)),
                               atol=0, rtol=0)


def test_encode_style_options(random_engine, make_image, tmp_path: Path) -> None:
    img = make_image(40, 80, seed=3)
    small = random_engine.encode_style(img, size=16)
    assert small.pixels[0].shape == (3, 16, 32)
    native = random_engine.encode_style(img, size=None)
    assert native.style_size is None and native.pixels[0].shape == (3, 40, 80)
    for bad in (8, 5000):
        with pytest.raises(ValueRangeError, match="style size"):
            random_engine.encode_style(img, size=bad)
    path = tmp_path / "my_style.v2.png"
    img.save(path)
    assert random_engine.encode_style(path, size=16).name == "my_style"
