"""The pack's install surface, without a server: the lazy root entry point, requirements that leave torch alone,
the templates and their previews, and the registry metadata."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE_NODES = {"LoadImage", "SaveImage", "SaveAnimatedPNG", "MarkdownNote", "Note"}


def test_root_init_exports_only_a_lazy_entrypoint():
    tree = ast.parse((REPO / "__init__.py").read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "comfy_entrypoint" in names
    assert isinstance(next(n for n in tree.body if getattr(n, "name", "") == "comfy_entrypoint"),
                      ast.AsyncFunctionDef)
    # A module with NODE_CLASS_MAPPINGS is loaded the classic way and its comfy_entrypoint ignored.
    assert not ({"NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"} & (names | assigned))
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in top_imports)


def test_root_package_imports_without_comfyui_or_torch(tmp_path):
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('adain_pack', {str(REPO / '__init__.py')!r},\n"
        f"    submodule_search_locations=[{str(REPO)!r}])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['adain_pack'] = m; spec.loader.exec_module(m)\n"
        "assert callable(m.comfy_entrypoint)\n"
        "assert 'torch' not in sys.modules and 'comfy' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_requirements_never_touch_torch():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    names = {ln.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].split("~")[0].strip().lower()
             for ln in lines if ln}
    assert names and not (names & {"torch", "torchvision", "torchaudio"}), names


def test_engine_not_duplicated_in_node_folder():
    node_files = [p.name for p in (REPO / "comfy_nodes").rglob("*.py")]
    assert sorted(node_files) == ["__init__.py", "layout.py", "models.py", "nodes.py"]
    for path in (REPO / "comfy_nodes").rglob("*.py"):
        text = path.read_text()
        assert "calc_mean_std" not in text and "nn.Conv2d" not in text, f"model code in {path}"


@pytest.mark.parametrize("path", sorted((REPO / "example_workflows").glob("*.json")), ids=lambda p: p.stem)
def test_example_workflow_files(path):
    workflow = json.loads(path.read_text())
    assert workflow["version"] == 0.4 and workflow["nodes"] and workflow["links"]
    types = {n["type"] for n in workflow["nodes"]}
    assert types <= CORE_NODES | {t for t in types if t.startswith("AdaIN")}, types
    assert "AdaINStylize" in types and "MarkdownNote" in types
    assert (path.with_suffix(".jpg")).stat().st_size > 1000, "preview image missing"
    ids = {n["id"] for n in workflow["nodes"]}
    for link_id, src, _, dst, _, _ in workflow["links"]:
        assert src in ids and dst in ids


def test_four_example_workflows():
    assert sorted(p.stem for p in (REPO / "example_workflows").glob("*.json")) == [
        "adain_basic_stylize", "adain_frames_batch", "adain_masked_two_style", "adain_two_style_mix"]


def test_registry_metadata():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert "comfyui" not in project["project"]["name"].lower()
    torch_reqs = [d for d in project["project"]["dependencies"] if d.startswith("torch")]
    assert torch_reqs and all("==" not in d for d in torch_reqs)


def test_missing_requirement_names_the_pip_command_for_comfyuis_python(tmp_path):
    """A requirement missing from ComfyUI's Python: the import error (what ComfyUI logs) says what to run there."""
    code = (
        "import asyncio, importlib.util, sys\n"
        "sys.modules['safetensors'] = None  # as if requirements.txt was never installed\n"
        f"spec = importlib.util.spec_from_file_location('adain_pack', {str(REPO / '__init__.py')!r},\n"
        f"    submodule_search_locations=[{str(REPO)!r}])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['adain_pack'] = m; spec.loader.exec_module(m)\n"
        "try:\n"
        "    asyncio.run(m.comfy_entrypoint())\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"AdaIN nodes: the Python module 'safetensors' is missing in ComfyUI's Python; "
                                   f"install the pack's requirements with: {sys.executable} -m pip install -r "
                                   f"{REPO / 'requirements.txt'}")
