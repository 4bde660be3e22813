"""One vocabulary: the adapters take colour modes, backdrop modes, precisions and suffixes from adain_core.vocabulary;
the GIMP plug-in and the Blender add-on, which run in their host's Python without the engine, keep mirrors (with
their UI labels) that must stay equal."""

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
def test_host_colour_and_backdrop_modes_mirror_the_engine(source: Path):
    for name in ("COLOR_MODES", "BACKDROP_MODES"):
        modes = _literal(source, name)
        assert tuple(mode for mode, _label, _tooltip in modes) == getattr(vocabulary, name)


def test_worker_client_and_blender_backends_default_to_the_engines_backdrop_mode():
    """They cannot import the vocabulary (standard library only / Blender's Python), so their literal default is
    pinned here."""
    import inspect

    from adain_core.worker.client import WorkerClient
    from blender_addon import backends

    defaults = [inspect.signature(WorkerClient.stylize).parameters["backdrop"].default]
    for backend in (backends.InProcessBackend, backends.WorkerBackend):
        defaults += [inspect.signature(getattr(backend, f)).parameters["backdrop"].default
                     for f in ("stylize", "stylize_frames")]
    assert set(defaults) == {vocabulary.BACKDROP_MODES[0]}


def test_every_front_end_starts_at_the_engines_marks_strength():
    """The worker client, the Blender add-on and the GIMP plug-in cannot import the vocabulary, so their literal
    defaults for the painting's marks are pinned here (ComfyUI, the CLI and the API import it)."""
    import inspect

    from adain_core import StylizeOptions
    from adain_core.worker.client import WorkerClient
    from blender_addon import backends

    defaults = [StylizeOptions().marks, inspect.signature(WorkerClient.stylize).parameters["marks"].default]
    for backend in (backends.InProcessBackend, backends.WorkerBackend):
        defaults += [inspect.signature(getattr(backend, f)).parameters["marks"].default
                     for f in ("stylize", "stylize_frames")]
    root = Path(__file__).resolve().parents[1]
    for node in ast.walk(ast.parse((root / "blender_addon" / "settings.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "marks":  # marks: FloatProperty(…)
            defaults += [ast.literal_eval(k.value) for k in node.annotation.keywords if k.arg == "default"]
    for node in ast.walk(ast.parse((PLUGIN_SOURCE / f"{PLUGIN_SOURCE.name}.py").read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_double_argument"
                and ast.literal_eval(node.args[0]) == "marks"):
            defaults.append(ast.literal_eval(node.args[-2]))  # (name, label, blurb, min, max, default, flags)
    assert len(defaults) == 8 and set(defaults) == {vocabulary.DEFAULT_MARKS}


def test_card_paths():
    assert vocabulary.is_card_path("a/b" + vocabulary.CARD_SUFFIX)
    assert vocabulary.is_card_path("mixed.safetensors")
    assert not vocabulary.is_card_path("style.png")
