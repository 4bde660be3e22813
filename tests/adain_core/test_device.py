"""Device and precision choice, autocast, memory queries and size parsing."""

from __future__ import annotations

import pytest
import torch

from adain_core import ValueRangeError
from adain_core.device import autocast, cpu_has_bf16, free_memory_bytes, parse_size, pick_device, pick_precision


def test_auto_device_order() -> None:
    dev = pick_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_or_unavailable_device() -> None:
    with pytest.raises(ValueRangeError, match="not a valid device"):
        pick_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueRangeError, match="CUDA is not available"):
            pick_device("cuda")


def test_precision_choice() -> None:
    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == ("bf16" if cpu_has_bf16() else "fp32")
    assert pick_precision("auto", torch.device("cuda")) == "fp16"
    for p in ("fp32", "bf16", "fp16"):
        assert pick_precision(p, cpu) == p
    with pytest.raises(ValueRangeError, match="precision"):
        pick_precision("int8", cpu)


def test_autocast_contexts() -> None:
    a, b = torch.rand(4, 4), torch.rand(4, 4)
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ b).dtype == torch.bfloat16


def test_free_memory_is_positive() -> None:
    assert free_memory_bytes(torch.device("cpu")) > 2**20


@pytest.mark.parametrize("text,expected", [("3GB", 3 * 2**30), ("512MB", 512 * 2**20), ("1.5G", int(1.5 * 2**30)),
                                           ("2 GiB", 2 * 2**30), ("1024", 1024), (4096, 4096), ("64k", 64 * 2**10)])
def test_parse_size(text, expected) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GB", "3 parsecs", "-1GB", "0", 0, -5])
def test_parse_size_rejects(bad) -> None:
    with pytest.raises(ValueRangeError):
        parse_size(bad)


def test_host_device_copies_keep_values() -> None:
    """CPU: plain copies. CUDA (when present): through pinned memory with non-blocking copies, same values."""
    from adain_core.device import to_device, to_host

    x = torch.rand(2, 3, 5, 7).permute(0, 1, 3, 2)  # non-contiguous, as host tensors arrive
    assert torch.equal(to_host(to_device(x, torch.device("cpu"))), x)
    if torch.cuda.is_available():
        on_gpu = to_device(x, torch.device("cuda"))
        assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), x)
        back = to_host(on_gpu * 2)
        assert back.device.type == "cpu" and back.is_pinned() and torch.equal(back, x * 2)


def test_colour_statistics_stay_on_the_device_that_has_float64() -> None:
    """The palette/preserve statistics (float64) run where the result is, except on MPS (no float64 there)."""
    from adain_core.device import colour_device

    for name, where in (("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("mps", "cpu")):
        assert colour_device(torch.device(name)) == torch.device(where)
