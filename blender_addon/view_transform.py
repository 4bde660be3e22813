# SPDX-License-Identifier: GPL-3.0-or-later
"""How the network sees the render and how its result returns to scene-linear, using Blender's own colour
management (OCIO) so the adapter does no colour maths.

The network works on display-referred sRGB: the capture PNG is written "as render", i.e. through the scene's view
transform, look and exposure, onto an sRGB display, which is what the user sees. The result goes back into the
compositor as an image whose colourspace is the inverse of that view transform (e.g. "AgX Base sRGB" for AgX), so
after Blender applies the view transform again the output shows the stylised image. Colours the view transform
cannot produce (AgX and Filmic never show fully saturated primaries) come out compressed, as everything else under
that view. Where no inverse exists (a look, exposure/gamma, curves, white balance, a non-sRGB display, or a view such
as Khronos PBR Neutral, False Color, Raw), or when the user asks for the exact display image, the final pass
temporarily renders through the Standard view with the result in sRGB: image outputs then hold the stylised picture
exactly, but float outputs (EXR) store display-referred values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# view transform → input colourspace that inverts it on an sRGB display (checked to round-trip within 1/255).
INVERSE_COLORSPACE = {
    "Standard": "sRGB",
    "AgX": "AgX Base sRGB",
    "Filmic": "Filmic sRGB",
    "ACES 1.3": "ACES 1.3 sRGB",
    "ACES 2.0": "ACES 2.0 sRGB",
}

_VIEW_KEYS = ("view_transform", "look", "exposure", "gamma")


@dataclass
class ColourPlan:
    result_colorspace: str
    """Colourspace of the result image put back into the compositor."""
    capture_override: dict | None
    """View settings for the capture node when the scene's display is not sRGB (None: follow the scene)."""
    final_view_override: dict | None = None
    """View/display settings to apply to the scene during the final pass (None: keep the scene's)."""
    note: str = ""
    """Why the plan deviates from an exact inverse, for the report."""
    _saved: dict = field(default_factory=dict, repr=False)

    def apply_final(self, scene) -> None:
        if self.final_view_override is None:
            return
        view, display = scene.view_settings, scene.display_settings
        self._saved = {key: getattr(view, key) for key in (*_VIEW_KEYS, "use_curve_mapping")}
        self._saved["display_device"] = display.display_device
        if hasattr(view, "use_white_balance"):
            self._saved["use_white_balance"] = view.use_white_balance
            view.use_white_balance = False
        display.display_device = "sRGB"
        for key, value in self.final_view_override.items():
            setattr(view, key, value)
        view.use_curve_mapping = False

    def restore(self, scene) -> None:
        if not self._saved:
            return
        saved, self._saved = self._saved, {}
        scene.display_settings.display_device = saved.pop("display_device")
        view = scene.view_settings
        view.view_transform = saved.pop("view_transform")  # before the look: looks belong to a view
        for key, value in saved.items():
            setattr(view, key, value)


def colorspace_exists(name: str) -> bool:
    import bpy

    items = bpy.types.ColorManagedInputColorspaceSettings.bl_rna.properties["name"].enum_items
    return name in {item.identifier for item in items}


def plan_for(scene, exact_display: bool = False) -> ColourPlan:
    """The plan for ``scene``; ``exact_display`` asks for the Standard-view output pass even where an inverse
    exists (image files then hold the network's picture exactly, also colours the view transform cannot show)."""
    view, display = scene.view_settings, scene.display_settings
    reasons = []
    if exact_display and view.view_transform != "Standard":
        reasons.append("the exact display output option")
    if display.display_device != "sRGB":
        reasons.append(f"display {display.display_device!r}")
    if view.look not in ("None", ""):
        reasons.append(f"look {view.look!r}")
    if view.exposure != 0.0 or view.gamma != 1.0:
        reasons.append("exposure/gamma")
    if view.use_curve_mapping:
        reasons.append("curves")
    if getattr(view, "use_white_balance", False):
        reasons.append("white balance")
    inverse = INVERSE_COLORSPACE.get(view.view_transform)
    if inverse is None or not colorspace_exists(inverse):
        reasons.append(f"view transform {view.view_transform!r}")
    capture_override = None
    if display.display_device != "sRGB":
        capture_override = {key: getattr(view, key) for key in _VIEW_KEYS}
    if not reasons:
        return ColourPlan(result_colorspace=inverse, capture_override=None)
    return ColourPlan(
        result_colorspace="sRGB",
        capture_override=capture_override,
        final_view_override={"view_transform": "Standard", "look": "None", "exposure": 0.0, "gamma": 1.0},
        note="output pass through the Standard view (" + ", ".join(reasons) + "): image files hold the stylised "
        "picture exactly, EXR outputs hold display-referred values",
    )
