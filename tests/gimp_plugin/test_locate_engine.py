"""The plug-in's engine-locating step, without GIMP: the engine Python must find the installed ``adain_core``, never
one lying in GIMP's working directory (whose code the plug-in would then run inside GIMP).

GIMP's modules are replaced by inert stand-ins: only the locating function is exercised here; the real plug-in runs
against GIMP 3 in test_gimp_plugin.py.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "gimp_plugin" / "adain-style-transfer" / "adain-style-transfer.py"


@pytest.fixture
def plugin(monkeypatch):
    plug_in = type("PlugIn", (), {"__gtype__": None})
    gimp = types.SimpleNamespace(PlugIn=plug_in, main=lambda *args: None)
    repository = types.SimpleNamespace(Gegl=mock.MagicMock(), Gimp=gimp, GimpUi=mock.MagicMock(),
                                       GLib=mock.MagicMock(), GObject=mock.MagicMock())
    gi = types.SimpleNamespace(require_version=lambda *args: None, repository=repository)
    monkeypatch.setitem(sys.modules, "gi", gi)
    monkeypatch.setitem(sys.modules, "gi.repository", repository)
    spec = importlib.util.spec_from_file_location("_adain_gimp_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_engine_is_not_taken_from_gimps_working_directory(plugin, tmp_path, monkeypatch):
    marker = tmp_path / "PLANTED"
    planted = tmp_path / "cwd" / "adain_core" / "worker"
    planted.mkdir(parents=True)
    for path in (planted.parent / "__init__.py", planted / "__init__.py"):
        path.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    plugin.check_engine(sys.executable)  # the installed engine is found, the planted one never runs
    assert not marker.exists()
