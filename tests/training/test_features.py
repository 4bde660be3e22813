"""Cached encoder passes (``--cached-crops``): the same numbers as encoding every step, encoded once per fixed crop,
kept on disk between runs, and refused where they cannot serve."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from adain_core.adain import calc_mean_std
from adain_core.networks import TAPS
from training.data import ImageSource, scan_images, to_tensor
from training.features import FeatureCache
from training.loop import Trainer, make_encoder


def _counting_encoder():
    enc = make_encoder("random-vgg16").eval()
    calls = []
    enc.register_forward_hook(lambda _module, inputs, _out: calls.append(inputs[0].shape[0]))  # images per pass
    return enc, calls


def _squares(image_dirs) -> ImageSource:
    """The 48 px square paintings at 32 px: each crop of a training image is the whole image or its mirror."""
    return ImageSource(scan_images([image_dirs[1]], 32), resize=32, crop=32)


def test_cached_features_equal_the_encoders_and_are_encoded_once(image_dirs, tmp_path):
    enc, calls = _counting_encoder()
    squares = _squares(image_dirs)
    cache = FeatureCache(enc, squares, squares, 1, "random-vgg16", tmp_path / "feats")
    keys = [(0, 1, 7), (2, 3, 8), (0, 3, 9)]
    maps, photos, paintings, stats = cache.batch(keys)
    assert maps.keys() == {"relu4_1"} and maps["relu4_1"].shape == (3, 512, 4, 4) and paintings.shape == (3, 3, 32, 32)
    assert photos.shape == (3, 3, 32, 32)
    assert calls == [2, 2]  # one pass per kind: 2 photo crops (0 twice), 2 painting crops (3 twice)
    # the one fixed crop of each image, encoded as a step without the cache would
    with torch.no_grad():
        crop = {i: FeatureCache.crop(squares, kind, i, 0) for kind, i in (("content", 2), ("style", 1), ("style", 3))}
        assert any(np.array_equal(crop[2], view) for view in (squares.get(2), squares.get(2)[:, ::-1]))
        want_map = enc(to_tensor(crop[2])[None])["relu4_1"][0]
        want_stats = enc(to_tensor(crop[3])[None], TAPS)
    torch.testing.assert_close(maps["relu4_1"][1], want_map, atol=0.05, rtol=1e-2)  # stored as float16
    for tap in TAPS:
        mean, std = calc_mean_std(want_stats[tap])
        torch.testing.assert_close(stats[tap][0][1], mean[0])  # the second key's painting is number 3
        torch.testing.assert_close(stats[tap][1][1], std[0])
    assert torch.equal(paintings[0], to_tensor(crop[1])) and torch.equal(photos[1], to_tensor(crop[2]))

    # a new run on the same machine reads them back instead of encoding; a cut-short file is encoded again
    (next((tmp_path / "feats").glob("*/style_000001_0.npz"))).write_bytes(b"PK\x03\x04 cut short")
    again, again_calls = _counting_encoder()
    maps2, _, _, stats2 = FeatureCache(again, squares, squares, 1, "random-vgg16", tmp_path / "feats").batch(keys)
    assert again_calls == [1] and torch.equal(maps2["relu4_1"], maps["relu4_1"])
    for tap in TAPS:  # painting 1 encoded again (alone now: equal up to the order of float sums)
        torch.testing.assert_close(stats2[tap], stats[tap])

    # a run that also needs relu3_1 (a structure term there) encodes the stored photo crops again, with both taps
    wider, wider_calls = _counting_encoder()
    maps3, _, _, _ = FeatureCache(wider, squares, squares, 1, "random-vgg16", tmp_path / "feats",
                               ("relu3_1", "relu4_1")).batch(keys)
    assert wider_calls == [2] and maps3["relu3_1"].shape == (3, 256, 8, 8)
    torch.testing.assert_close(maps3["relu4_1"], maps["relu4_1"])


def test_a_step_on_cached_features_is_the_step_on_pixels(tiny_config, image_dirs):
    """``train_step`` with ``encoded=`` gives the same losses as from the pixels whose encodings they are, with the
    structure term at relu3_1 and relu4_1 and the luma term (which reads the photos' pixels)."""
    cfg = dataclasses.replace(tiny_config, structure_weight=0.5, structure_taps=["relu3_1", "relu4_1"],
                              colour_weight=1.0, palette=True, luma_weight=1.0, raw_colour_weight=1.0)
    squares = _squares(image_dirs)
    content = torch.stack([to_tensor(squares.get(i)) for i in (0, 1)])
    style = torch.stack([to_tensor(squares.get(i)) for i in (2, 3)])
    live = Trainer(cfg, folder_data=False)
    cached = Trainer(cfg, folder_data=False)
    with torch.no_grad():
        fc = live.encoder(content, ("relu3_1", "relu4_1"))
        fs = live.encoder(style, TAPS)
    stats = {t: calc_mean_std(f) for t, f in fs.items()}
    for _ in range(2):
        want = live.train_step(content, style)
        got = cached.train_step(content, style, encoded=(fc, stats))
        assert got.keys() == want.keys() and {"luma", "raw_colour"} <= got.keys()
        assert got == pytest.approx(want, rel=1e-4)
    with pytest.raises(ValueError, match="relu3_1"):  # photos encoded at relu4_1 only
        cached.train_step(content, style, encoded=({"relu4_1": fc["relu4_1"]}, stats))
    with pytest.raises(ValueError, match="luma term needs the photos"):
        cached.train_step(None, style, encoded=(fc, stats))


def test_a_cached_run_trains_resumes_and_refuses_what_it_cannot_serve(tiny_config, tmp_path):
    cfg = dataclasses.replace(tiny_config, cached_crops=2, feature_dir=str(tmp_path / "feats"), log_every=1,
                              structure_weight=0.5, luma_weight=0.5, steps=10)
    straight = Trainer(dataclasses.replace(cfg, out_dir=str(tmp_path / "straight")))
    straight.run()
    # 20 samples of 6 photos × 2 crops: at most 12 encodings, and crops were drawn again
    assert 6 <= len(straight.features.maps) <= 12
    part = dataclasses.replace(cfg, out_dir=str(tmp_path / "split"), steps=3)
    Trainer(part).run()
    resumed = Trainer(dataclasses.replace(part, steps=10), resume=tmp_path / "split" / "checkpoint.pt")
    resumed.run()
    logs = [[json.loads(x)["loss"] for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("straight", "split")]
    assert logs[0] == logs[1] and all(np.isfinite(logs[0]))
    state = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert state["config"]["cached_crops"] == 2

    with pytest.raises(ValueError, match="identity"):
        Trainer(dataclasses.replace(cfg, identity_pixel=1.0))
    with pytest.raises(ValueError, match="relu5_1"):
        Trainer(dataclasses.replace(cfg, structure_taps=["relu5_1"]))
