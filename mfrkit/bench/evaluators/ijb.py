"""One model (or heterogeneous pair) on an IJB template protocol: faces -> embeddings ->
templates -> 1:1 and 1:N metrics by both rule sets.

The faces are aligned with the release's own 5 points (``faces.parquet``; no landmark
detection), embedded raw (the flip test's sum when on: see
:class:`~mfrkit.bench.score.ijb_templates.IjbPooling`) through the bench's embedding pipeline
and cache, and scored by :mod:`mfrkit.bench.score.ijb_templates`.

**Sides.** Reference-side templates (pair column 1, gallery templates) pool the faces
of the protocol's reference manifest (the loose crops), probe-side templates (pair
column 2, 1:N probes) those of its probe manifest. When the probe manifest is another
one (a **masked IJB-C**: ``mfrkit synth`` over the loose-crop manifest, given as
``--manifest probe=...``), each probe-side face is the image of that manifest whose
``source_id`` is the face's id, aligned with the same 5 points (synth keeps the crop's
geometry); a face without such an image is a failure to acquire (``no_masked_copy``),
never silently the unmasked crop, and a face with several is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ...data.manifest import STATUS_OK
from ...landmarks.base import FaceResult, Landmarks
from ...protocols.ijb_masked import masked_copies
from ..embed.embedding_cache import preprocessing_key
from ..embed.images import ImageTable, Sides
from ..embed.pipeline import Embeddings, ImageRef, embed_images, pipeline_executor
from ..results import ProtocolInfo
from .base import Evaluator, Outcome, ProtocolRun, count_text
from .subset import SubsetError
from ..score.ijb_templates import IjbPooling, score_template_pairs, search_galleries, side_features, verification_block

#: FtA reason of a probe-side face the masked probe manifest has no copy of.
NO_MASKED_COPY = "no_masked_copy"
#: Landmark "backend" recorded in the embedding cache key: the release's own points.
RELEASE_POINTS = "ijb-release-5pts"


@dataclass
class IjbOutcome:
    """What :func:`evaluate_ijb` returns.

    Attributes
    ----------
    metrics : dict, the 1:1 metrics (keys of an all-pairs result) plus ``identification``
        (per gallery, mfrkit's open-set rule), ``insightface.identification`` and ``ijb``
        (set, pooling, templates, passes).
    genuine : DataFrame ``left_id, right_id, score, fta``: every genuine template pair.
    histogram : DataFrame of the impostor/genuine histogram (``histogram.csv``).
    templates : DataFrame ``template_id, side, faces, faces_used, usable``.
    faces : DataFrame ``image_id, side, template_id, status`` (FtA rows are the failures).
    embeddings : the Embeddings of each side (throughput, counts).
    roc : (far, tar) exact points at the bin edges, for plots.
    transfer_threshold : ``{far_target, threshold, far}`` when asked.
    rates : threshold -> Rates for the thresholds asked.
    """

    metrics: dict
    genuine: pd.DataFrame
    histogram: pd.DataFrame
    templates: pd.DataFrame
    faces: pd.DataFrame
    embeddings: list
    roc: tuple | None = None
    transfer_threshold: dict | None = None
    rates: dict = field(default_factory=dict)

    def source_threshold(self, far_target: float) -> dict | None:
        """The threshold found for the transfer FAR (asked for up front: ``transfer_far``)."""
        return self.transfer_threshold

    def transfer(self, source: str, threshold: float, far_target: float) -> dict:
        """The rates at the source's threshold, counted in the scoring pass (the source went first)."""
        return {"from": source, "far_target": far_target, **self.rates[float(threshold)].as_dict()}


def _bbox(points: np.ndarray) -> np.ndarray:
    return np.r_[points.min(0), points.max(0)].astype(np.float32)


def _face(points: np.ndarray, score: float) -> FaceResult:
    lm = Landmarks(points5=points.astype(np.float32), points68=None, bbox=_bbox(points), score=float(score),
                   backend=RELEASE_POINTS)
    return FaceResult(status=STATUS_OK, landmarks=lm, n_faces=1)


def face_images(protocol, rows: np.ndarray, role: str) -> list[ImageRef]:
    """ImageRefs of faces ``rows`` (positions in ``protocol.ijb.faces``) from the ``role``
    manifest, each with the release's 5 points (see the module docstring)."""
    tables = protocol.ijb
    manifest = protocol.manifest(role)
    loose = protocol.manifest("reference")
    table = manifest.table
    ids = tables.faces["image_id"].to_numpy()[rows]
    if role == "reference" or manifest.fingerprint() == loose.fingerprint():
        at = pd.Series(np.arange(len(table)), index=table["image_id"].astype(str)).reindex(ids).to_numpy()
    else:  # a masked probe side: the image made from each face (protocols.ijb_masked)
        at = masked_copies(pd.Series(ids), manifest).to_numpy()
    out = []
    for k, (face_id, pos) in enumerate(zip(ids, at)):
        r = rows[k]
        face = _face(tables.points[r], tables.faces["detector_score"].iat[r])
        if pd.isna(pos):
            out.append(ImageRef(f"{role}:{face_id}", "", None, NO_MASKED_COPY if role == "probe" else "missing", face))
            continue
        row = table.iloc[int(pos)]
        sha = row["sha256"] if isinstance(row.get("sha256"), str) and row["sha256"] else None
        out.append(ImageRef(f"{role}:{face_id}", str(manifest.abspath(row["path"])), sha, str(row["status"]), face))
    return out


def _side_rows(protocol, side: str) -> np.ndarray:
    faces = protocol.ijb.faces
    return np.flatnonzero(np.isin(faces["template_id"].to_numpy(np.int64), protocol.ijb.side_templates(side)))


def _embed(model, refs: list[ImageRef], pooling: IjbPooling, embed_options: dict, progress) -> Embeddings:
    return embed_images(model, refs, tta="flip" if pooling.flip else None, landmark_backend=RELEASE_POINTS,
                        normalise=False, progress=progress, **embed_options)


def embed_sides(protocol, models: tuple, pooling: IjbPooling, *, embed_options: dict,
                progress: Callable[[int, str], object], log: Callable[[str], None]) -> dict:
    """Raw face embeddings per side: ``{side: (rows, raw (n_faces, D), ok (n_faces,), Embeddings)}``;
    one embedding pass when both sides read the same images with the same model."""
    ref_model, probe_model = models
    same = protocol.manifest("probe").fingerprint() == protocol.manifest("reference").fingerprint() and \
        probe_model is ref_model
    n = len(protocol.ijb.faces)
    sides = {}
    plan = [("reference", ref_model)] if same else [("reference", ref_model), ("probe", probe_model)]
    for side, model in plan:
        rows = np.arange(n) if same else _side_rows(protocol, side)
        refs = face_images(protocol, rows, "reference" if same else side)
        with progress(len(refs), f"embedding {len(refs):,} IJB faces ({side} side) with {model.name}") as advance:
            emb = _embed(model, refs, pooling, embed_options, advance)
        raw = np.zeros((n, emb.vectors.shape[1]), np.float32)
        ok = np.zeros(n, bool)
        raw[rows], ok[rows] = emb.vectors, emb.ok
        log(f"{model.name}: {len(refs):,} IJB faces ({side}), {emb.computed:,} embedded, {emb.cached:,} from cache, "
            f"{int((~emb.ok).sum()):,} failed to acquire")
        sides[side] = (rows, raw, ok, emb)
    if same:
        sides["probe"] = sides["reference"]
    return sides


def _tables(protocol, sides: dict, left, right, gallery, probes) -> tuple[pd.DataFrame, pd.DataFrame]:
    faces = protocol.ijb.faces
    face_rows = []
    for side in ("reference", "probe"):
        rows, _, ok, emb = sides[side]
        face_rows.append(pd.DataFrame({"image_id": faces["image_id"].to_numpy()[rows], "side": side,
                                       "template_id": faces["template_id"].to_numpy()[rows],
                                       "status": np.asarray(emb.status, dtype=object).astype(str)}))
        if sides["probe"] is sides["reference"]:
            break
    temp = []
    for side, tf in (("reference", left), ("probe", right), ("gallery", gallery), ("probe-1:N", probes)):
        temp.append(pd.DataFrame({"template_id": tf.ids, "side": side, "faces_used": tf.faces, "medias_used": tf.medias,
                                  "usable": tf.usable}))
    return pd.concat(temp, ignore_index=True), pd.concat(face_rows, ignore_index=True)


def evaluate_ijb(protocol, models: tuple, *, pooling: IjbPooling, embed_options: dict, far_targets,
                 fta_policy: str = "reject", confidence: float = 0.95, max_rank: int = 20, transfer_far: float | None = None,
                 thresholds=(), progress=None, log: Callable[[str], None] | None = None) -> IjbOutcome:
    """Score an ``ijb-templates`` protocol (see the module docstring).

    Parameters
    ----------
    protocol : Protocol of kind ``ijb-templates``.
    models : (reference model, probe model): OnnxModel, the same object twice for a plain model.
    pooling : IjbPooling (flip test, norm score, detector score).
    embed_options : :func:`~mfrkit.bench.embed.pipeline.embed_images` keywords (batch_size,
        cache_dir, executor).
    far_targets : FAR targets (1:1) and FPIR targets (1:N, mfrkit rule).
    transfer_far, thresholds : the threshold-transfer source FAR and thresholds to rate.
    """
    import contextlib

    from ...alignments import get_alignment
    from ...errors import ModelError

    log = log or (lambda msg: None)
    progress = progress or (lambda n, d: contextlib.nullcontext(lambda k=1: None))
    for model in dict.fromkeys(models):
        if not get_alignment(model.spec.align).needs_landmarks:
            raise ModelError(f"{model.name} takes already-aligned crops (mfrkit.align={model.spec.align}); IJB loose crops "
                             "are aligned with the release's 5 points: give the model's alignment (e.g. --align arcface112)")
    tables = protocol.ijb
    sides = embed_sides(protocol, models, pooling, embed_options=embed_options, progress=progress, log=log)
    t = tables.templates
    _, raw_r, ok_r, _ = sides["reference"]
    _, raw_q, ok_q, _ = sides["probe"]
    faces = tables.faces
    left = side_features(raw_r, ok_r, faces, t.loc[t["left"], "template_id"].to_numpy(np.int64), pooling)
    right = side_features(raw_q, ok_q, faces, t.loc[t["right"], "template_id"].to_numpy(np.int64), pooling)
    targets = np.unique(np.r_[np.asarray(far_targets, np.float64), [transfer_far] if transfer_far is not None else []])[::-1]
    scores, resolved = score_template_pairs(tables.iter_pairs, left, right, far_targets=targets, fta_policy=fta_policy,
                                            thresholds=list(thresholds), confidence=confidence, log=log)
    metrics = verification_block(scores, resolved, far_targets)
    gal = t[t["gallery"] != ""]
    gallery = side_features(raw_r, ok_r, faces, gal["template_id"].to_numpy(np.int64), pooling)
    prb = t[t["probe"]]
    probes = side_features(raw_q, ok_q, faces, prb["template_id"].to_numpy(np.int64), pooling)
    if len(gal) and len(prb):
        one_n = search_galleries(gallery, gal["subject_id"].to_numpy(np.int64), gal["gallery"].to_numpy(str), probes,
                                 prb["subject_id"].to_numpy(np.int64), fpir_targets=far_targets, max_rank=max_rank,
                                 confidence=confidence)
        metrics["identification"] = one_n["galleries"]
        metrics["insightface"]["identification"] = one_n["insightface"]
    metrics["skipped"] = {
        "accuracy": "an IJB protocol has no folds: k-fold accuracy is not defined",
        "bootstrap": "not computed for IJB protocols (the 1:1 scores are streamed into a histogram)",
        **({} if len(gal) and len(prb) else {"identification": "the release lists no 1:N gallery or probe templates"}),
    }
    metrics["ijb"] = {
        "set": protocol.info.get("set"), "pooling": pooling.as_dict(), "passes": scores.passes,
        "templates": {name: {"templates": len(tf.ids), "not_usable": int((~tf.usable).sum())}
                      for name, tf in (("reference", left), ("probe", right), ("gallery", gallery), ("probes", probes))},
        "scores": "float64 template dot products rounded to float32 for the exact binned resolution",
    }  # fmt: skip
    templates, face_table = _tables(protocol, sides, left, right, gallery, probes)
    genuine = pd.DataFrame({"left_id": scores.genuine_pairs[:, 0], "right_id": scores.genuine_pairs[:, 1],
                            "score": scores.genuine_scores.astype(np.float64),
                            "fta": np.isneginf(scores.genuine_scores)})
    out = IjbOutcome(metrics=metrics, genuine=genuine, histogram=scores.binned.histogram(), templates=templates,
                     roc=scores.binned.roc_points()[:2],
                     faces=face_table, embeddings=[sides["reference"][3]] + ([] if sides["probe"] is sides["reference"]
                                                                            else [sides["probe"][3]]))
    if transfer_far is not None:
        taf = resolved["tar_at_far"]
        k = int(np.flatnonzero(taf.far_target == transfer_far)[0])
        out.transfer_threshold = {"far_target": float(transfer_far), "threshold": float(taf.threshold[k]),
                                  "far": float(taf.far[k])}
    out.rates = {float(th): r for th, r in zip(thresholds, resolved["rates"])}
    return out


def write_ijb_files(out: IjbOutcome, folder, *, title: str, plots: bool) -> None:
    """The result folder's files: ``genuine.csv`` (template pairs), ``histogram.csv``
    (exact counts per score bin, as an all-pairs result's), ``templates.csv``, ``faces.csv``
    (each face's status) and, with ``plots``, ``roc.png`` / ``det.png``."""
    from ..results.files import write_csv
    from ..results.plots import plot_roc_det

    write_csv(folder / "genuine.csv", out.genuine)
    write_csv(folder / "histogram.csv", out.histogram)
    write_csv(folder / "templates.csv", out.templates)
    write_csv(folder / "faces.csv", out.faces)
    if plots and out.roc is not None:
        plot_roc_det(folder, *out.roc, title)


def fta_table(out: IjbOutcome) -> pd.DataFrame:
    """``image_id, role, reason`` of every face that could not be embedded (``fta.csv``)."""
    bad = out.faces[out.faces["status"] != STATUS_OK]
    return pd.DataFrame({"image_id": bad["image_id"].to_numpy(), "role": bad["side"].to_numpy(),
                         "reason": bad["status"].to_numpy()}, columns=["image_id", "role", "reason"])


def throughput(out: IjbOutcome) -> dict:
    """The ``throughput`` block of the result: the IJB faces' own embedding pass(es)."""
    seconds = sum(e.seconds for e in out.embeddings)
    computed = sum(e.computed for e in out.embeddings)
    return {"images_per_second": computed / seconds if seconds > 0 and computed else None, "computed": computed,
            "cached": sum(e.cached for e in out.embeddings), "seconds": seconds,
            "note": "pipeline + model over the IJB faces (flip test included when on), not found in the cache"}


def preprocessing(models: tuple, pooling: IjbPooling) -> dict:
    """The result's ``preprocessing`` of an IJB protocol: the release's 5 points, the pooling's flip test."""
    out = {side: {**m.spec.preprocessing(), "tta": "flip" if pooling.flip else None, "landmarks": RELEASE_POINTS,
                  "ijb_pooling": pooling.text()} for side, m in zip(("reference", "probe"), models)}
    out["key"] = preprocessing_key({"reference": out["reference"], "probe": out["probe"]}, tta=None,
                                   landmark_backend=None)[:12]
    return out


class IjbEvaluator(Evaluator):
    """IJB-B / IJB-C template protocols (see the module docstring): embeds its own faces
    (the run's common embed stage gets no image of it), writes ``genuine.csv``,
    ``histogram.csv``, ``templates.csv``, ``faces.csv`` and the ROC / DET plots.

    Not ``streamed`` for the report: its comparisons are of templates, not images, so the
    report's curves and hardest-pair galleries (which show images) are not drawn for it."""

    kind = "ijb-templates"

    def sides(self, protocol, images: ImageTable) -> Sides:
        return Sides()  # its faces are embedded by its own evaluation (the release's 5 points, raw)

    def fta_roles(self, sides: Sides) -> list:
        return []  # its failures come with its outcome (:func:`fta_table`)

    def describe(self, protocol) -> dict:
        counts = dict(protocol.info.get("counts") or {})
        return {"set": protocol.info.get("set"), "n_pairs": counts.get("pairs"), "counts": counts}

    def summary(self, protocol: ProtocolInfo) -> str:
        c = protocol.counts
        return (f"IJB templates: {count_text(c.get('templates'))} templates of {count_text(c.get('faces'))} faces; 1:1 "
                f"{count_text(c.get('pairs'))} template pairs ({count_text(c.get('genuine'))} genuine, "
                f"{count_text(c.get('impostor'))} impostor); 1:N galleries S1 / S2")

    def select(self, protocol, selection):
        raise SubsetError(f"{protocol.name}: --where / --limit take images or pairs of images, and an IJB protocol "
                          "compares templates (many faces each): run it whole")

    def evaluate(self, run: ProtocolRun) -> Outcome:
        cfg, models, embed = run.settings, run.models, run.embed
        if models[0] is None or embed is None:
            raise ValueError("an IJB protocol needs the run's models and embed options (ProtocolRun.models / embed)")
        pooling = IjbPooling.parse(cfg.ijb_pooling)
        executor = pipeline_executor(embed.executor, models[0].provider, len(run.protocol.ijb.faces))
        options = {"batch_size": embed.batch_size, "cache_dir": embed.cache_dir, "executor": executor}
        out = evaluate_ijb(run.protocol, models, pooling=pooling, embed_options=options, far_targets=cfg.far_targets,
                           fta_policy=cfg.fta_policy, confidence=cfg.confidence, max_rank=cfg.max_rank,
                           transfer_far=run.transfer_far,
                           thresholds=[] if run.transfer_threshold is None else [run.transfer_threshold],
                           progress=run.progress, log=run.log)
        write_ijb_files(out, run.folder, title=run.title, plots=cfg.plots)
        sections = {"throughput": throughput(out), "preprocessing": preprocessing(models, pooling)}
        return Outcome(out.metrics, {}, None, out, fta=fta_table(out), sections=sections)
