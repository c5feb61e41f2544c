"""What the HTML report reads of a 1:1 result's comparisons: one interface, two sources.

* :class:`PairListScores`: a pair-list protocol's ``scores.csv`` (every comparison with
  its label and score). Everything is exact.
* :class:`AllPairsScores`: an all-pairs protocol, which has no score list (see
  :mod:`mfrkit.bench.evaluators.all_pairs`): ``histogram.csv`` (the exact number of genuine and
  impostor comparisons in each bin, 2^16 bins per unit of score), ``genuine.csv`` (every
  genuine comparison, exact, with its ids), ``images.csv`` (each side's images) and the
  exact numbers of ``metrics.json``. The ROC/DET curves are the exact points at the bins'
  lower edges; the histograms are the exact counts, grouped into the figure's wider bars;
  the FAR = 1e-3 threshold and the error counts are ``metrics.json``'s exact ones; the
  lowest-scoring genuine comparisons are read from ``genuine.csv`` in one streaming pass
  (only the columns needed, batch by batch: memory does not grow with the file). The
  highest-scoring impostor comparisons are not in the run folder (the streaming scoring
  keeps impostor scores as counts, not pairs): when the run saved its embeddings
  (``--save-embeddings``) they are found by one more pass over the comparisons
  (:mod:`mfrkit.bench.report.impostors`), up to a size limit; otherwise the report says
  why they are missing and how to get them.

Conventions as in :mod:`mfrkit.bench.metrics`: accept iff score >= threshold; failures
to acquire are scored -inf (counted, never drawn, never shown as a hardest comparison).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics as M
from ..results import RunResult
from .gallery import (
    Comparison,
    ImageSource,
    finite,
    hardest_pairs,
    identities,
    read_table,
    result_table_error,
    result_table_path,
)

#: FAR of the threshold the galleries and the per-group bars are drawn at.
GALLERY_FAR = 1e-3


def no_threshold_reason(n_genuine: int, n_impostor: int, far: float = GALLERY_FAR) -> str:
    """Why a protocol of ``n_genuine`` / ``n_impostor`` comparisons has no finite FAR =
    ``far`` threshold, in the words the report shows (the reason, not a guess)."""
    if not n_genuine and not n_impostor:
        return "no comparisons were scored"
    if not n_genuine:
        return "needs genuine comparisons (it has none)"
    if not n_impostor:
        return "needs impostor comparisons (it has none)"
    if math.floor(far * n_impostor) == 0:
        return (f"FAR = {far:g} allows no false accept among {n_impostor:,} impostor comparisons (fewer than "
                f"1 / FAR = {1 / far:,.0f}), and no genuine score lies above every impostor score")
    return f"no score reaches FAR = {far:g} with {n_genuine:,} genuine and {n_impostor:,} impostor comparisons"


@dataclass(frozen=True)
class Errors:
    """The decisions at the gallery threshold (accept iff score >= ``threshold``)."""

    threshold: float
    false_rejects: int
    n_genuine: int
    false_accepts: int
    n_impostor: int


@dataclass(frozen=True)
class Missing:
    """Why a part of the report cannot be drawn for a result, and how to get it."""

    reason: str


def _rates(threshold: float, false_accepts: float, n_impostor: float, false_rejects: float, n_genuine: float,
           confidence: float) -> dict:
    """The fields of :class:`~mfrkit.bench.metrics.Rates` from counts."""
    fmr_lo, fmr_hi = M.clopper_pearson(false_accepts, n_impostor, confidence=confidence)
    fnmr_lo, fnmr_hi = M.clopper_pearson(false_rejects, n_genuine, confidence=confidence)
    return {"threshold": float(threshold), "fmr": false_accepts / n_impostor if n_impostor else math.nan,
            "fnmr": false_rejects / n_genuine if n_genuine else math.nan, "false_accepts": float(false_accepts),
            "false_rejects": float(false_rejects), "n_genuine": float(n_genuine), "n_impostor": float(n_impostor),
            "fmr_ci_low": float(fmr_lo), "fmr_ci_high": float(fmr_hi), "fnmr_ci_low": float(fnmr_lo),
            "fnmr_ci_high": float(fnmr_hi)}  # fmt: skip


def display_edges(lo: float, hi: float, n: int = 40) -> np.ndarray:
    """``n + 1`` edges of the figure's histogram bars over ``[lo, hi]``."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n + 1)


