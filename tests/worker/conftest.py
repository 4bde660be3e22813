"""Fixtures shared by the worker tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for name in ("ADAIN_PYTHON", "ADAIN_MODEL", "ADAIN_WORKER_DIR", "ADAIN_WORKER_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADAIN_CONFIG", str(tmp_path / "no-config.json"))
