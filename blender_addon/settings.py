# SPDX-License-Identifier: GPL-3.0-or-later
"""Stylisation settings shared by the compositor node and the Image Editor: styles (a Blender image or a file, with
a weight), α, colour mode, style size, temporal smoothing; plus the widgets that draw them."""

from __future__ import annotations

import bpy

# Mirrors adain_core.vocabulary.COLOR_MODES (tests/test_vocabulary.py pins the two): (mode, label, tooltip), the
# engine's default first.
COLOR_MODES = (
    ("palette", "Painting's palette", "Give the result the colours of the style painting itself"),
    ("style", "Network colours", "The colours as the network renders the style (often warmer than the painting)"),
    ("preserve", "Keep colours", "Keep the colours of the content; take the style's textures"),
    ("luminance", "Luminance only", "Stylise the brightness only; keep the content's chroma"),
)
# Mirrors adain_core.vocabulary.BACKDROP_MODES the same way.
BACKDROP_MODES = (
    ("ignore", "Leave Out", "A flat white or black surround of a style image (a cut-out figure) is not part of the "
     "style: the result takes the figure's colours and strokes"),
    ("keep", "Keep", "Use the whole style image, surround included (line art whose white paper is the look)"),
)


class AdaINStyle(bpy.types.PropertyGroup):
    image: bpy.props.PointerProperty(
        name="Style Image", type=bpy.types.Image, description="Blender image used as style (takes precedence)"
    )
    filepath: bpy.props.StringProperty(
        name="Style File", subtype="FILE_PATH", description="Image file used as style when no Blender image is set"
    )
    weight: bpy.props.FloatProperty(
        name="Weight", min=0.0, soft_max=1.0, default=1.0,
        description="Share of this style in the mix (weights are normalised by the engine)",
    )

    @property
    def is_set(self) -> bool:
        return self.image is not None or bool(self.filepath)

    @property
    def label(self) -> str:
        if self.image is not None:
            return self.image.name
        return bpy.path.basename(self.filepath)


class AdaINSettings(bpy.types.PropertyGroup):
    styles: bpy.props.CollectionProperty(type=AdaINStyle)
    alpha: bpy.props.FloatProperty(
        name="Strength (α)", min=0.0, max=1.0, default=1.0, subtype="FACTOR",
        description="0 keeps the content, 1 is fully stylised (blended in feature space)",
    )
    color: bpy.props.EnumProperty(name="Colour", items=COLOR_MODES, default=COLOR_MODES[0][0])
    backdrop: bpy.props.EnumProperty(name="Style Backdrop", items=BACKDROP_MODES, default=BACKDROP_MODES[0][0])
    style_size: bpy.props.IntProperty(
        name="Style Size", min=64, soft_max=2048, default=512, subtype="PIXEL",
        description="The style image is resized so its shorter side has this many pixels before encoding; "
        "larger sizes give finer style textures",
    )
    scale: bpy.props.FloatProperty(
        name="Working Resolution", min=0.0, max=1.0, default=1.0, subtype="FACTOR",
        description="Fraction of the image size the style is computed at, then upsampled along the image's edges "
        "to its full size: faster, and larger brush strokes. 1 = full resolution, 0 = auto (about 1.5 megapixels)",
    )
    marks: bpy.props.FloatProperty(
        name="Painting's Marks", min=0.0, max=2.0, default=0.5, subtype="FACTOR",
        description="The painting's own typical marks laid over the image's flat areas (a clear sky), where the "
        "network alone paints the same dabs for every painting. 0 = off",
    )
    temporal: bpy.props.FloatProperty(
        name="Temporal Smoothing", min=0.0, max=0.99, default=0.5, subtype="FACTOR",
        description="Animations only: how much of the previous frames' content statistics is kept "
        "(0 = every frame on its own, less flicker towards 1)",
    )

    exact_display: bpy.props.BoolProperty(
        name="Exact Display Output",
        description="Render Stylized only (scene settings): write the output pass through the Standard view so image "
        "files hold the stylised picture exactly. Off: the result goes back through the inverse of the view "
        "transform (scene-referred EXR, later nodes see scene-linear data), and colours that view cannot show, "
        "such as pure primaries under AgX, are compressed",
    )

    def active_styles(self) -> list[AdaINStyle]:
        return [style for style in self.styles if style.is_set and style.weight > 0.0]


def ensure_one_style(settings: AdaINSettings) -> None:
    if not settings.styles:
        settings.styles.add()


def draw_settings(layout, settings: AdaINSettings, *, compact: bool, animation_options: bool = True) -> None:
    """Draw ``settings`` into ``layout``; the add/remove buttons find it through the "adain_settings" pointer."""
    layout.context_pointer_set("adain_settings", settings)
    for index, style in enumerate(settings.styles):
        box = layout.box() if not compact else layout.column(align=True)
        row = box.row(align=True)
        row.prop(style, "image", text="")
        remove = row.operator("wm.adain_style_remove", text="", icon="X")
        remove.index = index
        if style.image is None:
            box.prop(style, "filepath", text="")
        if len(settings.styles) > 1 or not compact:
            box.prop(style, "weight")
    layout.operator("wm.adain_style_add", text="Add Style", icon="ADD")
    layout.prop(settings, "alpha")
    layout.prop(settings, "color", text="" if compact else "Colour")
    layout.prop(settings, "style_size")
    layout.prop(settings, "backdrop")
    layout.prop(settings, "scale")
    layout.prop(settings, "marks")
    if animation_options and not compact:
        layout.prop(settings, "temporal")


_CLASSES = (AdaINStyle, AdaINSettings)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.adain = bpy.props.PointerProperty(type=AdaINSettings, name="AdaIN Style Transfer")


def unregister() -> None:
    del bpy.types.Scene.adain
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
