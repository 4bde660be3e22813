# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene's compositor tree across Blender versions (5.0: ``scene.compositing_node_group`` and Group Output;
4.x: ``scene.node_tree`` and Composite) and the graph questions the render flow asks of it."""

from __future__ import annotations

import bpy

BLENDER_5 = bpy.app.version >= (5, 0, 0)

NODE_IDNAME = "CompositorNodeAdaIN"

# Nodes whose output needs the render itself, so muting Render Layers would blank them.
_RENDER_SOURCE_TYPES = {"R_LAYERS"}


def scene_tree(scene):
    """The compositor node tree the scene renders through, or None when compositing is off."""
    if BLENDER_5:
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def ensure_scene_tree(scene):
    """Return the scene's compositor tree, creating one (Render Layers → output) like Blender's "Use Nodes" does."""
    tree = scene_tree(scene)
    if tree is not None:
        return tree
    if BLENDER_5:
        tree = bpy.data.node_groups.new("Compositor Nodes", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        render_layers = tree.nodes.new("CompositorNodeRLayers")
        output = tree.nodes.new("NodeGroupOutput")
        output.location = (400, 0)
        tree.links.new(render_layers.outputs["Image"], output.inputs[0])
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    return scene.node_tree


def is_adain_node(node) -> bool:
    return getattr(node, "bl_idname", "") == NODE_IDNAME


def adain_nodes(tree) -> list:
    return [node for node in tree.nodes if is_adain_node(node) and not node.mute] if tree else []


def output_nodes(tree) -> list:
    """Nodes whose result leaves the tree in a render: the active output, and File Output nodes."""
    outputs = []
    for node in tree.nodes:
        if node.mute:
            continue
        if node.bl_idname == "CompositorNodeOutputFile":
            outputs.append(node)
        elif BLENDER_5 and node.bl_idname == "NodeGroupOutput" and node.is_active_output:
            outputs.append(node)
        elif not BLENDER_5 and node.bl_idname == "CompositorNodeComposite":
            outputs.append(node)
    return outputs


def file_output_nodes(tree) -> list:
    return [node for node in tree.nodes if node.bl_idname == "CompositorNodeOutputFile"]


def render_layer_nodes(tree) -> list:
    return [node for node in tree.nodes if node.type in _RENDER_SOURCE_TYPES]


def _upstream_links(socket):
    return [link for link in socket.links if link.is_valid and not link.is_muted]


def upstream(sockets, stop=lambda node: False) -> set:
    """Nodes that feed ``sockets``, walking links backwards; a node for which ``stop`` is true is collected but
    not walked through."""
    seen: dict = {}
    stack = [link.from_node for socket in sockets for link in _upstream_links(socket)]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        if stop(node):
            continue
        for socket in node.inputs:
            stack.extend(link.from_node for link in _upstream_links(socket))
    return set(seen.values())


def adain_levels(tree) -> list[list]:
    """The tree's AdaIN nodes grouped by depth: level 0 sees no other AdaIN node upstream, level n has its deepest
    upstream AdaIN node at level n-1. Each level is captured in one render."""
    nodes = adain_nodes(tree)
    ups = {node.name: [n for n in upstream(node.inputs) if is_adain_node(n) and not n.mute] for node in nodes}
    level: dict[str, int] = {}

    def depth(node, trail=()):
        if node.name in level:
            return level[node.name]
        if node.name in trail:  # Blender refuses cycles; stay finite anyway
            return 0
        value = max((depth(u, trail + (node.name,)) + 1 for u in ups[node.name]), default=0)
        level[node.name] = value
        return value

    for node in nodes:
        depth(node)
    levels: list[list] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in nodes:
        levels[level[node.name]].append(node)
    return levels


def render_needed(sinks: list, switched_on: set) -> bool:
    """Whether the sinks' inputs depend on a render pass, given the AdaIN nodes whose switch is on (their own input
    is then ignored). False means muting Render Layers (a compositor-only run) gives the same image."""
    sockets = [socket for sink in sinks for socket in sink.inputs]
    feeding = upstream(sockets, stop=lambda node: node.name in switched_on)
    return any(node.type in _RENDER_SOURCE_TYPES and not node.mute for node in feeding if node.name not in switched_on)


def new_capture_node(tree, directory: str, source_socket, display_override: dict | None):
    """A temporary File Output node writing ``source_socket`` as an 8-bit RGBA PNG into ``directory``, colour
    managed like the render output ("save as render": the view transform is applied, so the PNG holds what the
    user sees). ``display_override`` (view settings) forces an sRGB display."""
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.name = node.label = ".adain capture"
    fmt = node.format
    if BLENDER_5:
        fmt.media_type = "IMAGE"
        node.directory = directory
        node.file_name = "capture_"
        node.file_output_items.new("RGBA", "Image")
    else:
        node.base_path = directory
    fmt.file_format = "PNG"
    fmt.color_mode = "RGBA"
    fmt.color_depth = "8"
    if hasattr(node, "save_as_render"):
        node.save_as_render = True
    if display_override is not None:
        fmt.color_management = "OVERRIDE"
        fmt.display_settings.display_device = "sRGB"
        for key, value in display_override.items():
            setattr(fmt.view_settings, key, value)
    tree.links.new(source_socket, node.inputs[0])
    return node


def input_source(node):
    """The socket feeding the AdaIN node's image input, or None when unconnected."""
    links = _upstream_links(node.inputs[0])
    return links[0].from_socket if links else None
