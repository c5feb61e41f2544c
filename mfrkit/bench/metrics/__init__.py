"""Verification and identification metrics, one documented rule each (pure functions).

==================  =====================================================================
``inputs``          default targets, MetricInputError / UndefinedMetricWarning, checks
``verification``    the shared curve core; ROC, AUC, TAR@FAR, rates at a threshold, EER
``kfold``           k-fold accuracy (LFW protocol), midpoint thresholds
``rule_sets``       the ``mfrkit`` and ``insightface`` rule sets (:data:`RULE_SETS`)
``identification``  mate ranks, CMC, TPIR@FPIR
``intervals``       Clopper-Pearson intervals, the identity bootstrap
``bundle``          every metric of one protocol as a JSON-ready dict, with breakdowns
==================  =====================================================================

The conventions every function shares are in :mod:`.verification`'s docstring: accept
iff ``score >= threshold``; -inf is a failure to acquire, never accepted; ties are
accepted or rejected together. ``from mfrkit.bench import metrics as M`` gives every
metric function by name (``M.tar_at_far``, ``M.RULE_SETS``, ...).
"""

from __future__ import annotations

# The private helpers (``_budget``, ``_check_*``, ``_curve``, ``_py``) are imported too: the
# score stage's resolvers and the report use them through ``M``.

from .identification import cmc, mate_ranks, tpir_at_fpir
from .inputs import (
    DEFAULT_FAR_TARGETS,
    MetricInputError,
    UndefinedMetricWarning,
    _check_binary,
    _check_scores,
    _check_targets,
    _py,
)
from .intervals import BootstrapInterval, bootstrap_interval, clopper_pearson
from .kfold import KFoldAccuracy, best_accuracy_threshold, kfold_accuracy
from .rule_sets import (
    INSIGHTFACE_GRID,
    RULE_SETS,
    RuleSet,
    grid_kfold_accuracy,
    squared_l2_distance,
    tar_at_far_nearest,
)
from .verification import (
    EqualErrorRate,
    Rates,
    TarAtFar,
    _budget,
    _curve,
    eer,
    rates_at_threshold,
    roc_auc,
    roc_curve,
    tar_at_far,
    tar_at_far_from_counts,
)

__all__ = [
    "DEFAULT_FAR_TARGETS", "MetricInputError", "UndefinedMetricWarning", "roc_curve", "roc_auc", "TarAtFar",
    "tar_at_far", "tar_at_far_from_counts", "Rates", "rates_at_threshold", "EqualErrorRate", "eer",
    "best_accuracy_threshold", "KFoldAccuracy", "kfold_accuracy", "INSIGHTFACE_GRID", "squared_l2_distance",
    "grid_kfold_accuracy", "tar_at_far_nearest", "RuleSet", "RULE_SETS", "mate_ranks", "cmc", "tpir_at_fpir",
    "clopper_pearson", "BootstrapInterval", "bootstrap_interval",
]  # fmt: skip
