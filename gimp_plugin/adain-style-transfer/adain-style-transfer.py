#!/usr/bin/env python3
# -*- coding: utf-8 -*-
#   AdaIN style transfer for GIMP 3: Filters > Artistic > Style Transfer (AdaIN)...
#   GPL-3.0-or-later. Part of adain-style-transfer.
"""GIMP 3 filter that repaints a layer in the style of an image, using the AdaIN engine.

Torch never runs in GIMP's Python: this plug-in is a client of the engine worker (``adain_core.worker``), which runs
in the engine's own Python (``$ADAIN_PYTHON``, or the config file written by ``adain install gimp``) and stays warm
between runs. ``adain install gimp`` puts the worker's stdlib-only client beside this file as ``adain_worker``.
"""

import os
import subprocess
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GimpUi, GLib, GObject  # noqa: E402

PROC_NAME = "python-fu-adain-style-transfer"
PLUG_IN_BINARY = "adain-style-transfer"
TITLE = "Style Transfer (AdaIN)"
# Mirrors adain_core.vocabulary.COLOR_MODES, which GIMP's Python cannot import (tests/test_vocabulary.py pins the
# two): (mode, label, tooltip), the engine's default first.
COLOR_MODES = (
    ("palette", "Painting's palette", "Give the result the painting's own colours"),
    ("style", "Network colours", "The colours as the network renders the style (often warmer than the painting)"),
    ("preserve", "Preserve colours", "Recolour the style to the layer's colours first"),
    ("luminance", "Luminance only", "Stylise brightness, keep the layer's colours"),
)
# Mirrors adain_core.vocabulary.BACKDROP_MODES the same way.
BACKDROP_MODES = (
    ("ignore", "Leave out", "A flat white or black surround of the style image (a cut-out figure) is not part of the "
     "style: the result takes the figure's colours and strokes"),
    ("keep", "Keep", "Use the whole style image, surround included (line art whose white paper is the look)"),
)
FIX = ("To fix it, run `python -m pip install adain-style-transfer` and then `adain install gimp` with the Python "
       "you want the engine to use (or set ADAIN_PYTHON to that Python), then run the filter again.")


class PluginError(Exception):
    """A failure reported to GIMP as an execution error, with a message meant for the user."""


# ------------------------------------------------------------------------------------------------ engine access
def worker_client():
    """The engine worker's client that ``adain install gimp`` put beside this file (standard library only)."""
    try:
        import adain_worker
    except ImportError as exc:
        raise PluginError(f"this plug-in was not installed with its engine client adain_worker/ ({exc}). {FIX}") \
            from None
    return adain_worker


def engine_python(worker):
    """The engine's Python: ``$ADAIN_PYTHON``, else the config file. Raises PluginError when neither is usable."""
    python = os.environ.get("ADAIN_PYTHON")
    source = "ADAIN_PYTHON"
    if not python:
        path = worker.config.config_path()
        python = worker.config.read_config().get("python")
        source = path
        if not python:
            raise PluginError(f"the AdaIN engine is not set up (no ADAIN_PYTHON and no {path}). {FIX}")
    if not os.path.isfile(python):
        raise PluginError(f"the AdaIN engine Python {python} (from {source}) does not exist. {FIX}")
    check_engine(python)
    return python


