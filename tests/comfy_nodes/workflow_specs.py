"""The example workflows, described once: ``make_examples.py`` renders them into ``example_workflows/*.json``
(ComfyUI's UI format, shown as templates) and the server tests check those files against this description and
run them through the real server in API format.

A node is ``(id, class_type, column, widgets, title)``; a link is ``(from_id, from_output, to_id, to_input)``.
"""

from __future__ import annotations

MODEL_DEFAULT = "default (bundled)"
CONTENT = "adain_content.png"
CONTENT_MASKED = "adain_content_masked.png"
STYLE_A = "adain_style_a.png"
STYLE_B = "adain_style_b.png"
FRAMES = "adain_frames.png"

_SETUP = (
    "Put AdaIN models (.safetensors) into ComfyUI/models/adain/ and pick one in Load AdaIN Model "
    "('default (bundled)' is the decoder shipped with the pack). Choose your own images in the Load Image nodes."
)

WORKFLOWS: dict[str, dict] = {
    "adain_basic_stylize": {
        "note": "## Basic stylize\n" + _SETUP + "\n\nAlpha sets the style strength; the output has exactly the "
        "content's size.",
        "nodes": [
            (1, "LoadImage", 0, {"image": CONTENT}, "Content image"),
            (2, "LoadImage", 0, {"image": STYLE_A}, "Style image"),
            (3, "AdaINModelLoader", 1, {"model_name": MODEL_DEFAULT, "precision": "auto"}, None),
            (4, "AdaINStyleEncode", 1, {"style_size": 512}, None),
            (5, "AdaINStylize", 2, {"alpha": 1.0, "color": "palette", "tile": "auto", "temporal": 0.0}, None),
            (6, "SaveImage", 3, {"filename_prefix": "adain/stylized"}, None),
        ],
        "links": [(3, 0, 4, "model"), (2, 0, 4, "style_image"), (1, 0, 5, "image"), (3, 0, 5, "model"),
                  (4, 0, 5, "style"), (5, 0, 6, "images")],
    },
    "adain_two_style_mix": {
        "note": "## Two-style mix\n" + _SETUP + "\n\nStyle Mix interpolates the style cards (weights are relative). "
        "Save AdaIN Style stores the mix in models/adain/styles/ for Load AdaIN Style.",
        "nodes": [
            (1, "LoadImage", 0, {"image": CONTENT}, "Content image"),
            (2, "LoadImage", 0, {"image": STYLE_A}, "Style A"),
            (3, "LoadImage", 0, {"image": STYLE_B}, "Style B"),
            (4, "AdaINModelLoader", 1, {"model_name": MODEL_DEFAULT, "precision": "auto"}, None),
            (5, "AdaINStyleEncode", 1, {"style_size": 512}, "Encode style A"),
            (6, "AdaINStyleEncode", 1, {"style_size": 512}, "Encode style B"),
            (7, "AdaINStyleMix", 2, {"weight_1": 0.5, "weight_2": 0.5, "weight_3": 1.0, "weight_4": 1.0}, None),
            (8, "AdaINSaveStyle", 2, {"filename_prefix": "adain/mix", "destination": "models/adain/styles"}, None),
            (9, "AdaINStylize", 3, {"alpha": 1.0, "color": "palette", "tile": "auto", "temporal": 0.0}, None),
            (10, "SaveImage", 4, {"filename_prefix": "adain/mixed"}, None),
        ],
        "links": [(4, 0, 5, "model"), (2, 0, 5, "style_image"), (4, 0, 6, "model"), (3, 0, 6, "style_image"),
                  (5, 0, 7, "style_1"), (6, 0, 7, "style_2"), (7, 0, 8, "style"), (1, 0, 9, "image"),
                  (4, 0, 9, "model"), (7, 0, 9, "style"), (9, 0, 10, "images")],
    },
    "adain_masked_two_style": {
        "note": "## Masked, two styles\n" + _SETUP + "\n\nPaint a mask on the content image (right-click → Open in "
        "MaskEditor). Style A goes where you painted, style B everywhere else; disconnect style_unmasked to keep "
        "the content there. The mask must have the image's size.",
        "nodes": [
            (1, "LoadImage", 0, {"image": CONTENT_MASKED}, "Content image (paint the mask here)"),
            (2, "LoadImage", 0, {"image": STYLE_A}, "Style A (masked region)"),
            (3, "LoadImage", 0, {"image": STYLE_B}, "Style B (the rest)"),
            (4, "AdaINModelLoader", 1, {"model_name": MODEL_DEFAULT, "precision": "auto"}, None),
            (5, "AdaINStyleEncode", 1, {"style_size": 512}, "Encode style A"),
            (6, "AdaINStyleEncode", 1, {"style_size": 512}, "Encode style B"),
            (7, "AdaINStylize", 2, {"alpha": 1.0, "color": "palette", "tile": "auto", "temporal": 0.0}, None),
            (8, "SaveImage", 3, {"filename_prefix": "adain/masked"}, None),
        ],
        "links": [(4, 0, 5, "model"), (2, 0, 5, "style_image"), (4, 0, 6, "model"), (3, 0, 6, "style_image"),
                  (1, 0, 7, "image"), (4, 0, 7, "model"), (5, 0, 7, "style"), (1, 1, 7, "mask"),
                  (6, 0, 7, "style_unmasked"), (7, 0, 8, "images")],
    },
    "adain_frames_batch": {
        "note": "## Batch of frames\n" + _SETUP + "\n\nAn animated PNG/WebP (or any IMAGE batch, e.g. from Load "
        "Video → Get Video Components) is stylised frame by frame; temporal > 0 smooths the statistics between "
        "frames to reduce flicker. Frames are saved as PNGs and as an animated PNG.",
        "nodes": [
            (1, "LoadImage", 0, {"image": FRAMES}, "Frames (animated PNG/WebP)"),
            (2, "LoadImage", 0, {"image": STYLE_A}, "Style image"),
            (3, "AdaINModelLoader", 1, {"model_name": MODEL_DEFAULT, "precision": "auto"}, None),
            (4, "AdaINStyleEncode", 1, {"style_size": 512}, None),
            (5, "AdaINStylize", 2, {"alpha": 1.0, "color": "palette", "tile": "auto", "temporal": 0.5}, None),
            (6, "SaveImage", 3, {"filename_prefix": "adain/frame"}, "Save frames"),
            (7, "SaveAnimatedPNG", 3, {"filename_prefix": "adain/frames", "fps": 12.0, "compress_level": 4}, None),
        ],
        "links": [(3, 0, 4, "model"), (2, 0, 4, "style_image"), (1, 0, 5, "image"), (3, 0, 5, "model"),
                  (4, 0, 5, "style"), (5, 0, 6, "images"), (5, 0, 7, "images")],
    },
}

