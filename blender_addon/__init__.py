# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender extension "AdaIN Style Transfer": a compositor node that stylises renders and animations, and an Image
Editor operator, both running the adain_core engine in-process or through its worker process.

Nothing here imports bpy at module level, so ``blender_addon.build`` can be imported (and the zip built) outside
Blender.
"""

_MODULE_NAMES = ("preferences", "settings", "node", "operators", "ui", "handlers")


def _modules():
    import importlib

    return [importlib.import_module(f"{__package__}.{name}") for name in _MODULE_NAMES]


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
    from . import backends

    backends.forget()
