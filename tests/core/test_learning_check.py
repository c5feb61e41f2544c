"""The learning check (slow): every family and the CosFace baseline, trained small on
synthetic identities, verify held-out identities far above chance.

Marked ``slow`` (a few minutes on two cores): CI runs it; ``pytest -m "not slow"`` skips
it. The figures behind the model cards come from ``benchmarks/learning.py`` (larger).
"""

from __future__ import annotations

import pytest

from mfrkit.learning_check import CheckConfig, chance_bound, run_learning_check, small_models


def test_chance_bound_is_the_binomial_tail():
    from scipy.stats import binom

    bound = chance_bound(600)
    assert 0.55 < bound < 0.62
    # a coin-flipping model exceeds the bound with probability at most 1e-6, and the
    # bound is the smallest such count
    k = round(bound * 600)
    assert binom.sf(k, 600, 0.5) <= 1e-6 < binom.sf(k - 1, 600, 0.5)
    assert chance_bound(6000) < bound  # more pairs, a tighter bound


@pytest.mark.slow
def test_every_family_learns_to_tell_held_out_identities_apart(tmp_path):
    cfg = CheckConfig(n_identities=120, captures=6, test_fraction=0.2, epochs=6, batch_size=32, lr=0.1, warmup_steps=10,
                      pairs_per_fold=30, width=8, embedding_dim=64, input_size=64)  # fmt: skip
    models = [m for m in small_models(cfg) if m.name != "cosface-mix"]
    result = run_learning_check(tmp_path, cfg, models=models)
    assert set(result.n_pairs) == {"umr-ump", "umr-mp"} and all(n >= 400 for n in result.n_pairs.values())
    for row in result.rows:
        assert row.acc["umr-ump"] > result.chance_bound["umr-ump"], (row.name, row.acc, result.table())
    assert "synthetic" in result.table()
