"""The rule sets: how TAR@FAR and k-fold accuracy are decided. ``mfrkit`` (the default,
conservative) and ``insightface`` (what published numbers from insightface's evaluation
code use: the nearest ROC point, a threshold grid on squared L2 distance)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...registry import Registry
from .inputs import DEFAULT_FAR_TARGETS, MetricInputError, _check_binary, _check_scores, _check_targets, _warn
from .kfold import KFoldAccuracy, _check_folds, _fold_summary, kfold_accuracy
from .verification import TarAtFar, _roc_points, tar_at_far, tar_at_far_from_counts


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

    Examples
    --------
    >>> from mfrkit.bench.metrics import squared_l2_distance
    >>> squared_l2_distance([1.0, 0.5, float("-inf")]).tolist()
    [0.0, 1.0, inf]
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

    Examples
    --------
    The comparisons of :func:`~mfrkit.bench.metrics.kfold_accuracy`'s example, by insightface's
    rule (thresholds on the squared L2 distance, std with ddof=0):

    >>> from mfrkit.bench.metrics import grid_kfold_accuracy
    >>> labels = [1, 0, 1, 0, 1, 0, 1, 0]
    >>> scores = [0.9, 0.2, 0.8, 0.4, 0.7, 0.3, 0.35, 0.6]
    >>> k = grid_kfold_accuracy(labels, scores, folds=[0, 0, 0, 0, 1, 1, 1, 1])
    >>> k.accuracy.tolist(), k.threshold.tolist(), k.threshold_unit
    ([1.0, 0.5], [0.61, 0.4], 'squared_l2')
    >>> k.mean, k.std, k.ddof
    (0.75, 0.25, 0)
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
    for each target the operating point is the **first** index minimising
    ``|fpr - target|`` (insightface: ``min(zip(abs(fpr - x), range(len(fpr))))``), and
    its TPR, FPR and threshold are reported. The achieved FAR may therefore be **above**
    the target (the nearest point can lie on either side), and a target below
    ``1 / (2 N)`` picks the first point, (FPR 0, TPR 0). FtA comparisons (-inf) are
    kept in the curve as the lowest score, but a point at threshold -inf (one that
    would accept them) is never chosen.

    Parameters and returns as :func:`tar_at_far`; ``budget`` is ``floor(target * N)``
    for reference only (this rule has no budget) and ``far`` can exceed ``far_target``.

    Examples
    --------
    The nearest ROC point to FAR 0.5 has FAR 4/6, above the target; the ``mfrkit`` rule
    (:func:`~mfrkit.bench.metrics.tar_at_far`) stops at 3/6:

    >>> from mfrkit.bench.metrics import tar_at_far, tar_at_far_nearest
    >>> labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    >>> scores = [0.9, 0.8, 0.7, 0.2, 0.6, 0.5, 0.4, 0.3, 0.1, 0.0]
    >>> r = tar_at_far_nearest(labels, scores, [0.5])
    >>> r.tar.tolist(), [round(f, 4) for f in r.far], r.threshold.tolist()
    ([0.75], [0.6667], [0.3])
    >>> r = tar_at_far(labels, scores, [0.5])
    >>> r.tar.tolist(), r.far.tolist(), r.threshold.tolist()
    ([0.75], [0.5], [0.4])
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
    idx = np.array([int(np.argmin(np.abs(fpr - t))) if n_neg > 0 else 0 for t in targets], np.int64)
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
