# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: Render Stylized (still / animation), Stylize Image (Image Editor), and adding/removing styles.

Long jobs run modal with a timer when there is a window (progress in the status bar and the cursor, ESC cancels)
and blocking otherwise (``blender -b``, scripts).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time

import bpy

from . import backends, images, pipeline, preferences
from .settings import ensure_one_style


class _ModalJob:
    """Mixin: run ``self._job`` (has ``steps()``, ``progress``, ``cancel()``) modal or blocking."""

    _job = None
    _steps = None
    _timer = None

    def _run(self, context, job, modal: bool):
        self._job = job
        if not modal or context.window is None:
            try:
                for _ in job.steps():
                    pass
            except (pipeline.JobError, backends.EngineFailure) as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
            self._finish_report()
            return {"FINISHED"}
        self._steps = job.steps()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _finish_report(self):
        for level, note in self._job.progress.notes:
            self.report({level}, f"AdaIN: {note}")
        self.report({"INFO"}, self._job.progress.message or "AdaIN: done")

    def _end_modal(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
        if event.type != "TIMER":
            return {"RUNNING_MODAL"} if event.type == "ESC" else {"PASS_THROUGH"}
        deadline = time.monotonic() + 0.05
        try:
            while time.monotonic() < deadline:
                next(self._steps)
        except StopIteration:
            self._end_modal(context)
            self._finish_report()
            self._after(context)
            return {"FINISHED"}
        except backends.EngineCancelled:
            self._end_modal(context)
            self.report({"WARNING"}, "AdaIN: cancelled")
            return {"CANCELLED"}
        except (pipeline.JobError, backends.EngineFailure) as exc:
            self._end_modal(context)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception:
            self._end_modal(context)
            raise
        progress = self._job.progress
        context.window_manager.progress_update(int(progress.fraction * 1000))
        if context.workspace is not None:
            context.workspace.status_text_set(f"{progress.message}   ({progress.fraction:.0%}, Esc cancels)")
        return {"RUNNING_MODAL"}

    def _after(self, context):
        pass


class NODE_OT_adain_render(_ModalJob, bpy.types.Operator):
    """Render and stylise through the AdaIN Style Transfer nodes of the compositor; writes the normal output file(s)"""

    bl_idname = "node.adain_render"
    bl_label = "Render Stylized"
    bl_options = {"REGISTER"}

    animation: bpy.props.BoolProperty(name="Animation", description="Render the scene's frame range")
    write_still: bpy.props.BoolProperty(
        name="Write Image", default=True, description="Save the stylised still to the output path"
    )

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not pipeline.is_running()

    def execute(self, context):
        return self._start(context, modal=False)

    def invoke(self, context, event):
        return self._start(context, modal=True)

    def _start(self, context, modal: bool):
        job = pipeline.StylizedRender(context.scene, preferences.get(context), animation=self.animation,
                                      write_still=self.write_still)
        return self._run(context, job, modal)

    def _after(self, context):
        if not self.animation:
            try:
                bpy.ops.render.view_show("INVOKE_DEFAULT")
            except RuntimeError:
                pass


class _StylizeImageJob:
    """Stylise one image datablock into a new image (Image Editor)."""

    def __init__(self, image, settings, prefs, scene):
        self.image, self.settings, self.prefs, self.scene = image, settings, prefs, scene
        self.progress = pipeline.Progress()
        self.cancel_event = threading.Event()
        self.result = None

    def cancel(self):
        self.cancel_event.set()

    def steps(self):
        settings = self.settings
        if not settings.active_styles():
            raise pipeline.JobError("AdaIN: no style image; choose one in the AdaIN panel of the sidebar")
        self.progress.message = "Starting the AdaIN engine…"
        yield
        backend = backends.get_backend(self.prefs)
        directory = tempfile.mkdtemp(prefix="adain-blender-")
        try:
            try:
                content = images.load_png(images.export_png(self.image, os.path.join(directory, "content.png"),
                                                            self.scene))
                styles = [(images.style_file(s.image if s.image is not None else s.filepath, directory, k),
                           float(s.weight)) for k, s in enumerate(settings.active_styles())]
            except (FileNotFoundError, ValueError, RuntimeError) as exc:
                raise pipeline.JobError(f"AdaIN: {exc}") from None
            outcome: dict = {}

            def progress(done, total):
                self.progress.fraction = done / total if total else 0.0

            def work():
                try:
                    outcome["image"] = backend.stylize(
                        content, styles, alpha=settings.alpha, color=settings.color, style_size=settings.style_size,
                        scale=settings.scale, marks=settings.marks, backdrop=settings.backdrop, progress=progress,
                        cancel=self.cancel_event.is_set)
                except BaseException as exc:
                    outcome["error"] = exc

            thread = threading.Thread(target=work, name="adain-stylize-image", daemon=True)
            thread.start()
            self.progress.message = f"AdaIN: stylising {self.image.name}"
            while thread.is_alive():
                thread.join(timeout=0.02)
                yield
            if "error" in outcome:
                raise outcome["error"]
            array = outcome["image"]
            height, width = array.shape[:2]
            result = images.new_byte_image(f"{self.image.name} AdaIN", width, height, "sRGB")
            images.write_pixels(result, array)
            result.pack()
            self.result = result
            self.progress.fraction = 1.0
            self.progress.message = f"AdaIN: created image {result.name!r}"
        finally:
            images.remove_scratch()
            shutil.rmtree(directory, ignore_errors=True)


class IMAGE_OT_adain_stylize(_ModalJob, bpy.types.Operator):
    """Stylise this image with the AdaIN settings of the sidebar into a new image"""

    bl_idname = "image.adain_stylize"
    bl_label = "Stylize Image"
    bl_options = {"REGISTER", "UNDO"}

    image: bpy.props.StringProperty(name="Image", description="Image to stylise (default: the editor's image)")

    def _image(self, context):
        if self.image:
            return bpy.data.images.get(self.image)
        space = context.space_data
        return getattr(space, "image", None)

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def execute(self, context):
        return self._start(context, modal=False)

    def invoke(self, context, event):
        return self._start(context, modal=True)

    def _start(self, context, modal: bool):
        image = self._image(context)
        if image is None:
            self.report({"ERROR"}, "AdaIN: no image to stylise")
            return {"CANCELLED"}
        job = _StylizeImageJob(image, context.scene.adain, preferences.get(context), context.scene)
        result = self._run(context, job, modal)
        if result == {"FINISHED"}:
            self._after(context)
        return result

    def _after(self, context):
        space = context.space_data
        if self._job.result is not None and getattr(space, "type", "") == "IMAGE_EDITOR":
            space.image = self._job.result


class WM_OT_adain_style_add(bpy.types.Operator):
    """Add a style image to the mix"""

    bl_idname = "wm.adain_style_add"
    bl_label = "Add Style"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    def execute(self, context):
        settings = getattr(context, "adain_settings", None)
        if settings is None:
            return {"CANCELLED"}
        settings.styles.add()
        return {"FINISHED"}


class WM_OT_adain_style_remove(bpy.types.Operator):
    """Remove this style"""

    bl_idname = "wm.adain_style_remove"
    bl_label = "Remove Style"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    index: bpy.props.IntProperty()

    def execute(self, context):
        settings = getattr(context, "adain_settings", None)
        if settings is None or not 0 <= self.index < len(settings.styles):
            return {"CANCELLED"}
        settings.styles.remove(self.index)
        ensure_one_style(settings)
        return {"FINISHED"}


_CLASSES = (NODE_OT_adain_render, IMAGE_OT_adain_stylize, WM_OT_adain_style_add, WM_OT_adain_style_remove)


register, unregister = bpy.utils.register_classes_factory(_CLASSES)
