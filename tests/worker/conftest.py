"""Fixtures shared by the worker tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from adain_core.worker import WorkerClient

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def make_client() -> Callable[..., WorkerClient]:
    """``make_client(directory, **kwargs)``: a client of this interpreter's worker in a private runtime directory."""

    def make(directory: Path, **kwargs) -> WorkerClient:
        # PYTHONPATH: the worker imports adain_core from this checkout even where it is not pip-installed.
        return WorkerClient(sys.executable, directory=directory, env={"PYTHONPATH": str(REPO)}, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for name in ("ADAIN_PYTHON", "ADAIN_MODEL", "ADAIN_WORKER_DIR", "ADAIN_WORKER_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "no-config.json"))
