# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving pixels between Blender images, PNG files and the ``(H, W, 4)`` float32 top-down arrays the engine takes.

Colour conversions are left to Blender: byte images hold sRGB-encoded values that ``Image.pixels`` returns as they
are, and images Blender must convert (float buffers, render results) are first written out as 8-bit PNG by Blender's
own colour management.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def read_pixels(image) -> np.ndarray:
    """``image``'s pixels as stored, (H, W, 4) float32, rows top-down."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"image {image.name!r} has no pixels (missing file?)")
    flat = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    # Blender stores rows bottom-up.
    return np.flipud(flat.reshape(height, width, 4))


def write_pixels(image, array: np.ndarray) -> None:
    """Set ``image``'s pixels from an (H, W, 3|4) top-down array of its size; a missing alpha becomes opaque."""
    height, width = array.shape[:2]
    if tuple(image.size) != (width, height):
        image.scale(width, height)
    if array.shape[2] == 3:
        array = np.concatenate([array, np.ones((height, width, 1), dtype=array.dtype)], axis=2)
    image.pixels.foreach_set(np.ascontiguousarray(np.flipud(array), dtype=np.float32).ravel())


def load_png(path: str) -> np.ndarray:
    """An 8-bit PNG written by Blender, as (H, W, 4) float32 sRGB-encoded values."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        image.colorspace_settings.name = "sRGB"
        return read_pixels(image)
    finally:
        bpy.data.images.remove(image)


def new_byte_image(name: str, width: int, height: int, colorspace: str):
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=False)
    image.colorspace_settings.name = colorspace
    image.alpha_mode = "STRAIGHT"
    return image


def save_png(array: np.ndarray, path: str, scratch_name: str = ".adain scratch") -> None:
    """Write an sRGB-encoded (H, W, 3|4) array as an 8-bit RGBA PNG, through a scratch byte image."""
    height, width = array.shape[:2]
    image = bpy.data.images.get(scratch_name)
    if image is None or image.is_float or tuple(image.size) != (width, height):
        if image is not None:
            bpy.data.images.remove(image)
        image = new_byte_image(scratch_name, width, height, "sRGB")
    write_pixels(image, array)
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()


def remove_scratch(scratch_name: str = ".adain scratch") -> None:
    image = bpy.data.images.get(scratch_name)
    if image is not None:
        bpy.data.images.remove(image)


def _render_settings_png(scene):
    """Temporarily switch the scene's output format to 8-bit RGBA PNG; returns a function that restores it."""
    settings = scene.render.image_settings
    keys = [key for key in ("media_type", "file_format", "color_mode", "color_depth") if hasattr(settings, key)]
    saved = {key: getattr(settings, key) for key in keys}
    if "media_type" in saved:
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGBA"
    settings.color_depth = "8"

    def restore():
        for key in keys:
            try:
                setattr(settings, key, saved[key])
            except (TypeError, ValueError):
                pass

    return restore


def export_png(image, path: str, scene=None) -> str:
    """Write ``image`` as an sRGB 8-bit PNG at ``path`` without changing the datablock.

    Render results and compositor viewers go through the scene's view transform (what the user sees); other
    images are converted from their colourspace by Blender.
    """
    if image.type in ("RENDER_RESULT", "COMPOSITING"):
        scene = scene or bpy.context.scene
        restore = _render_settings_png(scene)
        try:
            image.save_render(path, scene=scene)
        finally:
            restore()
        return path
    if not image.has_data:
        image.reload()
    if image.size[0] == 0:
        raise ValueError(f"image {image.name!r} has no pixels (is its file missing?)")
    file_format = image.file_format
    try:
        image.file_format = "PNG"
        image.save(filepath=path, save_copy=True)
    finally:
        image.file_format = file_format
    return path


def style_file(image_or_path, directory: str, index: int) -> str:
    """A file the engine can read for a style given as a Blender image or a path (non-PNG/JPEG files such as EXR
    are converted through Blender)."""
    if isinstance(image_or_path, str):
        path = bpy.path.abspath(image_or_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"style image file {path} does not exist")
        if path.lower().endswith(PIL_SUFFIXES):
            return path
        image = bpy.data.images.load(path, check_existing=True)
    else:
        image = image_or_path
        source = bpy.path.abspath(image.filepath) if image.filepath else ""
        if (image.source == "FILE" and image.packed_file is None and not image.is_dirty and source
                and os.path.isfile(source) and source.lower().endswith(PIL_SUFFIXES) and not image.is_float):
            return source
    return export_png(image, os.path.join(directory, f"style_{index}.png"))
