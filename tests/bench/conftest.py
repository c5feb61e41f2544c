"""Fixtures for the bench tests (helpers live in bench_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_helpers import make_dataset, make_model

from mfrkit.data.manifest import Manifest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MFRKIT_HOME", str(tmp_path / "mfrkit-home"))
    monkeypatch.delenv("MFRKIT_CACHE", raising=False)


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return make_model(tmp_path / "models" / "tiny.onnx")


@pytest.fixture
def dataset(tmp_path) -> Manifest:
    return make_dataset(tmp_path / "data", masked_every=2)

