"""Runs INSIDE GIMP 3 (python-fu-eval batch interpreter), driven by tests/gimp_plugin/test_gimp_plugin.py.

Reads ``PARAMS`` (a JSON file path defined by the -b command before this file is exec'd), runs every scenario it
lists against the real plug-in, and writes ``results.json`` plus raw RGBA u8 pixel dumps into the work directory.
Each scenario is independent: a failure is recorded (with its traceback) and the next one runs.
"""

import json
import os
import subprocess
import threading
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROC = "python-fu-adain-style-transfer"
U8 = "R'G'B'A u8"

with open(PARAMS) as _fh:  # noqa: F821 - PARAMS is defined by the batch command
    P = json.load(_fh)
WORK = P["work"]
RESULTS = {}


def read_raw(name):
    with open(os.path.join(WORK, name), "rb") as fh:
        return fh.read()


def _pixels(drawable):
    """The drawable's pixels as bytes in the format ``U8`` (its own channels, 8 bits each)."""
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(drawable.get_buffer().get(rect, 1.0, U8, Gegl.AbyssPolicy.CLAMP))


def dump(name, drawable):
    width, height = drawable.get_width(), drawable.get_height()
    with open(os.path.join(WORK, name), "wb") as fh:
        fh.write(_pixels(drawable))
    _, x, y = drawable.get_offsets()
    return {"file": name, "width": width, "height": height, "offsets": [x, y], "name": drawable.get_name()}


def make_image(spec):
    """Canvas of spec['canvas'] with one RGBA layer holding spec['content'] pixels at spec['offsets']."""
    image = Gimp.Image.new(spec["canvas"][0], spec["canvas"][1], Gimp.ImageBaseType.RGB)
    width, height = spec["size"]
    layer = Gimp.Layer.new(image, "content", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(*spec["offsets"])
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, width, height), U8, read_raw(spec["content"]))
    buffer.flush()
    if spec.get("selection"):
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["selection"])
    return image, layer


def run_filter(image, layer, args, run_mode=Gimp.RunMode.NONINTERACTIVE):
    procedure = Gimp.get_pdb().lookup_procedure(PROC)
    config = procedure.create_config()
    config.set_property("run-mode", run_mode)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    for key, value in args.items():
        if key.endswith("file"):
            value = Gio.File.new_for_path(value) if value else None
        config.set_property(key, value)
    started = time.perf_counter()
    result = procedure.run(config)
    seconds = time.perf_counter() - started
    status = result.index(0)
    message = None
    if status != Gimp.PDBStatusType.SUCCESS:
        message = Gimp.get_pdb().get_last_error()
        if result.length() > 1:
            try:
                message = result.index(1) or message
            except Exception:  # noqa: BLE001
                pass
    return {"status": status.value_nick, "message": message, "seconds": seconds}


def scenario_registration(spec):
    procedure = Gimp.get_pdb().lookup_procedure(PROC)
    if procedure is None:
        return {"registered": False}
    args = []
    for pspec in procedure.get_arguments():
        entry = {"name": pspec.name, "type": pspec.value_type.name}
        default = pspec.get_default_value()
        if isinstance(default, (bool, int, float, str)):
            entry["default"] = default
        args.append(entry)
    return {
        "registered": True,
        "menu_label": procedure.get_menu_label(),
        "menu_paths": list(procedure.get_menu_paths()),
        "image_types": procedure.get_image_types(),
        "sensitivity": int(procedure.get_sensitivity_mask()),
        "drawable_flag": int(Gimp.ProcedureSensitivityMask.DRAWABLE),
        "args": args,
    }


def _worker_log():
    logs = [os.path.join(os.environ["ADAIN_WORKER_DIR"], name) for name in os.listdir(os.environ["ADAIN_WORKER_DIR"])
            if name.endswith(".log")] if os.path.isdir(os.environ["ADAIN_WORKER_DIR"]) else []
    text = ""
    for path in logs:
        with open(path, errors="replace") as fh:
            text += fh.read()
    return text


