"""The README's GIMP install, as a new user meets it: `adain install gimp` with the engine's Python puts the plug-in
into the GIMP profile and records that Python; then, with an empty engine cache, no ADAIN_* overrides and no
plug-in path of ours, the filter runs with the bundled default model in real GIMP 3."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.host


def test_documented_install_then_first_run(gimp_host, tmp_path, monkeypatch):
    import adain_core

    work = tmp_path
    profile, home, cache = work / "gimp-config", work / "home", work / "adain-home"
    profile.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADAIN_", "XDG_CONFIG"))}
    env.update(HOME=str(home), GIMP3_DIRECTORY=str(profile))
    script = gimp_host.engine_python.parent / "adain"
    command = [str(script)] if script.exists() else [str(gimp_host.engine_python), "-m", "adain_core.cli"]
    installed = subprocess.run([*command, "install", "gimp"], env=env, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    plugin = profile / "plug-ins" / "adain-style-transfer" / "adain-style-transfer.py"
    assert plugin.is_file() and os.access(plugin, os.X_OK)
    recorded = json.loads((home / ".config" / "adain" / "engine.json").read_text())
    assert os.path.realpath(recorded["python"]) == os.path.realpath(gimp_host.engine_python)

    rng = np.random.default_rng(3)
    pixels = np.concatenate([rng.integers(0, 256, (40, 48, 3)), np.full((40, 48, 1), 255)], axis=2).astype(np.uint8)
    (work / "content.raw").write_bytes(pixels.tobytes())
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(work / "style.png")
    scenarios = [{"id": "registration", "kind": "registration"},
                 {"id": "first-use", "kind": "filter",
                  "image": {"content": "content.raw", "size": [48, 40], "canvas": [48, 40], "offsets": [0, 0]},
                  "args": {"style-file": str(work / "style.png"), "style-size": 64}}]
    # The recorded Python's venv must exist inside GIMP's root (the host cache's venv may be a link to it).
    venv = gimp_host.engine_python.parent.parent.resolve()
    proc = gimp_host.run_batch(work, {"scenarios": scenarios}, env={"ADAIN_HOME": str(cache)}, own_plugin=False,
                               binds=[venv])
    results_file = work / "results.json"
    assert results_file.exists(), f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads(results_file.read_text())
    assert results["registration"]["registered"], results
    outcome = results["first-use"]
    assert outcome.get("status") == "success", (outcome, proc.stderr[-3000:])
    top = outcome["layers"][0]
    got = np.frombuffer((work / top["file"]).read_bytes(), np.uint8).reshape(top["height"], top["width"], 4)

    monkeypatch.setenv("ADAIN_HOME", str(cache))  # the same (bundled) encoder as the worker's
    engine = adain_core.load("default", device="cpu")
    card = engine.encode_style(str(work / "style.png"), size=64)
    out = engine.stylize(pixels[..., :3].astype(np.float32) / 255.0, card)
    expected = np.rint(np.clip(np.asarray(out, np.float32), 0, 1) * 255).astype(np.int16)
    diff = np.abs(got[..., :3].astype(np.int16) - expected)
    assert diff.max() <= 2 and diff.mean() <= 0.1, (diff.max(), diff.mean())
    assert not cache.exists() or not any(cache.rglob("*.safetensors")), "nothing may be fetched into the cache"
