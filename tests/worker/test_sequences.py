"""Frame sequences through the engine worker: temporal smoothing of content statistics across stylize requests
(``sequence: {id, temporal}``) equals ``Engine.stylize_frames`` in-process; ids are bounded, end, and a worker
without the feature is replaced."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from adain_core.worker import EngineError
from adain_core.worker.protocol import PROTOCOL_VERSION, recv_message, send_message
from adain_core.worker.server import MAX_SEQUENCES

STYLE_SIZE = 64
TEMPORAL = 0.6
#: float32 output of the worker vs. the engine in this process (as in test_worker.py).
ATOL = 2e-3


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from PIL import Image

    from adain_core.testing import make_random_model

    root = tmp_path_factory.mktemp("sequence-assets")
    model = make_random_model(root / "model.safetensors", seed=0)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "style.png")
    yy, xx = np.mgrid[0:40, 0:56]
    base = np.stack([xx / 56, yy / 40, (xx + yy) / 96], axis=2).astype(np.float32)
    # Brightness and contrast change from frame to frame, so the content statistics (and the smoothing) matter.
    frames = [np.ascontiguousarray(np.clip(base * (0.5 + 0.35 * i) + 0.1 * i, 0, 1), dtype=np.float32)
              for i in range(3)]
    return {"model": str(model), "style": str(root / "style.png"), "frames": frames}



@pytest.fixture(scope="module")
def warm(make_client, tmp_path_factory):
    client = make_client(tmp_path_factory.mktemp("rt-seq"), idle_timeout=120)
    yield client
    client.shutdown()


@pytest.fixture(scope="module")
def reference(assets):
    import adain_core

    engine = adain_core.load(assets["model"])
    card = engine.encode_style(assets["style"], size=STYLE_SIZE)
    smoothed = [np.asarray(o, np.float32) for o in engine.stylize_frames(assets["frames"], card, temporal=TEMPORAL)]
    independent = [np.asarray(engine.stylize(f, card), np.float32) for f in assets["frames"]]
    return smoothed, independent


def test_sequence_matches_stylize_frames_and_differs_from_independent(warm, assets, reference):
    smoothed, independent = reference
    results = list(warm.stylize_frames(assets["frames"], assets["style"], temporal=TEMPORAL, model=assets["model"],
                                       style_size=STYLE_SIZE))
    assert [r.sequence["frames"] for r in results] == [1, 2, 3]
    for i, (result, expected) in enumerate(zip(results, smoothed)):
        np.testing.assert_allclose(result.array(), expected, atol=ATOL, err_msg=f"frame {i}")
    # Smoothing did something: later frames differ from frames stylised on their own (the first cannot).
    assert np.abs(results[2].array() - independent[2]).max() > 10 * ATOL
    # The generator ended the sequence in the worker.
    assert warm.stats()["sequences"] == 0


def test_single_requests_with_explicit_ids_and_end_sequence(warm, assets, reference):
    smoothed, independent = reference
    frames, common = assets["frames"], dict(model=assets["model"], style_size=STYLE_SIZE)
    # Two interleaved sequences keep separate state; temporal 0 on a sequence is independent stylisation.
    a = [warm.stylize(f, assets["style"], sequence=("a", TEMPORAL), **common) for f in frames[:2]]
    b = warm.stylize(frames[2], assets["style"], sequence=("b", TEMPORAL), **common)
    a.append(warm.stylize(frames[2], assets["style"], sequence=("a", TEMPORAL), **common))
    zero = [warm.stylize(f, assets["style"], sequence=("z", 0.0), **common) for f in frames]
    np.testing.assert_allclose(a[2].array(), smoothed[2], atol=ATOL)
    np.testing.assert_allclose(b.array(), independent[2], atol=ATOL)
    np.testing.assert_allclose(zero[2].array(), independent[2], atol=ATOL)
    assert (a[2].sequence, b.sequence) == ({"id": "a", "frames": 3}, {"id": "b", "frames": 1})
    assert warm.end_sequence("a") and not warm.end_sequence("a")
    restarted = warm.stylize(frames[2], assets["style"], sequence=("a", TEMPORAL), **common)
    assert restarted.sequence["frames"] == 1
    np.testing.assert_allclose(restarted.array(), independent[2], atol=ATOL)
    for name in ("a", "b", "z"):
        warm.end_sequence(name)


def test_sequence_count_is_bounded(warm, assets):
    tiny = np.zeros((8, 8, 3), np.uint8)
    for i in range(MAX_SEQUENCES + 2):
        warm.stylize(tiny, assets["style"], model=assets["model"], style_size=STYLE_SIZE, sequence=(f"s{i}", 0.5))
    assert warm.stats()["sequences"] == MAX_SEQUENCES
    assert not warm.end_sequence("s0") and warm.end_sequence(f"s{MAX_SEQUENCES + 1}")  # least recently used went
    for i in range(MAX_SEQUENCES + 2):
        warm.end_sequence(f"s{i}")


@pytest.mark.parametrize("sequence, message", [
    ({"id": "", "temporal": 0.5}, "sequence.id"),
    ({"id": "x", "temporal": 1.0}, "sequence.temporal"),
    ({"id": "x", "temporal": "high"}, "sequence.temporal"),
    ("x", "sequence must be an object"),
])
def test_bad_sequence_is_a_bad_request(warm, assets, sequence, message):
    warm.ping()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(warm.directory / f"{warm.name}.sock"))
        send_message(sock, {"op": "stylize", "model": assets["model"], "styles": [{"path": assets["style"]}],
                            "image": {"shape": [4, 4, 3], "dtype": "uint8"}, "sequence": sequence}, bytes(48))
        header, _ = recv_message(sock)
    assert header["kind"] == "BadRequest" and message in header["message"]


class _OldWorker(threading.Thread):
    """A worker of an engine from before frame sequences: its hello has no ``features``."""

    def __init__(self, path: Path, obeys_shutdown: bool) -> None:
        super().__init__(daemon=True)
        self.path, self.obeys_shutdown = path, obeys_shutdown
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.shutdowns = 0

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while (message := recv_message(conn)) is not None:
                    op = message[0].get("op")
                    if op == "hello":
                        send_message(conn, {"type": "hello", "protocol": PROTOCOL_VERSION, "pid": None,
                                            "engine_version": "0.0-old"})
                    elif op == "shutdown":
                        self.shutdowns += 1
                        send_message(conn, {"type": "bye"})
                        if self.obeys_shutdown:
                            self.close()
                            return

    def close(self) -> None:
        self.listener.close()
        if self.path.exists():
            os.unlink(self.path)


def test_worker_without_sequences_is_replaced(make_client, assets, tmp_path):
    client = make_client(tmp_path / "rt", idle_timeout=30)
    old = _OldWorker(client.directory / f"{client.name}.sock", obeys_shutdown=True)
    old.start()
    result = client.stylize(assets["frames"][0], assets["style"], model=assets["model"], style_size=STYLE_SIZE,
                            sequence=("x", TEMPORAL))
    assert old.shutdowns == 1 and result.sequence == {"id": "x", "frames": 1}
    client.shutdown()


def test_engine_without_sequences_says_to_upgrade(make_client, assets, tmp_path):
    client = make_client(tmp_path / "rt")
    old = _OldWorker(client.directory / f"{client.name}.sock", obeys_shutdown=False)
    old.start()
    try:
        with pytest.raises(EngineError, match="0.0-old.*does not support sequence.*upgrade") as info:
            client.stylize(np.zeros((4, 4, 3), np.uint8), assets["style"], marks=0, sequence=("x", TEMPORAL))
        assert info.value.kind == "Unsupported"
        # Without a sequence (or temporal 0) the old worker is fine: nothing is required of it.
        assert client.ping()["engine_version"] == "0.0-old"
    finally:
        old.close()
