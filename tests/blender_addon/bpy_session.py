"""Runs inside a bpy session (a subprocess of the tests): installs the extension zip, builds tiny Cycles scenes with
the AdaIN node and runs named scenarios, writing what it saw as JSON.

Usage: python bpy_session.py SCENARIO CONFIG.json RESULT.json
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import bpy

PKG = "bl_ext.user_default.adain_style_transfer"
NODE = "CompositorNodeAdaIN"


def install(zip_path: str) -> dict:
    started = time.monotonic()
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    return {"result": sorted(result), "seconds": time.monotonic() - started, "module_loaded": PKG in sys.modules,
            "node_registered": bpy.types.Node.bl_rna_get_subclass_py(NODE) is not None}


def module(name: str):
    return sys.modules[f"{PKG}.{name}"]


def _with_backend(report: dict) -> dict:
    """Record which engine backend ran and shut its worker down, if it used one."""
    backend = module("backends").current()
    report["backend"] = type(backend).__name__
    if backend is not None and hasattr(backend, "client"):
        report["worker_shutdown"] = backend.client.shutdown()
    return report


def prefs():
    return bpy.context.preferences.addons[PKG].preferences


def setup_scene(out_prefix: str, view: str = "Standard"):
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.device = "CPU"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    scene.view_settings.view_transform = view
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = out_prefix
    return scene


def add_node(scene, style_path: str):
    """Render Layers → AdaIN → output; returns the node."""
    compositor = module("compositor")
    tree = compositor.ensure_scene_tree(scene)
    render_layers = next(n for n in tree.nodes if n.type == "R_LAYERS")
    output = next(n for n in tree.nodes if n.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite"))
    node = tree.nodes.new(NODE)
    tree.links.new(render_layers.outputs["Image"], node.inputs[0])
    tree.links.new(node.outputs[0], output.inputs[0])
    node.settings.styles[0].filepath = style_path
    return node


def render_plain(path_prefix: str, animation: bool = False) -> None:
    scene = bpy.context.scene
    saved = scene.render.filepath
    scene.render.filepath = path_prefix
    try:
        if animation:
            bpy.ops.render.render(animation=True)
        else:
            bpy.ops.render.render(write_still=True)
    finally:
        scene.render.filepath = saved


def stylize(animation: bool = False) -> dict:
    started = time.monotonic()
    try:
        result = bpy.ops.node.adain_render(animation=animation)
        error = None
    except RuntimeError as exc:
        result, error = {"CANCELLED"}, str(exc)
    return {"result": sorted(result), "error": error, "seconds": time.monotonic() - started}


def menu_has_node() -> bool:
    ui = module("ui")
    return any(draw is ui._draw_add for _menu, draw in ui._added_to)


# ---------------------------------------------------------------------------------------------------- scenarios
def scenario_still(cfg: dict) -> dict:
    out = cfg["out"]
    report = {"install": install(cfg["zip"])}
    prefs().model = cfg["model"]
    report["menu_has_node"] = menu_has_node()
    scene = setup_scene(os.path.join(out, "still_"))
    node = add_node(scene, cfg["style"])
    report["node_in_tree"] = node.bl_idname == NODE and node.name in module("compositor").scene_tree(scene).nodes

    # Standard view: plain render (the node passes through), then Render Stylized.
    render_plain(os.path.join(out, "plain_standard_"))
    report["standard"] = stylize()
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_standard.png"))
    image = module("node").result_node(node).image
    report["packed"] = image is not None and image.packed_file is not None
    report["result_info"] = node.result_info
    report["switch_on_after"] = module("node").is_switched_on(node)

    # A plain render after it passes through again (the handler switches the stored result off), then back on.
    render_plain(os.path.join(out, "plain_again_"))
    report["switch_on_after_plain_render"] = module("node").is_switched_on(node)

    # AgX view: the result goes back through "AgX Base sRGB". Network colours: the random model's near-primaries are
    # what shows the view's compression (the default palette mode would map them to the style's colours).
    node.settings.color = "style"
    scene.view_settings.view_transform = "AgX"
    render_plain(os.path.join(out, "plain_agx_"))
    report["agx"] = stylize()
    report["agx_colorspace"] = module("node").result_node(node).image.colorspace_settings.name
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_agx.png"))
    scene.adain.exact_display = True
    report["agx_exact"] = stylize()
    report["view_after_exact"] = scene.view_settings.view_transform
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_agx_exact.png"))
    scene.adain.exact_display = False
    scene.view_settings.view_transform = "Standard"
    node.settings.color = "palette"

    # A Render Layers pass used downstream of the node (Set Alpha ← Alpha): the output pass must re-render.
    tree = module("compositor").scene_tree(scene)
    render_layers = next(n for n in tree.nodes if n.type == "R_LAYERS")
    output = next(n for n in tree.nodes if n.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite"))
    set_alpha = tree.nodes.new("CompositorNodeSetAlpha")
    tree.links.new(node.outputs[0], set_alpha.inputs["Image"])
    tree.links.new(render_layers.outputs["Alpha"], set_alpha.inputs["Alpha"])
    tree.links.new(set_alpha.outputs[0], output.inputs[0])
    report["downstream_pass"] = stylize()
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_setalpha.png"))
    tree.nodes.remove(set_alpha)
    tree.links.new(node.outputs[0], output.inputs[0])

    # Unregister / register again: classes, handlers and menus go and come back; the node still works.
    ui, node_name = module("ui"), node.name
    del node  # a Python reference to a node of an unregistered class must not be touched
    bpy.ops.preferences.addon_disable(module=PKG)
    report["disabled"] = {
        "node_registered": bpy.types.Node.bl_rna_get_subclass_py(NODE) is not None,
        "operator": hasattr(bpy.types, "NODE_OT_adain_render"),
        "handlers_left": sum(h.__module__.startswith(PKG) for name in ("render_init", "render_complete",
                                                                           "render_cancel")
                             for h in getattr(bpy.app.handlers, name)),
        "scene_property": hasattr(bpy.types.Scene, "adain"),
        "menu_entries_left": len(ui._added_to),
    }
    bpy.ops.preferences.addon_enable(module=PKG)
    prefs().model = cfg["model"]
    node = module("compositor").scene_tree(scene).nodes[node_name]
    report["reenabled"] = {
        "node_registered": bpy.types.Node.bl_rna_get_subclass_py(NODE) is not None,
        "handlers": sum(h.__module__.startswith(PKG) for name in ("render_init", "render_complete", "render_cancel")
                        for h in getattr(bpy.app.handlers, name)),
        "menu_has_node": menu_has_node(),
        "style_kept": node.settings.styles[0].filepath == cfg["style"],
    }
    report["after_reenable"] = stylize()
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_reenabled.png"))

    # Two chained AdaIN nodes: the second stylises the first one's result (captured in a second level).
    tree = module("compositor").scene_tree(scene)
    output = next(n for n in tree.nodes if n.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite"))
    second_node = tree.nodes.new(NODE)
    second_node.settings.styles[0].filepath = cfg["style2"]
    tree.links.new(node.outputs[0], second_node.inputs[0])
    tree.links.new(second_node.outputs[0], output.inputs[0])
    report["chained"] = stylize()
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_chained.png"))
    tree.nodes.remove(second_node)
    tree.links.new(node.outputs[0], output.inputs[0])

    # Working resolution 0.5 on the node.
    node.settings.scale = 0.5
    report["working_resolution"] = stylize()
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_half.png"))
    node.settings.scale = 1.0

    # The painting's marks in flat areas on the node.
    node.settings.marks = 1.0
    report["marks"] = stylize()
    os.replace(os.path.join(out, "still_.png"), os.path.join(out, "stylized_marks.png"))
    node.settings.property_unset("marks")  # back to the default

    # A style on a white surround: left out (the default), then kept.
    node.settings.styles[0].filepath = cfg["cutout"]
    for backdrop in ("ignore", "keep"):
        node.settings.backdrop = backdrop
        report[f"backdrop_{backdrop}"] = stylize()
        os.replace(os.path.join(out, "still_.png"), os.path.join(out, f"stylized_backdrop_{backdrop}.png"))
    node.settings.styles[0].filepath = cfg["style"]
    node.settings.backdrop = "ignore"

    # Image Editor: Stylize Image on an image datablock, mixing a packed Blender image (0.7) and a file (0.3).
    content = bpy.data.images.load(os.path.join(out, "plain_standard_.png"))
    style_image = bpy.data.images.load(cfg["style"])
    style_image.pack()
    settings = scene.adain
    first = settings.styles.add()
    first.image, first.weight = style_image, 0.7
    second = settings.styles.add()
    second.filepath, second.weight = cfg["style2"], 0.3
    before = set(bpy.data.images.keys())
    try:
        report["image_op"] = sorted(bpy.ops.image.adain_stylize(image=content.name))
    except RuntimeError as exc:
        report["image_op"] = str(exc)
    created = [bpy.data.images[name] for name in set(bpy.data.images.keys()) - before
               if not name.startswith(".")]
    report["image_op_created"] = [image.name for image in created]
    if len(created) == 1:
        created[0].file_format = "PNG"
        created[0].save(filepath=os.path.join(out, "image_op.png"), save_copy=True)
    return report


def scenario_animation(cfg: dict) -> dict:
    out = cfg["out"]
    report = {"install": install(cfg["zip"])}
    prefs().model = cfg["model"]
    scene = setup_scene(os.path.join(out, "anim_"))
    cube = bpy.data.objects["Cube"]
    for frame, x in ((1, -1.0), (3, 1.0)):
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, 3
    scene.frame_set(2)
    node = add_node(scene, cfg["style"])
    node.settings.temporal = cfg["temporal"]
    render_plain(os.path.join(out, "plain_"), animation=True)
    report["stylize"] = stylize(animation=True)
    report["frame_after"] = scene.frame_current

    # Cancel a second run while its first level is under way: nothing is written, the tree is left as it was.
    tree = module("compositor").scene_tree(scene)
    render_layers = next(n for n in tree.nodes if n.type == "R_LAYERS")
    pipeline = module("pipeline")
    scene.render.filepath = os.path.join(out, "cancelled_")
    job = pipeline.StylizedRender(scene, prefs(), animation=True)
    steps, cancelled_with = job.steps(), None
    try:
        for count, _ in enumerate(steps):
            if count == 3:
                report["capture_nodes_during"] = sum(n.name.startswith(".adain capture") for n in tree.nodes)
                job.cancel()
    except Exception as exc:  # engine.EngineCancelled
        cancelled_with = type(exc).__name__
    report["cancel"] = {
        "raised": cancelled_with,
        "capture_nodes_left": sum(n.name.startswith(".adain capture") for n in tree.nodes),
        "render_layers_muted": render_layers.mute,
        "running": pipeline.is_running(),
        "frame": scene.frame_current,
    }
    scene.render.filepath = os.path.join(out, "anim_")
    report["result_info"] = node.result_info
    report["files"] = sorted(os.listdir(out))
    return report


def scenario_no_engine(cfg: dict) -> dict:
    """Blender's Python without the engine: first no engine at all (our error, no output), then the worker."""
    out = cfg["out"]
    # Hide adain_core (an editable install's finder, or a path entry holding it) from this Python.
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "adain_core"))]
    try:
        import adain_core  # noqa: F401

        hidden = False
    except ImportError:
        hidden = True
    report = {"engine_hidden": hidden, "install": install(cfg["zip"])}
    prefs().model = cfg["model"]
    scene = setup_scene(os.path.join(out, "still_"))
    add_node(scene, cfg["style"])
    report["auto"] = stylize()
    report["files_after_auto"] = sorted(os.listdir(out))
    prefs().engine_mode = "WORKER"
    prefs().engine_python = "/nonexistent/bin/python"
    report["bad_python"] = stylize()
    report["files_after_bad_python"] = sorted(os.listdir(out))

    # The same Blender with the engine's Python set: the worker does the work.
    prefs().engine_mode = "AUTO"
    prefs().engine_python = cfg["engine_python"]
    render_plain(os.path.join(out, "plain_"))
    report["worker"] = stylize()
    return _with_backend(report)


