"""Frames, the runtime directory and the config file: no worker process, no torch."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading

import pytest

from adain_core.worker import config, protocol
from adain_core.worker.protocol import ProtocolError, recv_message, send_message


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frame_round_trip(pair):
    a, b = pair
    payload = bytes(range(256)) * 10
    send_message(a, {"op": "stylize", "x": [1, 2]}, payload)
    send_message(a, {"op": "ping"})
    header, data = recv_message(b)
    assert header == {"op": "stylize", "x": [1, 2]} and bytes(data) == payload
    assert recv_message(b) == ({"op": "ping"}, bytearray())


def test_large_payload_through_a_thread(pair):
    a, b = pair
    payload = os.urandom(3 << 20)  # larger than the socket buffer: needs a concurrent reader
    sender = threading.Thread(target=send_message, args=(a, {"op": "big"}, memoryview(payload)))
    sender.start()
    header, data = recv_message(b)
    sender.join()
    assert header["op"] == "big" and bytes(data) == payload


def test_clean_close_between_frames_is_none(pair):
    a, b = pair
    a.close()
    assert recv_message(b) is None


def test_close_mid_frame_raises(pair):
    a, b = pair
    a.sendall(struct.pack("!4sIQ", b"ADN1", 100, 0) + b'{"op"')
    a.close()
    with pytest.raises(ProtocolError, match="closed after"):
        recv_message(b)


def test_bad_magic_raises(pair):
    a, b = pair
    a.sendall(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError, match="not an AdaIN worker frame"):
        recv_message(b)


def test_oversized_frame_refused_before_reading(pair):
    a, b = pair
    a.sendall(struct.pack("!4sIQ", b"ADN1", 2, 1 << 40))
    with pytest.raises(ProtocolError, match="too large"):
        recv_message(b)


def test_runtime_dir_is_private(tmp_path):
    path = protocol.runtime_dir(tmp_path / "rt")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    assert stat.S_IMODE(protocol.runtime_dir(loose).stat().st_mode) == 0o700


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="chown to another user needs root")
def test_runtime_dir_of_another_user_is_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 65534, 65534)
    with pytest.raises(PermissionError, match="another user"):
        protocol.runtime_dir(other)


def test_endpoint_name_depends_on_python_only():
    assert protocol.endpoint_name("/a/bin/python") == protocol.endpoint_name("/a/bin/python")
    assert protocol.endpoint_name("/a/bin/python") != protocol.endpoint_name("/b/bin/python")


def test_config_merge_and_remove(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "sub" / "engine.json"))
    assert config.read_config() == {}
    config.write_config(python="/x/python", model="m")
    config.write_config(model=None)
    assert config.read_config() == {"python": "/x/python"}
