"""What a user installs: the wheel carries the bundled encoder and its notice, the extras match the messages that name
them, and ComfyUI's requirements.txt asks for exactly what the engine needs at run time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from adain_core import extras

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=~!;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_extras_match_pyproject() -> None:
    optional = PROJECT["optional-dependencies"]
    for extra, (requirements, _) in extras.EXTRAS.items():
        assert sorted(optional[extra]) == sorted(requirements), extra


def test_runtime_dependencies_need_no_extra() -> None:
    """h5py (conversion) and imageio-ffmpeg (165 MB, video) are extras, never needed to stylise images."""
    names = {_name(r) for r in PROJECT["dependencies"]}
    assert not names & {"h5py", "imageio", "imageio-ffmpeg"}, names


def test_requirements_txt_is_the_runtime_dependencies_without_torch() -> None:
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    requirements = sorted(ln for ln in lines if ln)
    assert requirements == sorted(r for r in PROJECT["dependencies"] if _name(r) != "torch")


def test_install_command_names_this_python() -> None:
    command = extras.install_command("video")
    assert command.startswith(f"{sys.executable} -m pip install ")
    assert "[video]" in command or "imageio-ffmpeg" in command


def test_wheel_contains_the_encoder_and_its_notice(tmp_path: Path) -> None:
    """``pip wheel . --no-deps`` on a copy of the source tree (builds leave build/ and egg-info behind)."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    try:
        import setuptools  # noqa: F401  (build without isolation when this Python can: no index needed)

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", *isolation,
                           "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("adain_style_transfer-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        encoder = "adain_core/models/vgg16-hed-bsds500.encoder.safetensors"
        assert {encoder, "adain_core/models/NOTICE", "adain_core/models/default.safetensors"} <= names
        assert zf.getinfo(encoder).file_size == (REPO / encoder).stat().st_size
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta_name).decode()
    assert "Provides-Extra: video" in metadata and "Provides-Extra: convert" in metadata
    requires = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist: ")]
    for name in ("h5py", "imageio-ffmpeg"):
        (line,) = [ln for ln in requires if _name(ln.removeprefix("Requires-Dist: ")) == name]
        assert "extra ==" in line, line


@pytest.mark.parametrize("extra", sorted(extras.EXTRAS))
def test_missing_extra_is_one_line_with_the_command(extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from adain_core import MissingDependencyError

    requirements, _ = extras.EXTRAS[extra]
    monkeypatch.setitem(extras.EXTRAS, extra, (requirements, ("no_such_module_for_the_test",)))
    with pytest.raises(MissingDependencyError) as info:
        extras.require(extra, "doing it")
    message = str(info.value)
    assert "\n" not in message and message.startswith("doing it needs no_such_module_for_the_test")
    assert message.endswith(extras.install_command(extra))
