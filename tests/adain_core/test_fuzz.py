"""Fuzzing the file readers (hypothesis): random bytes, truncations, mutated headers and huge announced sizes given
to the style-card and model readers. The only outcomes allowed are a valid result or the project's own error, in
bounded time (hypothesis' deadline) and memory (safetensors refuses headers beyond its limit before allocating)."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adain_core import CardError, ModelError, StyleCard  # noqa: E402
from adain_core.store import build_decoder_from, read_model  # noqa: E402

#: seeded (derandomize) and without an example database: the same examples on every run, no files written.
FUZZ = settings(max_examples=60, deadline=3000, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def card_bytes(random_engine, make_image) -> bytes:
    card = random_engine.encode_style(make_image(24, 24, seed=3), size=16, name="fuzz")
    with tempfile.TemporaryDirectory() as d:
        return card.save(Path(d) / "c.adainstyle.safetensors").read_bytes()


@pytest.fixture(scope="module")
def model_bytes(random_model_path) -> bytes:
    return Path(random_model_path).read_bytes()


def _mutations(valid: bytes):
    """Strategies of damaged versions of ``valid``."""
    header_len = struct.unpack("<Q", valid[:8])[0]
    return st.one_of(
        st.binary(max_size=4096),                                                         # random bytes
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),                          # truncations
        st.tuples(st.integers(8, 8 + header_len - 1), st.binary(min_size=1, max_size=8)).map(  # mutated JSON header
            lambda t: valid[:t[0]] + t[1] + valid[t[0] + len(t[1]):]),
        st.tuples(st.integers(8 + header_len, len(valid) - 1), st.binary(min_size=1, max_size=64)).map(  # data
            lambda t: valid[:t[0]] + t[1] + valid[t[0] + len(t[1]):]),
        st.integers(0, 2**64 - 1).map(lambda n: struct.pack("<Q", n) + valid[8:]),        # announced header size
    )


def _write(data: bytes, suffix: str) -> Path:
    fh = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    with fh:
        fh.write(data)
    return Path(fh.name)


def test_card_reader_fuzz(card_bytes):
    @FUZZ
    @given(_mutations(card_bytes))
    def check(data: bytes) -> None:
        path = _write(data, ".adainstyle.safetensors")
        try:
            card = StyleCard.load(path)
        except CardError as exc:
            assert "\n" not in str(exc)
            return
        finally:
            path.unlink()
        card.check()  # whatever loads is valid: finite, non-negative std, right shapes
        assert bool(torch.isfinite(card.mean).all()) and bool((card.std >= 0).all())

    check()


def test_model_reader_fuzz(model_bytes):
    @FUZZ
    @given(_mutations(model_bytes))
    def check(data: bytes) -> None:
        path = _write(data, ".safetensors")
        try:
            build_decoder_from(read_model(path))
        except ModelError as exc:
            assert "\n" not in str(exc)
        finally:
            path.unlink()

    check()
