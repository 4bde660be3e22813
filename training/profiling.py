"""Where a training step's time goes: a few steps of a loop under :mod:`torch.profiler`, written up as one text file.

A GPU is lent for minutes, never for exploring, so a sprint's smoke run can profile itself and bring back the answer:
the wall time of the profiled steps against the device's busy time (the table's "Self CUDA time total"; far less
than the wall time means the GPU waits on Python and kernel launches, and a larger batch or fewer, larger kernels
would pay) and the operators that take the most time. Profiling never stops the run it watches: a profiler that
fails writes its error into the file instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.profiler

__all__ = ["StepProfiler"]


class StepProfiler:
    """Profiles steps ``[warmup, warmup + steps)`` of a training loop and writes a summary to ``path``.

    Call :meth:`tick` with the number of steps done before each step, and :meth:`close` after the loop (a loop that
    ends inside the window writes what it profiled).

    Args:
        path: the text file to write.
        steps: how many steps to profile (≥ 1).
        device: the loop's device (CUDA kernels are profiled and timed only there).
        warmup: steps left alone first (cuDNN autotuning and the allocator settle in the first few).
    """

    def __init__(self, path: str | Path, steps: int, device: torch.device, warmup: int = 10) -> None:
        if steps < 1:
            raise ValueError(f"profile steps must be at least 1, got {steps}")
        self.path, self.steps, self.device, self.warmup = Path(path), steps, device, warmup
        self._profiler: torch.profiler.profile | None = None
        self._t0 = 0.0
        self._first = 0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def tick(self, done: int) -> None:
        """Before a step, given ``done`` steps so far: starts the profiler at ``warmup``, stops it ``steps`` later."""
        if self._profiler is None and done == self.warmup:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._sync()
            try:
                self._profiler = torch.profiler.profile(activities=activities)
                self._profiler.__enter__()
            except Exception as exc:  # noqa: BLE001 - a profiler that cannot start must not stop the training
                self._profiler = None
                self.path.write_text(f"profiler failed to start: {type(exc).__name__}: {exc}\n")
                return
            self._t0, self._first = time.monotonic(), done
        elif self._profiler is not None and done == self._first + self.steps:
            self._finish(self._profiler, done)

    def close(self, done: int) -> None:
        """After the loop, with the steps done: writes the summary if the profiler is still running."""
        if self._profiler is not None:
            self._finish(self._profiler, done)

    def _finish(self, profiler: torch.profiler.profile, done: int) -> None:
        self._profiler = None
        self._sync()
        wall = time.monotonic() - self._t0
        try:
            profiler.__exit__(None, None, None)
            sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
            table = profiler.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60)
        except Exception as exc:  # noqa: BLE001 - as in tick()
            table = f"profiler failed: {type(exc).__name__}: {exc}"
        n = done - self._first
        self.path.write_text(f"{n} steps profiled (after {self._first}) on {self.device}: {wall:.3f} s wall, "
                             f"{wall / max(n, 1) * 1e3:.1f} ms per step (with the profiler's overhead)\n"
                             f"compare 'Self CUDA time total' below with the wall time: the GPU's busy share\n\n"
                             f"{table}\n")
