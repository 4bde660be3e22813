# SPDX-License-Identifier: GPL-3.0-or-later
"""Picks the engine backend: in-process when ``import adain_core`` works in Blender's Python, otherwise through
the engine worker (a separate process in the engine's Python, driven by the stdlib-only client of
``adain_core.worker``, which the extension zip carries as ``adain_worker``).

Both backends take and return ``(H, W, 4)`` float32 sRGB-encoded RGBA arrays in [0, 1] (alpha passes through) and
styles as ``(image file path, weight)`` pairs.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
Styles = list[tuple[str, float]]

_SETUP_HINT = ("set the engine's Python (a Python where `import adain_core` works) in Edit → Preferences → Add-ons → "
               "AdaIN Style Transfer, or install the engine into Blender's own Python: `{python} -m pip install "
               "adain-style-transfer`")


class EngineFailure(Exception):
    """The engine could not do the job; the message is meant for the user."""


class EngineUnavailable(EngineFailure):
    """Neither in-process nor worker engine access works."""


class EngineCancelled(EngineFailure):
    """The user cancelled."""


_lock = threading.Lock()
_backends: dict[tuple, object] = {}
_status = ""


def current():
    """The backend in use (the last one :func:`get_backend` made), or ``None``."""
    with _lock:
        return next(iter(_backends.values()), None)


def last_status() -> str:
    """What the last engine lookup found (shown in the preferences)."""
    return _status


def _set_status(text: str) -> None:
    global _status
    _status = text


class _Backend:
    """What both backends share: the engine's (or worker's) exceptions become the add-on's."""

    _cancelled: type[BaseException]
    _failure: type[BaseException]

    def _call(self, fn):
        try:
            return fn()
        except self._cancelled:
            raise EngineCancelled("cancelled") from None
        except self._failure as exc:
            raise EngineFailure(str(exc)) from None

    def _each(self, iterator: Iterator) -> Iterator:
        """``iterator``'s items, each step's exceptions translated by :meth:`_call`."""
        while True:
            try:
                item = self._call(lambda: next(iterator))
            except StopIteration:
                return
            yield item


class InProcessBackend(_Backend):
    """adain_core imported into Blender's Python."""

    def __init__(self, model: str, device: str) -> None:
        import adain_core
        from adain_core.cache import StyleCache

        self._cancelled, self._failure = adain_core.Cancelled, adain_core.AdaINError
        try:
            self.engine = adain_core.load(model, device=device)
        except adain_core.AdaINError as exc:
            raise EngineUnavailable(f"AdaIN engine: {exc}") from None
        self._cards = StyleCache()
        self.description = (f"Engine in Blender's Python: adain_core {adain_core.__version__}, "
                            f"{self.engine.encoder_id} on {self.engine.device}")

    def _card(self, styles: Styles, style_size: int, backdrop: str):
        card, _ = self._cards.mixed(self.engine, styles, style_size, backdrop=backdrop)
        return card

    def stylize(self, image, styles: Styles, *, alpha: float, color: str, style_size: int, scale: float | str = 1.0,
                marks: float = 0.5, backdrop: str = "ignore", progress: Progress | None = None,
                cancel: Cancel | None = None):
        def run():
            card = self._card(styles, style_size, backdrop)
            return self.engine.stylize(image, card, alpha=alpha, color=color, scale=scale, marks=marks,
                                       progress=progress, cancel=cancel)

        return self._call(run)

    def stylize_frames(self, frames: Iterable, styles: Styles, *, temporal: float, alpha: float, color: str,
                       style_size: int, scale: float | str = 1.0, marks: float = 0.5, backdrop: str = "ignore",
                       total: int | None = None,
                       cancel: Cancel | None = None) -> Iterator:
        card = self._call(lambda: self._card(styles, style_size, backdrop))
        yield from self._each(self.engine.stylize_frames(frames, card, temporal=temporal, alpha=alpha, color=color,
                                                         scale=scale, marks=marks, cancel=cancel, total=total))


