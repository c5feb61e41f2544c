"""Verification and identification metrics, one documented rule each.

Every function here is pure: arrays in, arrays (or small frozen results) out, inputs
validated up front with messages that name the bad value. Degenerate but legal input
(no genuine pairs, no impostors) gives an :class:`UndefinedMetricWarning` and NaN, not a
crash.

Conventions shared by all functions
-----------------------------------
* ``labels``: 1 (or True) for a genuine (mated) comparison, 0 for an impostor one.
* ``scores``: similarities, larger means more alike. **The decision rule is: accept iff
  ``score >= threshold``.**
* A score of ``-inf`` marks a comparison that could not be made (failure to acquire,
  FtA, of either image). Threshold-based metrics (TAR@FAR, EER, accuracy, TPIR@FPIR)
  never accept it, at any threshold, so a failed genuine comparison is a false reject
  and a failed impostor comparison is a true reject. The ROC keeps it as the lowest
  score, so the curve still ends at (1, 1). ``NaN`` and ``+inf`` are rejected.
* Ties: all comparisons with the same score are accepted or rejected together; curves
  have one point per distinct score (as in scikit-learn).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..errors import MfrkitError
from ..registry import Registry
from ..rng import item_rng

#: Default FAR (and FPIR) targets: 1e-1 down to 1e-6.
DEFAULT_FAR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


class MetricInputError(MfrkitError, ValueError):
    """Inputs to a metric are malformed (shapes, labels, NaN scores, ...)."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for legal input (e.g. no impostor comparisons): it is NaN."""


# --- validation -----------------------------------------------------------------------------------


def _check_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D, got shape {s.shape}")
    if np.isnan(s).any():
        raise MetricInputError(f"{name} contain NaN at index {int(np.flatnonzero(np.isnan(s))[0])}")
    if np.isposinf(s).any():
        raise MetricInputError(f"{name} contain +inf at index {int(np.flatnonzero(np.isposinf(s))[0])}")
    return s


