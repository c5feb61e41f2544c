"""Fixtures for the IJB tests: one small release per module."""

from __future__ import annotations

import pytest
from tests.support.fake_data import make_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("ijb"))