def _kill_plugin_when_job_starts(jobs_before, report):
    """What GIMP does when the user presses Cancel on the progress bar: it kills the plug-in process."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _worker_log().count("stylize job") <= jobs_before:
        time.sleep(0.02)
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"adain-style-transfer.py" in fh.read():
                    os.kill(int(pid), 9)
                    report["killed"] = True
        except (OSError, ValueError):
            pass


def scenario_filter(spec):
    """Build an image, optionally write a config file first, run the filter, dump every layer afterwards."""
    if "config" in spec:
        with open(os.environ["ADAIN_CONFIG"], "w") as fh:
            json.dump(spec["config"], fh)
    image, layer = make_image(spec["image"])
    before = dump(spec["id"] + "-before.raw", layer)
    killer, report = None, {"killed": False}
    if spec.get("kill_plugin"):
        jobs_before = _worker_log().count("stylize job")
        killer = threading.Thread(target=_kill_plugin_when_job_starts, args=(jobs_before, report))
        killer.start()
    outcome = run_filter(image, layer, spec["args"])
    if killer is not None:
        killer.join()
        outcome["killed"] = report["killed"]
        deadline = time.monotonic() + 60  # the worker notices the closed connection at its next cancel check
        while time.monotonic() < deadline and "job cancelled" not in _worker_log():
            time.sleep(0.1)
        outcome["worker_log"] = _worker_log()[-2000:]
    layers = []
    for index, item in enumerate(image.get_layers()):
        info = dump(f"{spec['id']}-layer{index}.raw", item)
        info["has_mask"] = item.get_mask() is not None
        if info["has_mask"]:
            info["mask"] = dump(f"{spec['id']}-layer{index}-mask.raw", item.get_mask())
        layers.append(info)
    outcome.update({"before": before, "layers": layers,
                    "selection_empty": Gimp.Selection.is_empty(image)})
    image.delete()
    return outcome


def _wait_for(condition, timeout):
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _visible_windows(title):
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title], capture_output=True, text=True)
    return found.stdout.split()


def press_key(title, key, done, timeout=30.0):
    """Focus the visible window whose title matches the regex ``title``, press ``key`` (xdotool syntax) and wait
    until ``done()`` is true.

    Retries, with no fixed delay: a search can return a window that is gone a moment later (BadWindow), and a key
    that reaches a window before GTK has taken the focus is dropped, so the key is pressed again only when ``done()``
    stayed false for 5 s. Returns [exit code, stderr]; code 0 means ``done()`` became true.
    """
    deadline = time.monotonic() + timeout
    last = [None, f"no visible window matches {title!r}"]
    while time.monotonic() < deadline:
        windows = _visible_windows(title)
        for window in reversed(windows):
            focus = subprocess.run(["xdotool", "windowfocus", "--sync", window], capture_output=True, text=True)
            if focus.returncode != 0:
                last = [focus.returncode, focus.stderr]
                continue
            keys = subprocess.run(["xdotool", "key", "--clearmodifiers", key], capture_output=True, text=True)
            if keys.returncode != 0:
                last = [keys.returncode, keys.stderr]
            elif _wait_for(done, 5.0):
                return [0, ""]
            else:
                last = [None, f"{key} reached {title!r} but nothing happened within 5 s"]
            break
        else:  # no window took the focus: wait for the matching windows to change (a stale one gone, one mapped)
            _wait_for(lambda: _visible_windows(title) not in ([], windows),
                      min(1.0, max(0.0, deadline - time.monotonic())))
    return last


def scenario_undo(spec):
    """GUI only: show the image, run the filter, press Ctrl+Z once in its window, dump the layers.

    Edit > Undo has no PDB procedure, so the real UI is driven through the X server (xdotool). One keypress must undo
    everything the filter did: that is what "one undo group" means to the user.
    """
    image, layer = make_image(spec["image"])
    original = _pixels(layer)
    Gimp.Display.new(image)
    Gimp.displays_flush()
    outcome = run_filter(image, layer, spec["args"])
    Gimp.displays_flush()
    outcome["layers_after_filter"] = len(image.get_layers())
    outcome["changed"] = dump(spec["id"] + "-filtered.raw", image.get_layers()[0])  # new layer, or the replaced one
    def undone():  # the undo runs in GIMP's main process: its layers and pixels are back
        layers = image.get_layers()
        return len(layers) == spec["expect_layers"] and _pixels(layers[0]) == original
    outcome["xdotool"] = press_key(rf"\[Untitled\]-{image.get_id()}\.", "ctrl+z", undone)
    outcome["layers"] = [dump(f"{spec['id']}-layer{i}.raw", item) for i, item in enumerate(image.get_layers())]
    outcome["selection_empty"] = Gimp.Selection.is_empty(image)
    return outcome


def scenario_interactive(spec):
    """GUI only: run the filter INTERACTIVE and answer its dialog with a key (Return = OK, Escape = Cancel).

    Only what the caller sets in ``args`` is passed; the rest comes from the dialog, i.e. from GIMP's remembered
    values of the last successful interactive run.
    """
    image, layer = make_image(spec["image"])
    Gimp.Display.new(image)
    Gimp.displays_flush()
    pressed = []
    def dialog_closed():
        return not _visible_windows("Style Transfer")
    keys = threading.Thread(target=lambda: pressed.append(press_key("Style Transfer", spec["key"], dialog_closed)))
    keys.start()  # the dialog blocks run_filter until the key closes it
    outcome = run_filter(image, layer, spec["args"], Gimp.RunMode.INTERACTIVE)
    keys.join(60)
    outcome["xdotool"] = pressed[0] if pressed else [None, "no key was pressed"]
    outcome["layers"] = [dump(f"{spec['id']}-layer{i}.raw", item) for i, item in enumerate(image.get_layers())]
    return outcome


HANDLERS = {"registration": scenario_registration, "filter": scenario_filter, "undo": scenario_undo,
            "interactive": scenario_interactive}

for _spec in P["scenarios"]:
    try:
        handler = HANDLERS[_spec["kind"]]
        RESULTS[_spec["id"]] = handler(_spec)
    except Exception:  # noqa: BLE001 - report, keep going
        RESULTS[_spec["id"]] = {"exception": traceback.format_exc()}
    with open(os.path.join(WORK, "results.json"), "w") as _fh:
        json.dump(RESULTS, _fh, indent=1)
