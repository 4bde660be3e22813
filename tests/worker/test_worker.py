"""The engine worker end to end, without GIMP: real worker processes started by the client library."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from PIL import Image

from adain_core.vocabulary import DEFAULT_MARKS
from adain_core.worker import (BUNDLED_NAME, EngineError, WorkerCancelled, WorkerClient, WorkerCrashed,
                                WorkerUnavailable, client_files)
from adain_core.worker.protocol import recv_message, send_message

STYLE_SIZE = 64
#: the worker and this process run the same engine code on the same CPU; rounding to uint8 may flip by 1 level
#: where the float summation order differs (thread count).
MAX_LEVELS = 2


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from adain_core.testing import make_random_model

    root = tmp_path_factory.mktemp("worker-assets")
    model = make_random_model(root / "model.safetensors", seed=0)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "style_a.png")
    gradient = np.linspace(0, 90, 64, dtype=np.float32)[None, :, None] * np.array([0.3, 0.5, 1.0])
    Image.fromarray(np.repeat(gradient, 48, axis=0).astype(np.uint8)).save(root / "style_b.png")  # dark, smooth
    yy, xx = np.mgrid[0:40, 0:56]
    content = np.stack([xx * 4, yy * 6, (xx + yy) * 2, 100 + xx * 2], axis=2).astype(np.uint8)
    return {"root": root, "model": str(model), "style_a": str(root / "style_a.png"),
            "style_b": str(root / "style_b.png"), "content": content}



@pytest.fixture(scope="module")
def warm(make_client, assets, tmp_path_factory):
    """One worker shared by the tests that do not kill or time it out."""
    client = make_client(tmp_path_factory.mktemp("rt-shared"), idle_timeout=120)
    yield client
    client.shutdown()


@pytest.fixture(scope="module")
def reference(assets):
    import adain_core

    engine = adain_core.load(assets["model"])
    cards = {}

    def stylize(rgb_float: np.ndarray, style: str = "style_a", scale: float | str = 1.0,
                marks: float = DEFAULT_MARKS) -> np.ndarray:
        if style not in cards:
            cards[style] = engine.encode_style(assets[style], size=STYLE_SIZE)
        # the engine's default colour mode: the worker's too when a request names none
        return np.clip(np.asarray(engine.stylize(rgb_float, cards[style], alpha=1.0, scale=scale, marks=marks),
                                  dtype=np.float32), 0, 1)

    return stylize


def _run(client, assets, image, **kwargs):
    kwargs.setdefault("model", assets["model"])
    kwargs.setdefault("style_size", STYLE_SIZE)
    return client.stylize(image, assets["style_a"], **kwargs)


def test_uint8_rgba_matches_engine_and_keeps_alpha(warm, assets, reference):
    content = assets["content"]
    result = _run(warm, assets, content)
    out = result.array()
    assert out.shape == content.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], content[..., 3])
    expected = np.rint(reference(content[..., :3].astype(np.float32) / 255) * 255).astype(np.int16)
    assert np.abs(out[..., :3].astype(np.int16) - expected).max() <= MAX_LEVELS


def test_float32_rgb_bytes_interface(warm, assets, reference):
    content = assets["content"][..., :3].astype(np.float32) / 255
    result = _run(warm, assets, content.tobytes(), shape=content.shape, dtype="float32")
    assert result.shape == content.shape and result.dtype == "float32"
    np.testing.assert_allclose(result.array(), reference(content), atol=2e-3)


def test_working_resolution_matches_the_engine(warm, assets, reference):
    content = assets["content"][..., :3].astype(np.float32) / 255
    result = _run(warm, assets, content.tobytes(), shape=content.shape, dtype="float32", scale=0.5)
    assert result.shape == content.shape
    np.testing.assert_allclose(result.array(), reference(content, scale=0.5), atol=2e-3)


def test_marks_match_the_engine(warm, assets, reference):
    content = assets["content"][..., :3].astype(np.float32) / 255
    result = _run(warm, assets, content.tobytes(), shape=content.shape, dtype="float32", marks=1.0)
    np.testing.assert_allclose(result.array(), reference(content, marks=1.0), atol=2e-3)
    assert np.abs(reference(content, marks=1.0) - reference(content)).max() > 0.01


def test_second_run_hits_the_caches(warm, assets):
    _run(warm, assets, assets["content"])
    second = _run(warm, assets, assets["content"])
    assert second.cache == {"model": True, "styles": [True]}
    assert second.timings["load_model"] < 0.05 and second.timings["encode_style"] < 0.05


def test_style_card_cache_key_is_file_and_size(warm, assets):
    """A card depends on the style file and the style size; the colour mode is applied later, to the same card."""
    _run(warm, assets, assets["content"])
    assert _run(warm, assets, assets["content"], style_size=96).cache["styles"] == [False]
    assert _run(warm, assets, assets["content"], color="luminance").cache["styles"] == [True]
    # naming the default colour mode (which needs the worker's "palette" feature) changes nothing
    default = _run(warm, assets, assets["content"]).array()
    np.testing.assert_array_equal(_run(warm, assets, assets["content"], color="palette").array(), default)


def test_cut_out_style_backdrop_matches_the_engine(warm, assets):
    """A figure on white: the worker leaves the surround out (the default) or keeps it as the engine does, and the
    card cache tells the two apart."""
    import adain_core

    figure = np.full((48, 48, 3), 255, np.uint8)
    figure[12:36, 12:36] = np.asarray(Image.open(assets["style_a"]))[:24, :24]
    path = assets["root"] / "cut_out.png"
    Image.fromarray(figure).save(path)
    content = assets["content"][..., :3].astype(np.float32) / 255
    engine = adain_core.load(assets["model"])
    for backdrop, cached in (("ignore", False), ("keep", False), ("ignore", True)):
        result = warm.stylize(content.tobytes(), str(path), shape=content.shape, dtype="float32",
                              model=assets["model"], style_size=STYLE_SIZE, backdrop=backdrop)
        assert result.cache["styles"] == [cached]
        card = engine.encode_style(path, size=STYLE_SIZE, backdrop=backdrop)
        assert (card.painted[0] is None) == (backdrop == "keep")
        expected = np.clip(np.asarray(engine.stylize(content, card, alpha=1.0), dtype=np.float32), 0, 1)
        np.testing.assert_allclose(result.array(), expected, atol=2e-3)


def test_mask_keeps_unmasked_pixels_exactly(warm, assets):
    content = assets["content"][..., :3].astype(np.float32) / 255
    mask = np.zeros(content.shape[:2], np.float32)
    mask[10:30, 20:40] = 1.0
    out = _run(warm, assets, content, mask=mask).array()
    np.testing.assert_array_equal(out[mask == 0], content[mask == 0])
    assert np.abs(out[mask == 1] - content[mask == 1]).mean() > 0.02


def test_two_styles_mixed(warm, assets):
    content = assets["content"]
    a = _run(warm, assets, content).array().astype(int)
    mixed = warm.stylize(content, [(assets["style_a"], 0.5), (assets["style_b"], 0.5)], model=assets["model"],
                         style_size=STYLE_SIZE)
    assert len(mixed.cache["styles"]) == 2
    assert np.abs(mixed.array().astype(int) - a).mean() > 1


def test_progress_reports_stages(warm, assets):
    seen = []
    _run(warm, assets, assets["content"], progress=lambda done, total, stage: seen.append((stage, done, total)))
    assert ("stylizing", 1, 1) in seen or any(s == "stylizing" and d == t > 0 for s, d, t in seen)


def test_engine_errors_reach_the_client(warm, assets, tmp_path):
    with pytest.raises(EngineError, match="nope.png") as info:
        warm.stylize(assets["content"], str(tmp_path / "nope.png"), model=assets["model"])
    assert info.value.kind == "ImageLoadError"
    with pytest.raises(EngineError) as info:
        warm.stylize(assets["content"], assets["style_a"], model=str(tmp_path / "missing.safetensors"))
    assert info.value.kind == "ModelError"
    with pytest.raises(EngineError, match="color must be one of") as info:
        _run(warm, assets, assets["content"], color="sepia")
    assert info.value.kind == "BadRequest"


def test_two_concurrent_clients_get_their_own_results(make_client, warm, assets, reference):
    """Two client objects (as two GIMP windows would be) at once, on different images: both served correctly."""
    first = assets["content"]
    second = np.ascontiguousarray(first[::-1, ::-1])
    results, errors = {}, []

    def work(name, image):
        try:
            client = make_client(warm.directory)
            results[name] = [client.stylize(image, assets["style_a"], model=assets["model"],
                                            style_size=STYLE_SIZE).array() for _ in range(2)]
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    jobs = (("first", first), ("second", second))
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for name, image in (("first", first), ("second", second)):
        expected = np.rint(reference(image[..., :3].astype(np.float32) / 255) * 255)
        for out in results[name]:
            assert np.abs(out[..., :3] - expected).max() <= MAX_LEVELS


def test_cancel_stops_the_job_and_the_worker_carries_on(warm, assets):
    big = np.tile(assets["content"], (4, 4, 1))
    with pytest.raises(WorkerCancelled):
        _run(warm, assets, big, tile=64, cancel=lambda: True)
    assert _run(warm, assets, assets["content"]).shape == assets["content"].shape


def test_client_that_vanishes_mid_job_does_not_hurt(warm, assets):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(warm.directory / f"{warm.name}.sock"))
    image = np.tile(assets["content"], (4, 4, 1))
    send_message(sock, {"op": "stylize", "model": assets["model"], "styles": [{"path": assets["style_a"]}],
                        "style_size": STYLE_SIZE, "tile": 64,
                        "image": {"shape": list(image.shape), "dtype": "uint8"}}, image.tobytes())
    sock.close()
    assert _run(warm, assets, assets["content"]).shape == assets["content"].shape


def test_bad_payload_size_is_a_bad_request(warm, assets):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(warm.directory / f"{warm.name}.sock"))
    with sock:
        send_message(sock, {"op": "stylize", "styles": [{"path": assets["style_a"]}],
                            "image": {"shape": [4, 4, 3], "dtype": "uint8"}}, b"x" * 10)
        header, _ = recv_message(sock)
    assert header["type"] == "error" and header["kind"] == "BadRequest" and "payload" in header["message"]


def test_socket_is_private(warm):
    warm.ping()
    assert stat.S_IMODE(warm.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((warm.directory / f"{warm.name}.sock").stat().st_mode) & 0o077 == 0


def test_client_works_without_numpy_or_torch(warm, assets, tmp_path):
    """GIMP's Python has neither: bundle the client as the installers do (``adain_worker``), import it like any
    package, and stylise bytes."""
    bundled = tmp_path / BUNDLED_NAME
    bundled.mkdir()
    for path in client_files():
        shutil.copy(path, bundled / path.name)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["numpy"] = None; sys.modules["torch"] = None      # any import of them now fails
        sys.path.insert(0, {str(tmp_path)!r})
        import adain_worker as w
        c = w.WorkerClient({sys.executable!r}, directory={str(warm.directory)!r})
        r = c.stylize(bytes(8 * 8 * 4), {assets["style_a"]!r}, shape=(8, 8, 4), dtype="uint8",
                      model={assets["model"]!r}, style_size=64)
        assert r.shape == (8, 8, 4) and len(r.data) == 256
        assert "adain_core" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_concurrent_first_calls_start_one_worker(make_client, assets, tmp_path):
    directory = tmp_path / "rt"
    pids, errors = [], []

    def ping():
        try:
            pids.append(make_client(directory, idle_timeout=30).ping()["pid"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=ping) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and len(set(pids)) == 1
    make_client(directory).shutdown()


def test_crash_mid_job_restarts_once_and_retries(make_client, assets, tmp_path):
    client = make_client(tmp_path / "rt", idle_timeout=30)
    first_pid = client.ping()["pid"]
    killed = []

    def kill_once(done, total, stage):
        if not killed:
            killed.append(client.worker_pid)
            os.kill(client.worker_pid, signal.SIGKILL)

    result = _run(client, assets, assets["content"], progress=kill_once)
    assert killed == [first_pid] and client.worker_pid != first_pid
    assert result.shape == assets["content"].shape
    client.shutdown()


def test_crash_twice_gives_a_clear_error(make_client, assets, tmp_path):
    client = make_client(tmp_path / "rt", idle_timeout=30)

    def kill_always(done, total, stage):
        os.kill(client.worker_pid, signal.SIGKILL)

    with pytest.raises(WorkerCrashed, match="stopped unexpectedly twice.*log"):
        _run(client, assets, assets["content"], progress=kill_always)
    client.shutdown()


def test_idle_timeout_exits_and_removes_the_socket(make_client, assets, tmp_path):
    client = make_client(tmp_path / "rt", idle_timeout=1)
    client.ping()
    socket_file = client.directory / f"{client.name}.sock"
    assert socket_file.exists()
    # Watch the socket file, not the worker: a ping would be activity and restart the idle clock.
    deadline = time.monotonic() + 30
    while socket_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not socket_file.exists()
    assert not client.is_running()


def test_missing_engine_python_says_what_to_run(tmp_path):
    with pytest.raises(WorkerUnavailable, match="does not exist.*adain install gimp"):
        WorkerClient(tmp_path / "nope" / "python", directory=tmp_path / "rt")


def test_python_without_engine_reports_the_import_error(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named adain_core' >&2\nexit 1\n")
    fake.chmod(0o755)
    client = WorkerClient(fake, directory=tmp_path / "rt", start_timeout=20)
    with pytest.raises(WorkerUnavailable, match="No module named adain_core.*adain install gimp"):
        client.ping()


def test_no_configuration_at_all(monkeypatch, tmp_path):
    # as in a host Python without the engine: no ADAIN_PYTHON, no config file, no torch here
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    with pytest.raises(WorkerUnavailable, match="no engine Python is configured"):
        WorkerClient(directory=tmp_path / "rt")


def test_tcp_transport_with_token(make_client, assets, tmp_path, monkeypatch):
    """The Windows fallback, forced on Linux: loopback TCP plus a 0600 token file; a wrong token is refused."""
    monkeypatch.setenv("ADAIN_WORKER_TRANSPORT", "tcp")
    client = make_client(tmp_path / "rt", idle_timeout=30)
    assert _run(client, assets, assets["content"]).shape == assets["content"].shape
    address = client.directory / f"{client.name}.json"
    assert stat.S_IMODE(address.stat().st_mode) == 0o600
    import json

    port = json.loads(address.read_text())["port"]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        send_message(sock, {"op": "hello", "token": "wrong"})
        header, _ = recv_message(sock)
    assert header["kind"] == "Unauthorized"
    client.shutdown()
