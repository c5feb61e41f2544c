"""k-fold verification accuracy (the LFW protocol): a threshold fitted on k-1 folds,
accuracy on the held-out one, by the ``mfrkit`` rule (midpoint thresholds, std ddof=1).
The ``insightface`` rule's grid variant is in :mod:`.rule_sets`."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .inputs import MetricInputError, UndefinedMetricWarning, _check_binary, _py, _warn
from .verification import _curve, _finite_ops, _midpoint_threshold


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

    Examples
    --------
    >>> from mfrkit.bench.metrics import best_accuracy_threshold
    >>> t, acc = best_accuracy_threshold([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.3, 0.1])
    >>> round(t, 4), round(acc, 4)
    (0.65, 0.8333)
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

    Examples
    --------
    >>> from mfrkit.bench.metrics import kfold_accuracy
    >>> labels = [1, 0, 1, 0, 1, 0, 1, 0]
    >>> scores = [0.9, 0.2, 0.8, 0.4, 0.7, 0.3, 0.35, 0.6]
    >>> k = kfold_accuracy(labels, scores, folds=[0, 0, 0, 0, 1, 1, 1, 1])
    >>> k.accuracy.tolist(), [round(t, 4) for t in k.threshold]
    ([1.0, 0.75], [0.65, 0.6])
    >>> k.mean, round(k.std, 4), k.ddof
    (0.875, 0.1768, 1)
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
