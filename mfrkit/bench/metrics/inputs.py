"""What every metric shares: the default targets, the error and warning classes, input
validation with messages that name the bad value, and plain Python values for JSON.

The conventions the checks enforce are those of :mod:`mfrkit.bench.metrics`: labels 0/1
(or bool), finite scores or -inf (a failure to acquire), never NaN or +inf; rates in [0, 1].
"""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import MfrkitError

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
