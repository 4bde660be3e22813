"""Fuzzing the worker's framing and request parsing (hypothesis): random bytes, truncated frames, mutated headers and
huge announced sizes. Allowed outcomes: a frame, a clean end, or ``ProtocolError``; a parsed request or
``BadRequest`` — within a read deadline and without allocating what a header merely announces."""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adain_core.worker.protocol import MAX_PAYLOAD, ProtocolError, recv_header, recv_message, recv_payload  # noqa: E402
from adain_core.worker.server import _parse_stylize, _RequestError  # noqa: E402

#: seeded (derandomize) and without an example database: the same examples on every run, no files written.
FUZZ = settings(max_examples=200, deadline=3000, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

_VALID = json.dumps({"op": "stylize", "styles": [{"path": "/x.png"}], "image": {"shape": [2, 2, 3],
                                                                                 "dtype": "uint8"}}).encode()
_FRAME = struct.pack("!4sIQ", b"ADN1", len(_VALID), 12) + _VALID + bytes(12)


def _frames():
    return st.one_of(
        st.binary(max_size=2048),
        st.integers(0, len(_FRAME)).map(lambda n: _FRAME[:n]),
        st.tuples(st.integers(0, len(_FRAME) - 1), st.binary(min_size=1, max_size=16)).map(
            lambda t: _FRAME[:t[0]] + t[1] + _FRAME[t[0] + len(t[1]):]),
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)).map(
            lambda t: struct.pack("!4sIQ", b"ADN1", *t) + _VALID),
    )


@FUZZ
@given(_frames())
def test_framing_fuzz(data: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        writer = threading.Thread(target=lambda: (a.sendall(data), a.shutdown(socket.SHUT_WR)), daemon=True)
        writer.start()
        try:
            got = recv_header(b, timeout=1.0, max_payload=1 << 20)
            if got is not None:
                header, size = got
                assert isinstance(header, dict) and 0 <= size <= 1 << 20
                payload = recv_payload(b, size, timeout=1.0)
                assert len(payload) == size
        except ProtocolError as exc:
            assert "\n" not in str(exc)
        writer.join(5)


@FUZZ
@given(st.integers(MAX_PAYLOAD + 1, 2**64 - 1))
def test_huge_announcement_is_refused_before_allocating(size: int) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack("!4sIQ", b"ADN1", 2, size) + b"{}")
        with pytest.raises(ProtocolError, match="too large"):
            recv_message(b, timeout=1.0)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_fields = st.fixed_dictionaries({}, optional={
    key: _json for key in ("image", "mask", "styles", "alpha", "color", "tile", "style_size", "scale", "marks",
                           "model", "sequence", "protocol")
})
_image = st.fixed_dictionaries({"shape": st.lists(st.integers(-2, 2**20), max_size=4),
                                "dtype": st.sampled_from(["uint8", "float32", "int8", 5])})


@FUZZ
@given(_fields, st.one_of(st.none(), _image), st.integers(0, 2**40))
def test_request_parser_fuzz(fields, image, payload_size) -> None:
    header = dict(fields)
    if image is not None:
        header["image"] = image
    try:
        request = _parse_stylize(header, payload_size)
    except _RequestError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return
    assert request["image"]["nbytes"] + (request["mask"]["nbytes"] if request["mask"] else 0) == payload_size
    assert request["alpha"] >= 0 and request["styles"]
