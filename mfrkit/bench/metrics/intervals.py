"""Intervals: exact binomial (Clopper-Pearson) intervals of rates, and the percentile
bootstrap over identities of any weighted statistic."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ...rng import item_rng
from .inputs import MetricInputError, UndefinedMetricWarning, _py


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

    Examples
    --------
    >>> from mfrkit.bench.metrics import clopper_pearson
    >>> low, high = clopper_pearson(8, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.4439, 0.9748)
    >>> low, high = clopper_pearson([0, 10], [10, 10])  # one-sided at 0 and n
    >>> [round(v, 4) for v in low], [round(v, 4) for v in high]
    ([0.0, 0.6915], [0.3085, 1.0])
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

    Examples
    --------
    The interval of a weighted mean over four identities:

    >>> import numpy as np
    >>> from mfrkit.bench.metrics import bootstrap_interval
    >>> values = np.array([1.0, 0.0, 1.0, 1.0])
    >>> b = bootstrap_interval(lambda w: np.average(values, weights=w), ["a", "b", "c", "d"], n_boot=200, seed=0)
    >>> float(b.low), float(b.high), b.n_clusters
    (0.25, 1.0, 4)
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
