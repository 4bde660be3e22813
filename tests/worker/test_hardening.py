"""Faults and hostile input against the engine worker: nothing blocks other clients, memory is checked before it is
claimed, every malformed request is a ``BadRequest``, and nothing runs from a folder others could fill.

Real worker processes (started by the client library) where the process matters (RSS, planted modules, a stopped
worker); an in-process :class:`WorkerServer` where only the framing and timeouts matter (fast).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_core.worker import EngineError, WorkerClient, WorkerTimeout
from adain_core.worker.protocol import PROTOCOL_VERSION, recv_message, send_message
from adain_core.worker.server import WorkerServer

REPO = Path(__file__).resolve().parents[2]
STYLE_SIZE = 64
GiB = 1 << 30


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from adain_core.testing import make_random_model

    root = tmp_path_factory.mktemp("hardening-assets")
    model = make_random_model(root / "model.safetensors", seed=0)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "style.png")
    content = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return {"root": root, "model": str(model), "style": str(root / "style.png"), "content": content}


@pytest.fixture(scope="module")
def worker(assets, tmp_path_factory, make_client):
    """One real worker for the tests that neither stop nor kill it; warmed up (model and card cached)."""
    client = make_client(tmp_path_factory.mktemp("rt-hard"), idle_timeout=120, timeout=60)
    client.stylize(assets["content"], assets["style"], model=assets["model"], style_size=STYLE_SIZE)
    yield client
    client.shutdown()


def _connect(client: WorkerClient) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(client.directory / f"{client.name}.sock"))
    sock.settimeout(30)
    return sock


def _stylize_header(assets, shape, **extra):
    return {"op": "stylize", "protocol": PROTOCOL_VERSION, "model": assets["model"],
            "styles": [{"path": assets["style"]}], "style_size": STYLE_SIZE,
            "image": {"shape": list(shape), "dtype": "uint8"}, **extra}


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _timed(fn, limit: float):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) when it takes longer than ``limit`` s."""
    box: dict[str, object] = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still blocked after {limit} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value"), time.monotonic() - started


# ------------------------------------------------------------------ one client never blocks the others
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", ["fifo", "char-device", "directory"])
def test_style_path_that_blocks_is_refused_and_others_finish_on_time(worker, assets, tmp_path, kind,
                                                                     make_client):
    if kind == "fifo":
        style = tmp_path / "style.png"
        os.mkfifo(style)  # nobody ever writes: opening it for reading normally blocks forever
    elif kind == "char-device":
        style = Path("/dev/zero")  # endless
    else:
        style = tmp_path
    blocked_client = make_client(worker.directory, timeout=20)
    other_client = make_client(worker.directory, timeout=20)
    results: dict[str, object] = {}

    def blocked():
        try:
            blocked_client.stylize(assets["content"], str(style), model=assets["model"], style_size=STYLE_SIZE)
        except EngineError as exc:
            results["blocked"] = exc

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    out, took = _timed(lambda: other_client.stylize(assets["content"], assets["style"], model=assets["model"],
                                                    style_size=STYLE_SIZE), 30)
    assert out.shape == assets["content"].shape and took < 30
    thread.join(30)
    assert not thread.is_alive()
    error = results["blocked"]
    assert error.kind == "ImageLoadError" and str(style) in str(error) and "\n" not in str(error)


def test_stray_bytes_mid_job_cancel_it_instead_of_holding_the_lock(worker, assets):
    big = np.tile(assets["content"], (6, 6, 1))
    sock = _connect(worker)
    send_message(sock, _stylize_header(assets, big.shape, tile=64), big.tobytes())
    header, _ = recv_message(sock)  # the first progress message: the job runs
    assert header["type"] == "progress"
    sock.sendall(b"A")  # one byte, never the rest of a frame
    out, took = _timed(lambda: worker.stylize(assets["content"], assets["style"], model=assets["model"],
                                              style_size=STYLE_SIZE), 60)
    assert out.shape == assets["content"].shape
    sock.close()