# Values the frontend appends after a node's widgets (the upload button of Load Image).
EXTRA_WIDGET_VALUES = {"LoadImage": ["image"]}
NODE_WIDTH = 330
COLUMN_GAP = 40


def _is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def render_ui(name: str, object_info: dict) -> dict:
    """Render one workflow of :data:`WORKFLOWS` into ComfyUI's UI (litegraph) JSON using the server's node defs."""
    import uuid

    spec = WORKFLOWS[name]
    infos = {node_id: object_info[cls] for node_id, cls, *_ in spec["nodes"]}
    socket_inputs: dict[int, list[tuple[str, str]]] = {}
    for node_id, cls, *_ in spec["nodes"]:
        info = infos[node_id]
        order = info["input_order"]
        defs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        socket_inputs[node_id] = [(n, defs[n][0]) for n in order.get("required", []) + order.get("optional", [])
                                  if not _is_widget(defs[n])]
    links = []
    incoming: dict[tuple[int, str], int] = {}
    outgoing: dict[tuple[int, int], list[int]] = {}
    for link_id, (src, out_idx, dst, in_name) in enumerate(spec["links"], start=1):
        slot_names = [n for n, _ in socket_inputs[dst]]
        if in_name not in slot_names:
            raise KeyError(f"{name}: node {dst} has no socket input {in_name!r} ({slot_names})")
        links.append([link_id, src, out_idx, dst, slot_names.index(in_name), infos[src]["output"][out_idx]])
        incoming[(dst, in_name)] = link_id
        outgoing.setdefault((src, out_idx), []).append(link_id)

    # Execution order (litegraph's "order"): a topological sort.
    deps = {nid: {src for src, _, dst, _ in spec["links"] if dst == nid} for nid, *_ in spec["nodes"]}
    order: list[int] = []
    while len(order) < len(deps):
        order.extend(sorted(n for n, d in deps.items() if n not in order and d <= set(order)))

    nodes = []
    column_y: dict[int, float] = {}
    for node_id, cls, column, widgets, title in spec["nodes"]:
        info = infos[node_id]
        defs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        widget_names = [n for n in names if _is_widget(defs[n])]
        unknown = set(widgets) - set(widget_names)
        if unknown:
            raise KeyError(f"{name}: node {node_id} ({cls}) has no widgets {sorted(unknown)}")
        values = [widgets.get(n, defs[n][1].get("default") if len(defs[n]) > 1 else None) for n in widget_names]
        values += EXTRA_WIDGET_VALUES.get(cls, [])
        inputs = [{"name": n, "type": t, "link": incoming.get((node_id, n))} for n, t in socket_inputs[node_id]]
        outputs = [{"name": out_name, "type": out_type, "slot_index": i, "links": outgoing.get((node_id, i), [])}
                   for i, (out_type, out_name) in enumerate(zip(info["output"], info["output_name"]))]
        height = 300 if cls == "LoadImage" else 46 + 22 * max(len(inputs), len(outputs)) + 26 * len(widget_names)
        x = 40 + column * (NODE_WIDTH + COLUMN_GAP)
        y = column_y.get(column, 120.0)
        column_y[column] = y + height + 60
        node = {"id": node_id, "type": cls, "pos": [x, y], "size": [NODE_WIDTH, height], "flags": {},
                "order": order.index(node_id), "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": cls}, "widgets_values": values}
        if title:
            node["title"] = title
        nodes.append(node)
    note_id = max(n["id"] for n in nodes) + 1
    nodes.append({"id": note_id, "type": "MarkdownNote", "pos": [40, -160], "size": [700, 220], "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [spec["note"]], "color": "#432", "bgcolor": "#653"})
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"adain-style-transfer/example_workflows/{name}")),
        "revision": 0,
        "last_node_id": note_id,
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.9, "offset": [0, 200]}},
        "version": 0.4,
    }
