"""The binning of the score axis shared by every scan (:class:`ScoreBins`: 2^16 bins per
unit of cosine, the same on numpy and torch, CPU and GPU), and what a resolver returns
when it needs the exact scores of bins not collected yet (:class:`MissingBins`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


# --- the binning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreBins:
    """A fixed binning of float32 scores: bin 0 holds -inf (FtA), bin 1 is reserved for
    comparisons left out of a block (self, same source, genuine: see :attr:`excluded_value`),
    bins 2 ... ``n_bins - 1`` hold finite scores in [-limit, limit].

    Parameters
    ----------
    bins_per_unit : int, a power of two
        Resolution: bins are ``1 / bins_per_unit`` wide in score units.
    limit : float
        Largest absolute score accepted (cosine scores are in [-1, 1]; the margin takes
        float rounding).
    """

    bins_per_unit: int = 2**16
    limit: float = 1.25

    def __post_init__(self) -> None:
        b = self.bins_per_unit
        if b < 1 or b & (b - 1):
            raise ValueError(f"bins_per_unit must be a power of two, got {b}")
        if self.offset != int(self.offset) or 2 * self.offset >= 2**24:
            raise ValueError("limit * bins_per_unit must be an integer below 2^22")

    @property
    def offset(self) -> float:
        return self.limit * self.bins_per_unit + 2.0

    @property
    def n_bins(self) -> int:
        return int(2 * self.limit * self.bins_per_unit) + 3

    @property
    def excluded_value(self) -> np.float32:
        """A float32 score that falls in bin 1: written over comparisons that must not count."""
        v = np.float32((1.5 - self.offset) / self.bins_per_unit)
        assert math.floor(float(v) * self.bins_per_unit + self.offset) == 1
        return v

    def of(self, scores) -> np.ndarray:
        """Bin of each float32 score (computed exactly as the scanner does), int64.

        Raises
        ------
        ValueError
            A score is NaN, +inf or outside [-limit, limit].
        """
        s = np.asarray(scores, dtype=np.float32)
        out = np.zeros(s.shape, np.int64)
        finite = np.isfinite(s)
        if np.isnan(s).any() or np.isposinf(s).any():
            raise ValueError("scores contain NaN or +inf")
        k = np.floor(s[finite] * np.float32(self.bins_per_unit) + np.float32(self.offset)).astype(np.int64)
        if len(k) and (k.min() < 2 or k.max() >= self.n_bins):
            raise ValueError(f"scores outside [-{self.limit}, {self.limit}]")
        out[finite] = k
        return out

    def lower_edge(self, b) -> np.ndarray:
        """The smallest float32 score of each bin ``b`` (bins >= 2; -inf for bin 0), as float64.

        Found by bisection on the float32 values in order (the bin is a monotone function
        of the score), so ``score >= lower_edge(b)`` holds exactly for the scores of bins >= b.
        """
        b = np.atleast_1d(np.asarray(b, np.int64))
        nominal = (b - self.offset) / self.bins_per_unit
        lo = _order_key(np.float32(nominal - 2.0 / self.bins_per_unit))  # bin < b
        hi = _order_key(np.float32(nominal + 2.0 / self.bins_per_unit))  # bin >= b
        while (hi - lo > 1).any():
            mid = lo + (hi - lo) // 2
            s = _from_order_key(mid)
            ge = np.floor(s * np.float32(self.bins_per_unit) + np.float32(self.offset)) >= b
            hi, lo = np.where(ge, mid, hi), np.where(ge, lo, mid)
        return np.where(b <= 0, -np.inf, _from_order_key(hi).astype(np.float64))

    def first_bin_at_or_above(self, t: float) -> tuple[int, np.float32]:
        """The bin of the smallest float32 score ``>= t`` and that score; (n_bins, inf)
        when no score is that high."""
        if t == -math.inf:
            return 0, np.float32(-np.inf)
        if t > self.limit:
            return self.n_bins, np.float32(np.inf)
        f = np.float32(max(t, -self.limit))
        if float(f) < t:
            f = np.nextafter(f, np.float32(np.inf))
        return int(self.of(np.array([f]))[0]), f


def _order_key(s) -> np.ndarray:
    """float32 -> int64 whose order is the float order (for finite values)."""
    u = np.atleast_1d(np.asarray(s, np.float32)).view(np.uint32).astype(np.int64)
    return np.where(u >= 2**31, 2**32 - 1 - u, u + 2**31)


def _from_order_key(k) -> np.ndarray:
    k = np.asarray(k, np.int64)
    u = np.where(k >= 2**31, k - 2**31, 2**32 - 1 - k)
    return u.astype(np.uint32).view(np.float32)


@dataclass(frozen=True)
class MissingBins:
    """A resolver needs the exact values of these bins (not collected yet)."""

    bins: frozenset