# ------------------------------------------------------------------ memory is checked before it is claimed
def test_huge_announced_payload_is_read_incrementally(worker, assets):
    """A 29-byte frame announcing a 4 GiB image (a consistent header): the worker's peak RSS does not move."""
    pid = worker.ping()["pid"]
    before = _rss(pid, "VmHWM")
    shape = (32768, 32768, 4)  # exactly 4 GiB of uint8
    sock = _connect(worker)
    body = json.dumps(_stylize_header(assets, shape)).encode()
    sock.sendall(struct.pack("!4sIQ", b"ADN1", len(body), 4 * GiB) + body + b"x" * 29)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert _rss(pid, "VmHWM") - before < 64 << 20
        time.sleep(0.1)
    sock.close()
    assert worker.stylize(assets["content"], assets["style"], model=assets["model"],
                          style_size=STYLE_SIZE).shape == assets["content"].shape
    assert _rss(pid, "VmHWM") - before < 64 << 20


def test_payload_not_matching_its_header_is_refused_unread(worker, assets):
    pid = worker.ping()["pid"]
    before = _rss(pid, "VmHWM")
    sock = _connect(worker)
    body = json.dumps(_stylize_header(assets, (4, 4, 3))).encode()
    sock.sendall(struct.pack("!4sIQ", b"ADN1", len(body), 4 * GiB) + body)
    header, _ = recv_message(sock)
    assert header["kind"] == "BadRequest" and "payload" in header["message"]
    assert sock.recv(1) == b""  # and the connection is closed, nothing drained
    assert _rss(pid, "VmHWM") - before < 64 << 20


def test_memory_budget_is_shared_by_all_connections(assets, tmp_path):
    directory = tmp_path / "rt"
    client = WorkerClient(sys.executable, directory=directory, idle_timeout=30, timeout=30,
                          env={"PYTHONPATH": str(REPO), "ADAIN_WORKER_MAX_MEMORY": "1MB"})
    try:
        small = assets["content"]
        assert client.stylize(small, assets["style"], model=assets["model"], style_size=STYLE_SIZE).shape
        big = np.zeros((1024, 1024, 3), np.uint8)  # 3 MiB > the 1 MiB budget: refused, the client reads why
        with pytest.raises(EngineError, match="cannot hold this image.*ADAIN_WORKER_MAX_MEMORY") as info:
            client.stylize(big, assets["style"], model=assets["model"], style_size=STYLE_SIZE)
        assert info.value.kind == "MemoryError"
    finally:
        client.shutdown()


# ------------------------------------------------------------------ every malformed request is a BadRequest
@pytest.mark.parametrize("patch, field", [
    ({"image": 5}, "image must be an object"),
    ({"image": {"shape": "4x4", "dtype": "uint8"}}, "image.shape"),
    ({"image": {"shape": [4, 4, 3], "dtype": ["uint8"]}}, "image.dtype"),
    ({"styles": "a.png"}, "styles must be a list"),
    ({"styles": [{"path": "a.png", "weight": float("inf")}]}, "style weight"),
    ({"styles": [{"path": "a.png", "weight": 1e308}, {"path": "b.png", "weight": 1e308}]}, "sum to a positive"),
    ({"styles": [{"path": "a.png", "weight": 10 ** 400}]}, "style weight"),
    ({"alpha": float("inf")}, "alpha"),
    ({"alpha": float("nan")}, "alpha"),
    ({"alpha": -1}, "alpha"),
    ({"alpha": "1"}, "alpha"),
    ({"color": ["style"]}, "color"),
    ({"tile": {"x": 1}}, "tile"),
    ({"style_size": 10 ** 9}, "style_size"),
    ({"scale": -0.5}, "scale"),
    ({"scale": True}, "scale"),
    ({"scale": "half"}, "scale"),
    ({"scale": float("nan")}, "scale"),
    ({"marks": 3}, "marks"),
    ({"marks": True}, "marks"),
    ({"backdrop": "drop"}, "backdrop"),
    ({"backdrop": None}, "backdrop"),
    ({"model": {"name": "x"}}, "model"),
    ({"sequence": {"id": ["x"], "temporal": 0.5}}, "sequence.id"),
])
def test_malformed_stylize_is_a_bad_request(worker, assets, patch, field):
    header = {**_stylize_header(assets, (4, 4, 3)), **patch}
    with _connect(worker) as sock:
        send_message(sock, header, bytes(48))
        reply, _ = recv_message(sock)
        assert reply["type"] == "error" and reply["kind"] == "BadRequest", reply
        assert field in reply["message"] and "\n" not in reply["message"]
        send_message(sock, {"op": "ping"})  # the connection is still in step
        assert recv_message(sock)[0]["type"] == "pong"


