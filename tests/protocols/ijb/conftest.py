"""Fixtures for the IJB tests: an isolated $MFRKIT_HOME and one small release per module."""

from __future__ import annotations

import pytest
from ijb_helpers import make_release


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MFRKIT_HOME", str(tmp_path / "mfrkit-home"))
    monkeypatch.delenv("MFRKIT_CACHE", raising=False)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("ijb"))
