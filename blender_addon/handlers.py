# SPDX-License-Identifier: GPL-3.0-or-later
"""Render handlers that keep plain renders honest: a render not started by Render Stylized (F12, ``blender -b -a``)
could otherwise output an AdaIN node's stored result from another frame or another scene state. Such renders see
the nodes as pass-through; the stored results come back when the render ends."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import compositor, pipeline
from .node import is_switched_on, set_switch

_switched_off: list[tuple[str, str, str]] = []  # (scene, tree, node) names


def _adain_nodes(scene):
    tree = compositor.scene_tree(scene)
    return [(tree, node) for node in compositor.adain_nodes(tree)] if tree is not None else []


@persistent
def _on_render_init(scene, *args):
    # render_init runs once per render job, before any frame (render_pre runs per frame).
    if pipeline.is_running():
        return
    for tree, node in _adain_nodes(scene):
        if is_switched_on(node):
            set_switch(node, False)
            _switched_off.append((scene.name, tree.name, node.name))


@persistent
def _on_render_end(scene, *args):
    if pipeline.is_running():
        return
    while _switched_off:
        _scene, tree_name, node_name = _switched_off.pop()
        tree = bpy.data.node_groups.get(tree_name) if compositor.BLENDER_5 else None
        if tree is None:
            scene_data = bpy.data.scenes.get(_scene)
            tree = compositor.scene_tree(scene_data) if scene_data is not None else None
        node = tree.nodes.get(node_name) if tree is not None else None
        if node is not None and compositor.is_adain_node(node):
            set_switch(node, True)


_HANDLERS = (
    ("render_init", _on_render_init),
    ("render_complete", _on_render_end),
    ("render_cancel", _on_render_end),
)


def register() -> None:
    for name, handler in _HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)


def unregister() -> None:
    for name, handler in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler in handlers:
            handlers.remove(handler)
    _switched_off.clear()
