"""The README's two ComfyUI install paths, as a new user meets them: the pack's files in ``custom_nodes/`` (A: a git
clone; B: the archive the Comfy registry serves), ``pip install -r requirements.txt`` with no package index
reachable, no editable install and no ``adain`` command, an empty engine cache — and every example workflow runs
with *default (bundled)*."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

import comfy_harness as harness
import workflow_specs as specs

pytestmark = pytest.mark.host

OFFLINE_PIP = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0",
               "PIP_NO_INPUT": "1"}


def _pack_files() -> list[str]:
    """What ``git clone`` of this checkout gives (tracked files plus new, not ignored ones: the working tree)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=harness.REPO,
                            capture_output=True, text=True, check=True).stdout
    return sorted(p for p in set(listed.split("\0")) if p and (harness.REPO / p).is_file())


def _install_pack(how: str, custom_nodes: Path, scratch: Path) -> Path:
    """Path A: the checkout's files copied as a clone has them. Path B: the registry archive (``comfy node publish``
    zips the git-tracked files plus ``[tool.comfy] includes``), extracted by the installer."""
    dest = custom_nodes / harness.PACK_NAME
    files = _pack_files()
    if how == "clone":
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(harness.REPO / rel, dest / rel)
        return dest
    comfy = tomllib.loads((harness.REPO / "pyproject.toml").read_text())["tool"]["comfy"]
    archive = scratch / "node.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files + [str(p.relative_to(harness.REPO)) for inc in comfy.get("includes", [])
                            for p in (harness.REPO / inc).rglob("*") if p.is_file()]:
            zf.write(harness.REPO / rel, rel)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


@pytest.fixture(scope="module", params=["clone", "registry"])
def fresh(request, comfy_env, tmp_path_factory):
    """A ComfyUI server with the pack installed by path A or B and an empty ``ADAIN_HOME``."""
    base = tmp_path_factory.mktemp(f"comfy-{request.param}")
    pack = _install_pack(request.param, base / "custom_nodes", base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    pip = subprocess.run([str(comfy_env.python), "-m", "pip", "install", "-r", str(pack / "requirements.txt")],
                         env={**env, **OFFLINE_PIP}, cwd=base, capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, f"requirements.txt needs the package index:\n{pip.stdout[-2000:]}{pip.stderr[-2000:]}"
    probe = subprocess.run([str(comfy_env.python), "-c", "import importlib.util as u; print(u.find_spec('adain_core'))"],
                           env=env, cwd=base, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None", "adain_core is installed in ComfyUI's venv: not a path A/B install"
    assert not (comfy_env.python.parent / "adain").exists()
    try:
        server = harness.start_server(base, comfy_env)
    except harness.ServerError as exc:
        pytest.fail(f"ComfyUI server did not start: {exc}")
    yield server, pack
    server.stop()


def _template(server, name: str, object_info: dict, images: dict[str, np.ndarray], **widgets) -> dict:
    ui = json.loads((harness.REPO / "example_workflows" / f"{name}.json").read_text())
    prompt = harness.ui_to_api(ui, object_info)
    uploaded = {old: server.upload_image(f"{uuid.uuid4().hex[:8]}_{old}",
                                         harness.apng_bytes(arr) if isinstance(arr, list) else harness.png_bytes(arr))
                for old, arr in images.items()}
    for node in prompt.values():
        if node["class_type"] == "AdaINModelLoader":
            assert node["inputs"]["model_name"] == specs.MODEL_DEFAULT  # the templates use the bundled model
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = uploaded[node["inputs"]["image"]]
        node["inputs"].update(widgets.get(node["class_type"], {}))
    return prompt


def test_every_example_workflow_runs_on_first_use(fresh):
    server, pack = fresh
    object_info = server.get_json("/object_info")
    assert set(harness.NODE_IDS) <= set(object_info), server.log_tail()
    content, style_a, style_b = (harness.sample_content(32, 40, seed=1), harness.sample_style(32, 32, "a"),
                                 harness.sample_style(32, 32, "b"))
    images = {specs.CONTENT: content, specs.CONTENT_MASKED: harness.with_painted_mask(content),
              specs.STYLE_A: style_a, specs.STYLE_B: style_b,
              specs.FRAMES: [harness.sample_content(24, 32, seed=i, shift=i) for i in range(3)]}
    for path in sorted((harness.REPO / "example_workflows").glob("*.json")):
        needed = {k: v for k, v in images.items() if k in path.read_text()}
        prompt = _template(server, path.stem, object_info, needed, AdaINStyleEncode={"style_size": 32})
        entry = server.run(prompt, timeout=300)
        saved = [o for o in entry["outputs"].values() if o.get("images")]
        assert saved, f"{path.stem}: no images written"
    log = server.log_text()
    assert "AdaIN: loaded model default (bundled)" in log
    assert "using the installed engine" not in log  # the engine came from the pack folder itself
    home = server.base / "adain_home"
    assert not home.exists() or not any(home.rglob("*.safetensors")), "nothing may be fetched into the cache"
