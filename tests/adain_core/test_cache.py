"""The cache service: engines and style cards keyed by file identity, bounded, shared by every delivery layer."""

from __future__ import annotations

import os

import pytest

from adain_core import CardError, ImageLoadError
from adain_core.cache import LRU, EngineCache, StyleCache


def test_lru_keeps_the_most_recently_used():
    lru: LRU[int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert lru.keys() == ["a", "c"] and lru.get("b") is None and len(lru) == 2
    with pytest.raises(ValueError, match="capacity"):
        LRU(0)


def test_engine_cache_loads_once_per_file_identity(random_model_path, tmp_path):
    loaded = []

    def loader(model, device, precision):
        loaded.append(model)
        return object()

    cache = EngineCache(2, loader=loader)
    first, hit = cache.get(random_model_path, device="cpu")
    assert not hit and cache.get(random_model_path, device="cpu") == (first, True)
    copy = tmp_path / "model.safetensors"
    copy.write_bytes(random_model_path.read_bytes())
    cache.get(copy, device="cpu")
    os.utime(copy, ns=(1, 1))  # the same path with another identity: read again
    assert cache.get(copy, device="cpu")[1] is False
    assert cache.loads == 3 and len(cache) == 2


def test_style_cache_by_file_identity_and_size(random_engine, make_image, tmp_path):
    path = tmp_path / "style.png"
    make_image(40, 48, seed=3).save(path)
    cache = StyleCache(8)
    card, hit = cache.card(random_engine, path, 32)
    assert not hit and cache.card(random_engine, path, 32) == (card, True)
    assert cache.card(random_engine, path, 48)[1] is False
    make_image(40, 48, seed=4).save(path)
    os.utime(path, ns=(2, 2))
    assert cache.card(random_engine, path, 32)[1] is False


def test_style_cache_loads_saved_cards_and_mixes(random_engine, make_image, tmp_path):
    image = tmp_path / "a.png"
    make_image(40, 48, seed=5).save(image)
    saved = random_engine.encode_style(image, size=32).save(tmp_path / "a.adainstyle.safetensors")
    cache = StyleCache()
    loaded, hit = cache.card(random_engine, saved)
    assert not hit and loaded.sources[0]["name"] == "a"
    mixed, hits = cache.mixed(random_engine, [(saved, 0.25), (image, 0.75)], 32)
    assert hits == [True, False] and mixed.weights == pytest.approx([0.25, 0.75])


def test_style_cache_names_missing_files(random_engine, tmp_path):
    with pytest.raises(ImageLoadError, match="nope.png"):
        StyleCache().card(random_engine, tmp_path / "nope.png")
    with pytest.raises(CardError, match="nope.safetensors"):
        StyleCache().card(random_engine, tmp_path / "nope.safetensors")
