# SPDX-License-Identifier: GPL-3.0-or-later
"""Menus and sidebar panels: the node in the compositor's Add menu, Render Stylized in the Render menu and the
compositor sidebar, Stylize Image in the Image Editor."""

from __future__ import annotations

import bpy

from . import backends, compositor
from .node import is_switched_on
from .settings import draw_settings

# The Add-menu category the node goes into, first that exists (5.0 has "Creative", 4.x "Filter").
_ADD_MENUS = ("NODE_MT_category_compositor_creative", "NODE_MT_category_compositor_filter", "NODE_MT_add")
_added_to: list = []


def _draw_add(self, context):
    if getattr(context.space_data, "tree_type", "") != "CompositorNodeTree":
        return
    op = self.layout.operator("node.add_node", text="AdaIN Style Transfer", icon="BRUSH_DATA")
    op.type = compositor.NODE_IDNAME
    op.use_transform = True


def _draw_render_menu(self, context):
    layout = self.layout
    layout.separator()
    layout.operator("node.adain_render", text="Render Stylized Image", icon="RENDER_STILL").animation = False
    layout.operator("node.adain_render", text="Render Stylized Animation", icon="RENDER_ANIMATION").animation = True


def _draw_engine_status(layout):
    status = backends.last_status()
    if status and not status.startswith("Engine"):
        box = layout.box()
        box.alert = True
        for line in status.split(". "):
            box.label(text=line, icon="ERROR")


class NODE_PT_adain(bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "AdaIN"
    bl_label = "AdaIN Style Transfer"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"

    def draw(self, context):
        layout = self.layout
        node = context.active_node
        col = layout.column(align=True)
        col.operator("node.adain_render", text="Render Stylized Image", icon="RENDER_STILL").animation = False
        col.operator("node.adain_render", text="Render Stylized Animation", icon="RENDER_ANIMATION").animation = True
        layout.prop(context.scene.adain, "exact_display")
        _draw_engine_status(layout)
        if node is None or not compositor.is_adain_node(node):
            layout.label(text="Select an AdaIN Style Transfer node", icon="INFO")
            return
        layout.label(text=node.name, icon="NODE")
        draw_settings(layout, node.settings, compact=False)
        if node.result_info:
            layout.label(text=f"Result: {node.result_info}" + ("" if is_switched_on(node) else " (off)"),
                         icon="IMAGE_DATA")


class IMAGE_PT_adain(bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "AdaIN"
    bl_label = "AdaIN Style Transfer"

    def draw(self, context):
        layout = self.layout
        draw_settings(layout, context.scene.adain, compact=False, animation_options=False)
        row = layout.row()
        row.enabled = getattr(context.space_data, "image", None) is not None
        row.operator("image.adain_stylize", icon="BRUSH_DATA")
        _draw_engine_status(layout)


def _draw_image_menu(self, context):
    self.layout.separator()
    self.layout.operator("image.adain_stylize", icon="BRUSH_DATA")


_PANELS = (NODE_PT_adain, IMAGE_PT_adain)


def register() -> None:
    for cls in _PANELS:
        bpy.utils.register_class(cls)
    for name in _ADD_MENUS:
        menu = getattr(bpy.types, name, None)
        if menu is not None:
            menu.append(_draw_add)
            _added_to.append((menu, _draw_add))
            break
    for name, draw in (("TOPBAR_MT_render", _draw_render_menu), ("IMAGE_MT_image", _draw_image_menu)):
        menu = getattr(bpy.types, name, None)
        if menu is not None:
            menu.append(draw)
            _added_to.append((menu, draw))


def unregister() -> None:
    while _added_to:
        menu, draw = _added_to.pop()
        menu.remove(draw)
    for cls in reversed(_PANELS):
        bpy.utils.unregister_class(cls)
