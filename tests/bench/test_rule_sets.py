"""The two rule sets: hand-worked cases where they differ, and the insightface rule
against a line-by-line re-implementation of insightface's code on scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve as sk_roc_curve

from mfrkit.bench import metrics as M


def insightface_tar(y, s, targets):
    """insightface ``recognition/_evaluation_/ijb``: sklearn's roc_curve, reversed
    (``np.flipud``: "select largest tpr at same fpr"), then ``min(zip(abs(fpr - x), range(len(fpr))))``."""
    fpr, tpr, thr = sk_roc_curve(y, s)
    fpr, tpr, thr = np.flipud(fpr), np.flipud(tpr), np.flipud(thr)
    out = []
    for x in targets:
        _, i = min(zip(abs(fpr - x), range(len(fpr))))
        out.append((tpr[i], fpr[i], thr[i]))
    return out


def insightface_accuracy(y, s, n_folds):
    """insightface ``eval/verification.py`` calculate_roc, written out: contiguous folds,
    squared L2 distance, accept iff dist < t, first best grid threshold, np.std."""
    dist = 2.0 - 2.0 * np.asarray(s, np.float64)
    y = np.asarray(y, bool)
    thresholds = np.arange(0, 4, 0.01)
    folds = np.array_split(np.arange(len(y)), n_folds)
    accuracy = []
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        acc_train = [((dist[train] < t) == y[train]).mean() for t in thresholds]
        best = thresholds[int(np.argmax(acc_train))]
        accuracy.append(((dist[test] < best) == y[test]).mean())
    return np.mean(accuracy), np.std(accuracy), accuracy


# --- hand-worked: where the rules differ ------------------------------------------------------------


def test_ties_of_equal_fpr_take_the_higher_tar_as_insightface_does():
    # genuine: 0.9, 0.7, 0.7, 0.3; impostors: 0.7, 0.7, 0.6, 0.2, 0.1, 0.1, 0.0, -0.1, -0.2, -0.3 (N = 10)
    gen = [0.9, 0.7, 0.7, 0.3]
    imp = [0.7, 0.7, 0.6, 0.2, 0.1, 0.1, 0.0, -0.1, -0.2, -0.3]
    y = [1] * 4 + [0] * 10
    s = gen + imp
    # ROC points (score: accepted genuine / impostor): 0.9: 1/0, 0.7: 3/2, 0.6: 3/3, 0.3: 4/3,
    # 0.2: 4/4, 0.1: 4/6, then single impostors down to -0.3 (collinear: dropped but the last).
    # FAR 0.35: mfrkit allows floor(3.5) = 3 false accepts: accept >= 0.3, TAR 4/4.
    # insightface: FPR 0.3 (|0.3-0.35| = 0.04999..) beats 0.4 (0.0500..04); of the two
    # points with FPR 0.3 (at 0.6, 3 of 4 genuine; at 0.3, all 4) its reversed curve takes
    # the one with the larger TPR.
    m = M.tar_at_far(y, s, [0.35])
    assert (m.tar[0], m.threshold[0], m.false_accepts[0]) == (1.0, 0.3, 3)
    i = M.tar_at_far_nearest(y, s, [0.35])
    assert (i.tar[0], i.far[0], i.threshold[0]) == (1.0, 0.3, 0.3)
    # FAR 0.1: mfrkit's budget of 1 false accept: above the tied 0.7s, TAR 1/4 at 0.9.
    # insightface: FPR 0 (TAR 1/4 at 0.9) and FPR 0.2 (TAR 3/4 at 0.7) are both 0.1 away:
    # the higher FPR wins (first in the reversed curve).
    m = M.tar_at_far(y, s, [0.1])
    assert (m.tar[0], m.threshold[0]) == (0.25, 0.9)
    i = M.tar_at_far_nearest(y, s, [0.1])
    assert (i.tar[0], i.far[0], i.threshold[0]) == (0.75, 0.2, 0.7)
    # FAR 0.25: mfrkit lands on the tie at 0.7 (2 false accepts), TAR 3/4; for insightface
    # FPR 0.2 and 0.3 are equally near in float64 (0.04999999999999999): the higher FPR,
    # and of its two points the higher TPR: all 4 at 0.3.
    assert M.tar_at_far(y, s, [0.25]).tar[0] == 0.75
    assert M.tar_at_far_nearest(y, s, [0.25]).tar[0] == 1.0
    for target, want in zip((0.35, 0.1, 0.25), insightface_tar(y, s, (0.35, 0.1, 0.25))):
        got = M.tar_at_far_nearest(y, s, [target])
        assert (got.tar[0], got.far[0], got.threshold[0]) == want


def test_budget_just_below_an_integer():
    # genuine 0.95, 0.85, 0.7, 0.65; impostors 0.9, 0.8, 0.7, 0.6, ..., 0.0 (N = 10);
    # FAR 0.29: FAR x N = 2.9.
    gen = [0.95, 0.85, 0.7, 0.65]
    imp = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    y, s = [1] * 4 + [0] * 10, gen + imp
    # mfrkit: budget floor(2.9) = 2; the third impostor ties a genuine at 0.7, so the
    # threshold stays above it: accept >= 0.8, TAR 2/4, FAR 0.2.
    m = M.tar_at_far(y, s, [0.29])
    assert (m.budget[0], m.tar[0], m.far[0], m.threshold[0]) == (2, 0.5, 0.2, 0.8)
    # insightface: FPR 0.3 is 0.01 away, 0.2 is 0.09 away: of the points at FPR 0.3 (3 false
    # accepts, achieved FAR above the target), 0.7 with 3 of 4 genuine and 0.65 with all 4,
    # the larger TPR.
    i = M.tar_at_far_nearest(y, s, [0.29])
    assert (i.tar[0], i.far[0], i.threshold[0], i.false_accepts[0]) == (1.0, 0.3, 0.65, 3)
    assert i.far[0] > 0.29
    assert (i.tar[0], i.far[0], i.threshold[0]) == insightface_tar(y, s, [0.29])[0]


def test_far_target_below_one_over_n():
    gen = [0.95, 0.85, 0.7, 0.65]
    imp = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    y, s = [1] * 4 + [0] * 10, gen + imp
    # FAR 0.01 with N = 10: mfrkit's budget is 0 (flagged insufficient): genuine above
    # every impostor, 0.95 only, TAR 1/4. insightface: FPR 0 is nearest; of its two points
    # there, (0, 0) at +inf and (0, 1/4) at 0.95, the reversed curve takes the second.
    m = M.tar_at_far(y, s, [0.01])
    assert (m.tar[0], m.threshold[0], bool(m.insufficient_negatives[0])) == (0.25, 0.95, True)
    i = M.tar_at_far_nearest(y, s, [0.01])
    assert (i.tar[0], i.far[0], i.threshold[0]) == (0.25, 0.0, 0.95) == insightface_tar(y, s, [0.01])[0]
    assert bool(i.insufficient_negatives[0])
    # an impostor scoring highest: FPR 0 is only the first point (0, 0), TAR 0
    y2, s2 = y + [0], s + [0.99]
    i = M.tar_at_far_nearest(y2, s2, [0.01])
    assert (i.tar[0], i.far[0], i.threshold[0]) == (0.0, 0.0, math.inf) == insightface_tar(y2, s2, [0.01])[0]


def test_accuracy_hand_worked():
    # fold 0: genuine 0.9, 0.75, 0.78, impostor 0.2; fold 1: genuine 0.8075, 0.3, impostors 0.1, 0.45
    # (distances 2 - 2s stay clear of the grid's points, except 0.5, which is exact)
    s = [0.9, 0.75, 0.78, 0.2, 0.8075, 0.3, 0.1, 0.45]
    y = [1, 1, 1, 0, 1, 1, 0, 0]
    f = [0, 0, 0, 0, 1, 1, 1, 1]
    # insightface, fold 0 tested: training distances genuine 0.385, 1.4, impostor 1.8, 1.1;
    # 3 correct first at the grid point above 0.385 (0.39): on fold 0, distance 0.2 is
    # accepted, 0.5 and 0.44 are rejected (wrong), impostor 1.6 rejected: 2/4.
    # fold 1 tested: training distances genuine 0.2, 0.5, 0.44, impostor 1.6: all 4
    # correct first at 0.51 (0.5 < 0.5 is false): on fold 1, 0.385 accepted, 1.4 rejected
    # (wrong), 1.8 and 1.1 rejected: 3/4.
    k = M.grid_kfold_accuracy(y, s, f)
    assert k.accuracy.tolist() == [0.5, 0.75]
    assert k.threshold.tolist() == [pytest.approx(0.39), pytest.approx(0.51)]
    assert k.threshold.tolist() == [np.arange(0, 4, 0.01)[39], np.arange(0, 4, 0.01)[51]]
    assert (k.mean, k.std, k.ddof, k.threshold_unit) == (0.625, 0.125, 0, "squared_l2")
    assert k.sem == pytest.approx(np.std([0.5, 0.75], ddof=1) / math.sqrt(2))  # 0.125
    # mfrkit: fold 0 tested with the midpoint (0.8075 + 0.45) / 2 = 0.62875 (the highest of two
    # best): all four right; fold 1 with (0.75 + 0.2) / 2 = 0.475: 0.3 wrong, 3/4.
    k = M.kfold_accuracy(y, s, f)
    assert k.accuracy.tolist() == [1.0, 0.75]
    assert k.threshold.tolist() == [pytest.approx(0.62875), pytest.approx(0.475)]
    assert k.mean == 0.875 and k.std == pytest.approx(0.1767767, abs=1e-7) and k.ddof == 1
    assert k.sem == pytest.approx(0.125)


def test_ftA_is_never_accepted_by_either_rule():
    y = [1, 1, 0, 0, 0, 0]
    s = [0.9, -np.inf, 0.5, 0.4, -np.inf, -np.inf]
    # FAR 1: the nearest point would be the one at -inf (every comparison accepted); it is
    # not a candidate: the lowest finite point (accept >= 0.4) is taken.
    i = M.tar_at_far_nearest(y, s, [1.0])
    assert (i.tar[0], i.threshold[0], i.false_accepts[0]) == (0.5, 0.4, 2)
    k = M.grid_kfold_accuracy(y, s, [0, 1, 0, 1, 0, 1])
    assert np.isfinite(k.accuracy).all()


# --- agreement with insightface's own code on continuous scores ------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_nearest_rule_equals_insightface_code(seed):
    rng = np.random.default_rng(seed)
    n_gen, n_imp = 300, 5000
    s = np.r_[rng.normal(0.5, 0.15, n_gen), rng.normal(0.0, 0.1, n_imp)]
    if seed % 2:
        s = np.round(s, 2)  # ties, across classes
    y = np.r_[np.ones(n_gen, int), np.zeros(n_imp, int)]
    targets = [1e-1, 1e-2, 1e-3, 2.9e-3, 1e-4, 1e-6]
    got = M.tar_at_far_nearest(y, s, targets)
    for k, want in enumerate(insightface_tar(y, s, targets)):
        assert (got.tar[k], got.far[k], got.threshold[k]) == want
        assert got.true_accepts[k] == round(want[0] * n_gen) and got.false_accepts[k] == round(want[1] * n_imp)


@pytest.mark.parametrize("seed", range(4))
def test_grid_accuracy_equals_insightface_code(seed):
    rng = np.random.default_rng(seed)
    n = 600
    y = np.tile([1, 0], n // 2)
    s = np.where(y == 1, rng.normal(0.45, 0.2, n), rng.normal(0.05, 0.15, n)).clip(-1, 1)
    folds = np.repeat(np.arange(10), n // 10)
    mean, std, accs = insightface_accuracy(y, s, 10)
    k = M.grid_kfold_accuracy(y, s, folds)
    assert k.accuracy.tolist() == accs
    assert k.mean == mean and k.std == std


@pytest.mark.parametrize("seed", range(4))
def test_rules_order_on_continuous_scores(seed):
    """mfrkit's TAR is the largest with at most floor(FAR x N) false accepts, so wherever
    the nearest point's false accepts are within that budget its TAR is not larger; the
    nearest point is never further from the target than mfrkit's operating point."""
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(0.5, 0.2, 400), rng.normal(0.0, 0.1, 20000)]
    y = np.r_[np.ones(400, int), np.zeros(20000, int)]
    targets = np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4])
    m, i = M.tar_at_far(y, s, targets), M.tar_at_far_nearest(y, s, targets)
    within = i.false_accepts <= m.budget
    assert within.any() and (i.tar[within] <= m.tar[within]).all()
    assert (i.far != m.far).any()
    assert (m.far <= targets).all()


def test_rule_sets_registry():
    assert M.RULE_SETS.names() == ["insightface", "mfrkit"]
    assert M.RULE_SETS.get("insightface").tar_at_far is M.tar_at_far_nearest
    with pytest.raises(Exception, match="unknown rule set"):
        M.RULE_SETS.get("nist")


def test_sem_is_sample_std_over_sqrt_k():
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.5
    s = rng.normal(0, 1, 500) + y
    f = np.arange(500) % 10
    k = M.kfold_accuracy(y, s, f)
    assert k.sem == pytest.approx(np.std(k.accuracy, ddof=1) / math.sqrt(10))
    assert M.kfold_accuracy(y, s, f, ddof=0).sem == k.sem