def _check_binary(labels, scores, sample_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate (labels, scores, weights); returns (bool labels, float64 scores, weights or None)."""
    y = np.asarray(labels)
    s = _check_scores(scores)
    if y.ndim != 1:
        raise MetricInputError(f"labels must be 1-D, got shape {y.shape}")
    if len(y) != len(s):
        raise MetricInputError(f"labels and scores differ in length: {len(y)} != {len(s)}")
    if len(y) == 0:
        raise MetricInputError("no comparisons: labels and scores are empty")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number):
            raise MetricInputError(f"labels must be 0/1 or boolean, got dtype {y.dtype}")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise MetricInputError(f"labels must be 0 or 1, got {y[bad][0]!r} at index {int(np.flatnonzero(bad)[0])}")
        y = y.astype(bool)
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != s.shape:
            raise MetricInputError(f"sample_weight has shape {w.shape}, expected {s.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise MetricInputError("sample_weight must be finite and >= 0")
    return y, s, w


def _check_targets(targets, name: str = "far_targets") -> np.ndarray:
    t = np.atleast_1d(np.asarray(targets, dtype=np.float64))
    if t.ndim != 1 or len(t) == 0:
        raise MetricInputError(f"{name} must be a non-empty 1-D list of rates")
    if not np.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise MetricInputError(f"{name} must lie in [0, 1], got {t.tolist()}")
    return t


def _warn(msg: str) -> None:
    warnings.warn(msg, UndefinedMetricWarning, stacklevel=3)


# --- the shared core: sort once, merge ties --------------------------------------------------------


def _curve(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative counts at each distinct score, highest score first.

    Returns ``(thresholds, tps, fps)``, each of shape (n_distinct,): accepting the
    comparisons with ``score >= thresholds[i]`` accepts ``tps[i]`` genuine and ``fps[i]``
    impostor ones (weighted sums when ``w`` is given). Zero-weight comparisons are
    dropped first, as scikit-learn does.
    """
    if w is not None:
        keep = w != 0
        y, s, w = y[keep], s[keep], w[keep]
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # `!=` rather than np.diff: diff of two -inf is NaN, which would split a tie.
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    if w is None:
        tps = np.cumsum(y, dtype=np.float64)[last]
        fps = 1.0 + last.astype(np.float64) - tps
    else:
        w = w[order]
        tps = np.cumsum(y * w, dtype=np.float64)[last]
        fps = np.cumsum(~y * w, dtype=np.float64)[last]
    return s[last], tps, fps


def _finite_ops(thresholds: np.ndarray) -> int:
    """Number of operating points with a finite threshold (a -inf threshold would accept FtA)."""
    return len(thresholds) - int(len(thresholds) > 0 and thresholds[-1] == -np.inf)


def _midpoint_threshold(thresholds: np.ndarray, j: int) -> float:
    """Threshold of operating point ``j`` (0 = reject all) as a midpoint between scores.

    Point ``j >= 1`` accepts ``score >= thresholds[j-1]``; any threshold in
    ``(thresholds[j], thresholds[j-1]]`` makes the same decisions, and the midpoint of
    that gap is returned (+inf for ``j == 0``; ``thresholds[j-1]`` itself when there is no
    finite lower score).
    """
    if j == 0:
        return math.inf
    hi = float(thresholds[j - 1])
    lo = float(thresholds[j]) if j < len(thresholds) else -math.inf
    return hi if lo == -math.inf else (hi + lo) / 2.0


def _budget(targets: np.ndarray, n_negative: float) -> tuple[np.ndarray, np.ndarray]:
    """``floor(target * n)`` and ``target * n``, guarding against binary rounding
    (0.29 * 100 is 28.999999999999996 in floating point, and must give 29)."""
    product = targets * n_negative
    return np.floor(product * (1 + 1e-12) + 1e-9), product


# --- ROC, AUC --------------------------------------------------------------------------------------


def _roc_points(y, s, w, drop_intermediate: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, tps, fps)`` of the ROC's points, scikit-learn's way: one point per
    distinct score, collinear intermediate points dropped when ``drop_intermediate`` (a
    point is kept iff the counts at its score differ from those at the next lower
    score, or it is the first or last), then a first point (+inf, 0, 0)."""
    thresholds, tps, fps = _curve(y, s, w)
    if drop_intermediate and len(fps) > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        thresholds, tps, fps = thresholds[keep], tps[keep], fps[keep]
    return np.r_[np.inf, thresholds], np.r_[0.0, tps], np.r_[0.0, fps]


def roc_curve(labels, scores, *, sample_weight=None, drop_intermediate: bool = True):
    """Receiver operating characteristic.

    The same points as :func:`sklearn.metrics.roc_curve` with the same arguments: one
    point per distinct score (plus a first point at threshold +inf), collinear
    intermediate points dropped when ``drop_intermediate``.

    Parameters
    ----------
    labels : array_like of shape (n,)
        1 for genuine, 0 for impostor.
    scores : array_like of shape (n,)
        Similarities (accept iff ``score >= threshold``); -inf for FtA.
    sample_weight : array_like of shape (n,), optional
    drop_intermediate : bool

    Returns
    -------
    fpr : ndarray of shape (m,)
        False accept rate (FAR, FMR) at each threshold.
    tpr : ndarray of shape (m,)
        True accept rate (TAR, 1 - FNMR) at each threshold.
    thresholds : ndarray of shape (m,)
        Decreasing; ``thresholds[0] = inf``.
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    thresholds, tps, fps = _roc_points(y, s, w, drop_intermediate)
    if fps[-1] <= 0:
        _warn("no impostor comparisons: FAR is undefined")
        fpr = np.full(fps.shape, np.nan)
    else:
        fpr = fps / fps[-1]
    if tps[-1] <= 0:
        _warn("no genuine comparisons: TAR is undefined")
        tpr = np.full(tps.shape, np.nan)
    else:
        tpr = tps / tps[-1]
    return fpr, tpr, thresholds


def roc_auc(labels, scores, *, sample_weight=None) -> float:
    """Area under the ROC curve, by the trapezoidal rule over every ROC point.

    Equals :func:`sklearn.metrics.roc_auc_score`: the probability that a random genuine
    score exceeds a random impostor one, ties counting one half (FtA scores, -inf, are
    the lowest and tie with each other). NaN, with a warning, when a class is missing.
    """
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=sample_weight, drop_intermediate=False)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


# --- clopper-pearson --------------------------------------------------------------------------------