class PairListScores:
    """A pair-list result's ``scores.csv`` (FtA rows left out under ``--fta exclude``)."""

    exact_curve = True

    def __init__(self, result: RunResult | dict, folder: Path, df: pd.DataFrame, images: ImageSource) -> None:
        result = RunResult.of(result)
        if result.settings.fta_policy == "exclude" and "fta" in df:
            df = df[~df["fta"].astype(str).str.lower().isin(["true", "1"])]
        self.result, self.folder, self.df, self.images = result, folder, df, images
        self.labels = df["label"].astype(int).to_numpy().astype(bool)
        self.scores = df["score"].to_numpy(float)
        self.n_minus_inf = int(np.isneginf(self.scores).sum())
        self._errors: Errors | Missing | None = None

    @classmethod
    def read(cls, result: RunResult | dict, folder: Path, images: ImageSource) -> "PairListScores | None":
        df = read_table(folder, "scores.csv")
        return None if df is None else cls(result, folder, df, images)

    def roc(self) -> tuple[np.ndarray, np.ndarray] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            fpr, tpr, _ = M.roc_curve(self.labels, self.scores, drop_intermediate=False)
        return None if np.isnan(fpr).any() or np.isnan(tpr).any() else (fpr, tpr)

    def score_range(self) -> tuple[float, float] | None:
        s = self.scores[np.isfinite(self.scores)]
        return (float(s.min()), float(s.max())) if len(s) else None

    def histogram(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) counts of the finite scores in the bars ``edges``."""
        fin = np.isfinite(self.scores)
        gen = np.histogram(self.scores[fin & self.labels], edges)[0]
        imp = np.histogram(self.scores[fin & ~self.labels], edges)[0]
        return gen, imp

    def errors(self) -> Errors | Missing:
        """The mfrkit rule's FAR = 1e-3 threshold on these comparisons and the errors there."""
        if self._errors is None:
            y, s = self.labels, self.scores
            if not len(y) or y.all() or not y.any():
                self._errors = Missing(no_threshold_reason(int(y.sum()), int((~y).sum())))
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", M.UndefinedMetricWarning)
                    t = float(M.tar_at_far(y, s, [GALLERY_FAR]).threshold[0])
                if not math.isfinite(t):
                    self._errors = Missing(no_threshold_reason(int(y.sum()), int((~y).sum())))
                else:
                    self._errors = Errors(t, int((y & (s < t)).sum()), int(y.sum()), int((~y & (s >= t)).sum()),
                                          int((~y).sum()))
        return self._errors

    def hardest(self, n: int) -> tuple[list[Comparison], list[Comparison] | Missing]:
        """The ``n`` lowest-scoring genuine and ``n`` highest-scoring impostor comparisons."""
        ref_ids, probe_ids = identities(self.images, self.result, "reference"), identities(self.images, self.result, "probe")
        df = self.df.assign(left_identity=self.df["left_id"].astype(str).map(ref_ids),
                            right_identity=self.df["right_id"].astype(str).map(probe_ids))
        e = self.errors()
        return hardest_pairs(df, e.threshold if isinstance(e, Errors) else math.inf, n)

    def rates_at(self, threshold: float, source: dict) -> dict | None:
        """FNMR and FMR of these comparisons at ``threshold``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            return M.rates_at_threshold(self.labels, self.scores, float(threshold)).as_dict()


# --- all-pairs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinnedHistogram:
    """``histogram.csv`` of an all-pairs result: exact counts per non-empty bin.

    Attributes
    ----------
    lower : (B,) float64, the smallest score of each non-empty finite bin, increasing
        (a bin holds the float32 scores in ``[lower, next bin's lower)``).
    genuine, impostor : (B,) int64, the comparisons in each bin.
    minus_inf_genuine, minus_inf_impostor : int, comparisons scored -inf (failures to acquire).
    """

    lower: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray
    minus_inf_genuine: int
    minus_inf_impostor: int

    @classmethod
    def read(cls, path: Path) -> "BinnedHistogram":
        import pyarrow as pa
        import pyarrow.csv as pc

        types = {"bin": pa.int64(), "lower": pa.float64(), "impostor": pa.int64(), "genuine": pa.int64()}
        try:
            t = pc.read_csv(path, convert_options=pc.ConvertOptions(include_columns=list(types), column_types=types))
        except (ValueError, KeyError, OSError) as exc:  # ArrowInvalid / ArrowKeyError: one line naming the file
            raise result_table_error(path, exc) from None
        b = t.column("bin").to_numpy()
        lower, gen, imp = (t.column(c).to_numpy() for c in ("lower", "genuine", "impostor"))
        order = np.argsort(b, kind="stable")
        b, lower, gen, imp = b[order], lower[order], gen[order], imp[order]
        inf = np.isneginf(lower)
        return cls(lower[~inf], gen[~inf], imp[~inf], int(gen[inf].sum()), int(imp[inf].sum()))

    @property
    def n_genuine(self) -> int:
        return int(self.genuine.sum()) + self.minus_inf_genuine

    @property
    def n_impostor(self) -> int:
        return int(self.impostor.sum()) + self.minus_inf_impostor

    def roc(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact ROC points (FAR, TAR increasing) at the lower edge of every non-empty bin
        (accept iff score >= edge), from (0, 0) to the finite scores' end, as
        :meth:`~mfrkit.bench.score.binned_scores.BinnedScores.roc_points` draws them."""
        n_gen, n_imp = self.n_genuine, self.n_impostor
        if not n_gen or not n_imp:
            return None
        fa = np.cumsum(self.impostor[::-1])
        ta = np.cumsum(self.genuine[::-1])
        return np.r_[0.0, fa / n_imp], np.r_[0.0, ta / n_gen]

    def score_range(self) -> tuple[float, float] | None:
        return (float(self.lower[0]), float(self.lower[-1])) if len(self.lower) else None

    def histogram(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) counts in the bars ``edges``: each fine bin goes to the bar
        holding its lower edge (a fine bin is 1.5e-5 wide)."""
        k = np.clip(np.searchsorted(edges, self.lower, side="right") - 1, 0, len(edges) - 2)
        return (np.bincount(k, self.genuine, minlength=len(edges) - 1).astype(np.int64),
                np.bincount(k, self.impostor, minlength=len(edges) - 1).astype(np.int64))

    def impostor_cut(self, n: int) -> float:
        """A score such that at least ``n`` finite impostor scores are >= it (the lower
        edge of the bin where the count from the top reaches ``n``); -inf when fewer
        than ``n`` are finite."""
        above = np.cumsum(self.impostor[::-1])
        k = int(np.searchsorted(above, n, side="left"))
        return -math.inf if k >= len(above) else float(self.lower[::-1][k])


@dataclass
class GenuineScan:
    """What one pass over ``genuine.csv`` found: the lowest finite scores with their ids
    (sorted by score, then ids), and per asked threshold the number of scores below it."""

    lowest: pd.DataFrame
    below: dict[float, int]
    n: int
    n_minus_inf: int


def scan_genuine(path: Path, n: int, thresholds=(), block_size: int = 1 << 20) -> GenuineScan:
    """The ``n`` lowest finite genuine scores of ``genuine.csv`` and the count below each
    of ``thresholds``, reading the file in blocks (memory: one block and ``n`` rows).

    A row is kept in a block's candidates when its score is at most the block's ``n``-th
    lowest (ties included), so the final order by (score, left_id, right_id) is exact.
    """
    import pyarrow as pa
    import pyarrow.csv as pc

    types = {"left_id": pa.string(), "right_id": pa.string(), "score": pa.float64()}
    reader = pc.open_csv(path, read_options=pc.ReadOptions(block_size=block_size),
                         convert_options=pc.ConvertOptions(include_columns=list(types), column_types=types,
                                                           strings_can_be_null=False, null_values=[]))
    thresholds = [float(t) for t in thresholds]
    below = dict.fromkeys(thresholds, 0)
    keep: list[pd.DataFrame] = []
    total = minus_inf = 0
    for batch in reader:
        s = batch.column("score").to_numpy(zero_copy_only=False)
        total += len(s)
        minus_inf += int(np.isneginf(s).sum())
        for t in below:  # distinct thresholds (the gallery's and the transfer's may be one)
            below[t] += int((s < t).sum())
        fin = np.flatnonzero(np.isfinite(s))
        if not len(fin) or not n:
            continue
        cut = np.partition(s[fin], min(n, len(fin)) - 1)[min(n, len(fin)) - 1]
        rows = fin[s[fin] <= cut]
        keep.append(pd.DataFrame({"left_id": batch.column("left_id").take(rows).to_pylist(),
                                  "right_id": batch.column("right_id").take(rows).to_pylist(), "score": s[rows]}))
        if sum(len(k) for k in keep) > 64 * max(n, 1):
            keep = [_lowest(pd.concat(keep, ignore_index=True), n)]
    lowest = _lowest(pd.concat(keep, ignore_index=True), n) if keep else pd.DataFrame(columns=["left_id", "right_id", "score"])
    return GenuineScan(lowest.reset_index(drop=True), below, total, minus_inf)


def _lowest(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of the ``n`` lowest scores, ties kept (a later block may hold a lower id)."""
    if len(df) <= n:
        return df.sort_values(["score", "left_id", "right_id"], kind="stable")
    cut = np.partition(df["score"].to_numpy(), n - 1)[n - 1]
    return df[df["score"] <= cut].sort_values(["score", "left_id", "right_id"], kind="stable")


class AllPairsScores:
    """An all-pairs result (see the module docstring).

    Parameters
    ----------
    result : the result (or its ``metrics.json`` dict).
    folder : its folder (``histogram.csv``, ``genuine.csv``, ``images.csv``; the model's
        ``embeddings.parquet`` one level up when the run saved it).
    impostor_pass_limit : the most comparisons the report scores again to find the
        highest-scoring impostor pairs (None: :data:`~mfrkit.bench.report.impostors.DEFAULT_LIMIT`
        for the device).
    """

    exact_curve = False

    def __init__(self, result: RunResult | dict, folder: Path, hist: BinnedHistogram, *,
                 impostor_pass_limit: float | None = None, embeddings_cache: dict | None = None) -> None:
        self.result, self.folder, self.hist = RunResult.of(result), folder, hist
        self.impostor_pass_limit = impostor_pass_limit
        self.n_minus_inf = hist.minus_inf_genuine + hist.minus_inf_impostor
        self._embeddings_cache = {} if embeddings_cache is None else embeddings_cache
        self._genuine: GenuineScan | None = None

    @classmethod
    def read(cls, result: RunResult | dict, folder: Path, **kw) -> "AllPairsScores | None":
        path = result_table_path(folder, "histogram.csv")
        return cls(result, folder, BinnedHistogram.read(path), **kw) if path is not None else None

    def roc(self):
        return self.hist.roc()

    def score_range(self):
        return self.hist.score_range()

    def histogram(self, edges):
        return self.hist.histogram(edges)

    @property
    def metrics(self) -> dict:
        return self.result.metrics

    def _far_entry(self) -> dict | None:
        for e in self.metrics.get("tar_at_far") or []:
            if math.isclose(float(e.get("far_target", 0)), GALLERY_FAR, rel_tol=1e-9):
                return e
        return None

    def _source_threshold(self) -> float | None:
        ts = self.result.transfer_source or {}
        return float(ts["threshold"]) if finite(ts.get("threshold")) else None

    def genuine(self, n: int = 8) -> GenuineScan | Missing:
        """One pass over ``genuine.csv``: its ``n`` lowest scores and the counts below the
        gallery's and the transfer's thresholds (read once; later calls reuse it)."""
        if self._genuine is None or len(self._genuine.lowest) < min(n, self._genuine.n - self._genuine.n_minus_inf):
            path = result_table_path(self.folder, "genuine.csv")
            if path is None:
                return Missing(f"no genuine.csv in {self.folder}")
            e = self._far_entry()
            ts = [float(e["threshold"])] if e and finite(e.get("threshold")) else []
            ts += [t for t in [self._source_threshold()] if t is not None]
            try:
                self._genuine = scan_genuine(path, n, ts)
            except (ValueError, KeyError, OSError) as exc:  # pyarrow's errors on an edited file
                raise result_table_error(path, exc) from None
        return self._genuine

    def errors(self) -> Errors | Missing:
        """The run's own FAR = 1e-3 threshold (mfrkit rule, exact, from ``metrics.json``)
        and its error counts."""
        e = self._far_entry()
        if e is None:
            return Missing("the run's FAR targets (--far) do not include 1e-3, and the threshold of an all-pairs "
                           "protocol is only known exactly at the targets it was scored for")
        n_gen, n_imp = int(e["n_genuine"]), int(e["n_impostor"])
        if not n_gen or not n_imp or not finite(e.get("threshold")):
            return Missing(no_threshold_reason(n_gen, n_imp))
        return Errors(float(e["threshold"]), round(n_gen - e["true_accepts"]), n_gen, round(e["false_accepts"]), n_imp)

    def _image_identities(self) -> dict[str, dict[str, str]]:
        images = read_table(self.folder, "images.csv")
        if images is None:
            return {"reference": {}, "probe": {}}
        return {role: dict(zip(g["image_id"].astype(str), g["identity"].astype(str))) for role, g in images.groupby("role")}

    def hardest(self, n: int) -> tuple[list[Comparison], list[Comparison] | Missing]:
        """The ``n`` lowest-scoring genuine comparisons (``genuine.csv``) and the ``n``
        highest-scoring impostor ones (a pass over the saved embeddings, or why not)."""
        from .impostors import find_hardest_impostors

        e = self.errors()
        t = e.threshold if isinstance(e, Errors) else math.inf
        ids = self._image_identities()
        gen = self.genuine(n)
        genuine = [] if isinstance(gen, Missing) else [
            Comparison(r.left_id, r.right_id, float(r.score), bool(r.score < t), ids.get("reference", {}).get(r.left_id, ""),
                       ids.get("probe", {}).get(r.right_id, ""))
            for r in gen.lowest.head(n).itertuples(index=False)
        ]  # fmt: skip
        found = find_hardest_impostors(self.result, self.folder, self.hist.impostor_cut(n), n,
                                       limit=self.impostor_pass_limit, cache=self._embeddings_cache)
        if isinstance(found, str):
            return genuine, Missing(found)
        impostor = [Comparison(r.left_id, r.right_id, float(r.score), bool(r.score >= t), str(r.left_identity),
                               str(r.right_identity)) for r in found.itertuples(index=False)]
        return genuine, impostor

    def rates_at(self, threshold: float, source: dict) -> dict | None:
        """FNMR and FMR at the transfer source's own threshold: the false rejects counted
        in ``genuine.csv``, the false accepts from the exact achieved FAR ``source['far']``
        (an all-pairs protocol knows its impostor counts exactly only at the thresholds
        it was scored for)."""
        if not finite(source.get("far")) or float(source.get("threshold", math.nan)) != float(threshold):
            return None
        gen = self.genuine()
        if isinstance(gen, Missing) or float(threshold) not in gen.below:
            return None
        n_imp = self.hist.n_impostor
        fa = float(round(float(source["far"]) * n_imp))
        conf = float(self.result.settings.confidence or 0.95)
        return _rates(threshold, fa, n_imp, gen.below[float(threshold)], gen.n, conf)
