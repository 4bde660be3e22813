# SPDX-License-Identifier: GPL-3.0-or-later
"""The "AdaIN Style Transfer" compositor node.

Python cannot run per pixel inside Blender's compositor, so the node is a custom group of built-in nodes:
Group Input → Switch(off), Image → Switch(on), Switch → Group Output. The render flow (``pipeline``) stylises what
arrives at the input, stores it in the Image datablock and turns the switch on; until then the node passes its input
through unchanged.
"""

from __future__ import annotations

import bpy

from . import compositor
from .settings import AdaINSettings, draw_settings, ensure_one_style

_INNER_PREFIX = ".AdaIN Style Transfer"
_SWITCH = "Switch"
_RESULT = "Result"


def _build_inner_tree(name: str):
    tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    group_in = tree.nodes.new("NodeGroupInput")
    group_out = tree.nodes.new("NodeGroupOutput")
    result = tree.nodes.new("CompositorNodeImage")
    result.name = result.label = _RESULT
    switch = tree.nodes.new("CompositorNodeSwitch")
    switch.name = _SWITCH
    group_in.location, result.location, switch.location, group_out.location = (-300, 100), (-300, -100), (0, 0), (200, 0)
    tree.links.new(group_in.outputs[0], switch.inputs["Off"])
    tree.links.new(result.outputs["Image"], switch.inputs["On"])
    tree.links.new(switch.outputs[0], group_out.inputs[0])
    return tree


def _switch_node(node):
    return node.node_tree.nodes[_SWITCH]


def result_node(node):
    return node.node_tree.nodes[_RESULT]


def is_switched_on(node) -> bool:
    switch = _switch_node(node)
    if "Switch" in switch.inputs:  # 5.0: a boolean input socket
        return bool(switch.inputs["Switch"].default_value)
    return bool(switch.check)


def set_switch(node, on: bool) -> None:
    switch = _switch_node(node)
    if "Switch" in switch.inputs:
        switch.inputs["Switch"].default_value = on
    else:
        switch.check = on


class CompositorNodeAdaIN(bpy.types.CompositorNodeCustomGroup):
    """Stylise the image with AdaIN style transfer (applied by Render Stylized)"""

    bl_idname = compositor.NODE_IDNAME
    bl_label = "AdaIN Style Transfer"
    bl_icon = "BRUSH_DATA"
    bl_width_default = 220

    settings: bpy.props.PointerProperty(type=AdaINSettings)
    result_info: bpy.props.StringProperty(
        name="Result", description="What the stored result is (frames, style); empty: no result yet"
    )

    @classmethod
    def poll(cls, node_tree):
        return node_tree.bl_idname == "CompositorNodeTree"

    def init(self, context):
        self.node_tree = _build_inner_tree(_INNER_PREFIX)
        ensure_one_style(self.settings)

    def copy(self, node):
        # Each node owns its result image: never share the inner tree between copies.
        self.node_tree = node.node_tree.copy()
        result_node(self).image = None
        set_switch(self, False)
        self.result_info = ""

    def free(self):
        tree = self.node_tree
        if tree is not None and tree.users <= 1:
            image = tree.nodes[_RESULT].image if _RESULT in tree.nodes else None
            bpy.data.node_groups.remove(tree)
            if image is not None and image.users == 0:
                bpy.data.images.remove(image)

    def draw_buttons(self, context, layout):
        draw_settings(layout, self.settings, compact=True)
        if self.result_info and is_switched_on(self):
            layout.label(text=self.result_info, icon="CHECKMARK")

    def draw_buttons_ext(self, context, layout):
        draw_settings(layout, self.settings, compact=False)

    def draw_label(self):
        styles = self.settings.active_styles()
        if len(styles) == 1:
            return f"AdaIN: {styles[0].label}"
        return self.bl_label


def register() -> None:
    bpy.utils.register_class(CompositorNodeAdaIN)


def unregister() -> None:
    bpy.utils.unregister_class(CompositorNodeAdaIN)