def clopper_pearson(successes, trials, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial confidence interval.

    ``low = Beta(a/2; k, n-k+1)`` quantile and ``high = Beta(1-a/2; k+1, n-k)`` quantile
    with ``a = 1 - confidence``; ``low = 0`` when ``k = 0`` and ``high = 1`` when ``k = n``.

    Parameters
    ----------
    successes, trials : array_like of the same shape
        Counts ``k <= n``; NaN is returned where ``n == 0``.
    confidence : float in (0, 1)

    Returns
    -------
    low, high : ndarray of the broadcast shape, proportions in [0, 1].
    """
    from scipy.stats import beta

    if not 0 < confidence < 1:
        raise MetricInputError(f"confidence must be in (0, 1), got {confidence}")
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise MetricInputError("successes must lie between 0 and trials")
    a = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(a / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


# --- TAR@FAR ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarAtFar:
    """TAR at each FAR target (or TPIR at each FPIR target). Every array has shape (n_targets,).

    Attributes
    ----------
    far_target : requested false accept rates.
    budget : false accepts allowed, ``floor(far_target * n_impostor)``.
    threshold : the chosen threshold (accept iff ``score >= threshold``); +inf when even
        the highest score exceeds the budget.
    tar : true accept rate at ``threshold``.
    far : achieved false accept rate (``false_accepts / n_impostor``), never above the target.
    false_accepts, true_accepts : counts at ``threshold``.
    insufficient_negatives : True where ``far_target * n_impostor < 1``: the budget is 0
        and the target FAR cannot be resolved by this many impostors.
    tar_ci_low, tar_ci_high : Clopper-Pearson interval of ``tar`` (FNMR's is ``1 - high, 1 - low``).
    n_genuine, n_impostor : comparison counts (weighted sums with ``sample_weight``).
    """

    far_target: np.ndarray
    budget: np.ndarray
    threshold: np.ndarray
    tar: np.ndarray
    far: np.ndarray
    false_accepts: np.ndarray
    true_accepts: np.ndarray
    insufficient_negatives: np.ndarray
    tar_ci_low: np.ndarray
    tar_ci_high: np.ndarray
    n_genuine: float
    n_impostor: float

    def records(self) -> list[dict]:
        """One plain dict per target (JSON-serialisable)."""
        d = asdict(self)
        n_gen, n_imp = d.pop("n_genuine"), d.pop("n_impostor")
        out = []
        for i in range(len(self.far_target)):
            row = {k: _py(v[i]) for k, v in d.items()}
            row.update(n_genuine=_py(n_gen), n_impostor=_py(n_imp))
            out.append(row)
        return out


def tar_at_far(
    labels,
    scores,
    far_targets=DEFAULT_FAR_TARGETS,
    *,
    sample_weight=None,
    confidence: float = 0.95,
) -> TarAtFar:
    """True accept rate at fixed false accept rates, by one conservative rule.

    Rule: accept iff ``score >= t``. For a target FAR with ``N`` impostor comparisons
    the false-accept budget is ``B = floor(FAR * N)``; the reported TAR is the largest
    TAR over all thresholds ``t`` whose false accepts are ``<= B``. The reported
    threshold is the lowest score value achieving it, so the achieved FAR is as close
    to the target as the scores allow **without exceeding it** (ties at the boundary
    can make it lower). This is never the nearest-point rule (which may report a FAR
    above the target) nor a k-th-largest-impostor rule. Where ``FAR * N < 1`` the budget
    is 0 and ``insufficient_negatives`` is set. FtA scores (-inf) are never accepted.

    Parameters
    ----------
    labels : array_like of shape (n,)
        1 genuine, 0 impostor.
    scores : array_like of shape (n,)
    far_targets : array_like of shape (n_targets,)
        False accept rates in [0, 1]; default 1e-1 ... 1e-6.
    sample_weight : array_like of shape (n,), optional
        Non-negative weights (integer weights reproduce a resampled data set; used by the
        bootstrap). Counts and ``N`` become weighted sums.
    confidence : float
        Level of the Clopper-Pearson interval on TAR.

    Returns
    -------
    TarAtFar
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    targets = _check_targets(far_targets)
    thresholds, tps, fps = _curve(y, s, w)
    n_pos = float(tps[-1]) if len(tps) else 0.0
    n_neg = float(fps[-1]) if len(fps) else 0.0
    if n_pos <= 0:
        _warn("no genuine comparisons: TAR is undefined")
    if n_neg <= 0:
        _warn("no impostor comparisons: FAR targets cannot be met")
    budget, _ = _budget(targets, n_neg)
    n_ops = _finite_ops(thresholds)
    # fps is non-decreasing: the last operating point within budget is the lowest threshold.
    i = np.searchsorted(fps[:n_ops], budget, side="right") - 1
    ok = i >= 0
    ii = np.where(ok, i, 0)
    thr = np.where(ok, thresholds[ii] if n_ops else np.inf, np.inf)
    ta = np.where(ok, tps[ii] if n_ops else 0.0, 0.0)
    fa = np.where(ok, fps[ii] if n_ops else 0.0, 0.0)
    return tar_at_far_from_counts(targets, thr, ta, fa, n_pos, n_neg, confidence=confidence)


def tar_at_far_from_counts(targets: np.ndarray, threshold, true_accepts, false_accepts, n_genuine: float, n_impostor: float, *,
                           confidence: float = 0.95) -> TarAtFar:
    """A :class:`TarAtFar` from the operating point a rule chose for each target: its
    threshold and (weighted) true and false accept counts, shape (n_targets,) each.
    Every rule and every scorer (materialised, binned, all-pairs) ends here, so rates,
    budgets and intervals are derived one way."""
    ta = np.asarray(true_accepts, np.float64)
    fa = np.asarray(false_accepts, np.float64)
    n_pos, n_neg = float(n_genuine), float(n_impostor)
    budget, product = _budget(targets, n_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        tar = ta / n_pos if n_pos > 0 else np.full_like(ta, np.nan)
        far = fa / n_neg if n_neg > 0 else np.full_like(fa, np.nan)
    low, high = clopper_pearson(np.minimum(ta, n_pos), np.full_like(ta, n_pos), confidence=confidence)
    return TarAtFar(
        far_target=targets,
        budget=budget,
        threshold=np.asarray(threshold, np.float64),
        tar=tar,
        far=far,
        false_accepts=fa,
        true_accepts=ta,
        insufficient_negatives=product * (1 + 1e-12) + 1e-9 < 1,
        tar_ci_low=low,
        tar_ci_high=high,
        n_genuine=n_pos,
        n_impostor=n_neg,
    )


# --- rates at a fixed threshold (threshold transfer) -----------------------------------------------


@dataclass(frozen=True)
class Rates:
    """Error rates at one fixed threshold.

    Attributes
    ----------
    threshold : float
    fmr : false match rate, ``false_accepts / n_impostor``.
    fnmr : false non-match rate, ``false_rejects / n_genuine`` (FtA genuine comparisons are false rejects).
    false_accepts, false_rejects, n_genuine, n_impostor : counts.
    fnmr_ci_low, fnmr_ci_high, fmr_ci_low, fmr_ci_high : Clopper-Pearson intervals.
    """

    threshold: float
    fmr: float
    fnmr: float
    false_accepts: float
    false_rejects: float
    n_genuine: float
    n_impostor: float
    fmr_ci_low: float
    fmr_ci_high: float
    fnmr_ci_low: float
    fnmr_ci_high: float

    def as_dict(self) -> dict:
        return {k: _py(v) for k, v in asdict(self).items()}


def rates_at_threshold(labels, scores, threshold: float, *, confidence: float = 0.95) -> Rates:
    """FMR and FNMR when accepting iff ``score >= threshold`` (FtA, -inf, never accepted).

    Used for threshold transfer: a threshold chosen on one protocol (e.g. for FMR=1e-4 on
    ``umr-ump``) applied unchanged to another. NaN rates, with a warning, for a missing class.

    Parameters
    ----------
    labels, scores : array_like of shape (n,)
    threshold : float
    """
    y, s, _ = _check_binary(labels, scores)
    t = float(threshold)
    if math.isnan(t):
        raise MetricInputError("threshold is NaN")
    accept = (s >= t) & (s > -np.inf)
    n_gen, n_imp = float(y.sum()), float((~y).sum())
    fa, fr = float((accept & ~y).sum()), float((~accept & y).sum())
    if n_gen == 0:
        _warn("no genuine comparisons: FNMR is undefined")
    if n_imp == 0:
        _warn("no impostor comparisons: FMR is undefined")
    fmr_lo, fmr_hi = clopper_pearson(fa, n_imp, confidence=confidence)
    fnmr_lo, fnmr_hi = clopper_pearson(fr, n_gen, confidence=confidence)
    return Rates(
        threshold=t,
        fmr=fa / n_imp if n_imp else math.nan,
        fnmr=fr / n_gen if n_gen else math.nan,
        false_accepts=fa,
        false_rejects=fr,
        n_genuine=n_gen,
        n_impostor=n_imp,
        fmr_ci_low=float(fmr_lo),
        fmr_ci_high=float(fmr_hi),
        fnmr_ci_low=float(fnmr_lo),
        fnmr_ci_high=float(fnmr_hi),
    )


# --- EER -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EqualErrorRate:
    """Equal error rate.

    Attributes
    ----------
    eer : ``(far + frr) / 2`` at the chosen operating point.
    threshold : midpoint between the two neighbouring distinct scores of that point.
    far, frr : false accept and false reject rates there.
    """

    eer: float
    threshold: float
    far: float
    frr: float

    def as_dict(self) -> dict:
        return {k: _py(v) for k, v in asdict(self).items()}


def eer(labels, scores, *, sample_weight=None) -> EqualErrorRate:
    """Equal error rate, by one rule.

    Candidate thresholds are the midpoints between consecutive distinct scores, plus
    +inf (reject all) and a threshold below the lowest finite score (accept all but
    FtA). ``FAR(t)`` is the fraction of impostor comparisons with ``score >= t``,
    ``FRR(t)`` the fraction of genuine ones with ``score < t`` (FtA counts as a
    reject). The chosen threshold minimises ``|FAR - FRR|``; on a tie (FAR - FRR
    changes sign between two neighbouring points by the same amount) the higher
    threshold wins. ``EER = (FAR + FRR) / 2`` there.

    Parameters
    ----------
    labels, scores : array_like of shape (n,)
    sample_weight : array_like of shape (n,), optional

    Returns
    -------
    EqualErrorRate; all NaN, with a warning, when a class is missing.
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    thresholds, tps, fps = _curve(y, s, w)
    n_pos, n_neg = float(tps[-1]), float(fps[-1])
    if n_pos <= 0 or n_neg <= 0:
        _warn("EER needs both genuine and impostor comparisons")
        return EqualErrorRate(math.nan, math.nan, math.nan, math.nan)
    n_ops = _finite_ops(thresholds)
    far = np.r_[0.0, fps[:n_ops] / n_neg]
    frr = np.r_[1.0, 1.0 - tps[:n_ops] / n_pos]
    j = int(np.argmin(np.abs(far - frr)))
    return EqualErrorRate(
        eer=float((far[j] + frr[j]) / 2.0),
        threshold=_midpoint_threshold(thresholds, j),
        far=float(far[j]),
        frr=float(frr[j]),
    )


# --- k-fold accuracy -------------------------------------------------------------------------------


def best_accuracy_threshold(labels, scores, *, sample_weight=None) -> tuple[float, float]:
    """The threshold maximising verification accuracy on these comparisons.

    Candidates are the midpoints of :func:`eer` (+inf, midpoints between consecutive
    distinct scores, one below the lowest finite score). Accuracy is
    ``(true accepts + true rejects) / n``. On a tie the highest threshold wins.

    Returns
    -------
    threshold : float
    accuracy : float, in [0, 1]
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    thresholds, tps, fps = _curve(y, s, w)
    n_pos, n_neg = float(tps[-1]), float(fps[-1])
    n_ops = _finite_ops(thresholds)
    correct = np.r_[n_neg, tps[:n_ops] + (n_neg - fps[:n_ops])]
    j = int(np.argmax(correct))
    total = n_pos + n_neg
    return _midpoint_threshold(thresholds, j), float(correct[j] / total) if total > 0 else math.nan


@dataclass(frozen=True)
class KFoldAccuracy:
    """k-fold verification accuracy (LFW protocol).

    Attributes
    ----------
    folds : ndarray of shape (k,), the fold labels in sorted order.
    accuracy : ndarray of shape (k,), accuracy on each test fold.
    threshold : ndarray of shape (k,), threshold chosen on the other folds, in
        ``threshold_unit``.
    mean : mean of ``accuracy``.
    std : standard deviation of ``accuracy`` with ``ddof`` (1: sample standard deviation).
    ddof : int
    sem : standard error of the mean, LFW's convention: the **sample** standard deviation
        (ddof = 1, whatever ``ddof`` is) divided by ``sqrt(k)``, over the usable folds.
    threshold_unit : ``score`` (accept iff ``score >= threshold``) or ``squared_l2``
        (accept iff ``2 - 2 * score < threshold``, the insightface rule).
    """

    folds: np.ndarray
    accuracy: np.ndarray
    threshold: np.ndarray
    mean: float
    std: float
    ddof: int
    sem: float = math.nan
    threshold_unit: str = "score"

    def as_dict(self) -> dict:
        return {k: _py(v) for k, v in asdict(self).items()}


def _check_folds(folds, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fold label of each comparison (shape of ``scores``) and the fold names (at least 2)."""
    f = np.asarray(folds)
    if f.shape != scores.shape:
        raise MetricInputError(f"folds has shape {f.shape}, expected {scores.shape}")
    names = np.unique(f)
    if len(names) < 2:
        raise MetricInputError(f"k-fold accuracy needs at least 2 folds, got {len(names)}")
    return f, names


def kfold_accuracy(labels, scores, folds, *, ddof: int = 1, sample_weight=None) -> KFoldAccuracy:
    """LFW-style k-fold accuracy: threshold fitted on k-1 folds, accuracy on the held-out one.

    For each fold ``f``: the threshold is :func:`best_accuracy_threshold` on all
    comparisons not in ``f``; the accuracy is the fraction of comparisons in ``f`` decided
    correctly by ``score >= threshold`` (FtA, -inf, is a reject). ``mean`` and ``std``
    (with ``ddof``; default 1, the sample standard deviation -- *not* the standard error)
    are over the k fold accuracies; ``sem`` is the standard error, sample standard
    deviation / sqrt(k) (LFW's convention).

    Parameters
    ----------
    labels, scores : array_like of shape (n,)
    folds : array_like of shape (n,)
        Fold label of each comparison (at least 2 distinct values).
    ddof : int
    sample_weight : array_like of shape (n,), optional

    Returns
    -------
    KFoldAccuracy
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    f, names = _check_folds(folds, s)
    ww = np.ones_like(s) if w is None else w
    acc, thr = np.empty(len(names)), np.empty(len(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for i, name in enumerate(names):
            test = f == name
            train = ~test & (ww > 0)
            if not train.any():
                acc[i] = thr[i] = math.nan
                continue
            t, _ = best_accuracy_threshold(y[train], s[train], sample_weight=ww[train])
            correct = ((s[test] >= t) & (s[test] > -np.inf)) == y[test]
            total = ww[test].sum()
            thr[i] = t
            acc[i] = float((correct * ww[test]).sum() / total) if total > 0 else math.nan
    return _fold_summary(names, acc, thr, ddof, "score")


def _fold_summary(names: np.ndarray, acc: np.ndarray, thr: np.ndarray, ddof: int, unit: str) -> KFoldAccuracy:
    """Mean, standard deviation (``ddof``) and standard error of the usable folds' accuracies."""
    valid = acc[~np.isnan(acc)]
    if len(valid) <= ddof:
        _warn(f"{len(valid)} usable folds: standard deviation with ddof={ddof} is undefined")
    std = float(np.std(valid, ddof=ddof)) if len(valid) > ddof else math.nan
    sem = float(np.std(valid, ddof=1) / math.sqrt(len(valid))) if len(valid) > 1 else math.nan
    return KFoldAccuracy(
        folds=names,
        accuracy=acc,
        threshold=thr,
        mean=float(valid.mean()) if len(valid) else math.nan,
        std=std,
        ddof=ddof,
        sem=sem,
        threshold_unit=unit,
    )


# --- the insightface rule set ----------------------------------------------------------------------

#: insightface's verification thresholds: squared L2 distances 0, 0.01, ..., 3.99, exactly
#: ``np.arange(0, 4, 0.01)`` (so 0.07 is 0.07000000000000001, as there).
INSIGHTFACE_GRID = np.arange(0, 4, 0.01)


def squared_l2_distance(scores) -> np.ndarray:
    """Squared L2 distance of two unit vectors from their cosine similarity: ``2 - 2 * score``.

    Parameters
    ----------
    scores : array_like of shape (n,)
        Cosine similarities; -inf (FtA) becomes +inf, a distance no threshold accepts.

    Returns
    -------
    ndarray of float64, shape (n,), in [0, 4] for finite scores.
    """
    return 2.0 - 2.0 * _check_scores(scores)


def _grid_correct(y: np.ndarray, d: np.ndarray, w: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Weighted number of correct decisions (accept iff ``d < t``) at each grid threshold."""
    gen_order = np.argsort(d[y], kind="stable")
    imp_order = np.argsort(d[~y], kind="stable")
    gen_d, imp_d = d[y][gen_order], d[~y][imp_order]
    gen_cw = np.r_[0.0, np.cumsum(w[y][gen_order])]
    imp_cw = np.r_[0.0, np.cumsum(w[~y][imp_order])]
    accepted_gen = gen_cw[np.searchsorted(gen_d, grid, side="left")]  # d < t
    rejected_imp = imp_cw[-1] - imp_cw[np.searchsorted(imp_d, grid, side="left")]  # d >= t
    return accepted_gen + rejected_imp


def grid_kfold_accuracy(labels, scores, folds, *, grid=INSIGHTFACE_GRID, sample_weight=None) -> KFoldAccuracy:
    """k-fold accuracy by insightface's rule (``recognition/arcface_torch/eval/verification.py``).

    Distances are :func:`squared_l2_distance` of the scores and a comparison is accepted
    iff ``distance < t``. For each fold ``f``: on the other folds, accuracy is evaluated
    at every threshold of ``grid`` and the **first** best one is kept (``np.argmax``);
    the accuracy of fold ``f`` at that threshold is ``(tp + tn) / n``. ``mean`` and ``std``
    are over the k folds with **ddof = 0** (``np.std``), as insightface reports them;
    ``sem`` is the sample standard deviation / sqrt(k).

    insightface cuts its pair list into 10 contiguous folds (``KFold(shuffle=False)``),
    which for LFW-style files are the files' own folds; here the folds are the
    protocol's ``fold`` column. Distances come from the scores (``2 - 2 s``) rather
    than from the embeddings: equal to insightface's up to float rounding.

    Parameters
    ----------
    labels, scores, folds : array_like of shape (n,)
    grid : array_like of shape (m,), increasing squared-L2 thresholds.
    sample_weight : array_like of shape (n,), optional

    Returns
    -------
    KFoldAccuracy with ``ddof = 0``, thresholds in ``squared_l2`` units.
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    f, names = _check_folds(folds, s)
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or len(g) == 0 or np.any(np.diff(g) <= 0):
        raise MetricInputError("grid must be a non-empty increasing 1-D array of thresholds")
    d = 2.0 - 2.0 * s
    ww = np.ones_like(s) if w is None else w
    acc, thr = np.empty(len(names)), np.empty(len(names))
    for i, name in enumerate(names):
        test = f == name
        train = ~test & (ww > 0)
        total = ww[test].sum()
        if not train.any() or total <= 0:
            acc[i] = thr[i] = math.nan
            continue
        t = float(g[int(np.argmax(_grid_correct(y[train], d[train], ww[train], g)))])
        correct = (d[test] < t) == y[test]
        thr[i] = t
        acc[i] = float((correct * ww[test]).sum() / total)
    return _fold_summary(names, acc, thr, 0, "squared_l2")


def tar_at_far_nearest(
    labels,
    scores,
    far_targets=DEFAULT_FAR_TARGETS,
    *,
    sample_weight=None,
    confidence: float = 0.95,
) -> TarAtFar:
    """TAR at FAR by the nearest-point rule of insightface's IJB evaluation.

    The ROC is :func:`roc_curve` with ``drop_intermediate=True`` (scikit-learn's points);
    insightface reverses it (``fpr = np.flipud(fpr); tpr = np.flipud(tpr)  # select
    largest tpr at same fpr``) and takes the first index minimising ``|fpr - target|``
    (``min(zip(abs(fpr - x), range(len(fpr))))``): among points equally near the target
    the one with the **highest** FPR and TPR wins (of two points at one FPR, the larger
    TPR). Its TPR, FPR and threshold are reported. The achieved FAR may therefore be
    **above** the target (the nearest point can lie on either side), and a target below
    ``1 / (2 N)`` gets the last point at FPR 0: the highest TPR with no false accept.
    FtA comparisons (-inf) are kept in the curve as the lowest score, but a point at
    threshold -inf (one that would accept them) is never chosen. (Changed: the first
    point in scikit-learn's order was taken, without insightface's reversal, which gave
    TAR 0 below 1 / (2 N) and the lower TAR of a tie.)

    Parameters and returns as :func:`tar_at_far`; ``budget`` is ``floor(target * N)``
    for reference only (this rule has no budget) and ``far`` can exceed ``far_target``.
    """
    y, s, w = _check_binary(labels, scores, sample_weight)
    targets = _check_targets(far_targets)
    thresholds, tps, fps = _roc_points(y, s, w, True)
    n_pos, n_neg = float(tps[-1]), float(fps[-1])
    if n_pos <= 0:
        _warn("no genuine comparisons: TAR is undefined")
    if n_neg <= 0:
        _warn("no impostor comparisons: FAR targets cannot be met")
    n_ops = len(thresholds) - int(thresholds[-1] == -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps[:n_ops] / n_neg if n_neg > 0 else np.full(n_ops, np.nan)
    # the last index minimising |fpr - t| in scikit-learn's order = the first in insightface's reversed one
    idx = np.array([n_ops - 1 - int(np.argmin(np.abs(fpr[::-1] - t))) if n_neg > 0 and n_ops else 0 for t in targets],
                   np.int64)
    return tar_at_far_from_counts(targets, thresholds[idx], tps[idx], fps[idx], n_pos, n_neg, confidence=confidence)


# --- rule sets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """How TAR@FAR and k-fold accuracy are decided (one entry of :data:`RULE_SETS`).

    Attributes
    ----------
    name : str
    tar_at_far : callable (labels, scores, far_targets, *, sample_weight, confidence) -> TarAtFar
    kfold_accuracy : callable (labels, scores, folds, *, sample_weight) -> KFoldAccuracy
    description : str
    """

    name: str
    tar_at_far: Callable[..., TarAtFar]
    kfold_accuracy: Callable[..., KFoldAccuracy]
    description: str


#: The rule sets: ``mfrkit`` (the default, conservative) and ``insightface`` (what
#: published numbers from insightface's evaluation code use).
RULE_SETS: Registry[RuleSet] = Registry("rule set")
RULE_SETS.add("mfrkit", RuleSet(
    "mfrkit", tar_at_far, kfold_accuracy,
    "TAR@FAR: at most floor(FAR x N) false accepts, achieved FAR never above the target; accuracy: "
    "midpoint thresholds fitted on the other folds, std with ddof=1"))
RULE_SETS.add("insightface", RuleSet(
    "insightface", tar_at_far_nearest, grid_kfold_accuracy,
    "TAR@FAR: the ROC point (drop_intermediate) nearest the target, achieved FAR may exceed it; accuracy: "
    "first best threshold of np.arange(0, 4, 0.01) on squared L2 distance, std with ddof=0"))


# --- identification --------------------------------------------------------------------------------


def mate_ranks(score_matrix, mate_index) -> np.ndarray:
    """Rank of each probe's mate in a dense probe x gallery score matrix.

    ``rank = 1 + #{non-mated gallery entries j : score[p, j] >= score[p, mate]}``: **ties
    count as misses** (a non-mate tied with the mate is ranked above it), so a model that
    gives every entry the same score gets no hits. A probe whose mated score is -inf
    (FtA) has rank +inf. This is the reference definition; the blocked search in
    :mod:`mfrkit.bench.search` reproduces it without the dense matrix.

    Parameters
    ----------
    score_matrix : array_like of shape (n_probes, n_gallery)
        One gallery entry per enrolled identity.
    mate_index : array_like of int, shape (n_probes,)
        Column of each probe's mate; -1 for a non-mated probe.

    Returns
    -------
    ndarray of float64, shape (n_probes,): ranks >= 1, +inf for FtA, NaN for non-mated probes.
    """
    S = np.asarray(score_matrix, dtype=np.float64)
    m = np.asarray(mate_index)
    if S.ndim != 2 or m.shape != (S.shape[0],):
        raise MetricInputError(f"need a (P, G) score matrix and (P,) mate indices, got {S.shape} and {m.shape}")
    if np.isnan(S).any():
        raise MetricInputError("score matrix contains NaN")
    if ((m < -1) | (m >= S.shape[1])).any():
        raise MetricInputError("mate_index out of range")
    ranks = np.full(len(m), np.nan)
    rows = np.flatnonzero(m >= 0)
    mated = S[rows, m[rows]]
    ge = (S[rows] >= mated[:, None]).sum(1) - 1  # minus the mate itself
    ranks[rows] = np.where(mated == -np.inf, np.inf, 1.0 + ge)
    return ranks


def cmc(ranks, max_rank: int = 20) -> np.ndarray:
    """Cumulative match characteristic.

    ``cmc[r-1]`` is the fraction of mated probes whose mate has rank ``<= r`` (ties count
    as misses, see :func:`mate_ranks`); FtA probes (rank +inf) are misses and stay in the
    denominator. NaN ranks (non-mated probes) are ignored.

    Parameters
    ----------
    ranks : array_like of shape (n_probes,)
    max_rank : int

    Returns
    -------
    ndarray of shape (max_rank,), non-decreasing, in [0, 1]; NaN with a warning when no
    probe is mated. Rank-k identification accuracy is ``cmc[k-1]``.
    """
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1:
        raise MetricInputError(f"ranks must be 1-D, got shape {r.shape}")
    if max_rank < 1:
        raise MetricInputError(f"max_rank must be >= 1, got {max_rank}")
    r = r[~np.isnan(r)]
    if (r < 1).any():
        raise MetricInputError("ranks must be >= 1")
    if len(r) == 0:
        _warn("no mated probes: CMC is undefined")
        return np.full(max_rank, np.nan)
    return (r[None, :] <= np.arange(1, max_rank + 1)[:, None]).mean(1)


def tpir_at_fpir(
    mated_scores,
    mated_ranks,
    nonmated_scores,
    fpir_targets=DEFAULT_FAR_TARGETS,
    *,
    rank: int = 1,
    confidence: float = 0.95,
) -> TarAtFar:
    """Open-set identification: true positive identification rate at fixed FPIR.

    ISO/IEC 19795-1 terms. At threshold ``t`` a mated probe is a true positive iff its
    mate is within ``rank`` (ties count as misses) **and** its mated score is ``>= t``; a
    non-mated probe is a false positive iff its best gallery score is ``>= t``.
    FPIR = false positives / non-mated probes; FNIR = 1 - TPIR. The threshold is chosen
    by the rule of :func:`tar_at_far`: false positives ``<= floor(FPIR * n_nonmated)``,
    largest TPIR, lowest such threshold. FtA probes (-inf) are never positives.

    Parameters
    ----------
    mated_scores : array_like of shape (n_mated,)
        Score of each mated probe against its mate (-inf for FtA).
    mated_ranks : array_like of shape (n_mated,)
        Rank of the mate (see :func:`mate_ranks`).
    nonmated_scores : array_like of shape (n_nonmated,)
        Best gallery score of each non-mated probe (-inf for FtA).
    fpir_targets : array_like
    rank : int
        Candidate-list length; 1 for the usual TPIR.

    Returns
    -------
    TarAtFar, where ``tar`` is TPIR, ``far`` the achieved FPIR and ``far_target`` the FPIR target.
    """
    ms = _check_scores(mated_scores, "mated_scores")
    mr = np.asarray(mated_ranks, dtype=np.float64)
    ns = _check_scores(nonmated_scores, "nonmated_scores")
    if mr.shape != ms.shape:
        raise MetricInputError(f"mated_ranks has shape {mr.shape}, expected {ms.shape}")
    if rank < 1:
        raise MetricInputError(f"rank must be >= 1, got {rank}")
    hit = np.where(mr <= rank, ms, -np.inf)
    labels = np.r_[np.ones(len(hit), bool), np.zeros(len(ns), bool)]
    if len(labels) == 0:
        raise MetricInputError("no probes")
    return tar_at_far(labels, np.r_[hit, ns], fpir_targets, confidence=confidence)


# --- bootstrap over identities ---------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap interval of a statistic.

    Attributes
    ----------
    low, high : ndarray (the statistic's shape): ``(1-confidence)/2`` and
        ``(1+confidence)/2`` percentiles of the replicates (NaN replicates ignored).
    std : ndarray, standard deviation of the replicates (ddof=1): a standard error.
    n_boot, n_clusters, seed : how it was drawn.
    """

    low: np.ndarray
    high: np.ndarray
    std: np.ndarray
    n_boot: int
    n_clusters: int
    seed: int
    confidence: float

    def as_dict(self) -> dict:
        return {k: _py(v) for k, v in asdict(self).items()}


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray | float],
    clusters,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """Cluster (identity) bootstrap of a weighted statistic.

    Each replicate draws ``n_clusters`` identities with replacement; a comparison's
    weight is the number of times its identity was drawn, and ``statistic(weights)``
    is evaluated (the metrics above take ``sample_weight``; integer weights reproduce the
    resampled data set exactly). Resampling identities rather than comparisons keeps
    the dependence between comparisons of one person. A comparison belongs to the
    identity of its reference (left) image. Draws come from ``item_rng(seed, "bootstrap")``.

    Parameters
    ----------
    statistic : callable (n,) weights -> float or ndarray
    clusters : array_like of shape (n,)
        Identity of each comparison.
    n_boot : int
    seed : int
    confidence : float

    Returns
    -------
    BootstrapInterval
    """
    c = np.asarray(clusters)
    if c.ndim != 1 or len(c) == 0:
        raise MetricInputError("clusters must be a non-empty 1-D array")
    if n_boot < 2:
        raise MetricInputError(f"n_boot must be >= 2, got {n_boot}")
    _, inverse = np.unique(c, return_inverse=True)
    k = int(inverse.max()) + 1
    rng = item_rng(seed, "bootstrap")
    reps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for _ in range(n_boot):
            counts = rng.multinomial(k, np.full(k, 1.0 / k))
            reps.append(np.asarray(statistic(counts[inverse].astype(np.float64)), dtype=np.float64))
    reps = np.stack(reps)
    a = (1.0 - confidence) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        low, high = np.nanpercentile(reps, [100 * a, 100 * (1 - a)], axis=0)
        std = np.nanstd(reps, axis=0, ddof=1)
    return BootstrapInterval(low=low, high=high, std=std, n_boot=n_boot, n_clusters=k, seed=seed, confidence=confidence)


def _py(v):
    """numpy scalars/arrays -> plain Python for JSON (NaN/inf kept as floats)."""
    if isinstance(v, np.ndarray):
        return [_py(x) for x in v.tolist()] if v.ndim else _py(v.item())
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, list):
        return [_py(x) for x in v]
    return v