def check_engine(python):
    """Raise PluginError naming what is wrong when ``python`` cannot run the engine (checked before a worker is
    started, whose failure would only point at its log)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    # `python -c` puts the working directory (GIMP's) first on the import path: drop it, and run from the file-system
    # root, so an adain_core folder lying around there is never the one imported (its code would run).
    check = "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; import adain_core.worker"
    try:
        found = subprocess.run([python, "-c", check], capture_output=True, text=True, timeout=60, env=env,
                               cwd=os.path.abspath(os.sep), creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except (OSError, subprocess.SubprocessError) as exc:
        raise PluginError(f"the AdaIN engine Python {python} does not run ({exc}). {FIX}") from None
    if found.returncode != 0:
        detail = (found.stderr.strip().splitlines() or ["adain_core is not installed there"])[-1]
        raise PluginError(f"the AdaIN engine is not installed in {python} ({detail}). To fix it, run "
                          f"`{python} -m pip install adain-style-transfer` (or `adain install gimp` with the Python "
                          "that has the engine), then run the filter again.")


# ------------------------------------------------------------------------------------------------ the filter
def _file_path(config, name):
    value = config.get_property(name)
    return value.get_path() if value is not None else None


def _style_name(path):
    base = os.path.basename(path)
    return base.split(".")[0] or base


def _progress(done, total, stage):
    if stage:
        Gimp.progress_set_text(f"{TITLE}: {stage}…")
    if total > 0:
        Gimp.progress_update(min(1.0, done / total))
    else:
        Gimp.progress_pulse()


def stylize_drawable(image, drawable, config):
    """Run the filter. Nothing in ``image`` changes unless the engine returned a result."""
    style = _file_path(config, "style-file")
    second = _file_path(config, "second-style-file")
    mix = config.get_property("mix")
    alpha = config.get_property("alpha")
    color = config.get_property("color-mode")
    style_size = config.get_property("style-size")
    backdrop = config.get_property("backdrop")
    working_resolution = config.get_property("working-resolution")
    marks = config.get_property("marks")
    use_selection = config.get_property("use-selection")
    new_layer = config.get_property("output") == "new-layer"

    if not style:
        raise PluginError("choose a style image (style-file)")
    for path in (style, second):
        if path and not os.path.isfile(path):
            raise PluginError(f"style image {path} does not exist")
    if not drawable.is_layer():
        raise PluginError("select a layer (not a channel or a layer mask)")
    if drawable.is_group() and not new_layer:
        raise PluginError("a layer group cannot be replaced in place; choose 'new layer' output")

    selection_active = use_selection and not Gimp.Selection.is_empty(image)
    if selection_active:
        touches, x, y, width, height = drawable.mask_intersect()
        if not touches or width == 0 or height == 0:
            raise PluginError("the selection does not overlap the layer")
    else:
        x, y, width, height = 0, 0, drawable.get_width(), drawable.get_height()

    # 8-bit images travel as bytes (4x less than float); deeper ones as float32. Always R'G'B'A: sRGB-encoded, as
    # the network expects, with the layer's alpha passed through (opaque when it has none).
    channels = 4 if drawable.has_alpha() else 3
    eight_bit = drawable.get_bpp() == channels
    pixel_format = "R'G'B'A u8" if eight_bit else "R'G'B'A float"
    dtype = "uint8" if eight_bit else "float32"
    rect = Gegl.Rectangle.new(x, y, width, height)
    pixels = drawable.get_buffer().get(rect, 1.0, pixel_format, Gegl.AbyssPolicy.CLAMP)

    styles = [(style, 1.0 - mix if second else 1.0)] + ([(second, mix)] if second else [])
    styles = [(path, weight) for path, weight in styles if weight > 0] or [(style, 1.0)]

    worker = worker_client()
    python = engine_python(worker)
    Gimp.progress_init(f"{TITLE}: starting the engine…")
    try:
        client = worker.WorkerClient(python)
        result = client.stylize(bytes(pixels), styles, shape=(height, width, 4), dtype=dtype, alpha=alpha,
                                color=color, style_size=style_size, tile="auto",
                                scale=working_resolution, marks=marks, backdrop=backdrop, progress=_progress)
    except worker.WorkerUnavailable as exc:
        raise PluginError(f"the AdaIN engine could not start: {exc}. {FIX}") from None
    except worker.WorkerError as exc:
        raise PluginError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - never a traceback dialog: a message, and the image untouched
        raise PluginError(f"unexpected error in the engine client ({type(exc).__name__}: {exc})") from None
    finally:
        Gimp.progress_end()
    data = bytes(result.data)

    name = " + ".join(_style_name(path) for path, _ in styles)
    image.undo_group_start()
    try:
        if new_layer:
            layer = Gimp.Layer.new(image, name, width, height, Gimp.ImageType.RGBA_IMAGE, 100.0,
                                   Gimp.LayerMode.NORMAL)
            image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
            _, offset_x, offset_y = drawable.get_offsets()
            layer.set_offsets(offset_x + x, offset_y + y)
            buffer = layer.get_buffer()
            buffer.set(Gegl.Rectangle.new(0, 0, width, height), pixel_format, data)
            buffer.flush()
            if selection_active:  # the selection (feathering included) becomes the layer mask: non-destructive
                layer.add_mask(layer.create_mask(Gimp.AddMaskType.SELECTION))
            layer.update(0, 0, width, height)
        else:
            saved = None
            if not use_selection and not Gimp.Selection.is_empty(image):
                # merge_shadow always applies the selection; lift it so the whole layer is replaced.
                saved = Gimp.Selection.save(image)
                Gimp.Selection.none(image)
            shadow = drawable.get_shadow_buffer()
            shadow.set(rect, pixel_format, data)
            shadow.flush()
            drawable.merge_shadow(True)
            drawable.update(x, y, width, height)
            if saved is not None:
                image.select_item(Gimp.ChannelOps.REPLACE, saved)
                image.remove_channel(saved)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()


def run(procedure, run_mode, image, drawables, config, data):
    if len(drawables) != 1:
        return _error(procedure, Gimp.PDBStatusType.CALLING_ERROR, f"{TITLE} works on exactly one layer")
    if run_mode == Gimp.RunMode.INTERACTIVE:
        GimpUi.init(PLUG_IN_BINARY)
        dialog = GimpUi.ProcedureDialog.new(procedure, config, TITLE)
        dialog.fill(None)
        accepted = dialog.run()
        dialog.destroy()
        if not accepted:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    Gimp.context_push()
    try:
        stylize_drawable(image, drawables[0], config)
    except PluginError as exc:
        return _error(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, f"{TITLE}: {exc}")
    finally:
        Gimp.context_pop()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _error(procedure, status, message):
    return procedure.new_return_values(status, GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0))


class AdaINStyleTransfer(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(f"{TITLE}…")
        procedure.add_menu_path("<Image>/Filters/Artistic")
        procedure.set_documentation(
            "Repaint the layer in the style of an image (AdaIN)",
            "Stylises the active layer (or only the selection) with the colours and brush strokes of a style image, "
            "optionally mixed with a second style. The result goes to a new layer named after the style, above the "
            "source, or replaces the layer. Runs in the AdaIN engine's own Python (set up with `adain install gimp`).",
            name)
        procedure.set_attribution("adain-style-transfer contributors", "GPL-3.0-or-later", "2025")

        rw = GObject.ParamFlags.READWRITE
        procedure.add_file_argument("style-file", "_Style image", "Image whose style is transferred",
                                    Gimp.FileChooserAction.OPEN, True, None, rw)
        procedure.add_file_argument("second-style-file", "Se_cond style (optional)",
                                    "Optional second style image, mixed with the first",
                                    Gimp.FileChooserAction.OPEN, True, None, rw)
        procedure.add_double_argument("mix", "_Mix", "Weight of the second style (0: first only, 1: second only)",
                                      0.0, 1.0, 0.5, rw)
        procedure.add_double_argument("alpha", "Style _strength", "0 keeps the content, 1 is the full style",
                                      0.0, 1.0, 1.0, rw)
        colors = Gimp.Choice.new()
        for number, (mode, label, tooltip) in enumerate(COLOR_MODES):
            colors.add(mode, number, label, tooltip)
        procedure.add_choice_argument("color-mode", "_Colours", "Where the result's colours come from", colors,
                                      COLOR_MODES[0][0], rw)
        procedure.add_int_argument("style-size", "St_yle size", "Shorter side of the style image in px; smaller "
                                   "gives larger brush strokes", 64, 2048, 512, rw)
        procedure.add_boolean_argument("use-selection", "Use se_lection as mask",
                                       "Stylise only the selection (feathering respected)", True, rw)
        outputs = Gimp.Choice.new()
        outputs.add("new-layer", 0, "New layer", "Add the result as a new layer above the source")
        outputs.add("replace", 1, "Replace layer", "Overwrite the layer's pixels")
        procedure.add_choice_argument("output", "_Output", "Where the result goes", outputs, "new-layer", rw)
        procedure.add_double_argument("working-resolution", "_Working resolution",
                                      "Fraction of the layer's size the style is computed at, then upsampled along "
                                      "the layer's edges: faster, larger brush strokes. 1 = full size; 0 = auto "
                                      "(about 1.5 megapixels)", 0.0, 1.0, 1.0, rw)
        # last, so that scripts calling the procedure with positional arguments keep working
        backdrops = Gimp.Choice.new()
        for number, (mode, label, tooltip) in enumerate(BACKDROP_MODES):
            backdrops.add(mode, number, label, tooltip)
        procedure.add_choice_argument("backdrop", "Style's _backdrop", "A flat surround of the style image: left out "
                                      "of the style, or kept", backdrops, BACKDROP_MODES[0][0], rw)
        procedure.add_double_argument("marks", "Painting's _marks", "The painting's own typical marks laid over the "
                                      "layer's flat areas (a clear sky), where the network alone paints the same dabs "
                                      "for every painting. 0 = off", 0.0, 2.0, 0.5, rw)
        return procedure


Gimp.main(AdaINStyleTransfer.__gtype__, sys.argv)
