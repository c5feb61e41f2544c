"""An IJB-B / IJB-C template protocol scored as insightface scores it, in flat memory.

The protocol (kind ``ijb-templates``, :mod:`mfrkit.protocols.ijb`) lists faces (a loose
crop each, with the release's 5 points and detector score), templates made of medias
made of faces, 1:1 template pairs (IJB-C: 15,658,489) and 1:N galleries S1 / S2 with
probe templates. Given the faces' **raw** embeddings (unnormalised, the flip test's sum
when it is on), this module

1. pools face features into template features per side (:class:`IjbPooling`, then
   :func:`mfrkit.protocols.ijb_templates.face_features` and ``pool_templates``: media
   average, template sum, L2 normalisation; insightface's defaults: flip test, the
   embedding norm kept as a weight, detector-score weighting);
2. scores every template pair of ``template_pairs.parquet``, a row group (2^20 pairs) at
   a time, into :class:`~mfrkit.bench.score.binned_scores.BinnedScores`: genuine scores kept,
   impostor scores counted per bin, and the exact scores of the bins around the
   operating points collected by further passes over the pairs (scoring a pair again
   costs a dot product), so TAR@FAR at 1e-6 ... 1e-1 by **both rule sets** (mfrkit's
   budget rule and insightface's nearest ROC point), the EER and the rates at a given
   threshold are exactly those of the full score list, whatever its length; memory is
   the template features, one row group and the histogram (:func:`score_template_pairs`);
3. searches the probe templates against the galleries (:func:`search_galleries`): by
   mfrkit's open-set rule per gallery S1 and S2 (a probe whose subject is enrolled in
   that gallery is mated; TPIR@FPIR, rank-k, CMC; ISO/IEC 19795-1 as the IJB-C paper
   reports them) and by insightface's ``ijb_1n.py`` (S1 and S2 as one gallery; top-1/5/10,
   TPIR at FPIR 0.01 and 0.1 with its ``ceil(n x FPIR)``-th highest non-mate score as
   the threshold).

Pair scores are float64 dot products of float64 template features (as insightface's),
rounded to float32 for the binning (the all-pairs scoring's bins): they agree with
insightface's float64 scores to float32 rounding (6e-8), as its float32 face features
allow. A pair with a template that has no usable face (every face failed to acquire)
scores -inf: with the ``reject`` FtA policy it is a rejection, with ``exclude`` it is
left out and counted (``n_fta_excluded``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...protocols.ijb_templates import INSIGHTFACE_FPIR, INSIGHTFACE_RANKS, SearchReducer, TemplateFeatures, face_features, pair_scores, pool_templates
from .. import metrics as M
from .binned_scores import BinnedScores, resolve_all
from .bins import MissingBins, ScoreBins

#: The pooling switches, in insightface's names: ``use_flip_test``, ``use_norm_score``,
#: ``use_detector_score`` (all on in its IJB scripts).
POOLING_SWITCHES = ("flip", "norm", "detector")
#: Passes over the template pairs after the first before giving up (each collects the
#: bins every number still needs; two are the rule).
MAX_EXTRA_PASSES = 8


class IjbScoringError(M.MetricInputError):
    """An IJB protocol cannot be scored as asked (bad pooling switches, no comparisons)."""


@dataclass(frozen=True)
class IjbPooling:
    """How face embeddings become template features (insightface's three switches).

    Attributes
    ----------
    flip : embed each crop and its mirror image and sum the raw embeddings (``use_flip_test``).
    norm : keep each face's embedding norm as its weight in the template (``use_norm_score``;
        off: every face is normalised first).
    detector : multiply each face's feature by its detector score (``use_detector_score``).
    """

    flip: bool = True
    norm: bool = True
    detector: bool = True

    @classmethod
    def parse(cls, text: str | None) -> "IjbPooling":
        """``"flip,norm,detector"`` (insightface's defaults), any subset, or ``"none"``."""
        if text is None:
            return cls()
        words = [w.strip().lower() for w in str(text).split(",") if w.strip()]
        if words == ["none"]:
            return cls(False, False, False)
        bad = [w for w in words if w not in POOLING_SWITCHES]
        if bad or not words:
            raise IjbScoringError(f"unknown IJB pooling switch {bad[0] if bad else text!r}; give a comma-separated "
                                  f"subset of {', '.join(POOLING_SWITCHES)} or none")
        return cls(*(w in words for w in POOLING_SWITCHES))

    def text(self) -> str:
        on = [w for w, v in zip(POOLING_SWITCHES, (self.flip, self.norm, self.detector)) if v]
        return ",".join(on) or "none"

    def as_dict(self) -> dict:
        return {"flip_test": self.flip, "norm_score": self.norm, "detector_score": self.detector}


def side_features(raw: np.ndarray, ok: np.ndarray, faces, templates: np.ndarray, pooling: IjbPooling) -> TemplateFeatures:
    """Template features of ``templates`` from the faces' raw embeddings.

    Parameters
    ----------
    raw : ndarray of shape (n_faces, D): each face's raw embedding (any value where not ``ok``).
    ok : ndarray of bool, shape (n_faces,): the face was embedded.
    faces : DataFrame of the protocol's faces (``template_id``, ``media_id``, ``detector_score``), same rows.
    templates : template ids to pool.
    """
    det = faces["detector_score"].to_numpy(np.float64) if pooling.detector else None
    x = face_features(raw, det, normalise=not pooling.norm)
    return pool_templates(x, faces["template_id"].to_numpy(np.int64), faces["media_id"].to_numpy(np.int64), ok,
                          only=templates)


# --- 1:1 -----------------------------------------------------------------------------------------------


@dataclass
class PairScores:
    """The template pairs' scores, reduced: what the metrics and the report read.

    Attributes
    ----------
    binned : BinnedScores of the scored pairs (FtA pairs at -inf unless excluded).
    genuine_pairs : ndarray of int64, shape (n_genuine, 2): the genuine pairs (t1, t2), in
        the order of ``genuine_scores``.
    genuine_scores : ndarray of float32, shape (n_genuine,)
    n_fta_excluded : pairs left out (``exclude`` policy).
    passes : passes made over the pairs.
    """

    binned: BinnedScores
    genuine_pairs: np.ndarray
    genuine_scores: np.ndarray
    n_fta_excluded: int
    passes: int


def _scored_chunks(pairs: Callable, left: TemplateFeatures, right: TemplateFeatures, exclude: bool):
    """(t1, t2, label, float32 scores) per row group; FtA pairs dropped when ``exclude``."""
    for t1, t2, label in pairs():
        s = pair_scores(left, right, t1, t2).astype(np.float32)
        if exclude:
            keep = np.isfinite(s)
            yield t1[keep], t2[keep], label[keep], s[keep], int((~keep).sum())
        else:
            yield t1, t2, label, s, 0


def score_template_pairs(pairs: Callable, left: TemplateFeatures, right: TemplateFeatures, *, far_targets,
                         fta_policy: str = "reject", thresholds=(), confidence: float = 0.95,
                         bins: ScoreBins | None = None, log: Callable[[str], None] | None = None) -> tuple[PairScores, dict]:
    """Score every template pair and resolve both rule sets' numbers exactly (see the module docstring).

    Parameters
    ----------
    pairs : callable returning an iterator of (t1, t2, label) arrays (one row group each);
        called once per pass.
    left, right : the reference side's and the probe side's template features (pair
        column 1 is looked up in ``left``, column 2 in ``right``).
    far_targets : FAR targets; thresholds : thresholds whose exact error rates are wanted.
    fta_policy : ``reject`` or ``exclude``.

    Returns
    -------
    (PairScores, resolved) where ``resolved`` is :func:`~mfrkit.bench.score.binned_scores.resolve_all`'s dict.
    """
    bins = bins or ScoreBins()
    exclude = fta_policy == "exclude"
    hist = np.zeros(bins.n_bins, np.int64)
    gen_pairs, gen_scores, n_excluded = [], [], 0
    for t1, t2, label, s, dropped in _scored_chunks(pairs, left, right, exclude):
        g = label.astype(bool)
        gen_pairs.append(np.stack([t1[g], t2[g]], 1))
        gen_scores.append(s[g])
        hist += np.bincount(bins.of(s[~g]), minlength=bins.n_bins)
        n_excluded += dropped
    genuine = np.concatenate(gen_scores) if gen_scores else np.zeros(0, np.float32)
    binned = BinnedScores(bins, hist, np.zeros(bins.n_bins, bool), np.zeros(0, np.float32), genuine)
    if binned.n_genuine == 0 or binned.n_impostor == 0:
        raise IjbScoringError(f"the template pairs hold {binned.n_genuine} genuine and {binned.n_impostor} impostor "
                              "comparisons to score; TAR@FAR needs both")
    passes = 1
    while True:
        resolved = resolve_all(binned, far_targets, thresholds=thresholds, confidence=confidence)
        if not isinstance(resolved, MissingBins):
            break
        if passes > MAX_EXTRA_PASSES:
            raise IjbScoringError(f"the operating points still need {len(resolved.bins)} bins after {passes} passes")
        wanted = np.array(sorted(resolved.bins), np.int64)
        if log:
            log(f"pass {passes + 1} over the template pairs: collecting the exact scores of {len(wanted)} bin(s)")
        binned.with_values(_collect(pairs, left, right, exclude, bins, wanted))
        passes += 1
    order = np.argsort(genuine, kind="stable")  # BinnedScores sorts its genuine scores; keep the pairs beside
    out = PairScores(binned, np.concatenate(gen_pairs)[order] if gen_pairs else np.zeros((0, 2), np.int64),
                     genuine[order], n_excluded, passes)
    return out, resolved


def _collect(pairs, left, right, exclude: bool, bins: ScoreBins, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """The exact impostor scores of bins ``wanted`` (sorted), one more pass over the pairs."""
    found: list[np.ndarray] = []
    for _t1, _t2, label, s, _ in _scored_chunks(pairs, left, right, exclude):
        imp = s[~label.astype(bool)]
        b = bins.of(imp)
        hit = np.isin(b, wanted)
        found.append(imp[hit])
    values = np.concatenate(found) if found else np.zeros(0, np.float32)
    vb = bins.of(values)
    order = np.argsort(vb, kind="stable")
    values, vb = values[order], vb[order]
    starts = np.searchsorted(vb, wanted, side="left")
    ends = np.searchsorted(vb, wanted, side="right")
    return {int(b): values[i:j] for b, i, j in zip(wanted, starts, ends)}


def verification_block(scores: PairScores, resolved: dict, far_targets) -> dict:
    """The 1:1 metrics (the keys an all-pairs result has): counts, AUC (+- its bound),
    EER, TAR@FAR by the mfrkit rule and, under ``insightface``, by the nearest-point rule."""
    b = scores.binned
    auc, auc_err = b.auc()
    targets = np.atleast_1d(np.asarray(far_targets, np.float64))
    keep = np.isin(resolved["tar_at_far"].far_target, targets)

    def subset(t: M.TarAtFar) -> list[dict]:
        return M.TarAtFar(**{k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in t.__dict__.items()}).records()

    return {
        "n_pairs": b.n_genuine + b.n_impostor, "n_genuine": b.n_genuine, "n_impostor": b.n_impostor,
        "n_fta": int(b.hist[0] + np.isneginf(b.genuine).sum()), "n_fta_excluded": scores.n_fta_excluded,
        "auc": auc, "auc_max_error": auc_err, "eer": resolved["eer"].as_dict(),
        "tar_at_far": subset(resolved["tar_at_far"]),
        "insightface": {"tar_at_far": subset(resolved["nearest"])},
    }  # fmt: skip


# --- 1:N -----------------------------------------------------------------------------------------------


def search_galleries(gallery: TemplateFeatures, gallery_subjects: np.ndarray, gallery_sets: np.ndarray,
                     probes: TemplateFeatures, probe_subjects: np.ndarray, *, fpir_targets, max_rank: int = 20,
                     confidence: float = 0.95) -> dict:
    """1:N figures of the probe templates against the galleries, by both rule sets.

    Parameters
    ----------
    gallery : template features of every gallery template (S1 and S2).
    gallery_subjects, gallery_sets : subject id and gallery name (``S1``/``S2``) of each.
    probes, probe_subjects : the probe templates' features and subjects.
    fpir_targets : mfrkit's FPIR targets (insightface's are 0.01 and 0.1).

    Returns
    -------
    dict: ``galleries`` -> name -> {n_probes, n_mated, n_nonmated, n_fta, rank1, rank5,
    rank10, cmc, tpir_at_fpir (records)}; ``insightface`` -> {n_probes, unmated, top1,
    top5, top10, tpir_at_fpir: [{fpir_target, required_top, threshold, tpir}]}.
    """
    reducer = SearchReducer(gallery, gallery_subjects, gallery_sets, n_probes=len(probes.ids))
    reducer.add(probes, probe_subjects)
    out: dict = {"galleries": {}}
    for name, g in reducer.per_gallery.items():
        ranks = np.asarray(g.mated_ranks, np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            curve = M.cmc(ranks, max_rank) if len(ranks) else np.full(max_rank, np.nan)
            tpir = M.tpir_at_fpir(g.mated_scores, ranks, g.nonmated_scores, fpir_targets, confidence=confidence)
        out["galleries"][name] = {
            "n_probes": len(ranks) + len(g.nonmated_scores), "n_mated": len(ranks), "n_nonmated": len(g.nonmated_scores),
            "n_fta": int(np.isneginf(g.mated_scores).sum() + np.isneginf(g.nonmated_scores).sum()),
            **{f"rank{k}": float(curve[k - 1]) if k <= max_rank else math.nan for k in INSIGHTFACE_RANKS},
            "rank1_ci": [float(v) for v in M.clopper_pearson(int((ranks <= 1).sum()), len(ranks), confidence=confidence)]
            if len(ranks) else [math.nan, math.nan],
            "cmc": curve.tolist(), "tpir_at_fpir": tpir.records(),
        }  # fmt: skip
    tops = reducer.insightface_ranks()
    out["insightface"] = {"n_probes": reducer.seen, "unmated": reducer.unmated_insightface,
                          **{f"top{k}": v for k, v in tops.items()},
                          "tpir_at_fpir": reducer.insightface_tpir(), "fpir_targets": list(INSIGHTFACE_FPIR)}
    return out
