"""Metrics against scikit-learn, slow brute-force references and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from mfrkit.bench import metrics as M
from mfrkit.errors import MfrkitError


def random_scores(seed, n=300, ties=True, pos_frac=0.4):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < pos_frac
    s = rng.normal(0, 1, n) + 1.2 * y
    if ties:
        s = np.round(s, 1)  # many tied scores, across classes
    return y.astype(int), s


# --- brute-force references (deliberately naive) ---------------------------------------------------


def brute_tar_at_far(y, s, far):
    y = np.asarray(y, bool)
    n_imp = (~y).sum()
    budget = math.floor(round(far * n_imp, 9))
    best = (0, math.inf, 0)  # (ta, threshold, fa) at t=+inf: accept nothing
    for t in sorted(set(s[np.isfinite(s)].tolist()), reverse=True):
        fa = int(((s >= t) & ~y).sum())
        ta = int(((s >= t) & y).sum())
        if fa <= budget and (ta > best[0] or (ta == best[0] and t < best[1])):
            best = (ta, t, fa)
    return best[0] / y.sum(), best[1], best[2], budget


def brute_accuracy_threshold(y, s):
    y = np.asarray(y, bool)
    u = np.unique(s[np.isfinite(s)])[::-1]  # descending
    candidates = [math.inf] + [(a + b) / 2 for a, b in zip(u[:-1], u[1:])] + [u[-1] if len(u) else -math.inf]
    best_t, best_acc = None, -1.0
    for t in candidates:  # descending, strict '>' keeps the highest threshold on ties
        acc = (((s >= t) & np.isfinite(s)) == y).mean()
        if acc > best_acc:
            best_t, best_acc = t, acc
    return best_t, best_acc


# --- ROC / AUC -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("drop", [True, False])
def test_roc_equals_sklearn(seed, drop):
    y, s = random_scores(seed, ties=seed % 2 == 0)
    ours = M.roc_curve(y, s, drop_intermediate=drop)
    theirs = sk_roc_curve(y, s, drop_intermediate=drop)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_roc_equals_sklearn_weighted():
    y, s = random_scores(7)
    w = np.random.default_rng(7).integers(0, 4, len(y)).astype(float)
    for a, b in zip(M.roc_curve(y, s, sample_weight=w), sk_roc_curve(y, s, sample_weight=w)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn(seed):
    y, s = random_scores(seed, ties=seed % 2 == 0)
    assert M.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_hand_worked_with_ties():
    # genuine {0.9, 0.5}, impostor {0.5, 0.1}: pairs (g>i): (0.9,0.5) (0.9,0.1) (0.5,0.1) + tie (0.5,0.5)/2
    assert M.roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(3.5 / 4)


def test_roc_monotone_and_fta_lowest():
    y, s = random_scores(3)
    s = s.copy()
    s[:10] = -np.inf  # FtA comparisons
    fpr, tpr, thr = M.roc_curve(y, s, drop_intermediate=False)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(thr) < 0).all()
    assert thr[-1] == -np.inf and fpr[-1] == 1 and tpr[-1] == 1


def test_roc_missing_class_warns_nan():
    with pytest.warns(M.UndefinedMetricWarning):
        fpr, tpr, _ = M.roc_curve([1, 1, 1], [0.1, 0.2, 0.3])
    assert np.isnan(fpr).all() and not np.isnan(tpr).any()
    with pytest.warns(M.UndefinedMetricWarning):
        assert math.isnan(M.roc_auc([1, 1], [0.1, 0.2]))


@pytest.mark.parametrize(
    "labels, scores, match",
    [
        ([1, 0], [0.1, np.nan], "NaN"),
        ([1, 0], [0.1, np.inf], r"\+inf"),
        ([1, 2], [0.1, 0.2], "0 or 1"),
        ([1, 0, 1], [0.1, 0.2], "length"),
        ([], [], "empty"),
        ([[1, 0]], [[0.1, 0.2]], "1-D"),
        (["a", "b"], [0.1, 0.2], "dtype"),
    ],
)
def test_bad_input_is_a_clear_error(labels, scores, match):
    with pytest.raises(MfrkitError, match=match):
        M.tar_at_far(labels, scores)


# --- TAR@FAR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_tar_at_far_equals_brute_force(seed):
    y, s = random_scores(seed, n=400, ties=seed % 2 == 0)
    targets = [0.5, 0.1, 0.05, 0.01, 0.003, 1e-4]
    r = M.tar_at_far(y, s, targets)
    for i, far in enumerate(targets):
        tar, thr, fa, budget = brute_tar_at_far(y, s, far)
        assert r.budget[i] == budget
        assert r.tar[i] == pytest.approx(tar)
        assert r.threshold[i] == thr
        assert r.false_accepts[i] == fa
        assert r.far[i] <= far + 1e-15  # never above the target
    # TAR is monotone in the target
    assert (np.diff(r.tar) <= 0).all()


def test_tar_at_far_hand_worked_ties_at_boundary():
    # 10 impostors: three tied at 0.5. FAR=0.2 allows 2 false accepts; accepting 0.5
    # would make 3, so the threshold must sit above 0.5: only the 0.6 genuine passes.
    imp = [0.5, 0.5, 0.5] + [0.1] * 7
    gen = [0.6, 0.5, 0.4]
    y = [0] * 10 + [1] * 3
    r = M.tar_at_far(y, imp + gen, [0.2, 0.3])
    assert r.budget.tolist() == [2, 3]
    assert r.threshold[0] == 0.6 and r.tar[0] == pytest.approx(1 / 3)
    assert r.false_accepts[0] == 0 and r.far[0] == 0.0  # ties make it lower than the target
    # with a budget of 3 the tied 0.5s fit, and the threshold can drop to the next
    # score, 0.4 (no impostor between 0.5 and 0.1): every genuine is accepted
    assert r.threshold[1] == 0.4 and r.tar[1] == 1.0 and r.false_accepts[1] == 3


def test_tar_at_far_zero_budget():
    # FAR=1e-3 with 10 impostors: budget 0, threshold above every impostor.
    imp = np.linspace(0, 0.45, 10)
    gen = [0.9, 0.46, 0.45, 0.2]
    r = M.tar_at_far([0] * 10 + [1] * 4, np.r_[imp, gen], [1e-3, 0.1])
    assert r.budget[0] == 0 and r.insufficient_negatives[0]
    assert not r.insufficient_negatives[1]
    assert r.threshold[0] == 0.46 and r.tar[0] == pytest.approx(0.5) and r.false_accepts[0] == 0
    # FAR=0.1 allows one false accept: 0.45 (tied with a genuine) is accepted
    assert r.threshold[1] == 0.45 and r.tar[1] == pytest.approx(0.75)


def test_tar_at_far_highest_impostor_above_all_genuine():
    r = M.tar_at_far([0, 1, 1], [0.9, 0.5, 0.4], [0.0])
    assert r.threshold[0] == np.inf and r.tar[0] == 0 and r.false_accepts[0] == 0


def test_tar_at_far_budget_rounding():
    # 0.29 * 100 is 28.999999999999996 in binary floating point; the budget is 29.
    y = np.r_[np.zeros(100, int), np.ones(5, int)]
    s = np.r_[np.arange(100) / 100, np.ones(5)]
    assert M.tar_at_far(y, s, [0.29]).budget[0] == 29


def test_fta_never_accepted():
    y = np.array([1, 1, 0, 0])
    s = np.array([-np.inf, 0.8, -np.inf, 0.2])
    r = M.tar_at_far(y, s, [1.0])  # even an unlimited budget
    assert r.tar[0] == 0.5 and np.isfinite(r.threshold[0])
    e = M.eer(y, s)
    assert e.frr >= 0.0 and np.isfinite(e.eer)


def test_tar_ci_contains_estimate():
    y, s = random_scores(1, n=500)
    r = M.tar_at_far(y, s, [0.1, 0.01])
    assert (r.tar_ci_low <= r.tar).all() and (r.tar <= r.tar_ci_high).all()


def test_weighted_equals_repeated():
    y, s = random_scores(2, n=120)
    w = np.random.default_rng(0).integers(0, 4, len(y))
    rep_y, rep_s = np.repeat(y, w), np.repeat(s, w)
    a = M.tar_at_far(y, s, [0.1, 0.02], sample_weight=w)
    b = M.tar_at_far(rep_y, rep_s, [0.1, 0.02])
    np.testing.assert_array_equal(a.threshold, b.threshold)
    np.testing.assert_allclose(a.tar, b.tar)
    ka = M.kfold_accuracy(y, s, np.arange(len(y)) % 4, sample_weight=w)
    kb = M.kfold_accuracy(rep_y, rep_s, np.repeat(np.arange(len(y)) % 4, w))
    np.testing.assert_allclose(ka.accuracy, kb.accuracy)


def test_issue_rules_differ_and_ours_is_conservative():
    # The three rules of the issue on the same scores; ours never exceeds the FAR target.
    rng = np.random.default_rng(0)
    imp, gen = rng.normal(0, 1, 20_000), rng.normal(3, 1, 2_000)
    y, s = np.r_[np.zeros(len(imp)), np.ones(len(gen))], np.r_[imp, gen]
    r = M.tar_at_far(y, s, [1e-4])
    assert r.false_accepts[0] <= 2 and r.far[0] <= 1e-4
    kth = np.sort(imp)[::-1][1]  # k-th largest impostor with k = FAR * N = 2
    assert r.tar[0] == pytest.approx((gen > np.sort(imp)[::-1][2]).mean())
    assert r.tar[0] >= (gen > kth).mean()


# --- rates at a fixed threshold --------------------------------------------------------------------


def test_rates_at_threshold():
    r = M.rates_at_threshold([1, 1, 1, 0, 0], [0.9, 0.5, -np.inf, 0.5, 0.1], 0.5)
    assert r.fnmr == pytest.approx(1 / 3) and r.fmr == pytest.approx(1 / 2)
    assert r.fnmr_ci_low <= r.fnmr <= r.fnmr_ci_high


# --- EER -------------------------------------------------------------------------------------------


def test_eer_hand_worked():
    # impostors 0.1 0.2 0.3 0.6; genuine 0.4 0.7 0.8 0.9.
    # Threshold 0.5 (midpoint of 0.4 and 0.6): FAR 1/4 (0.6), FRR 1/4 (0.4).
    e = M.eer([0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    assert e.eer == pytest.approx(0.25) and e.threshold == pytest.approx(0.5)
    assert e.far == pytest.approx(0.25) and e.frr == pytest.approx(0.25)


def test_eer_separable_is_zero_with_midpoint():
    e = M.eer([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.8])
    assert e.eer == 0 and e.threshold == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(4))
def test_eer_equals_brute_force(seed):
    y, s = random_scores(seed, n=200)
    yb = y.astype(bool)
    u = np.unique(s)[::-1]
    cands = [math.inf] + [(a + b) / 2 for a, b in zip(u[:-1], u[1:])] + [u[-1]]
    best = None
    for t in cands:
        far, frr = (s[~yb] >= t).mean(), (s[yb] < t).mean()
        if best is None or abs(far - frr) < best[0]:
            best = (abs(far - frr), t, (far + frr) / 2)
    e = M.eer(y, s)
    assert e.threshold == pytest.approx(best[1]) and e.eer == pytest.approx(best[2])


# --- k-fold accuracy -------------------------------------------------------------------------------


def test_best_accuracy_threshold_equals_brute_force():
    for seed in range(4):
        y, s = random_scores(seed, n=150)
        t, acc = M.best_accuracy_threshold(y, s)
        bt, bacc = brute_accuracy_threshold(y, s)
        assert t == pytest.approx(bt) and acc == pytest.approx(bacc)


def test_kfold_threshold_from_training_folds_differs_from_global():
    # Two folds built so that each fold's own best threshold differs: fold 0 separates at
    # 0.5, fold 1 at 0.2. Training on fold 1 picks ~0.2, which misclassifies fold 0's
    # impostors at 0.3 and 0.4; training on fold 0 picks ~0.5, which rejects fold 1's
    # genuine 0.3 and 0.4. The global best threshold would score both folds better.
    f0_y, f0_s = [0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.4, 0.6, 0.7, 0.8]
    f1_y, f1_s = [0, 0, 1, 1, 1, 1], [0.05, 0.15, 0.25, 0.3, 0.4, 0.9]
    y = np.r_[f0_y, f1_y]
    s = np.r_[f0_s, f1_s]
    folds = np.r_[np.zeros(6), np.ones(6)]
    k = M.kfold_accuracy(y, s, folds)
    t1, _ = M.best_accuracy_threshold(f1_y, f1_s)  # fitted on fold 1, applied to fold 0
    t0, _ = M.best_accuracy_threshold(f0_y, f0_s)
    assert k.threshold[0] == pytest.approx(t1) and k.threshold[1] == pytest.approx(t0)
    assert t0 != pytest.approx(t1)
    assert k.accuracy[0] == pytest.approx(((np.array(f0_s) >= t1) == np.array(f0_y)).mean())
    assert k.accuracy[1] == pytest.approx(((np.array(f1_s) >= t0) == np.array(f1_y)).mean())
    # The global best threshold (fitted on everything) is fold 1's; a tool using it for
    # every fold would report 100% on fold 1 instead of the honest 50%.
    tg, _ = M.best_accuracy_threshold(y, s)
    assert tg == pytest.approx(t1) and k.threshold[1] != pytest.approx(tg)
    assert k.accuracy[1] == pytest.approx(0.5)
    assert ((np.array(f1_s) >= tg) == np.array(f1_y)).mean() == 1.0
    assert k.std == pytest.approx(np.std(k.accuracy, ddof=1)) and k.ddof == 1


def test_ten_fold_equals_brute_force():
    y, s = random_scores(11, n=600)
    folds = np.arange(600) % 10
    k = M.kfold_accuracy(y, s, folds)
    accs = []
    for f in range(10):
        t, _ = brute_accuracy_threshold(y[folds != f], s[folds != f])
        accs.append(((s[folds == f] >= t) == y[folds == f].astype(bool)).mean())
    np.testing.assert_allclose(k.accuracy, accs)
    assert k.mean == pytest.approx(np.mean(accs)) and k.std == pytest.approx(np.std(accs, ddof=1))
    assert len(set(np.round(k.threshold, 9))) > 1  # thresholds do differ between folds
    tg, _ = brute_accuracy_threshold(y, s)
    assert any(t != pytest.approx(tg) for t in k.threshold)


def test_kfold_needs_two_folds():
    with pytest.raises(MfrkitError, match="2 folds"):
        M.kfold_accuracy([0, 1], [0.1, 0.2], [0, 0])


# --- identification --------------------------------------------------------------------------------


def test_mate_ranks_ties_are_misses():
    S = np.array(
        [
            [0.9, 0.1, 0.2],  # mate 0, best: rank 1
            [0.5, 0.5, 0.1],  # mate 1 tied with entry 0: rank 2
            [0.3, 0.3, 0.3],  # constant scores, mate 2: rank 3 (never a hit by luck)
            [0.3, 0.8, 0.1],  # non-mated
            [-np.inf, -np.inf, -np.inf],  # FtA probe, mate 0
        ]
    )
    r = M.mate_ranks(S, [0, 1, 2, -1, 0])
    assert r[:3].tolist() == [1, 2, 3] and np.isnan(r[3]) and r[4] == np.inf
    c = M.cmc(r, max_rank=3)
    np.testing.assert_allclose(c, [1 / 4, 2 / 4, 3 / 4])  # FtA stays in the denominator


def test_cmc_monotone_and_rank_k():
    rng = np.random.default_rng(0)
    S = rng.random((50, 30))
    mates = rng.integers(0, 30, 50)
    c = M.cmc(M.mate_ranks(S, mates), max_rank=30)
    assert (np.diff(c) >= 0).all() and c[-1] == 1.0
    brute = np.mean([(S[p] > S[p, mates[p]]).sum() + (S[p] == S[p, mates[p]]).sum() - 1 < 5 for p in range(50)])
    assert c[4] == pytest.approx(brute)


def test_tpir_at_fpir_brute_force():
    rng = np.random.default_rng(5)
    ms = np.round(rng.normal(1, 1, 200), 1)
    mr = rng.integers(1, 4, 200).astype(float)
    ns = np.round(rng.normal(0, 1, 300), 1)
    for fpir in [0.1, 0.01, 0.3]:
        r = M.tpir_at_fpir(ms, mr, ns, [fpir])
        budget = math.floor(round(fpir * 300, 9))
        best = 0
        for t in sorted(set(np.r_[ms, ns].tolist())):
            if (ns >= t).sum() <= budget:
                best = max(best, ((mr <= 1) & (ms >= t)).sum())
        assert r.tar[0] == pytest.approx(best / 200)
        assert r.far[0] <= fpir


# --- uncertainty -----------------------------------------------------------------------------------


def test_clopper_pearson_known_values():
    lo, hi = M.clopper_pearson(0, 10)
    assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = M.clopper_pearson(5, 10)
    assert lo == pytest.approx(0.18709, abs=1e-5) and hi == pytest.approx(0.81291, abs=1e-5)
    lo, hi = M.clopper_pearson(10, 10)
    assert hi == 1 and lo == pytest.approx(0.025 ** (1 / 10))
    lo, hi = M.clopper_pearson(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def test_bootstrap_reproducible_and_brackets_estimate():
    y, s = random_scores(4, n=400)
    clusters = np.arange(400) // 4  # 100 identities, 4 comparisons each
    stat = lambda w: M.tar_at_far(y, s, [0.1], sample_weight=w).tar  # noqa: E731
    a = M.bootstrap_interval(stat, clusters, n_boot=200, seed=3)
    b = M.bootstrap_interval(stat, clusters, n_boot=200, seed=3)
    c = M.bootstrap_interval(stat, clusters, n_boot=200, seed=4)
    np.testing.assert_array_equal(a.low, b.low)
    assert not np.array_equal(a.std, c.std)
    est = M.tar_at_far(y, s, [0.1]).tar
    assert (a.low <= est).all() and (est <= a.high).all() and (a.std > 0).all()
    assert a.n_clusters == 100