def test_nan_in_a_float_image_is_a_bad_request(worker, assets):
    image = np.full((8, 8, 3), 0.5, np.float32)
    image[2, 3, 1] = np.nan
    with pytest.raises(EngineError, match="image contains NaN") as info:
        worker.stylize(image, assets["style"], model=assets["model"], style_size=STYLE_SIZE)
    assert info.value.kind == "BadRequest"


@pytest.mark.parametrize("frame", [
    b"[" * 100_000 + b"]" * 100_000,  # deep JSON: the parser would recurse to the interpreter's limit
    b'{"op": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"\xff\xfe not utf-8",
    b"[1, 2]",
])
def test_malformed_frames_are_answered_and_the_worker_lives(worker, frame):
    with _connect(worker) as sock:
        sock.sendall(struct.pack("!4sIQ", b"ADN1", len(frame), 0) + frame)
        reply, _ = recv_message(sock)
    assert reply["kind"] == "BadRequest" and "\n" not in reply["message"]
    assert worker.ping()["type"] == "hello"


def test_payload_on_an_op_without_one_is_a_bad_request(worker):
    with _connect(worker) as sock:
        send_message(sock, {"op": "stats"}, b"xyz")
        reply, _ = recv_message(sock)
        assert reply["kind"] == "BadRequest" and "takes no payload" in reply["message"]
        send_message(sock, {"op": "ping"})
        assert recv_message(sock)[0]["type"] == "pong"


# ------------------------------------------------------------------ timeouts, idle connections, connection bound
@pytest.fixture
def server(tmp_path):
    """An in-process server with short timeouts (no engine is loaded: framing and lifecycle only)."""
    directory = tmp_path / "rt"
    directory.mkdir(mode=0o700)
    made: list[tuple[WorkerServer, threading.Thread]] = []

    def start(**kwargs) -> WorkerServer:
        srv = WorkerServer(directory, "t", **kwargs)
        assert srv.bind()
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        made.append((srv, thread))
        return srv

    yield start
    for srv, thread in made:
        srv.stop()
        thread.join(10)


def _raw(srv: WorkerServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(srv.socket_path))
    sock.settimeout(10)
    return sock


def test_silent_connection_is_closed_and_the_worker_still_idles_out(server):
    srv = server(idle_timeout=1.0, connection_timeout=0.5, read_timeout=0.5)
    silent = _raw(srv)
    assert silent.recv(1) == b""  # closed by the worker within the connection timeout
    deadline = time.monotonic() + 10
    while srv._listener is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv._listener is None, "a silent connection kept the worker alive past its idle timeout"
    silent.close()


def test_half_sent_frame_times_out(server):
    srv = server(idle_timeout=0, connection_timeout=5, read_timeout=0.5)
    with _raw(srv) as sock:
        sock.sendall(struct.pack("!4sIQ", b"ADN1", 100, 0) + b'{"op"')
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 5


