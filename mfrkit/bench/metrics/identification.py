"""1:N identification metrics: mate ranks, the CMC, TPIR at fixed FPIR (open set)."""

from __future__ import annotations

import numpy as np

from .inputs import DEFAULT_FAR_TARGETS, MetricInputError, _check_scores, _warn
from .verification import TarAtFar, tar_at_far


# --- identification --------------------------------------------------------------------------------


def mate_ranks(score_matrix, mate_index) -> np.ndarray:
    """Rank of each probe's mate in a dense probe x gallery score matrix.

    ``rank = 1 + #{non-mated gallery entries j : score[p, j] >= score[p, mate]}``: **ties
    count as misses** (a non-mate tied with the mate is ranked above it), so a model that
    gives every entry the same score gets no hits. A probe whose mated score is -inf
    (FtA) has rank +inf. This is the reference definition; the blocked search in
    :mod:`mfrkit.bench.score.search` reproduces it without the dense matrix.

    Parameters
    ----------
    score_matrix : array_like of shape (n_probes, n_gallery)
        One gallery entry per enrolled identity.
    mate_index : array_like of int, shape (n_probes,)
        Column of each probe's mate; -1 for a non-mated probe.

    Returns
    -------
    ndarray of float64, shape (n_probes,): ranks >= 1, +inf for FtA, NaN for non-mated probes.

    Examples
    --------
    >>> from mfrkit.bench.metrics import mate_ranks
    >>> scores = [[0.9, 0.2, 0.1],
    ...           [0.3, 0.4, 0.4],   # a non-mate ties with the mate: counted above it
    ...           [0.1, 0.6, 0.5]]
    >>> mate_ranks(scores, [0, 1, -1]).tolist()  # the third probe is not mated
    [1.0, 2.0, nan]
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

    Examples
    --------
    >>> from mfrkit.bench.metrics import cmc
    >>> [round(v, 4) for v in cmc([1, 2, float("inf"), float("nan")], max_rank=3)]
    [0.3333, 0.6667, 0.6667]
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

    Examples
    --------
    Three mated probes (the third's mate at rank 2) and four non-mated ones; FPIR 0.25
    allows one false positive:

    >>> from mfrkit.bench.metrics import tpir_at_fpir
    >>> r = tpir_at_fpir([0.9, 0.7, 0.4], [1, 1, 2], [0.8, 0.3, 0.2, 0.1], [0.25])
    >>> [round(t, 4) for t in r.tar], r.far.tolist(), r.threshold.tolist()
    ([0.6667], [0.25], [0.7])
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
