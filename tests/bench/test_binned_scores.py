"""Binned scores give exactly the materialised metrics, whatever was collected first."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mfrkit.bench import metrics as M
from mfrkit.bench.score.binned_scores import BinnedScores, MissingBins, ScoreBins, resolve_all

TARGETS = (0.5, 1e-1, 3e-2, 1e-2, 2.9e-3, 1e-3, 1e-4, 1e-5, 1e-6, 0.0)


def make_scores(seed, kind, n_gen=300, n_imp=20000):
    rng = np.random.default_rng(seed)
    gen = rng.normal(0.45, 0.2, n_gen)
    imp = rng.normal(0.0, 0.12, n_imp)
    if kind == "tied":  # heavy ties within and across classes
        gen, imp = np.round(gen, 2), np.round(imp, 2)
    elif kind == "separated":  # every genuine above every impostor
        gen = 0.7 + np.abs(gen) * 0.1
    elif kind == "few":
        gen, imp = gen[:5], imp[:7]
    gen, imp = gen.clip(-1, 1), imp.clip(-1, 1)
    if kind == "fta":
        gen[rng.random(n_gen) < 0.05] = -np.inf
        imp[rng.random(n_imp) < 0.05] = -np.inf
    s = np.r_[gen, imp].astype(np.float32)
    y = np.r_[np.ones(len(gen), int), np.zeros(len(imp), int)]
    return y, s


def full_values(y, s, bins):
    imp = s[y == 0]
    b = bins.of(imp)
    return {int(k): imp[b == k] for k in np.unique(b) if k >= 2}


def resolve(binned, values_of, targets=TARGETS, thresholds=()):
    """resolve_all, collecting what it asks for until it answers; returns (result, passes)."""
    for passes in range(1, 40):
        out = resolve_all(binned, targets, thresholds=thresholds)
        if not isinstance(out, MissingBins):
            return out, passes
        assert out.bins, "MissingBins names no bin"
        binned.with_values({b: values_of[b] for b in out.bins})
    raise AssertionError("no answer after 40 passes")


CASES = [(seed, kind) for seed in range(2) for kind in ("continuous", "tied", "separated", "fta", "few")]


@pytest.mark.parametrize("seed, kind", CASES)
@pytest.mark.parametrize("bins_per_unit", [2**16, 2**6, 4])
@pytest.mark.parametrize("start", ["none", "random"])
def test_exact_against_materialised(seed, kind, bins_per_unit, start):
    y, s = make_scores(seed, kind)
    bins = ScoreBins(bins_per_unit=bins_per_unit)
    values = full_values(y, s, bins)
    rng = np.random.default_rng(seed + 100)
    collect = "none" if start == "none" else [b for b in values if rng.random() < 0.3]
    binned = BinnedScores.from_scores(y, s, bins=bins, collect=collect)
    sd = s.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        want_m = M.tar_at_far(y, sd, TARGETS)
        want_i = M.tar_at_far_nearest(y, sd, TARGETS)
        want_e = M.eer(y, sd)
        thresholds = [want_m.threshold[1], want_i.threshold[2], 0.3, float(sd[0]), -math.inf, math.inf, 0.123456]
        want_r = [M.rates_at_threshold(y, sd, t) for t in thresholds]
    got, passes = resolve(binned, values, thresholds=thresholds)
    for field in ("tar", "far", "threshold", "true_accepts", "false_accepts", "budget", "insufficient_negatives"):
        np.testing.assert_array_equal(getattr(got["tar_at_far"], field), getattr(want_m, field), err_msg=field)
        np.testing.assert_array_equal(getattr(got["nearest"], field), getattr(want_i, field), err_msg=field)
    np.testing.assert_array_equal(got["tar_at_far"].tar_ci_low, want_m.tar_ci_low)
    assert got["eer"] == want_e
    for r, w in zip(got["rates"], want_r):
        assert r == w
    assert passes <= (3 if bins_per_unit == 2**16 else 12)
    # AUC: within the stated bound, and exact once every genuine bin is collected
    auc, err = binned.auc()
    exact = M.roc_auc(y, sd)
    assert abs(auc - exact) <= err + 1e-12
    binned.with_values({b: v for b, v in values.items()})
    auc, err = binned.auc()
    assert err == 0 and auc == pytest.approx(exact, abs=1e-12)


def test_long_collinear_run_is_followed_to_its_ends():
    """A target inside a long run of single impostors (collinear ROC points, all dropped
    but the ends): the nearest-point rule must look at both ends of the run."""
    gen = np.array([0.9, 0.85, 0.1], np.float32)
    imp = np.linspace(0.8, 0.2, 5000).astype(np.float32)
    y = np.r_[np.ones(3, int), np.zeros(5000, int)]
    s = np.r_[gen, imp]
    bins = ScoreBins()
    binned = BinnedScores.from_scores(y, s, bins=bins, collect="none")
    got, passes = resolve(binned, full_values(y, s, bins), targets=[0.3, 0.7, 1e-3])
    want = M.tar_at_far_nearest(y, s.astype(np.float64), [0.3, 0.7, 1e-3])
    np.testing.assert_array_equal(got["nearest"].tar, want.tar)
    np.testing.assert_array_equal(got["nearest"].far, want.far)
    assert abs(want.far[0] - 0.3) > 0.2 and passes >= 2  # the nearest kept points lie far from the target


def test_histogram_counts_and_roc_points():
    y, s = make_scores(1, "fta")
    b = BinnedScores.from_scores(y, s)
    h = b.histogram()
    assert h["impostor"].sum() == (y == 0).sum() and h["genuine"].sum() == (y == 1).sum()
    assert h.loc[h["bin"] == 0, "impostor"].item() == np.isneginf(s[y == 0]).sum()
    far, tar, edge = b.roc_points()
    assert (np.diff(far) >= 0).all() and (np.diff(tar) >= 0).all() and far[0] == tar[0] == 0
    # every point is the exact rate at its edge
    sd = s.astype(np.float64)
    for f, t, e in list(zip(far, tar, edge))[1:-1:50]:
        assert f == ((sd >= e) & (y == 0)).sum() / (y == 0).sum()
        assert t == ((sd >= e) & (y == 1)).sum() / (y == 1).sum()


def test_bins_are_monotone_and_checked():
    bins = ScoreBins()
    rng = np.random.default_rng(0)
    s = np.sort(rng.uniform(-1.2, 1.2, 100000).astype(np.float32))
    k = bins.of(s)
    assert (np.diff(k) >= 0).all() and k.min() >= 2 and k.max() < bins.n_bins
    edges = bins.lower_edge(np.arange(2, bins.n_bins, 997))
    assert (bins.of(edges.astype(np.float32)) == np.arange(2, bins.n_bins, 997)).all()
    below = np.nextafter(edges.astype(np.float32), np.float32(-2))[1:]
    assert (bins.of(below) == np.arange(2, bins.n_bins, 997)[1:] - 1).all()
    assert math.floor(float(bins.excluded_value) * 2**16 + bins.offset) == 1
    assert bins.of(np.array([-np.inf], np.float32))[0] == 0
    for bad in (np.nan, np.inf, 1.3, -1.3):
        with pytest.raises(ValueError):
            bins.of(np.array([bad], np.float32))
    for t in (0.1, -0.5, 0.99999, 1e-9):
        b, f = bins.first_bin_at_or_above(t)
        assert float(f) >= t and float(np.nextafter(f, np.float32(-1))) < t and b == bins.of(np.array([f]))[0]
    with pytest.raises(ValueError):
        ScoreBins(bins_per_unit=3)


def test_no_genuine_or_no_impostor():
    y = np.array([0, 0, 0])
    s = np.array([0.1, 0.2, 0.3], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        got = resolve_all(BinnedScores.from_scores(y, s), [1e-1])
        want = M.tar_at_far(y, s.astype(np.float64), [1e-1])
    assert np.isnan(got["tar_at_far"].tar).all() and np.isnan(want.tar).all()
    assert math.isnan(got["eer"].eer)
