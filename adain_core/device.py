"""Device and precision choice: ``auto`` picks CUDA → MPS → CPU, and fp16 on CUDA, bf16 autocast on CPUs with
native bf16 (AVX-512 bf16 / AMX), else fp32. Also free-memory queries used by the memory pre-flight."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator

import torch

from .errors import ValueRangeError
from .vocabulary import PRECISIONS

__all__ = ["PRECISIONS", "pick_device", "pick_precision", "autocast", "cpu_has_bf16", "free_memory_bytes",
           "parse_size", "to_device", "to_host", "colour_device"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → cuda if available, else mps, else cpu; anything else is parsed by ``torch.device``.

    Raises:
        ValueRangeError: an unknown device string, or CUDA/MPS asked for but unavailable.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueRangeError(f"device {device!r} is not a valid device (auto, cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueRangeError(f"device {device!r} asked for, but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueRangeError(f"device {device!r} asked for, but MPS is not available here")
    return dev


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (avx512_bf16 or amx_bf16 in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def pick_precision(precision: str, device: torch.device) -> str:
    """Resolve ``auto`` to ``fp16`` (CUDA/MPS), ``bf16`` (CPU with native bf16) or ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueRangeError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type in ("cuda", "mps"):
        return "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=_DTYPES[precision]):
        yield


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy ``x`` to ``device``. CPU → CUDA goes through page-locked (pinned) memory with a non-blocking copy, so the
    host is free while the transfer runs and the GPU's copy engine reads at full speed; anything else is ``x.to``."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def to_host(x: torch.Tensor) -> torch.Tensor:
    """Copy ``x`` to the CPU. From CUDA: a non-blocking copy into a pinned buffer, then one wait on the stream (the
    queued kernels and the copy run back to back, without a pageable staging copy); on the CPU: ``x`` itself."""
    if x.device.type != "cuda":
        return x.cpu()
    out = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
    out.copy_(x, non_blocking=True)
    torch.cuda.current_stream(x.device).synchronize()
    return out


def colour_device(device: torch.device) -> torch.device:
    """Where the colour modes' statistics (float64, :mod:`adain_core.color`) run for a result on ``device``: on the
    device itself, so that only the finished image crosses to the host, except on MPS, which has no float64 (CPU)."""
    return torch.device("cpu") if device.type == "mps" else device


def free_memory_bytes(device: torch.device) -> int:
    """Free memory the job may use: free VRAM on CUDA, MemAvailable on the CPU (and MPS, which shares it)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}


def parse_size(size: str | int | float) -> int:
    """``"3GB"``, ``"512MiB"``, ``"1.5G"`` or a byte count → bytes (binary units).

    Raises:
        ValueRangeError: not a size.
    """
    if isinstance(size, (int, float)):
        if size <= 0:
            raise ValueRangeError(f"memory size must be positive, got {size}")
        return int(size)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", size)
    if not m or m.group(2).upper() not in _UNITS or float(m.group(1)) <= 0:
        raise ValueRangeError(f"memory size {size!r} is not a size like 3GB or 512MB")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])