def scenario_legacy(cfg: dict) -> dict:
    """Blender 4.x (scene.node_tree, Composite node) with the engine in a worker: a still and a 3-frame animation
    with temporal smoothing (the worker chains the frames as one sequence)."""
    out = cfg["out"]
    report = {"version": list(bpy.app.version), "install": install(cfg["zip"])}
    prefs().model = cfg["model"]
    prefs().engine_python = cfg["engine_python"]
    scene = setup_scene(os.path.join(out, "still_"))
    node = add_node(scene, cfg["style"])
    report["tree_is_scene_node_tree"] = module("compositor").scene_tree(scene) == getattr(scene, "node_tree", None)
    render_plain(os.path.join(out, "plain_"))
    report["still"] = stylize()
    report["packed"] = module("node").result_node(node).image.packed_file is not None
    scene.render.filepath = os.path.join(out, "anim_")
    cube = bpy.data.objects["Cube"]
    for frame, x in ((1, -1.0), (3, 1.0)):
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, 3
    node.settings.temporal = cfg["temporal"]
    render_plain(os.path.join(out, "plain_anim_"), animation=True)
    report["animation"] = stylize(animation=True)
    report["files"] = sorted(os.listdir(out))
    return _with_backend(report)


def scenario_first_use(cfg: dict) -> dict:
    """A user's first stylised render: the extension installed from its zip, nothing set but a style image (the
    model stays "default"), the engine's cache empty; the engine runs in Blender's Python or, with
    ``engine_python``, in the worker."""
    out = cfg["out"]
    report = {"version": list(bpy.app.version), "install": install(cfg["zip"]), "model": prefs().model}
    if cfg.get("engine_python"):
        prefs().engine_python = cfg["engine_python"]
    scene = setup_scene(os.path.join(out, "still_"))
    add_node(scene, cfg["style"])
    render_plain(os.path.join(out, "plain_"))
    report["still"] = stylize()
    report["files"] = sorted(os.listdir(out))
    return _with_backend(report)


def main() -> None:
    scenario, config_path, result_path = sys.argv[-3:]
    with open(config_path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    try:
        report = globals()[f"scenario_{scenario}"](cfg)
    except Exception:
        report = {"exception": traceback.format_exc()}
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()

