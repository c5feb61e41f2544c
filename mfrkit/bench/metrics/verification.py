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
from dataclasses import asdict, dataclass

import numpy as np

from .inputs import DEFAULT_FAR_TARGETS, MetricInputError, _check_binary, _check_targets, _py, _warn
from .intervals import clopper_pearson


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

    Examples
    --------
    >>> from mfrkit.bench.metrics import roc_curve
    >>> fpr, tpr, thresholds = roc_curve([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.3, 0.1])
    >>> thresholds.tolist()
    [inf, 0.9, 0.8, 0.5, 0.4, 0.1]
    >>> [round(v, 3) for v in fpr], [round(v, 3) for v in tpr]
    ([0.0, 0.0, 0.0, 0.333, 0.333, 1.0], [0.0, 0.333, 0.667, 0.667, 1.0, 1.0])

    A failure to acquire (-inf) stays on the curve as the lowest score:

    >>> roc_curve([1, 0, 1, 0], [0.9, 0.8, float("-inf"), 0.1])[2].tolist()
    [inf, 0.9, 0.1, -inf]
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

    Examples
    --------
    >>> from mfrkit.bench.metrics import roc_auc
    >>> round(roc_auc([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.3, 0.1]), 4)
    0.8889
    """
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=sample_weight, drop_intermediate=False)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


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

    Examples
    --------
    Four genuine and six impostor comparisons; FAR 0.2 allows floor(0.2 x 6) = 1 false
    accept, FAR 0.1 none:

    >>> from mfrkit.bench.metrics import tar_at_far
    >>> labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    >>> scores = [0.9, 0.8, 0.7, 0.2, 0.6, 0.5, 0.4, 0.3, 0.1, 0.0]
    >>> r = tar_at_far(labels, scores, [0.2, 0.1])
    >>> r.budget.tolist(), r.tar.tolist(), r.threshold.tolist()
    ([1.0, 0.0], [0.75, 0.75], [0.6, 0.7])
    >>> [round(f, 3) for f in r.far]  # never above the target
    [0.167, 0.0]
    >>> tar_at_far(labels, scores, [0.1]).records()[0]["insufficient_negatives"]  # 0.1 x 6 < 1
    True
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
    budgets and intervals are derived one way.

    Examples
    --------
    >>> import numpy as np
    >>> from mfrkit.bench.metrics import tar_at_far_from_counts
    >>> r = tar_at_far_from_counts(np.array([0.1]), [0.5], [8], [1], n_genuine=10, n_impostor=10)
    >>> r.tar.tolist(), r.far.tolist(), r.budget.tolist()
    ([0.8], [0.1], [1.0])
    """
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

    Examples
    --------
    >>> from mfrkit.bench.metrics import rates_at_threshold
    >>> r = rates_at_threshold([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.3, 0.1], 0.45)
    >>> r.false_accepts, r.false_rejects, round(r.fmr, 4), round(r.fnmr, 4)
    (1.0, 1.0, 0.3333, 0.3333)
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

    Examples
    --------
    >>> from mfrkit.bench.metrics import eer
    >>> e = eer([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.3, 0.1])
    >>> round(e.eer, 4), e.threshold  # the midpoint between 0.5 and 0.4
    (0.3333, 0.45)
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