def test_connections_are_bounded(server):
    srv = server(idle_timeout=0, connection_timeout=5, max_connections=2)
    held = [_raw(srv) for _ in range(2)]
    for sock in held:  # both are served
        send_message(sock, {"op": "ping"})
        assert recv_message(sock)[0]["type"] == "pong"
    with _raw(srv) as third:
        reply, _ = recv_message(third)
    assert reply["kind"] == "Busy"
    held[0].close()
    deadline = time.monotonic() + 5
    reply = None
    while time.monotonic() < deadline:  # the server frees the slot when it notices the close: retry until then
        try:
            with _raw(srv) as again:
                send_message(again, {"op": "ping"})
                reply = recv_message(again)
        except (BrokenPipeError, ConnectionResetError):  # still full: answered Busy and closed before our ping
            reply = None
        if reply and reply[0]["type"] == "pong":
            break
        time.sleep(0.05)
    assert reply is not None and reply[0]["type"] == "pong"
    held[1].close()


def test_tcp_token_is_checked_before_any_payload(server, monkeypatch):
    monkeypatch.setenv("ADAIN_WORKER_TRANSPORT", "tcp")
    srv = server(idle_timeout=0)
    port = json.loads(srv.address_path.read_text())["port"]
    for header, size in (({"op": "stylize", "image": {"shape": [32768, 32768, 4], "dtype": "uint8"}}, 4 * GiB),
                         ({"op": "hello", "token": "\u00e9\u00e9"}, 0),  # non-ASCII token
                         ({"op": "hello", "token": 12}, 0),
                         ({"op": "hello", "token": "x" * 64}, 5)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            body = json.dumps(header).encode()
            sock.sendall(struct.pack("!4sIQ", b"ADN1", len(body), size) + body)
            reply, _ = recv_message(sock)
            assert reply["kind"] == "Unauthorized"
            assert sock.recv(1) == b""


def test_client_reports_a_stopped_worker_in_one_line(assets, tmp_path, make_client):
    client = make_client(tmp_path / "rt", idle_timeout=60, timeout=1.5)
    pid = client.ping()["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerTimeout, match="sent nothing for 1.5 s.*hung") as info:
            client.stylize(assets["content"], assets["style"], model=assets["model"], style_size=STYLE_SIZE)
        assert time.monotonic() - started < 10 and "\n" not in str(info.value)
        with pytest.raises(WorkerTimeout):
            client.ping()
    finally:
        os.kill(pid, signal.SIGCONT)
    client.shutdown()


# ------------------------------------------------------------------ nothing runs from a folder others could fill
PLANT = """import pathlib; pathlib.Path({marker!r}).write_text("planted code ran")\n"""


def test_modules_planted_in_the_runtime_folder_never_run(assets, tmp_path, make_client):
    directory = tmp_path / "rt"
    directory.mkdir(mode=0o700)
    marker = tmp_path / "PLANTED"
    for rel in ("adain_core/__init__.py", "adain_core/worker/__init__.py", "adain_core/worker/__main__.py",
                "adain_core/worker/server.py", "sitecustomize.py", "numpy.py", "torch.py"):
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PLANT.format(marker=str(marker)))
    client = make_client(directory, idle_timeout=30)
    try:
        assert client.stylize(assets["content"], assets["style"], model=assets["model"],
                              style_size=STYLE_SIZE).shape == assets["content"].shape
        assert not marker.exists()
    finally:
        client.shutdown()


def test_queued_job_repeats_its_progress_so_clients_do_not_time_out(server, assets, monkeypatch):
    """While another job holds the compute lock, a waiting job sends ``queued`` again every HEARTBEAT seconds."""
    import adain_core.worker.server as server_module

    monkeypatch.setattr(server_module, "HEARTBEAT", 0.2)
    srv = server(idle_timeout=0)
    image = assets["content"]
    assert srv._compute.acquire(timeout=5)  # as if a long job were running
    try:
        with _raw(srv) as sock:
            send_message(sock, _stylize_header(assets, image.shape), image.tobytes())
            stages, started = [], time.monotonic()
            while len(stages) < 4:
                reply, _ = recv_message(sock, timeout=5)
                stages.append(reply["stage"])
            assert stages == ["queued"] * 4 and time.monotonic() - started < 5
    finally:
        srv._compute.release()
