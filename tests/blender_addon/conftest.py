"""Fixtures for the Blender extension tests: the bpy venv in ``$ADAIN_HOST_CACHE/venv``, the extension zip, a
random-weight model, a style image, and a runner for one bpy session per scenario (a subprocess with its own
``BLENDER_USER_RESOURCES``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SESSION_SCRIPT = HERE / "bpy_session.py"
SESSION_TIMEOUT = 240


def host_cache() -> Path:
    return Path(os.environ.get("ADAIN_HOST_CACHE") or Path.home() / ".cache" / "adain-hosts")


def _find_bpy_python(venv: str = "venv") -> tuple[str | None, str]:
    python = host_cache() / venv / "bin" / "python"
    if not python.exists():
        return None, f"no bpy venv at {python.parent.parent} (made by .ci/run and .ci/hosts/blender.sh)"
    with tempfile.TemporaryDirectory(prefix="adain-bpy-probe-") as resources:
        probe = subprocess.run([str(python), "-c", "import bpy; print(bpy.app.version_string)"],
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "BLENDER_USER_RESOURCES": resources})
    if probe.returncode != 0:
        return None, f"{python} cannot import bpy: {probe.stderr.strip().splitlines()[-1:]}"
    return str(python), probe.stdout.strip()


@pytest.fixture(scope="session")
def bpy_python(missing_host) -> str:
    python, info = _find_bpy_python()
    if python is None:
        missing_host(info)
    return python


@pytest.fixture(scope="session")
def bpy4_python(missing_host) -> str:
    """Blender 4.x as a module (bpy 4.5 LTS, no torch: the engine runs in a worker)."""
    python, info = _find_bpy_python("bpy4-venv")
    if python is None:
        missing_host(info)
    return python


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO))
    try:
        from blender_addon.build import build_blender_zip
    finally:
        sys.path.remove(str(REPO))
    return build_blender_zip(tmp_path_factory.mktemp("zip") / "adain_style_transfer.zip")


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    from adain_core.testing import make_random_model

    return make_random_model(tmp_path_factory.mktemp("model") / "random.safetensors", seed=0)


@pytest.fixture(scope="session")
def style_path(tmp_path_factory) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    stripes = np.zeros((40, 56, 3), np.uint8)
    stripes[::4] = (220, 80, 30)
    pixels = np.clip(stripes + rng.integers(0, 60, stripes.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def style2_path(tmp_path_factory) -> Path:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:32, 0:32]
    pixels = np.stack([x * 8, y * 8, (x + y) * 4], axis=2).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("style2") / "gradient.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def cutout_path(style_path, tmp_path_factory) -> Path:
    """The stripes style in the middle of a flat white surround (a cut-out figure's backdrop)."""
    import numpy as np
    from PIL import Image

    pixels = np.full((60, 84, 3), 255, np.uint8)
    pixels[10:50, 14:70] = np.asarray(Image.open(style_path))
    path = tmp_path_factory.mktemp("cutout") / "cutout.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def engine(model_path):
    import adain_core

    return adain_core.load(model_path, device="cpu")


@pytest.fixture(scope="session")
def run_session(bpy_python, addon_zip, model_path, style_path, style2_path, cutout_path, tmp_path_factory):
    """``run_session(scenario, python=None, env_extra=None, **config) -> (report, out_dir)``: one fresh bpy process
    running a scenario of bpy_session.py (``env_extra``: more environment variables); fails with its output when it
    crashes."""

    def run(scenario: str, python: str | None = None, env_extra: dict[str, str] | None = None, **config):
        root = tmp_path_factory.mktemp(f"bpy-{scenario}")
        out = root / "out"
        out.mkdir()
        cfg = {"zip": str(addon_zip), "model": str(model_path), "style": str(style_path),
               "style2": str(style2_path), "cutout": str(cutout_path), "out": str(out),
               **config}
        (root / "config.json").write_text(json.dumps(cfg))
        env = {k: v for k, v in os.environ.items() if k not in ("ADAIN_PYTHON", "ADAIN_MODEL", "PYTHONPATH")}
        env.update(BLENDER_USER_RESOURCES=str(root / "user-resources"), ADAIN_CONFIG=str(root / "engine.json"),
                   ADAIN_WORKER_DIR=str(root / "worker"), ADAIN_WORKER_IDLE_TIMEOUT="60", **(env_extra or {}))
        proc = subprocess.run([python or bpy_python, "-X", "faulthandler", str(SESSION_SCRIPT), scenario, str(root / "config.json"),
                               str(root / "report.json")], cwd=root, env=env, capture_output=True, text=True,
                              timeout=SESSION_TIMEOUT)
        report_file = root / "report.json"
        if proc.returncode != 0 or not report_file.exists():
            pytest.fail(f"bpy session {scenario!r} exited {proc.returncode}\n{proc.stdout[-4000:]}\n"
                        f"{proc.stderr[-4000:]}")
        report = json.loads(report_file.read_text())
        if "exception" in report:
            pytest.fail(f"bpy session {scenario!r} raised:\n{report['exception']}\n{proc.stdout[-3000:]}")
        report["_stdout"] = proc.stdout
        return report, out

    return run
