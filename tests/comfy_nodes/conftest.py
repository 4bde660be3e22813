"""Fixtures for the ComfyUI node tests: the cached server env, a session-wide real ComfyUI server with this
repository as a custom node, random-weight models in its ``models/adain/`` and the same model loaded directly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # comfy_harness, workflow_specs (importlib import mode)

import comfy_harness as harness  # noqa: E402
from comfy_harness import BROKEN_MODEL, EXTRA_MODEL, TEST_MODEL  # noqa: E402


@pytest.fixture(scope="session")
def comfy_env(missing_host) -> harness.ComfyEnv:
    env, reason = harness.find_env()
    if env is None:
        missing_host(reason)
    return env


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict[str, Path]:
    from adain_core.testing import make_random_model

    root = tmp_path_factory.mktemp("adain-models")
    return {
        TEST_MODEL: make_random_model(root / TEST_MODEL, seed=0),
        EXTRA_MODEL: make_random_model(root / EXTRA_MODEL, seed=1),
    }


@pytest.fixture(scope="session")
def comfy(comfy_env, model_files, tmp_path_factory) -> harness.ComfyServer:
    """A real ComfyUI server (CPU) for the whole session; its log is printed when it fails to start."""
    base = tmp_path_factory.mktemp("comfy-base")
    models_dir = base / "models" / "adain"
    harness.copy_model(model_files[TEST_MODEL], models_dir, TEST_MODEL)
    (models_dir / BROKEN_MODEL).write_bytes(b"this is not a safetensors file")
    harness.copy_model(model_files[EXTRA_MODEL], base / "extra_models_root" / "models", EXTRA_MODEL)
    try:
        server = harness.start_server(base, comfy_env)
    except harness.ServerError as exc:
        pytest.fail(f"ComfyUI server did not start: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def engine(model_files):
    """The test model loaded directly (CPU, the same 'auto' precision the server's loader uses)."""
    import adain_core

    return adain_core.load(model_files[TEST_MODEL], device="cpu", precision="auto")


@pytest.fixture(scope="session")
def object_info(comfy) -> dict:
    return comfy.get_json("/object_info")