class WorkerBackend(_Backend):
    """The engine worker process, started on demand in the engine's Python."""

    def __init__(self, worker_module, python: str | None, model: str) -> None:
        self._cancelled, self._failure = worker_module.WorkerCancelled, worker_module.WorkerError
        try:
            self.client = worker_module.WorkerClient(python or None)
            hello = self.client.ping()
        except worker_module.WorkerError as exc:
            raise EngineUnavailable(f"AdaIN engine worker: {exc}") from None
        self.model = model
        self.description = (f"Engine worker: adain_core {hello.get('engine_version', '?')} in "
                            f"{self.client.python} (pid {hello.get('pid')})")

    def stylize(self, image, styles: Styles, *, alpha: float, color: str, style_size: int, scale: float | str = 1.0,
                marks: float = 0.5, backdrop: str = "ignore", progress: Progress | None = None,
                cancel: Cancel | None = None):
        relay = None if progress is None else (lambda done, total, stage: progress(done, total))
        result = self._call(lambda: self.client.stylize(image, styles, alpha=alpha, color=color,
                                                        style_size=style_size, scale=scale, marks=marks,
                                                        backdrop=backdrop,
                                                        model=self.model, progress=relay, cancel=cancel))
        return result.array()

    def stylize_frames(self, frames: Iterable, styles: Styles, *, temporal: float, alpha: float, color: str,
                       style_size: int, scale: float | str = 1.0, marks: float = 0.5, backdrop: str = "ignore",
                       total: int | None = None,
                       cancel: Cancel | None = None) -> Iterator:
        # One request per frame; the worker keeps the sequence's smoothed content statistics between them, so the
        # result equals the engine's stylize_frames in-process.
        results = self.client.stylize_frames(frames, styles, temporal=temporal, alpha=alpha, color=color,
                                             style_size=style_size, scale=scale, marks=marks, backdrop=backdrop,
                                             model=self.model,
                                             cancel=cancel)
        try:
            for result in self._each(results):
                yield result.array()
        finally:
            results.close()  # the worker forgets the sequence


def worker_client_module():
    """The stdlib-only worker client: the copy the extension zip carries (``adain_worker``), else the engine's own
    when ``adain_core`` imports here (a development setup)."""
    bundled = f"{__package__}.adain_worker"
    try:
        return importlib.import_module(bundled)
    except ModuleNotFoundError as exc:
        if exc.name != bundled:
            raise
    try:
        return importlib.import_module("adain_core.worker")
    except ImportError:
        raise EngineUnavailable("this AdaIN Style Transfer install lacks the engine worker client (adain_worker/): "
                                "reinstall the extension zip built by `adain install blender --zip`") from None


def _in_process_importable() -> tuple[bool, str]:
    try:
        importlib.import_module("adain_core")
    except Exception as exc:  # an engine broken by a bad torch raises more than ImportError
        return False, f"adain_core does not import in Blender's Python ({type(exc).__name__}: {exc})"
    return True, ""


def _model_of(prefs) -> str:
    model = (prefs.model or "default").strip()
    return bpy_abspath(model) if model != "default" else model


def bpy_abspath(path: str) -> str:
    try:
        import bpy

        return bpy.path.abspath(path)
    except ImportError:
        return path


def get_backend(prefs):
    """The backend the preferences ask for, cached while they do not change.

    Raises:
        EngineUnavailable: with a message saying what to set up.
    """
    mode = prefs.engine_mode
    python = bpy_abspath(prefs.engine_python.strip()) if prefs.engine_python.strip() else ""
    model, device = _model_of(prefs), (prefs.device.strip() or "auto")
    key = (mode, python, model, device)
    with _lock:
        backend = _backends.get(key)
        if backend is not None:
            return backend
        try:
            backend = _make_backend(mode, python, model, device)
        except EngineUnavailable as exc:
            _set_status(str(exc))
            raise
        _backends.clear()
        _backends[key] = backend
        _set_status(backend.description)
        return backend


def _make_backend(mode: str, python: str, model: str, device: str):
    reasons = []
    if mode in ("AUTO", "IN_PROCESS"):
        ok, why = _in_process_importable()
        if ok:
            return InProcessBackend(model, device)
        if mode == "IN_PROCESS":
            raise EngineUnavailable(f"AdaIN engine not available: {why}. Install it there, or choose "
                                    f"Engine: Engine worker in the add-on preferences")
        reasons.append(why)
    worker = worker_client_module()
    try:
        resolved = worker.resolve_engine_python(python or None)
    except worker.WorkerUnavailable as exc:
        reasons.append(f"no engine worker ({exc})" if python else "no engine Python is set")
        hint = _SETUP_HINT.format(python=sys.executable)
        raise EngineUnavailable("AdaIN engine not available: " + "; ".join(reasons) + f". Fix: {hint}") from None
    return WorkerBackend(worker, resolved, model)


def forget() -> None:
    """Drop cached backends (after the preferences change, and on unregister)."""
    with _lock:
        for backend in _backends.values():
            client = getattr(backend, "client", None)
            if client is not None:
                client.worker_pid = None
        _backends.clear()
