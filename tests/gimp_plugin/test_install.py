"""``adain install gimp`` without GIMP: the plug-in folder it writes (script + the worker client as
``adain_worker``), the recorded engine Python, the default folder, the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from adain_core import worker
from adain_core.cli import main
from gimp_plugin.install import PLUGIN_NAME, install_gimp_plugin


def test_install_gimp_plugin_copies_and_records_python(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    monkeypatch.delenv("ADAIN_PYTHON", raising=False)
    target = install_gimp_plugin(tmp_path / "plug-ins")
    script = target / f"{PLUGIN_NAME}.py"
    assert target == tmp_path / "plug-ins" / PLUGIN_NAME and script.is_file() and not target.is_symlink()
    assert os.access(script, os.X_OK)
    assert {p.name for p in (target / "adain_worker").iterdir()} == {"__init__.py", "client.py", "config.py",
                                                                    "protocol.py"}
    assert not list(target.rglob("__pycache__"))
    assert json.loads((tmp_path / "engine.json").read_text())["python"] == os.path.abspath(sys.executable)
    # Reinstall over it, linked this time, with ADAIN_PYTHON overriding the recorded Python.
    monkeypatch.setenv("ADAIN_PYTHON", sys.executable)
    linked = install_gimp_plugin(tmp_path / "plug-ins", link=True)
    assert (linked / f"{PLUGIN_NAME}.py").is_symlink() and (linked / f"{PLUGIN_NAME}.py").is_file()
    assert (linked / "adain_worker" / "client.py").resolve() == Path(worker.client.__file__).resolve()


def test_install_gimp_plugin_default_folder_follows_gimp3_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "gimp3"))
    assert install_gimp_plugin() == tmp_path / "gimp3" / "plug-ins" / PLUGIN_NAME


def test_install_refuses_missing_python(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        install_gimp_plugin(tmp_path / "plug-ins", python=tmp_path / "nope" / "python")
    assert not (tmp_path / "engine.json").exists()


def test_cli_finds_the_installer_through_its_entry_point(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "engine.json"))
    assert main(["install", "gimp", "--dest", str(tmp_path / "plug-ins"), "--python", sys.executable]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(tmp_path / "plug-ins" / PLUGIN_NAME)
    assert (tmp_path / "plug-ins" / PLUGIN_NAME / "adain_worker" / "__init__.py").is_file()
