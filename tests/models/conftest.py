"""Fixtures for the model tests: a tiny synthetic aligned dataset."""

from __future__ import annotations

import pytest
import torch
from tests.support.fake_data import tiny_aligned_dataset

from mfrkit.data.manifest import Manifest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run several times faster on one thread than on two contended cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Manifest:
    """3 identities x 3 aligned 112x112 captures, a masked copy of each (``source_id``),
    two masked images without an identity, an attribute column with unknowns."""
    return tiny_aligned_dataset(tmp_path_factory.mktemp("tiny"))
