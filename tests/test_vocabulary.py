"""One vocabulary: the adapters take colour modes, precisions and suffixes from adain_core.vocabulary; the GIMP
plug-in, which runs in GIMP's Python without the engine, keeps a mirror that must stay equal."""

from __future__ import annotations

import ast
from pathlib import Path

from adain_core import vocabulary
from gimp_plugin.install import PLUGIN_SOURCE


def _literal(path: Path, name: str):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} defines no {name}")


def test_gimp_plugin_colour_modes_mirror_the_engine():
    modes = _literal(PLUGIN_SOURCE / f"{PLUGIN_SOURCE.name}.py", "COLOR_MODES")
    assert tuple(mode for mode, _label, _tooltip in modes) == vocabulary.COLOR_MODES


def test_card_paths():
    assert vocabulary.is_card_path("a/b" + vocabulary.CARD_SUFFIX)
    assert vocabulary.is_card_path("mixed.safetensors")
    assert not vocabulary.is_card_path("style.png")
