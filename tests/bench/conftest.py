"""Fixtures for the bench tests: a tiny ONNX model and a tiny dataset (built by tests.support)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.fake_data import make_dataset
from tests.support.tiny_onnx import make_model

from mfrkit.data.manifest import Manifest


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return make_model(tmp_path / "models" / "tiny.onnx")


@pytest.fixture
def dataset(tmp_path) -> Manifest:
    return make_dataset(tmp_path / "data", masked_every=2)

