"""IJB templates: face embeddings pooled into template features, and template comparisons.

Pure numpy functions, step for step what insightface's IJB evaluation does
(``recognition/_evaluation_/ijb/ijb_11.py``, ``ijb_1n.py``, ``ijb_onnx.py``, arcface_torch
``eval_ijbc.py``), so that mfrkit's figures on an IJB release are theirs:

1. **Face features** (:func:`face_features`): the model's raw embedding of the aligned
   112x112 crop, plus the embedding of its mirror image when the flip test is on
   (insightface's ``F2``: ``feat[:, :D] + feat[:, D:]``); **not** normalised by default
   (``use_norm_score=True``: the norm weights a face in its template), optionally
   normalised; multiplied by the detector score when ``detector_score`` is on
   (``use_detector_score=True``). insightface's defaults: flip, norm, detector all on.
2. **Template features** (:func:`pool_templates`): the templates in ``np.unique`` order
   (ascending ids); within a template, the faces of one media (a video's frames, or
   one photo) are averaged, the media averages are **summed**, and the sum is
   L2-normalised (``sklearn.preprocessing.normalize``). A face that could not be
   embedded (a failure to acquire) is left out of its template; a template left with no
   face (or a zero sum) is a failure to enrol: not ``usable``.
3. **Scores** (:func:`pair_scores`): the dot product of the two normalised template
   features, in float64, batch by batch (insightface: 100,000 pairs a batch); a pair
   with a template that is not usable scores ``-inf`` (never accepted, see
   :mod:`mfrkit.bench.metrics`; insightface has no such case).
4. **1:N** (:class:`SearchReducer`): every probe template against the gallery
   templates, block by block, reduced at once to what both rule sets need (see its
   docstring), so neither the probe x gallery matrix nor the impostor scores are held.

Where insightface computes a mean or a sum in float32 (its face features are
float32), these functions use float64: the template features agree to float32
rounding (about 1e-7), not bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ProtocolError

#: Pairs scored at a time (insightface's batch size).
PAIR_BATCH = 100_000
#: Probe templates searched at a time.
PROBE_BLOCK = 2048
#: FPIR targets of insightface's 1:N evaluation.
INSIGHTFACE_FPIR = (0.01, 0.1)
#: Ranks insightface reports (top1, top5, top10).
INSIGHTFACE_RANKS = (1, 5, 10)


def face_features(embeddings: np.ndarray, detector_scores: np.ndarray | None = None, *,
                  normalise: bool = False) -> np.ndarray:
    """Per-face features that go into the templates (step 1 of the module docstring).

    Parameters
    ----------
    embeddings : ndarray of shape (n, D)
        Raw (unnormalised) embeddings; with the flip test, embedding + flipped embedding.
        Rows of failed faces may hold anything (they are left out by :func:`pool_templates`).
    detector_scores : ndarray of shape (n,), optional
        Detector scores of the faces (the last value of ``*_name_5pts_score.txt``);
        None: no weighting.
    normalise : bool
        Divide each row by its L2 norm first (insightface ``use_norm_score=False``).

    Returns
    -------
    ndarray of float64, shape (n, D)
    """
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2:
        raise ProtocolError(f"embeddings must be (n, D), got shape {x.shape}")
    if normalise:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    if detector_scores is not None:
        s = np.asarray(detector_scores, np.float64)
        if s.shape != (len(x),):
            raise ProtocolError(f"detector_scores must have shape ({len(x)},), got {s.shape}")
        x = x * s[:, None]
    return x


@dataclass(frozen=True)
class TemplateFeatures:
    """Normalised template features.

    Attributes
    ----------
    ids : ndarray of int64, shape (k,), ascending (``np.unique`` of the faces' templates)
    vectors : ndarray of float64, shape (k, D), unit rows; zero rows where not usable
    usable : ndarray of bool, shape (k,): at least one face, and a non-zero sum
    faces, medias : ndarray of int64, shape (k,): faces and medias pooled
    """

    ids: np.ndarray
    vectors: np.ndarray
    usable: np.ndarray
    faces: np.ndarray
    medias: np.ndarray

    def rows(self, template_ids: np.ndarray) -> np.ndarray:
        """Row of each template id (ProtocolError naming an id that is not here)."""
        t = np.asarray(template_ids, np.int64)
        if len(self.ids) == 0:
            if len(t):
                raise ProtocolError(f"template {int(t[0])} has no face in the face list")
            return np.zeros(0, np.int64)
        i = np.minimum(np.searchsorted(self.ids, t), len(self.ids) - 1)
        bad = self.ids[i] != t
        if bad.any():
            raise ProtocolError(f"template {int(t[np.flatnonzero(bad)[0]])} has no face in the face list")
        return i


def pool_templates(features: np.ndarray, templates: np.ndarray, medias: np.ndarray,
                   usable: np.ndarray | None = None, *, only: np.ndarray | None = None) -> TemplateFeatures:
    """Template features from face features (step 2 of the module docstring).

    Parameters
    ----------
    features : ndarray of shape (n, D), from :func:`face_features`
    templates, medias : ndarray of int, shape (n,), each face's template and media id
    usable : ndarray of bool, shape (n,), optional
        False for a face that could not be embedded (left out); default all True.
    only : ndarray of int, optional
        Pool only these templates (default every template of ``templates``).

    Returns
    -------
    TemplateFeatures over ``np.unique(templates)`` (or ``np.unique(only)``); a template
    without a usable face is in it, not usable.
    """
    x = np.asarray(features, np.float64)
    t = np.asarray(templates, np.int64)
    m = np.asarray(medias, np.int64)
    if x.ndim != 2 or t.shape != (len(x),) or m.shape != (len(x),):
        raise ProtocolError(f"features (n, D), templates (n,) and medias (n,) expected, got {x.shape}, {t.shape}, {m.shape}")
    ok = np.ones(len(x), bool) if usable is None else np.asarray(usable, bool)
    ids = np.unique(t) if only is None else np.unique(np.asarray(only, np.int64))
    keep = ok & np.isin(t, ids) & np.isfinite(x).all(1)
    sel = np.flatnonzero(keep)
    order = sel[np.lexsort((m[sel], t[sel]))]
    ts, ms = t[order], m[order]
    sums = np.zeros((len(ids), x.shape[1]))
    faces = np.zeros(len(ids), np.int64)
    n_medias = np.zeros(len(ids), np.int64)
    if len(order):
        new_media = np.r_[True, (ts[1:] != ts[:-1]) | (ms[1:] != ms[:-1])]
        starts = np.flatnonzero(new_media)
        counts = np.diff(np.r_[starts, len(order)])
        media_mean = np.add.reduceat(x[order], starts, axis=0) / counts[:, None]
        media_template = ts[starts]
        new_template = np.r_[True, media_template[1:] != media_template[:-1]]
        t_starts = np.flatnonzero(new_template)
        rows = np.searchsorted(ids, media_template[t_starts])
        sums[rows] = np.add.reduceat(media_mean, t_starts, axis=0)
        n_medias[rows] = np.diff(np.r_[t_starts, len(starts)])
        faces[rows] = np.add.reduceat(counts, t_starts)
    norm = np.linalg.norm(sums, axis=1)
    good = norm > 0
    vectors = np.zeros_like(sums)
    vectors[good] = sums[good] / norm[good, None]
    return TemplateFeatures(ids=ids, vectors=vectors, usable=good, faces=faces, medias=n_medias)


def pair_scores(left: TemplateFeatures, right: TemplateFeatures, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Scores of template pairs ``(t1[i], t2[i])`` (step 3 of the module docstring).

    ``t1`` templates are looked up in ``left`` (the reference side), ``t2`` in ``right``
    (the probe side; the same object when both sides read the same images).

    Returns
    -------
    ndarray of float64, shape (m,): cosine scores, -inf where a template is not usable.
    """
    a, b = left.rows(t1), right.rows(t2)
    out = np.empty(len(a))
    for s in range(0, len(a), PAIR_BATCH):
        ia, ib = a[s:s + PAIR_BATCH], b[s:s + PAIR_BATCH]
        out[s:s + PAIR_BATCH] = np.einsum("ij,ij->i", left.vectors[ia], right.vectors[ib])
    out[~(left.usable[a] & right.usable[b])] = -np.inf
    return out


@dataclass
class GallerySearch:
    """What mfrkit's open-set rule needs of one gallery (S1 or S2), per probe template.

    Attributes
    ----------
    mated_scores : list of float: score of each mated probe against its mate (-inf: FtA)
    mated_ranks : list of float: rank of the mate, ties counted as misses (+inf: FtA)
    nonmated_scores : list of float: best gallery score of each non-mated probe (-inf: FtA)
    """

    mated_scores: list = field(default_factory=list)
    mated_ranks: list = field(default_factory=list)
    nonmated_scores: list = field(default_factory=list)


class SearchReducer:
    """Probe templates searched against the gallery templates of both galleries, a block
    of probes at a time, reduced to both rule sets' inputs.

    * **mfrkit** (ISO/IEC 19795-1 open set, per gallery S1 and S2, as the IJB papers
      report): a probe whose subject is enrolled in that gallery is mated, the others
      non-mated; see :class:`GallerySearch` and :func:`mfrkit.bench.metrics.tpir_at_fpir`.
    * **insightface** (``ijb_1n.py``): one gallery of S1 and S2 together, in which every
      probe's subject must be enrolled exactly once; the mate's score and rank (1 + the
      gallery templates scoring strictly above it) per probe, and the
      ``ceil(n_probes x max FPIR)`` highest non-mate scores of all probes, from which
      :meth:`insightface_tpir` takes its thresholds.

    Parameters
    ----------
    gallery : TemplateFeatures
        The gallery templates of both galleries (usable or not).
    gallery_subjects : ndarray of int64, shape (len(gallery.ids),)
    gallery_sets : ndarray of str, shape (len(gallery.ids),): ``S1`` / ``S2`` (G1 / G2 ...) of each
    n_probes : int, probe templates that will be given in total (sizes the top-K)
    fpir_targets : insightface's FPIR targets (default 0.01, 0.1)
    """

    def __init__(self, gallery: TemplateFeatures, gallery_subjects: np.ndarray, gallery_sets: np.ndarray, *,
                 n_probes: int, fpir_targets=INSIGHTFACE_FPIR) -> None:
        self.gallery = gallery
        self.subjects = np.asarray(gallery_subjects, np.int64)
        self.sets = np.asarray(gallery_sets).astype(str)
        self.names = sorted(set(self.sets.tolist()))
        self.per_gallery = {g: GallerySearch() for g in self.names}
        self.n_probes = int(n_probes)
        self.fpir = tuple(float(f) for f in fpir_targets)
        self.k = max(1, max(math.ceil(self.n_probes * f) for f in self.fpir)) if self.fpir else 1
        uniq, counts = np.unique(self.subjects, return_counts=True)
        self.once = dict(zip(uniq[counts == 1].tolist(), np.flatnonzero(np.isin(self.subjects, uniq[counts == 1]))))
        order = np.argsort(self.subjects, kind="stable")
        self._by_subject = (self.subjects[order], order)
        self.pos: list[np.ndarray] = []
        self.rank_strict: list[np.ndarray] = []
        self.top_negatives = np.empty(0)
        self.unmated_insightface = 0
        self.seen = 0

    def _mate_columns(self, subjects: np.ndarray) -> np.ndarray:
        """Column of each subject's single template in the combined gallery; -1 if none or several."""
        return np.array([self.once.get(int(s), -1) for s in subjects], np.int64)

    def add(self, probes: TemplateFeatures, subjects: np.ndarray) -> None:
        """Search a block of probe templates (rows of ``probes``, subjects ``subjects``)."""
        subjects = np.asarray(subjects, np.int64)
        g = self.gallery
        for s in range(0, len(probes.ids), PROBE_BLOCK):
            sl = slice(s, s + PROBE_BLOCK)
            sims = probes.vectors[sl] @ g.vectors.T
            sims[:, ~g.usable] = -np.inf
            sims[~probes.usable[sl]] = -np.inf
            self._insightface_block(sims, subjects[sl])
            for name in self.names:
                self._gallery_block(name, sims, subjects[sl])
            self.seen += sims.shape[0]

    def _insightface_block(self, sims: np.ndarray, subjects: np.ndarray) -> None:
        cols = self._mate_columns(subjects)
        self.unmated_insightface += int((cols < 0).sum())
        rows = np.arange(len(cols))
        has = cols >= 0
        pos = np.full(len(cols), -np.inf)
        pos[has] = sims[rows[has], cols[has]]
        self.pos.append(pos)
        self.rank_strict.append(1 + (sims > pos[:, None]).sum(1))
        neg = sims.copy()
        neg[rows[has], cols[has]] = np.nan
        neg = neg[~np.isnan(neg)]
        both = np.concatenate([self.top_negatives, neg])
        if len(both) > self.k:
            both = np.partition(both, len(both) - self.k)[len(both) - self.k:]
        self.top_negatives = both

    def _gallery_block(self, name: str, sims: np.ndarray, subjects: np.ndarray) -> None:
        cols = np.flatnonzero(self.sets == name)
        sub = sims[:, cols]
        gs = self.subjects[cols]
        out = self.per_gallery[name]
        for i, subject in enumerate(subjects):
            mate = np.flatnonzero(gs == subject)
            row = sub[i]
            if len(mate):
                score = float(row[mate].max())
                others = np.delete(row, mate)
                rank = math.inf if score == -math.inf else 1.0 + float((others >= score).sum())
                out.mated_scores.append(score)
                out.mated_ranks.append(rank)
            else:
                out.nonmated_scores.append(float(row.max()) if len(row) else -math.inf)

    # --- the insightface figures --------------------------------------------------------------------

    def insightface_ranks(self, ranks=INSIGHTFACE_RANKS) -> dict[int, float]:
        """Top-k accuracy over all probes (a probe without a mate counts as a miss)."""
        r = np.concatenate(self.rank_strict) if self.rank_strict else np.empty(0)
        pos = np.concatenate(self.pos) if self.pos else np.empty(0)
        hit = np.isfinite(pos)
        return {int(k): float(((r <= k) & hit).mean()) if len(r) else math.nan for k in ranks}

    def insightface_tpir(self) -> list[dict]:
        """insightface's TPIR at each FPIR: the threshold is the ``ceil(n_probes x FPIR)``-th
        highest non-mate score of all probes; TPIR = probes whose mate scores strictly above it."""
        pos = np.concatenate(self.pos) if self.pos else np.empty(0)
        top = np.sort(self.top_negatives)[::-1]
        out = []
        for f in self.fpir:
            k = max(1, math.ceil(len(pos) * f))
            th = float(top[k - 1]) if len(top) >= k else -math.inf
            out.append({"fpir_target": f, "required_top": k, "threshold": th,
                        "tpir": float((pos > th).sum() / len(pos)) if len(pos) else math.nan})
        return out
