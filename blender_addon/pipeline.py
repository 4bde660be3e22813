# SPDX-License-Identifier: GPL-3.0-or-later
"""Render Stylized: render, stylise what arrives at each AdaIN node, store it in the node, and write the normal
output file(s) through the compositor.

For every level of AdaIN nodes (a node downstream of another comes one level later) and every frame: a temporary
File Output node writes what arrives at the node's input as an 8-bit PNG "as render" (view transform applied, what
the user sees); the engine stylises it in a background thread (animations: ``stylize_frames`` with temporal
smoothing); the result becomes the node's image (stills: packed into the .blend; animations: a PNG sequence under the
extension's user folder) with the inverse of the view transform as its colourspace, and the node's switch turns on.
A last pass writes the output: a compositor-only run with Render Layers muted when nothing downstream still needs the
render, else a full re-render.

The job is a generator: each ``next()`` does a short piece of work on Blender's main thread (all bpy calls stay
there) so a modal operator can keep the UI alive, show progress and cancel; ``run_blocking`` drives it in the
background (``blender -b``) case.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import bpy
import numpy as np

from . import backends, compositor, images, view_transform
from .node import result_node, set_switch

_RUNNING = threading.Event()
_END = object()


def is_running() -> bool:
    """Whether a stylised render is in progress (the render handlers leave our renders alone then)."""
    return _RUNNING.is_set()


class JobError(Exception):
    """A user-facing failure of the stylised render (the message goes into the report)."""


@dataclass
class Progress:
    fraction: float = 0.0
    message: str = ""
    notes: list[tuple[str, str]] = field(default_factory=list)
    """(``"INFO"`` or ``"WARNING"``, text) for the final report."""


@dataclass
class _NodeWork:
    node_name: str
    styles: backends.Styles
    alpha: float
    color: str
    style_size: int
    temporal: float
    scale: float = 1.0  # 0 = the engine's "auto"
    backdrop: str = "ignore"
    marks: float = 0.5
    capture_dir: str = ""
    capture_node_name: str = ""


class _EngineStream(threading.Thread):
    """Runs the engine for the nodes of one level off the main thread: frames go in through one queue per node,
    ``(node, frame index, result)`` come out of ``results``; ``_END`` closes both."""

    def __init__(self, backend, works: list[_NodeWork], animation: bool, total: int, cancel: threading.Event):
        super().__init__(name="adain-engine", daemon=True)
        self.backend, self.works, self.animation, self.total = backend, works, animation, total
        self.job_cancel = cancel
        self.stopped = threading.Event()
        self.inputs = {work.node_name: queue.Queue() for work in works}
        self.results: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.tile_progress = 0.0

    def _frames(self, name: str) -> Iterator[np.ndarray]:
        source = self.inputs[name]
        while True:
            item = source.get()
            if item is _END:
                return
            yield item

    def _cancelled(self) -> bool:
        return self.job_cancel.is_set() or self.stopped.is_set()

    def _on_progress(self, done: int, total: int) -> None:
        self.tile_progress = done / total if total else 0.0

    def _stream(self, work: _NodeWork) -> Iterator[np.ndarray]:
        options = dict(alpha=work.alpha, color=work.color, style_size=work.style_size, scale=work.scale,
                       marks=work.marks, backdrop=work.backdrop, cancel=self._cancelled)
        if self.animation:
            return self.backend.stylize_frames(self._frames(work.node_name), work.styles, temporal=work.temporal,
                                               total=self.total, **options)
        return (self.backend.stylize(frame, work.styles, progress=self._on_progress, **options)
                for frame in self._frames(work.node_name))

    def run(self) -> None:
        try:
            streams = [(work.node_name, self._stream(work)) for work in self.works]
            index = 0
            while True:
                outputs = []
                for name, stream in streams:
                    result = next(stream, _END)
                    if result is _END:
                        return
                    outputs.append((name, result))
                for name, result in outputs:
                    self.results.put((name, index, result))
                index += 1
        except BaseException as exc:  # reported on the main thread
            self.error = exc
        finally:
            self.results.put(_END)

    def stop(self) -> None:
        self.stopped.set()
        for source in self.inputs.values():
            source.put(_END)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "untitled"


def frames_dir(scene, node) -> str:
    """Where an animation's stylised frames of ``node`` live: the extension's user folder (a temp folder when the
    add-on does not run as an extension)."""
    blend = _safe_name(bpy.path.display_name_from_filepath(bpy.data.filepath) or "untitled")
    leaf = f"{blend}-{_safe_name(scene.name)}-{_safe_name(node.name)}"
    try:
        base = bpy.utils.extension_path_user(__package__, path="frames", create=True)
    except (ValueError, RuntimeError):
        base = os.path.join(tempfile.gettempdir(), "adain-blender-frames")
    path = os.path.join(base, leaf)
    os.makedirs(path, exist_ok=True)
    return path


class StylizedRender:
    """One "Render Stylized" run over a scene (a still or its animation)."""

    def __init__(self, scene, prefs, *, animation: bool, write_still: bool = True) -> None:
        self.scene = scene
        self.prefs = prefs
        self.animation = animation
        self.write_still = write_still
        self.progress = Progress()
        self.cancel_event = threading.Event()
        self._tmp = ""
        self._saved_mute: dict[str, bool] = {}
        self._frame = scene.frame_current
        self._plan: view_transform.ColourPlan | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    def _check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise backends.EngineCancelled("cancelled")

    # ------------------------------------------------------------------ checks
    def _frames(self) -> list[int]:
        scene = self.scene
        if not self.animation:
            return [scene.frame_current]
        frames = list(range(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step)))
        if frames and frames[0] < 0:
            raise JobError("AdaIN: animations with negative frame numbers are not supported")
        return frames

    def _validate(self, tree) -> list[list]:
        scene = self.scene
        if tree is None:
            raise JobError("AdaIN: the scene has no compositor node tree; add the AdaIN Style Transfer node "
                           "in the Compositor first")
        if not scene.render.use_compositing:
            raise JobError("AdaIN: compositing is off (Output Properties → Post Processing → Compositing)")
        levels = compositor.adain_levels(tree)
        if not levels:
            raise JobError("AdaIN: the compositor has no (unmuted) AdaIN Style Transfer node")
        for level in levels:
            for node in level:
                if compositor.input_source(node) is None:
                    raise JobError(f"AdaIN: node {node.name!r} has nothing connected to its Image input")
                if not node.settings.active_styles():
                    raise JobError(f"AdaIN: node {node.name!r} has no style image; choose one in the node")
        return levels

    def _work_for(self, node, index: int) -> _NodeWork:
        settings = node.settings
        styles = []
        for k, style in enumerate(settings.active_styles()):
            try:
                path = images.style_file(style.image if style.image is not None else style.filepath,
                                         self._tmp, index * 100 + k)
            except (FileNotFoundError, ValueError, RuntimeError) as exc:
                raise JobError(f"AdaIN: node {node.name!r}: {exc}") from None
            styles.append((path, float(style.weight)))
        return _NodeWork(node.name, styles, float(settings.alpha), settings.color, int(settings.style_size),
                         float(settings.temporal), float(settings.scale), backdrop=settings.backdrop,
                         marks=float(settings.marks))

    # ------------------------------------------------------------------ tree state
    def _mute(self, nodes, mute: bool) -> None:
        for node in nodes:
            self._saved_mute.setdefault(node.name, node.mute)
            node.mute = mute

    def _restore_mute(self, tree) -> None:
        for name, mute in self._saved_mute.items():
            if name in tree.nodes:
                tree.nodes[name].mute = mute
        self._saved_mute.clear()

    def _remove_capture_nodes(self, tree) -> None:
        for node in [n for n in tree.nodes if n.name.startswith(".adain capture")]:
            tree.nodes.remove(node)

    # ------------------------------------------------------------------ the job
    def steps(self) -> Iterator[None]:
        """The job as a generator; raises JobError / backends.EngineFailure (EngineCancelled) on failure."""
        scene = self.scene
        tree = compositor.scene_tree(scene)
        levels = self._validate(tree)
        frames = self._frames()
        self.progress.message = "Starting the AdaIN engine…"
        yield
        backend = backends.get_backend(self.prefs)
        self._plan = view_transform.plan_for(scene, exact_display=scene.adain.exact_display)
        if self._plan.note:
            self.progress.notes.append(("WARNING", self._plan.note))
        _RUNNING.set()
        self._tmp = tempfile.mkdtemp(prefix="adain-blender-")
        all_nodes = [node for level in levels for node in level]
        try:
            for node in all_nodes:
                set_switch(node, False)
            done: set[str] = set()
            steps_total = len(levels) + 1
            for k, level in enumerate(levels):
                yield from self._run_level(tree, level, frames, done, k, steps_total, backend)
                done |= {node.name for node in level}
            yield from self._final_pass(tree, done, steps_total)
        finally:
            self._remove_capture_nodes(tree)
            self._restore_mute(tree)
            if self._plan is not None:
                self._plan.restore(scene)
            if scene.frame_current != self._frame:
                scene.frame_set(self._frame)
            images.remove_scratch()
            shutil.rmtree(self._tmp, ignore_errors=True)
            _RUNNING.clear()

    def _run_level(self, tree, level, frames, done, k, steps_total, backend) -> Iterator[None]:
        scene = self.scene
        works = [self._work_for(node, k * 1000 + i) for i, node in enumerate(level)]
        capture_nodes = []
        for i, (node, work) in enumerate(zip(level, works)):
            capture = compositor.new_capture_node(tree, self._tmp, compositor.input_source(node),
                                                  self._plan.capture_override)
            work.capture_node_name = capture.name
            work.capture_dir = os.path.join(self._tmp, f"level{k}_node{i}")
            capture_nodes.append(capture)
        # The user's File Output nodes must not write captures; Render Layers only run when a capture needs them.
        self._mute([n for n in compositor.file_output_nodes(tree) if n not in capture_nodes], True)
        needs_render = compositor.render_needed(capture_nodes, done)
        self._mute(compositor.render_layer_nodes(tree), not needs_render)
        if not needs_render:
            self.progress.notes.append(("INFO", f"level {k + 1}: compositor-only capture"))

        stream = _EngineStream(backend, works, self.animation, len(frames), self.cancel_event)
        stream.start()
        results: dict[str, dict[int, np.ndarray]] = {work.node_name: {} for work in works}
        received = captured = 0
        expected = len(frames) * len(works)
        sequences = {work.node_name: frames_dir(scene, tree.nodes[work.node_name]) for work in works} \
            if self.animation else {}
        for directory in sequences.values():
            for name in os.listdir(directory):
                if name.startswith("adain_") and name.endswith(".png"):
                    os.remove(os.path.join(directory, name))
        try:
            while received < expected:
                self._check_cancel()
                engine_share = received / max(1, len(works)) + (stream.tile_progress if not self.animation else 0)
                share = min(1.0, (captured + engine_share) / (2 * len(frames)))
                self.progress.fraction = (k + share) / steps_total
                # At most two frames wait for the engine: captures stay ahead without piling up in memory.
                if captured < len(frames) and all(q.qsize() < 2 for q in stream.inputs.values()):
                    frame = frames[captured]
                    self.progress.message = f"AdaIN: rendering frame {frame}"
                    arrays = self._capture(tree, works, frame)
                    for work in works:
                        stream.inputs[work.node_name].put(arrays[work.node_name])
                    captured += 1
                    if captured == len(frames):
                        for source in stream.inputs.values():
                            source.put(_END)
                    yield
                    continue
                self.progress.message = f"AdaIN: stylising ({received}/{expected})"
                try:
                    item = stream.results.get(timeout=0.02)
                except queue.Empty:
                    yield
                    continue
                if item is _END:
                    if stream.error is not None:
                        raise stream.error
                    if received < expected:
                        raise JobError("AdaIN: the engine stopped before all frames were stylised")
                    break
                name, index, array = item
                frame = frames[index]
                if self.animation:
                    images.save_png(array, os.path.join(sequences[name], f"adain_{frame:06d}.png"))
                else:
                    results[name][frame] = array
                received += 1
                yield
        finally:
            stream.stop()
            stream.join(timeout=30)
        for node_name, capture_name in [(w.node_name, w.capture_node_name) for w in works]:
            tree.nodes.remove(tree.nodes[capture_name])
            node = tree.nodes[node_name]
            if self.animation:
                self._use_sequence(node, sequences[node_name], frames)
            else:
                self._use_still(node, results[node_name][frames[0]])
            set_switch(node, True)
        self._restore_mute(tree)

    def _capture(self, tree, works: list[_NodeWork], frame: int) -> dict[str, np.ndarray]:
        scene = self.scene
        if scene.frame_current != frame:
            scene.frame_set(frame)
        for work in works:
            directory = os.path.join(work.capture_dir, str(frame))
            os.makedirs(directory, exist_ok=True)
            capture = tree.nodes[work.capture_node_name]
            if compositor.BLENDER_5:
                capture.directory = directory + os.sep
            else:
                capture.base_path = directory + os.sep
        result = bpy.ops.render.render()
        if "FINISHED" not in result:
            raise JobError(f"AdaIN: rendering frame {frame} failed")
        arrays = {}
        for work in works:
            directory = os.path.join(work.capture_dir, str(frame))
            files = sorted(f for f in os.listdir(directory) if f.endswith(".png"))
            if not files:
                raise JobError(f"AdaIN: the compositor wrote no image for node {work.node_name!r} at frame {frame}")
            arrays[work.node_name] = images.load_png(os.path.join(directory, files[-1]))
        return arrays

    def _use_still(self, node, array: np.ndarray) -> None:
        holder = result_node(node)
        old = holder.image
        height, width = array.shape[:2]
        image = images.new_byte_image(f"AdaIN result {node.name}", width, height, self._plan.result_colorspace)
        images.write_pixels(image, array)
        image.pack()
        holder.image = image
        if old is not None and old.users == 0:
            bpy.data.images.remove(old)
        node.result_info = f"Frame {self.scene.frame_current}"

    def _use_sequence(self, node, directory: str, frames: list[int]) -> None:
        holder = result_node(node)
        old = holder.image
        first = os.path.join(directory, f"adain_{frames[0]:06d}.png")
        image = bpy.data.images.load(first, check_existing=False)
        image.name = f"AdaIN frames {node.name}"
        image.source = "SEQUENCE"
        image.colorspace_settings.name = self._plan.result_colorspace
        holder.image = image
        # Files are numbered by scene frame: start 1 and offset 0 map scene frame n to file n.
        holder.frame_start = 1
        holder.frame_offset = 0
        holder.frame_duration = max(frames[-1], 1)
        holder.use_cyclic = False
        holder.use_auto_refresh = True
        if old is not None and old.users == 0:
            bpy.data.images.remove(old)
        node.result_info = f"Frames {frames[0]}–{frames[-1]}"

    def _final_pass(self, tree, done: set[str], steps_total: int) -> Iterator[None]:
        scene = self.scene
        self._check_cancel()
        if scene.frame_current != self._frame:
            scene.frame_set(self._frame)
        sinks = compositor.output_nodes(tree)
        needs_render = compositor.render_needed(sinks, done)
        self._mute(compositor.render_layer_nodes(tree), not needs_render)
        if needs_render:
            self.progress.notes.append(("INFO", "Render Layers passes are used beside the AdaIN result: "
                                        "full re-render for the output"))
        self.progress.fraction = (steps_total - 1) / steps_total
        self.progress.message = "AdaIN: writing the output"
        yield
        self._plan.apply_final(scene)
        started = time.monotonic()
        if self.animation:
            result = bpy.ops.render.render(animation=True)
        else:
            result = bpy.ops.render.render(write_still=self.write_still)
        if "FINISHED" not in result:
            raise JobError("AdaIN: the final render failed")
        self.progress.fraction = 1.0
        self.progress.message = f"AdaIN: done (output pass {time.monotonic() - started:.2f} s)"


def run_blocking(job: StylizedRender) -> None:
    """Drive ``job`` to the end on this thread (background mode, scripts)."""
    for _ in job.steps():
        time.sleep(0)
