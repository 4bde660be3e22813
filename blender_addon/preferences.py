# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: where the engine runs (this Blender's Python or a worker in the engine's Python), the model
and the device."""

from __future__ import annotations

import bpy

ENGINE_MODES = (
    ("AUTO", "Automatic", "Use adain_core in Blender's own Python when it imports, else the engine worker"),
    ("IN_PROCESS", "Blender's Python", "Import adain_core (and torch) into Blender's own Python"),
    ("WORKER", "Engine worker", "Run the engine in a separate process started with the engine's Python"),
)


class AdaINPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_mode: bpy.props.EnumProperty(name="Engine", items=ENGINE_MODES, default="AUTO")
    engine_python: bpy.props.StringProperty(
        name="Engine Python",
        description="Python executable of the environment where adain_core is installed "
        "(e.g. ~/.venvs/adain/bin/python); the engine worker runs there",
        subtype="FILE_PATH",
    )
    model: bpy.props.StringProperty(
        name="Model",
        description='"default" for the bundled decoder, or the path of a model .safetensors file',
        default="default",
    )
    device: bpy.props.StringProperty(
        name="Device", description='"auto", "cpu", "cuda", "cuda:1", "mps"…', default="auto"
    )

    def draw(self, context):
        from . import backends

        layout = self.layout
        layout.prop(self, "engine_mode")
        row = layout.row()
        row.active = self.engine_mode != "IN_PROCESS"
        row.prop(self, "engine_python")
        layout.prop(self, "model")
        layout.prop(self, "device")
        row = layout.row()
        row.operator("preferences.adain_check_engine", icon="FILE_REFRESH")
        status = backends.last_status()
        if status:
            box = layout.box()
            for line in status.splitlines():
                box.label(text=line)


def get(context=None) -> AdaINPreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


class PREFERENCES_OT_adain_check_engine(bpy.types.Operator):
    """Start the engine with the current settings and report what runs where"""

    bl_idname = "preferences.adain_check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        from . import backends

        try:
            backend = backends.get_backend(get(context))
        except backends.EngineUnavailable as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, backend.description)
        return {"FINISHED"}


_CLASSES = (AdaINPreferences, PREFERENCES_OT_adain_check_engine)


register, unregister = bpy.utils.register_classes_factory(_CLASSES)
