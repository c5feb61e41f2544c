"""Exact metrics from impostor scores reduced to a histogram plus a few exact bins.

An all-pairs protocol has far more impostor comparisons than memory holds (a
trillion and more), but every threshold-based number mfrkit reports depends on the
impostor scores only through counts above a threshold and, near the operating point,
the exact order of the scores. :class:`BinnedScores` keeps exactly that:

* ``hist``: the **exact** number of impostor scores in each bin of a fine, fixed
  binning of the score axis (:class:`ScoreBins`: 2^16 bins per unit of cosine
  similarity, i.e. 1.5e-5 wide, over [-1.25, 1.25]; FtA scores, -inf, in bin 0);
* ``values``: the exact impostor scores of the **collected** bins, those around the
  operating points (the scanner in :mod:`mfrkit.bench.score.streaming` learns which);
* ``genuine``: every genuine score, exactly.

Bins are defined on float32 scores by ``floor(s * 2^16 + offset)``: multiplying by a
power of two is exact, so the one rounding of the sum makes the bin a monotone
function of the score, identical in numpy and torch, on the CPU and the GPU. Every bin
is therefore a contiguous range of float32 values, and "impostors >= t" is the sum of
the bins above t's bin plus the collected values of t's own bin.

From that, the resolvers here compute **exactly** what the materialised rules of
:mod:`mfrkit.bench.metrics` give on the full score list: TAR@FAR by the ``mfrkit`` rule
(:func:`~mfrkit.bench.metrics.tar_at_far`) and by the ``insightface`` rule
(:func:`~mfrkit.bench.metrics.tar_at_far_nearest`, scikit-learn's ROC with
``drop_intermediate``), the EER (:func:`~mfrkit.bench.metrics.eer`) and error rates at a
fixed threshold. Each works on a *window* of consecutive non-empty bins around its
operating point: inside it the distinct scores and their counts are exact, and the
counts above it come from the histogram, so the window holds the exact segment of the
global ROC. The window grows until the rule's decision cannot depend on anything
outside it (for the nearest-point rule: a kept ROC point on each side of the target,
with the keep/drop status of each known); a window that needs a bin whose values were
not collected yields :class:`MissingBins`, and the scanner makes another pass over the
comparisons to collect them. Only the AUC and the plotted curves come from the
histogram alone; their worst-case error is computed and reported (see :meth:`BinnedScores.auc`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import metrics as M
from .bins import MissingBins, ScoreBins

UP, DOWN = "up", "down"
#: A missing bin is asked for with its neighbours: at least this many bins and impostor
#: scores in the direction the window grows (a few MB at most; an extra pass costs a
#: full scan of the comparisons).
_ASK_BINS, _ASK_VALUES = 16, 4096


@dataclass(frozen=True)
class _Point:
    """One operating point: accept iff score >= threshold."""

    threshold: float
    true_accepts: int
    false_accepts: int


@dataclass
class _Curve:
    """An exact segment of the global ROC: the distinct scores of a window of bins,
    highest first, with cumulative counts that include everything above the window."""

    v: np.ndarray  # float64 (m,), decreasing
    a: np.ndarray  # int64 (m,), impostor scores equal to v
    g: np.ndarray  # int64 (m,), genuine scores equal to v
    fps: np.ndarray  # int64 (m,), impostors >= v
    tps: np.ndarray  # int64 (m,), genuine >= v
    fps_above: int
    tps_above: int
    at_top: bool  # nothing scores above the window
    at_bottom: bool  # nothing scores below the window

    def kept(self) -> np.ndarray:
        """scikit-learn's drop_intermediate status of each point: 1 kept, 0 dropped,
        -1 unknown (the last point of a window that does not reach the bottom)."""
        m = len(self.v)
        out = np.full(m, -1, np.int8)
        if m > 1:
            out[:-1] = ((self.a[:-1] != self.a[1:]) | (self.g[:-1] != self.g[1:])).astype(np.int8)
        if self.at_top and m:
            out[0] = 1
        if self.at_bottom and m:
            out[-1] = 1
        return out


# --- results of a resolver, the reduced scores -----------------------------------------------------------------------------


@dataclass
class BinnedScores:
    """The scores of one set of comparisons: impostors binned (exact counts, exact values
    in the collected bins), genuine scores kept.

    Attributes
    ----------
    bins : ScoreBins
    hist : ndarray of int64, shape (n_bins,)
        Impostor scores per bin; ``hist[0]`` counts FtA impostor comparisons (-inf).
    collected : ndarray of bool, shape (n_bins,)
        Bins whose impostor scores are all in ``values`` (bin 0 counts as collected).
    values : ndarray of float32, shape (k,)
        The impostor scores of the collected bins, sorted ascending.
    genuine : ndarray of float32, shape (n_genuine,)
        Every genuine score, sorted ascending; -inf for FtA.
    """

    bins: ScoreBins
    hist: np.ndarray
    collected: np.ndarray
    values: np.ndarray
    genuine: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.hist = np.asarray(self.hist, np.int64)
        self.collected = np.asarray(self.collected, bool).copy()
        self.collected[0] = True
        self.values = np.sort(np.asarray(self.values, np.float32))
        self.genuine = np.sort(np.asarray(self.genuine, np.float32))
        if self.hist.shape != (self.bins.n_bins,) or self.collected.shape != self.hist.shape:
            raise ValueError("hist and collected must have one entry per bin")
        self.value_bins = self.bins.of(self.values)
        self.genuine_bins = self.bins.of(self.genuine)
        self.suffix = np.r_[np.cumsum(self.hist[::-1])[::-1], 0]  # suffix[b] = impostors in bins >= b
        nonempty = (self.hist > 0)
        nonempty[np.unique(self.genuine_bins)] = True
        self.nonempty = np.flatnonzero(nonempty)

    @classmethod
    def from_scores(cls, labels, scores, *, bins: ScoreBins | None = None, collect="all") -> "BinnedScores":
        """Reduce a materialised score list (for tests and small protocols).

        Parameters
        ----------
        labels, scores : array_like of shape (n,); scores float32-representable, -inf for FtA.
        collect : ``"all"``, ``"none"`` or an iterable of bins whose values to keep.
        """
        bins = bins or ScoreBins()
        y = np.asarray(labels).astype(bool)
        s = np.asarray(scores, np.float32)
        imp = s[~y]
        b = bins.of(imp)
        hist = np.bincount(b, minlength=bins.n_bins)
        if isinstance(collect, str):
            col = np.full(bins.n_bins, collect == "all")
        else:
            col = np.zeros(bins.n_bins, bool)
            col[list(collect)] = True
        keep = col[b] & np.isfinite(imp)
        return cls(bins, hist, col, imp[keep], s[y])

    # --- counts --------------------------------------------------------------------------------------

    @property
    def n_impostor(self) -> int:
        return int(self.suffix[0])

    @property
    def n_genuine(self) -> int:
        return len(self.genuine)

    def with_values(self, bins_values: dict[int, np.ndarray]) -> None:
        """Add the exact impostor values of more bins (from another pass)."""
        new = [np.asarray(v, np.float32) for b, v in bins_values.items() if not self.collected[b]]
        for b, v in bins_values.items():
            if not self.collected[b] and len(v) != self.hist[b]:
                raise ValueError(f"bin {b}: {len(v)} values collected, {self.hist[b]} counted")
            self.collected[b] = True
        if new:
            self.values = np.sort(np.concatenate([self.values, *new]))
            self.value_bins = self.bins.of(self.values)

    def merged(self, others: list["BinnedScores"]) -> "BinnedScores":
        """The union of several disjoint sets of comparisons (bins collected in all of them stay collected)."""
        parts = [self, *others]
        col = np.logical_and.reduce([p.collected for p in parts])
        vals = [p.values[col[p.value_bins]] for p in parts]
        return BinnedScores(self.bins, sum(p.hist for p in parts), col, np.concatenate(vals),
                            np.concatenate([p.genuine for p in parts]))

    # --- windows -------------------------------------------------------------------------------------

    def _index_of_rank(self, rank: int) -> int:
        """Index into ``nonempty`` of the bin holding the ``rank``-th largest impostor
        (1-based; clipped to the lowest / highest non-empty bin)."""
        if len(self.nonempty) == 0:
            return 0
        rank = min(max(int(rank), 1), max(self.n_impostor, 1))
        # bin b holds ranks suffix[b+1] + 1 ... suffix[b]
        b = int(np.searchsorted(-self.suffix[1:], -rank, side="right"))  # first b with suffix[b+1] < rank
        b = min(b, self.bins.n_bins - 1)
        return int(np.clip(np.searchsorted(self.nonempty, b), 0, len(self.nonempty) - 1))

    def _curve(self, lo: int, hi: int) -> _Curve | MissingBins:
        """The exact curve segment of non-empty bins ``nonempty[lo] ... nonempty[hi]``."""
        blo, bhi = int(self.nonempty[lo]), int(self.nonempty[hi])
        window = self.nonempty[lo : hi + 1]
        missing = window[(self.hist[window] > 0) & ~self.collected[window]]
        if len(missing):
            return MissingBins(frozenset(int(b) for b in missing))
        i0, i1 = np.searchsorted(self.value_bins, [blo, bhi + 1])
        imp = self.values[i0:i1].astype(np.float64)
        j0, j1 = np.searchsorted(self.genuine_bins, [blo, bhi + 1])
        gen = self.genuine[j0:j1].astype(np.float64)
        n_inf = int(self.hist[0]) if blo == 0 else 0
        allv = np.concatenate([imp, gen, [-np.inf] if n_inf else []])
        uniq, inv = np.unique(allv, return_inverse=True)
        inv = inv.ravel()
        weights = np.r_[np.ones(len(imp)), np.zeros(len(gen)), [n_inf] if n_inf else []]
        a = np.bincount(inv, weights=weights, minlength=len(uniq)).astype(np.int64)[::-1]
        g = np.bincount(inv[len(imp) : len(imp) + len(gen)], minlength=len(uniq)).astype(np.int64)[::-1]
        fps_above = int(self.suffix[bhi + 1])
        tps_above = int(self.n_genuine - j1)
        return _Curve(v=uniq[::-1], a=a, g=g, fps=fps_above + np.cumsum(a), tps=tps_above + np.cumsum(g),
                      fps_above=fps_above, tps_above=tps_above, at_top=hi == len(self.nonempty) - 1,
                      at_bottom=lo == 0)

    def _resolve(self, start: int, decide: Callable[[_Curve], object]):
        """Grow a window from ``nonempty[start]`` until ``decide`` returns a result.

        ``decide`` returns a result, ``UP`` or ``DOWN``. Growth doubles the number of
        bins added each time. A needed bin without values gives MissingBins, asking
        generously (:meth:`_ask`) so that one more pass is likely to be enough.
        """
        lo = hi = start
        step = {UP: 1, DOWN: 1}
        while True:
            curve = self._curve(lo, hi)
            if isinstance(curve, MissingBins):
                want = max(_ASK_VALUES, 4 * int(self.hist[self.nonempty[lo : hi + 1]].sum()))
                return MissingBins(curve.bins | self._ask(hi, UP, want) | self._ask(lo, DOWN, want))
            out = decide(curve)
            if out not in (UP, DOWN):
                return out
            if out == UP:
                if hi == len(self.nonempty) - 1:
                    raise AssertionError("a resolver asked to grow past the top")
                hi = min(hi + step[UP], len(self.nonempty) - 1)
            else:
                if lo == 0:
                    raise AssertionError("a resolver asked to grow past the bottom")
                lo = max(lo - step[DOWN], 0)
            step[out] *= 2

    def _ask(self, index: int, direction: str, want: int) -> frozenset:
        """Uncollected non-empty bins from ``nonempty[index]`` on in ``direction``, until
        they hold ``want`` impostor scores and at least a few bins are taken."""
        idx = np.arange(index, len(self.nonempty)) if direction == UP else np.arange(index, -1, -1)
        bins = self.nonempty[idx]
        bins = bins[(self.hist[bins] > 0) & ~self.collected[bins]]
        if not len(bins):
            return frozenset()
        total = np.cumsum(self.hist[bins])
        n = max(int(np.searchsorted(total, want)) + 1, _ASK_BINS)
        return frozenset(int(b) for b in bins[:n])

    # --- TAR@FAR, mfrkit rule ----------------------------------------------------------------------

    def operating_point(self, budget: float) -> _Point | MissingBins:
        """The mfrkit rule's point for a false-accept budget: the lowest finite distinct
        score with at most ``budget`` impostors at or above it (+inf when none)."""
        B = float(budget)

        def decide(c: _Curve):
            ok = np.isfinite(c.v) & (c.fps <= B)
            if not ok[0]:
                return _Point(math.inf, 0, 0) if c.at_top else UP
            k = len(ok) - 1 if ok.all() else int(np.argmin(ok)) - 1
            if k == len(ok) - 1 and not c.at_bottom:
                return DOWN
            return _Point(float(c.v[k]), int(c.tps[k]), int(c.fps[k]))

        if len(self.nonempty) == 0:
            return _Point(math.inf, 0, 0)
        return self._resolve(self._index_of_rank(int(B) + 1), decide)

    def tar_at_far(self, far_targets=M.DEFAULT_FAR_TARGETS, *, confidence: float = 0.95) -> M.TarAtFar | MissingBins:
        """:func:`mfrkit.bench.metrics.tar_at_far` on the full scores, exactly."""
        targets = M._check_targets(far_targets)
        budget, _ = M._budget(targets, float(self.n_impostor))
        points = [self.operating_point(b) for b in budget]
        missing = _union(points)
        if missing:
            return missing
        return self._tar_result(targets, points, confidence)

    # --- TAR@FAR, insightface rule -----------------------------------------------------------------

    def nearest_point(self, target: float) -> _Point | MissingBins:
        """The insightface rule's point for one FAR target: the first ROC point (with
        scikit-learn's drop_intermediate) minimising ``|fpr - target|``, never one at -inf."""
        n = float(self.n_impostor)
        t = float(target)

        def decide(c: _Curve):
            kept = c.kept()
            cand = np.flatnonzero((kept == 1) & np.isfinite(c.v))
            fpr = c.fps[cand] / n
            thr, ta, fa = c.v[cand], c.tps[cand], c.fps[cand]
            if c.at_top:  # the first point of every ROC: (0, 0) at +inf
                fpr, thr = np.r_[0.0, fpr], np.r_[np.inf, thr]
                ta, fa = np.r_[0, ta], np.r_[0, fa]
            beyond = fpr > t
            if not beyond.any() and not c.at_bottom:
                return DOWN
            if len(fpr) == 0:
                return UP
            d = np.abs(fpr - t)
            f = int(np.argmin(d))
            if f == 0 and not c.at_top:
                return UP
            return _Point(float(thr[f]), int(ta[f]), int(fa[f]))

        if len(self.nonempty) == 0 or n <= 0:
            return _Point(math.inf, 0, 0)
        return self._resolve(self._index_of_rank(int(t * n) + 1), decide)

    def tar_at_far_nearest(self, far_targets=M.DEFAULT_FAR_TARGETS, *,
                           confidence: float = 0.95) -> M.TarAtFar | MissingBins:
        """:func:`mfrkit.bench.metrics.tar_at_far_nearest` on the full scores, exactly."""
        targets = M._check_targets(far_targets)
        points = [self.nearest_point(t) for t in targets]
        missing = _union(points)
        if missing:
            return missing
        return self._tar_result(targets, points, confidence)

    def _tar_result(self, targets, points: list[_Point], confidence: float) -> M.TarAtFar:
        return M.tar_at_far_from_counts(
            targets, [p.threshold for p in points], [p.true_accepts for p in points], [p.false_accepts for p in points],
            self.n_genuine, self.n_impostor, confidence=confidence,
        )  # fmt: skip

    # --- EER -----------------------------------------------------------------------------------------

    def eer(self) -> M.EqualErrorRate | MissingBins:
        """:func:`mfrkit.bench.metrics.eer` on the full scores, exactly."""
        n_pos, n_neg = float(self.n_genuine), float(self.n_impostor)
        if n_pos <= 0 or n_neg <= 0:
            return M.EqualErrorRate(math.nan, math.nan, math.nan, math.nan)

        def decide(c: _Curve):
            finite = np.flatnonzero(np.isfinite(c.v))
            far = c.fps[finite] / n_neg
            frr = 1.0 - c.tps[finite] / n_pos
            idx = finite
            if c.at_top:  # candidate 0: reject everything
                far, frr, idx = np.r_[0.0, far], np.r_[1.0, frr], np.r_[-1, idx]
            if len(idx) == 0:
                return UP
            e = far - frr
            if not (e >= 0).any() and not c.at_bottom:
                return DOWN
            f = int(np.argmin(np.abs(e)))
            if f == 0 and not c.at_top:
                return UP
            j = int(idx[f])
            if j == -1:
                return M.EqualErrorRate(float((far[f] + frr[f]) / 2.0), math.inf, float(far[f]), float(frr[f]))
            if j == len(c.v) - 1 and not c.at_bottom:
                return DOWN  # the midpoint needs the next lower score
            hi = float(c.v[j])
            lo = float(c.v[j + 1]) if j + 1 < len(c.v) else -math.inf
            threshold = hi if lo == -math.inf else (hi + lo) / 2.0
            return M.EqualErrorRate(float((far[f] + frr[f]) / 2.0), threshold, float(far[f]), float(frr[f]))

        # start where the error rates cross at the bin edges
        edges = self.nonempty
        far_e = self.suffix[edges] / n_neg
        frr_e = np.searchsorted(self.genuine_bins, edges, side="left") / n_pos
        start = int(np.clip(np.searchsorted(-(far_e - frr_e), 0.0), 0, len(edges) - 1))
        return self._resolve(start, decide)

    # --- fixed thresholds ----------------------------------------------------------------------------

    def accepted(self, threshold: float) -> tuple[int, int] | MissingBins:
        """(true accepts, false accepts) when accepting iff ``score >= threshold`` (FtA never)."""
        t = float(threshold)
        if math.isnan(t):
            raise M.MetricInputError("threshold is NaN")
        if t <= -self.bins.limit:  # every finite score is accepted
            return int(np.isfinite(self.genuine).sum()), int(self.n_impostor - self.hist[0])
        b, f = self.bins.first_bin_at_or_above(t)
        if b >= self.bins.n_bins:
            return 0, 0
        fa = int(self.suffix[b + 1])
        if self.hist[b]:
            if not self.collected[b]:
                return MissingBins(frozenset({b}))
            i0, i1 = np.searchsorted(self.value_bins, [b, b + 1])
            fa += int((self.values[i0:i1] >= f).sum())
        return int((self.genuine >= f).sum()), fa

    def rates_at_threshold(self, threshold: float, *, confidence: float = 0.95) -> M.Rates | MissingBins:
        """:func:`mfrkit.bench.metrics.rates_at_threshold` on the full scores, exactly."""
        got = self.accepted(threshold)
        if isinstance(got, MissingBins):
            return got
        ta, fa = got
        n_gen, n_imp = float(self.n_genuine), float(self.n_impostor)
        fr = n_gen - ta
        fmr_lo, fmr_hi = M.clopper_pearson(fa, n_imp, confidence=confidence)
        fnmr_lo, fnmr_hi = M.clopper_pearson(fr, n_gen, confidence=confidence)
        return M.Rates(threshold=float(threshold), fmr=fa / n_imp if n_imp else math.nan,
                       fnmr=fr / n_gen if n_gen else math.nan, false_accepts=float(fa), false_rejects=float(fr),
                       n_genuine=n_gen, n_impostor=n_imp, fmr_ci_low=float(fmr_lo), fmr_ci_high=float(fmr_hi),
                       fnmr_ci_low=float(fnmr_lo), fnmr_ci_high=float(fnmr_hi))

    # --- approximations from the histogram ---------------------------------------------------------

    def auc(self) -> tuple[float, float]:
        """AUC (ties count one half) and its worst-case error.

        For a genuine score in a collected bin the impostors below and equal to it are
        counted exactly; in another bin, the bin's impostors count one half each, which
        is off by at most half the bin's count. Returns ``(auc, max_error)``; the exact
        AUC lies in ``auc +- max_error`` (0 when every genuine score's bin is collected).
        """
        n_pos, n_neg = self.n_genuine, self.n_impostor
        if n_pos == 0 or n_neg == 0:
            return math.nan, math.nan
        gb = self.genuine_bins
        below = (n_neg - self.suffix[gb]).astype(np.float64)  # impostors in lower bins
        inbin = self.hist[gb].astype(np.float64)
        exact = self.collected[gb]
        credit = below + 0.5 * inbin
        error = np.where(exact, 0.0, 0.5 * inbin)
        if exact.any():
            vals = self.values.astype(np.float64)
            g = self.genuine[exact].astype(np.float64)
            lt = np.searchsorted(vals, g, side="left") - np.searchsorted(self.value_bins, gb[exact], side="left")
            le = np.searchsorted(vals, g, side="right") - np.searchsorted(self.value_bins, gb[exact], side="left")
            credit[exact] = below[exact] + lt + 0.5 * (le - lt)
            minf = np.isneginf(g)  # bin 0: every impostor there is -inf, a tie
            credit[np.flatnonzero(exact)[minf]] = 0.5 * self.hist[0]
        total = float(n_pos) * float(n_neg)
        return float(credit.sum() / total), float(error.sum() / total)

    def roc_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact ROC points at the lower edge of every non-empty bin (accept iff score >=
        edge), highest first: ``(far, tar, edge)``; between two of them the true curve
        moves by at most one bin's impostors and genuine scores."""
        n_pos, n_neg = self.n_genuine, self.n_impostor
        edges = self.nonempty[::-1]
        edges = edges[edges >= 2]
        fa = self.suffix[edges].astype(np.float64)
        ta = (n_pos - np.searchsorted(self.genuine_bins, edges, side="left")).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            far = np.r_[0.0, fa / n_neg, (n_neg - self.hist[0]) / n_neg]
            tar = np.r_[0.0, ta / n_pos, (n_pos - np.isneginf(self.genuine).sum()) / n_pos]
        return far, tar, np.r_[np.inf, self.bins.lower_edge(edges), -np.inf]

    def histogram(self):
        """Score histogram of the non-empty bins, a DataFrame: ``bin``, ``lower``, ``upper``
        (the bin holds the float32 scores in ``[lower, upper)``; -inf for FtA), ``impostor``,
        ``genuine`` (exact counts)."""
        import pandas as pd

        b = self.nonempty
        gen = np.bincount(self.genuine_bins, minlength=self.bins.n_bins)[b]
        lower = self.bins.lower_edge(b)
        upper = np.where(b == 0, -np.inf, self.bins.lower_edge(b + 1))
        return pd.DataFrame({"bin": b, "lower": lower, "upper": upper, "impostor": self.hist[b], "genuine": gen})


def _union(results: list) -> MissingBins | None:
    bins = set()
    for r in results:
        if isinstance(r, MissingBins):
            bins |= r.bins
    return MissingBins(frozenset(bins)) if bins else None


def resolve_all(scores: BinnedScores, far_targets, *, thresholds=(), confidence: float = 0.95) -> dict | MissingBins:
    """Every exact number of one :class:`BinnedScores`, or the bins still needed.

    Returns
    -------
    dict with ``tar_at_far`` (mfrkit rule, TarAtFar), ``nearest`` (insightface rule,
    TarAtFar), ``eer`` (EqualErrorRate), ``rates`` (list of Rates, one per threshold of
    ``thresholds``); or MissingBins (the union of what every number needs).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        out = {
            "tar_at_far": scores.tar_at_far(far_targets, confidence=confidence),
            "nearest": scores.tar_at_far_nearest(far_targets, confidence=confidence),
            "eer": scores.eer(),
            "rates": [scores.rates_at_threshold(t, confidence=confidence) for t in thresholds],
        }
    missing = _union([out["tar_at_far"], out["nearest"], out["eer"], *out["rates"]])
    return missing or out
