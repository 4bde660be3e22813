"""One vocabulary: the adapters take colour modes, precisions and suffixes from adain_core.vocabulary; the GIMP
plug-in and the Blender add-on, which run in their host's Python without the engine, keep mirrors (with their UI
labels) that must stay equal."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from adain_core import vocabulary
from gimp_plugin.install import PLUGIN_SOURCE


def _literal(path: Path, name: str):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} defines no {name}")


@pytest.mark.parametrize("source", [PLUGIN_SOURCE / f"{PLUGIN_SOURCE.name}.py",
                                    Path(__file__).resolve().parents[1] / "blender_addon" / "settings.py"],
                         ids=["gimp", "blender"])
def test_host_colour_modes_mirror_the_engine(source: Path):
    modes = _literal(source, "COLOR_MODES")
    assert tuple(mode for mode, _label, _tooltip in modes) == vocabulary.COLOR_MODES


def test_card_paths():
    assert vocabulary.is_card_path("a/b" + vocabulary.CARD_SUFFIX)
    assert vocabulary.is_card_path("mixed.safetensors")
    assert not vocabulary.is_card_path("style.png")
