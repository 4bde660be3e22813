"""Frames, the runtime directory and the plug-in installer: no worker process, no torch."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import threading

import pytest

from adain_core.worker import config, protocol
from adain_core.worker.install import PLUGIN_NAME, install_gimp_plugin
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


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o777, 0o701])
def test_runtime_dir_open_to_others_is_refused_not_tightened(tmp_path, mode):
    """A folder that was open may hold planted files (a socket, a module): it is refused, never chmod-ed and used."""
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, mode)
    with pytest.raises(PermissionError, match="open to other users.*remove it"):
        protocol.runtime_dir(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == mode


def test_runtime_dir_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(PermissionError, match="not a plain directory"):
        protocol.runtime_dir(tmp_path / "link")


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


def test_install_gimp_plugin_copies_and_records_python(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    monkeypatch.delenv("ADAIN_PYTHON", raising=False)
    target = install_gimp_plugin(tmp_path / "plug-ins")
    script = target / f"{PLUGIN_NAME}.py"
    assert target == tmp_path / "plug-ins" / PLUGIN_NAME and script.is_file() and not target.is_symlink()
    assert os.access(script, os.X_OK)
    assert not list(target.rglob("__pycache__"))
    import sys

    assert json.loads((tmp_path / "engine.json").read_text())["python"] == os.path.abspath(sys.executable)
    # Reinstall over it, linked this time, with ADAIN_PYTHON overriding the recorded Python.
    monkeypatch.setenv("ADAIN_PYTHON", sys.executable)
    linked = install_gimp_plugin(tmp_path / "plug-ins", link=True)
    assert linked.is_symlink() and (linked / f"{PLUGIN_NAME}.py").is_file()


def test_install_gimp_plugin_default_folder_follows_gimp3_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "gimp3"))
    assert install_gimp_plugin() == tmp_path / "gimp3" / "plug-ins" / PLUGIN_NAME


def test_install_refuses_missing_python(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        install_gimp_plugin(tmp_path / "plug-ins", python=tmp_path / "nope" / "python")
    assert not (tmp_path / "engine.json").exists()


def test_config_merge_and_remove(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "sub" / "engine.json"))
    assert config.read_config() == {}
    config.write_config(python="/x/python", model="m")
    config.write_config(model=None)
    assert config.read_config() == {"python": "/x/python"}
