"""The report's impostor pass on torch gathers a bounded number of positions per tile."""

from __future__ import annotations

import math

import numpy as np
import torch

from mfrkit.bench.report import impostors as RI


def test_a_cut_of_minus_inf_gathers_only_the_tile_top():
    rng = np.random.default_rng(0)
    S = torch.from_numpy(rng.normal(size=(300, 400)).astype(np.float32))
    r, c, s = RI._tile_candidates_torch(S, -math.inf, 7)
    assert len(r) == 7  # before: all 120,000 positions of the tile
    want = np.sort(S.numpy().ravel())[::-1][:7]
    np.testing.assert_array_equal(np.sort(s)[::-1], want)
    r, c, s = RI._tile_candidates_torch(S, 3.0, 7)  # a floor above the tile's top 7 still rules
    assert (s >= 3.0).all()
    ties = torch.zeros((10, 10))
    assert len(RI._tile_candidates_torch(ties, -math.inf, 3)[0]) == 100  # ties with the last are kept


def test_genuine_count_of_a_tile():
    a, b = np.array([1, 1, 2, 5]), np.array([1, 2, 2, 3, 7])
    assert RI._genuine_count(a, b) == sum(int(x == y) for x in a for y in b)
    assert RI._genuine_count(np.array([9]), b) == 0
