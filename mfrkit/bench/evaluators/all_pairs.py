"""One model on one all-pairs protocol: streaming scores -> exact metrics and breakdowns.

An all-pairs protocol (:mod:`mfrkit.protocols.all_pairs`) compares every reference
image with every probe image. :func:`evaluate_all_pairs` scores them with
:func:`mfrkit.bench.score.streaming.score_all_pairs` and returns the same metrics a pair list
gets (:func:`mfrkit.bench.metrics.bundle.verification_metrics`), computed without the score
list:

* **exact**, equal to the materialised rules: TAR@FAR for every target by both rule
  sets (``tar_at_far``, ``insightface.tar_at_far``), the EER, the rates at the overall
  thresholds in each breakdown group, the threshold transfer, every count;
* **from the histogram**, with the worst-case error stated in ``metrics.json``: the AUC
  (``auc`` +- ``auc_max_error``), the ROC and DET plots (exact points at the edges of
  bins 1.5e-5 wide) and ``histogram.csv``;
* **not computed**: the k-fold accuracy (an all-pairs protocol has no folds) and the
  identity bootstrap (say why, in ``metrics.json``).

FtA images (an image that could not be embedded) are counted as for pair lists: with
the ``reject`` policy each of their comparisons is a -inf score (a genuine one a false
reject), with ``exclude`` they are left out and counted in ``n_fta_excluded``. Breakdown
groups follow :mod:`mfrkit.bench.metrics.bundle`: a comparison belongs to the group named by
the non-null values of its two images (per mask type, coverage and region).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ...protocols.all_pairs import count_comparisons, protocol_counts
from .. import metrics as M
from ..metrics.bundle import BREAKDOWN_COLUMNS, _group_key
from ..embed.images import ImageTable, Sides
from ..results.files import write_csv
from ..results.plots import plot_roc_det
from ..score.streaming import ScanOptions, Side, View, resolve_device, same_identity_pairs, score_all_pairs
from ..results import ProtocolInfo
from .base import Evaluator, Outcome, ProtocolRun, count_text, protocol_uids
from .subset import Chosen, Selection, SubsetError, require_both_labels



@dataclass
class AllPairsOutcome:
    """What :func:`evaluate_all_pairs` returns.

    Attributes
    ----------
    metrics : dict, the overall metrics (keys of :func:`~mfrkit.bench.metrics.bundle.verification_metrics`
        plus ``auc_max_error`` and ``all_pairs``: exclusions, passes, timings, what is exact).
    breakdowns : dict column -> group -> metrics (with ``at_overall_threshold``).
    genuine : DataFrame ``left_id, right_id, score, fta``: every genuine comparison.
    images : DataFrame ``role, image_id, identity, unit, fta``: the protocol's images.
    histogram : DataFrame of :meth:`~mfrkit.bench.score.binned_scores.BinnedScores.histogram`.
    roc : (far, tar) exact points at the bin edges, for plots.
    transfer_threshold : dict ``far_target, threshold, far`` when asked (the transfer source).
    rates : dict threshold -> :class:`~mfrkit.bench.metrics.Rates` for the thresholds asked for.
    device : where the scores were computed.
    """

    metrics: dict
    breakdowns: dict
    genuine: pd.DataFrame
    images: pd.DataFrame
    histogram: pd.DataFrame
    roc: tuple
    transfer_threshold: dict | None = None
    rates: dict = field(default_factory=dict)
    device: str = "cpu"

    def source_threshold(self, far_target: float) -> dict | None:
        """The threshold found for the transfer FAR (asked for up front: ``transfer_far``)."""
        return self.transfer_threshold

    def transfer(self, source: str, threshold: float, far_target: float) -> dict:
        """The rates at the source's threshold, counted in the scan (the source went first)."""
        return {"from": source, "far_target": far_target, **self.rates[float(threshold)].as_dict()}


def _codes(*columns: pd.Series) -> list[np.ndarray]:
    """Shared integer codes of the values of several columns."""
    allv = pd.concat([c.astype(str).reset_index(drop=True) for c in columns], ignore_index=True)
    codes, _ = pd.factorize(allv)
    out, start = [], 0
    for c in columns:
        out.append(codes[start : start + len(c)].astype(np.int64))
        start += len(c)
    return out


def _classes(attrs: pd.DataFrame, columns) -> tuple[np.ndarray, pd.DataFrame]:
    """Joint breakdown class of each image: codes, and the class table (one row per class)."""
    if not columns:
        return np.zeros(len(attrs), np.int64), pd.DataFrame(index=[0])
    key = attrs[list(columns)].astype(object).where(attrs[list(columns)].notna(), None)
    tuples = [tuple(r) for r in key.itertuples(index=False, name=None)]
    codes, uniques = pd.factorize(pd.Series(tuples, dtype=object))
    table = pd.DataFrame(list(uniques), columns=list(columns)) if len(uniques) else pd.DataFrame(columns=list(columns))
    return codes.astype(np.int64), table


@dataclass(frozen=True)
class AllPairsOptions:
    """How :func:`evaluate_all_pairs` scores and counts.

    Attributes
    ----------
    far_targets, confidence : metric settings.
    fta_policy : ``reject`` or ``exclude``.
    device : ``auto`` | ``cuda`` | ``cpu`` (where the tiles are scored).
    seed : the pilot's seed.
    tile : tile side (default: 2048 on the CPU, 16384 on a GPU, where each tile's kernel
        launches must be amortised).
    collect_all : see :class:`~mfrkit.bench.score.streaming.ScanOptions`.
    """

    far_targets: tuple = M.DEFAULT_FAR_TARGETS
    fta_policy: str = "reject"
    device: str = "auto"
    seed: int = 0
    confidence: float = 0.95
    tile: int | None = None
    collect_all: int = 4_000_000


@dataclass(frozen=True)
class AllPairsSide:
    """One side of an all-pairs protocol for :func:`evaluate_all_pairs`.

    Attributes
    ----------
    uids : uids of the side's table rows (``reference_images`` / ``probe_images``) in ``embeddings``.
    embeddings : the side's model's Embeddings (the same object on both sides for an ordinary model).
    attributes : DataFrame of the images' breakdown attributes (columns of
        :data:`~mfrkit.bench.metrics.bundle.BREAKDOWN_COLUMNS`), one row per image.
    """

    uids: list
    embeddings: object
    attributes: pd.DataFrame


def evaluate_all_pairs(
    protocol,
    reference: AllPairsSide,
    probe: AllPairsSide,
    options: AllPairsOptions | None = None,
    *,
    transfer_far: float | None = None,
    thresholds=(),
    log: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> AllPairsOutcome:
    """Score an all-pairs protocol and compute its metrics (see the module docstring).

    Parameters
    ----------
    protocol : Protocol of kind ``all-pairs``.
    reference, probe : AllPairsSide.
    options : AllPairsOptions (default: its defaults).
    transfer_far : also find the threshold for this FAR (this protocol is the transfer source).
    thresholds : thresholds whose exact error rates are wanted (threshold transfer).
    log, progress : messages; called with 1 after each tile of the main pass.
    """
    opt = options or AllPairsOptions()
    tile = opt.tile if opt.tile is not None else (16384 if resolve_device(opt.device) == "cuda" else 2048)
    c = _Comparisons(protocol, reference, probe)
    reject = opt.fta_policy == "reject"
    views, groups = c.views(reject, thresholds)
    targets = np.atleast_1d(np.asarray(opt.far_targets, np.float64))
    all_targets = np.unique(np.r_[targets, [transfer_far] if transfer_far is not None else []])[::-1]
    keep_t = np.isin(all_targets, targets)

    def thresholds_of(name: str, resolved: dict):
        if name == "overall":
            return []
        if "overall" not in resolved:
            return None
        return resolved["overall"]["tar_at_far"].threshold[keep_t].tolist()

    scanning = ScanOptions(
        allow_same_source=c.allow, n_cells=(c.n_ref_classes, c.n_probe_classes), device=opt.device, tile_rows=tile,
        tile_cols=tile, collect_all=opt.collect_all, seed=opt.seed, triangle=c.triangle,
        # two scoring threads overlap one tile's element-wise work with another's product
        # (1.33x the bare product against 1.59x with one, on 2 shared cores)
        workers=min(2, os.cpu_count() or 1),
    )  # fmt: skip
    binned, resolved, scan = score_all_pairs(*c.scan_sides(), views, far_targets=all_targets, options=scanning,
                                             thresholds_of=thresholds_of, log=log, progress=progress)
    metrics = _metrics_of(binned["overall"], resolved["overall"], keep_t)
    metrics.update(_run_facts(c, scan, binned, reject, tile))
    overall_thr = {float(t): float(x) for t, x in zip(targets, resolved["overall"]["tar_at_far"].threshold[keep_t])}
    breakdowns: dict = {}
    for col, names in groups.items():
        breakdowns[col] = {}
        for g in sorted(names):
            name = f"{col}\x1f{g}"
            m = _metrics_of(binned[name], resolved[name], keep_t)
            m["at_overall_threshold"] = [{"far_target": far, **rate.as_dict()}
                                         for far, rate in zip(overall_thr, resolved[name]["rates"])]
            breakdowns[col][g] = m
    outcome = AllPairsOutcome(
        metrics=metrics, breakdowns=breakdowns, genuine=c.genuine_table(scan, reject), images=c.images_table(),
        histogram=binned["overall"].histogram(), roc=binned["overall"].roc_points()[:2], device=scan.device,
    )  # fmt: skip
    if transfer_far is not None:
        taf = resolved["overall"]["tar_at_far"]
        k = int(np.flatnonzero(all_targets == transfer_far)[0])
        outcome.transfer_threshold = {"far_target": float(transfer_far), "threshold": float(taf.threshold[k]),
                                      "far": float(taf.far[k])}
    outcome.rates = {float(t): r for t, r in zip(thresholds, resolved["overall"]["rates"])}
    return outcome


class _Comparisons:
    """An all-pairs protocol's two sides as codes: identities, source photos, images (when
    both sides may hold the same image), breakdown classes, and the closed-form counts of
    each cell (a reference class x a probe class)."""

    def __init__(self, protocol, reference: AllPairsSide, probe: AllPairsSide) -> None:
        self.refs = protocol.reference_images.reset_index(drop=True)
        self.probes = protocol.probe_images.reset_index(drop=True)
        self.reference, self.probe = reference, probe
        self.same_images = protocol.manifest("reference").fingerprint() == protocol.manifest("probe").fingerprint()
        self.allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
        # One set of images and one model for both sides: scores are symmetric, each unordered
        # comparison is scored once (a heterogeneous model's two towers are not: ordered).
        self.protocol_counts = protocol_counts(protocol)
        self.triangle = bool(self.protocol_counts["symmetric"]) and reference.embeddings is probe.embeddings
        self.ok_r = reference.embeddings.ok[reference.embeddings.rows(reference.uids)]
        self.ok_q = probe.embeddings.ok[probe.embeddings.rows(probe.uids)]
        self.ident_r, self.ident_q = _codes(self.refs["identity"], self.probes["identity"])
        self.unit_r, self.unit_q = _codes(self.refs["unit"], self.probes["unit"])
        self.image_r, self.image_q = (_codes(self.refs["image_id"], self.probes["image_id"]) if self.same_images
                                      else (None, None))
        # breakdown classes: columns with a value on some image
        attr_r, attr_q = (a.reset_index(drop=True) for a in (reference.attributes, probe.attributes))
        self.columns = [col for col in BREAKDOWN_COLUMNS if col in attr_r and col in attr_q
                        and (attr_r[col].notna().any() or attr_q[col].notna().any())]
        self.class_r, self.table_r = _classes(attr_r, self.columns)
        self.class_q, self.table_q = _classes(attr_q, self.columns)
        self.n_ref_classes, self.n_probe_classes = max(len(self.table_r), 1), max(len(self.table_q), 1)
        self.cells = list(range(self.n_ref_classes * self.n_probe_classes))
        # FtA comparisons per cell (closed form): all images minus the usable ones
        self.fta_imp, self.fta_gen, self.totals = {}, {}, {}
        for cell in self.cells:
            rc, qc = divmod(cell, self.n_probe_classes)
            r_sel, q_sel = self.class_r == rc, self.class_q == qc
            if self.triangle and rc > qc:
                # a pair of images of two classes is counted once, in the cell (lower class, higher
                # class); breakdown groups are unordered in the two classes, so sums are right
                r_sel = q_sel = np.zeros(len(self.refs), bool)
            sym = self.triangle and rc == qc
            full = count_comparisons(self.refs[r_sel], self.probes[q_sel], same_images=self.same_images,
                                     allow_same_source=self.allow, symmetric=sym)
            usable = count_comparisons(self.refs[r_sel & self.ok_r], self.probes[q_sel & self.ok_q],
                                       same_images=self.same_images, allow_same_source=self.allow, symmetric=sym)
            self.fta_imp[cell] = full["impostor"] - usable["impostor"]
            self.fta_gen[cell] = full["genuine"] - usable["genuine"]
            self.totals[cell] = full

    def views(self, reject: bool, thresholds) -> tuple[dict[str, View], dict[str, dict[str, list[int]]]]:
        """The overall view and one per breakdown group (``column\x1fgroup``), and the groups' cells."""

        def view(cs, extra=()) -> View:
            return View(list(cs), fta_impostor=sum(self.fta_imp[c] for c in cs) if reject else 0,
                        fta_genuine=sum(self.fta_gen[c] for c in cs) if reject else 0, thresholds=list(extra))

        views = {"overall": view(self.cells, thresholds)}
        groups: dict[str, dict[str, list[int]]] = {}
        for col in self.columns:
            names: dict[str, list[int]] = {}
            for cell in self.cells:
                rc, qc = divmod(cell, self.n_probe_classes)
                vr = self.table_r[col].iloc[rc] if len(self.table_r) else None
                vq = self.table_q[col].iloc[qc] if len(self.table_q) else None
                names.setdefault(_group_key([vr, vq]), []).append(cell)
            if set(names) == {"none"}:
                continue
            groups[col] = names
            for g, cs in names.items():
                views[f"{col}\x1f{g}"] = view(cs)
        return views, groups

    def scan_sides(self) -> tuple[Side, Side]:
        """The usable images of each side, in a stable order, as the scanner takes them."""
        self.rr, self.qq = np.flatnonzero(self.ok_r), np.flatnonzero(self.ok_q)
        rr, qq, ref, probe = self.rr, self.qq, self.reference, self.probe
        ref_side = Side(ref.embeddings.vectors[ref.embeddings.rows([ref.uids[i] for i in rr])], self.ident_r[rr],
                        self.unit_r[rr], None if self.image_r is None else self.image_r[rr], self.class_r[rr])
        probe_side = Side(probe.embeddings.vectors[probe.embeddings.rows([probe.uids[i] for i in qq])], self.ident_q[qq],
                          self.unit_q[qq], None if self.image_q is None else self.image_q[qq], self.class_q[qq])
        return ref_side, probe_side

    def images_table(self) -> pd.DataFrame:
        return pd.concat([
            pd.DataFrame({"role": "reference", **{c: self.refs[c] for c in ("image_id", "identity", "unit")}, "fta": ~self.ok_r}),
            pd.DataFrame({"role": "probe", **{c: self.probes[c] for c in ("image_id", "identity", "unit")}, "fta": ~self.ok_q}),
        ], ignore_index=True)  # fmt: skip

    def genuine_table(self, scan, reject: bool) -> pd.DataFrame:
        return _genuine_table(scan, self.refs, self.probes, self.rr, self.qq, self.ok_r, self.ok_q, self.ident_r,
                              self.ident_q, self.unit_r, self.unit_q, self.image_r, self.image_q, self.allow, reject,
                              self.triangle)


def _metrics_of(b, r: dict, keep_t: np.ndarray) -> dict:
    """The metrics of one view from its binned scores ``b`` and resolved operating points ``r``."""
    auc, auc_err = b.auc()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        return {
            "n_pairs": b.n_genuine + b.n_impostor,
            "n_genuine": b.n_genuine,
            "n_impostor": b.n_impostor,
            "n_fta": int(b.hist[0] + np.isneginf(b.genuine).sum()),
            "auc": auc,
            "auc_max_error": auc_err,
            "eer": r["eer"].as_dict(),
            "tar_at_far": _subset(r["tar_at_far"], keep_t).records(),
            "insightface": {"tar_at_far": _subset(r["nearest"], keep_t).records()},
        }


def _run_facts(c: _Comparisons, scan, binned: dict, reject: bool, tile: int) -> dict:
    """What the overall metrics say of the scan: exclusions, skipped metrics, passes,
    timings, what is exact and what is not."""
    counts = {k: sum(c.totals[cell][k] for cell in c.cells) for k in ("cross", "excluded_self", "excluded_same_source")}
    out: dict = {"n_fta_excluded": 0 if reject else int(sum(c.fta_imp.values()) + sum(c.fta_gen.values()))}
    out["skipped"] = {
        "accuracy": "an all-pairs protocol has no folds: k-fold accuracy is not defined",
        "bootstrap": "not computed for all-pairs protocols (it would need a histogram per identity)",
    }
    ordered = {k: sum(c.totals[cell]["ordered"][k] for cell in c.cells) for k in ("genuine", "impostor", "comparisons")}
    if c.triangle:  # the ordered counts of the whole grid, as references x probes (N^2 with self pairs)
        ordered = {**c.protocol_counts["ordered"]}
    out["all_pairs"] = {
        **counts,
        "unordered": c.triangle,
        "ordered": ordered,
        "device": scan.device,
        "passes": scan.passes,
        "pilot_rows": scan.pilot_rows,
        "tiles": len(range(0, len(c.rr), tile)) * len(range(0, len(c.qq), tile)),
        "kept_impostor_scores": int(len(scan.values)),
        "seconds": {k: round(v, 3) for k, v in scan.seconds.items()},
        "bin_width": 1.0 / binned["overall"].bins.bins_per_unit,
        "exact": ["counts", "tar_at_far (both rule sets)", "eer", "threshold transfer", "breakdown rates at the "
                  "overall thresholds"],
        "approximate": {
            "auc": "from the histogram: the exact AUC lies within auc +- auc_max_error",
            "roc_det_plots": "exact points at bin edges; between two points the curve moves by at most one bin",
        },
    }  # fmt: skip
    return out


def _subset(t: M.TarAtFar, keep: np.ndarray) -> M.TarAtFar:
    """The targets ``keep`` of a TarAtFar, in decreasing FAR order as given."""
    d = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in t.__dict__.items()}
    return M.TarAtFar(**d)


def _genuine_table(scan, refs, probes, rr, qq, ok_r, ok_q, ident_r, ident_q, unit_r, unit_q, image_r, image_q,
                   allow, reject, triangle=False) -> pd.DataFrame:
    """Every genuine comparison: the scanned ones with their scores, and (``reject``) the
    FtA ones at -inf."""
    scan.concat()
    rows = [pd.DataFrame({
        "left_id": refs["image_id"].to_numpy()[rr[scan.genuine_rows]],
        "right_id": probes["image_id"].to_numpy()[qq[scan.genuine_cols]],
        "score": scan.genuine.astype(np.float64), "fta": False,
    })]  # fmt: skip
    if reject and (not ok_r.all() or not ok_q.all()):
        r, c = same_identity_pairs(ident_r, ident_q)
        keep = ~(ok_r[r] & ok_q[c])
        if not allow:
            keep &= unit_r[r] != unit_q[c]
        if image_r is not None:
            keep &= image_r[r] != image_q[c]
        if triangle:
            keep &= r < c
        r, c = r[keep], c[keep]
        rows.append(pd.DataFrame({"left_id": refs["image_id"].to_numpy()[r], "right_id": probes["image_id"].to_numpy()[c],
                                  "score": -np.inf, "fta": True}))
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["left_id", "right_id"], kind="stable").reset_index(drop=True)


class AllPairsEvaluator(Evaluator):
    """All-pairs protocols: every reference x every probe image (see the module docstring).

    Writes ``genuine.csv``, ``histogram.csv``, ``images.csv`` (no score list: there are
    too many impostor scores to keep) and the ROC / DET plots from the histogram's exact
    points."""

    kind = "all-pairs"
    streamed = True

    def sides(self, protocol, images: ImageTable) -> Sides:
        ref, prb, uids = protocol.manifests["reference"], protocol.manifests["probe"], protocol_uids(images, protocol)
        return Sides(left=uids(ref, protocol.reference_images["image_id"].tolist()),
                     right=uids(prb, protocol.probe_images["image_id"].tolist()))

    def describe(self, protocol) -> dict:
        counts = protocol_counts(protocol)
        return {"n_pairs": counts["comparisons"], "n_references": counts["references"], "n_probes": counts["probes"],
                "counts": counts}

    def summary(self, protocol: ProtocolInfo) -> str:
        counts = protocol.counts
        return (f"1:1 all-pairs, every one of {count_text(counts.get('references'))} reference images x every one of "
                f"{count_text(counts.get('probes'))} probe images: {count_text(protocol.n_pairs)} comparisons "
                f"({count_text(counts.get('genuine'))} genuine, {count_text(counts.get('impostor'))} impostor; left out: "
                f"{count_text(counts.get('excluded_self'))} of an image with itself, "
                f"{count_text(counts.get('excluded_same_source'))} of copies of one source photo)")

    def select(self, protocol, selection: Selection) -> Chosen:
        """Each side's images that pass ``--where``; ``--limit N``: N images per side (the
        same seeded ranks on both, so a one-set protocol stays one set)."""
        sides = {}
        for role, table in (("reference", protocol.reference_images), ("probe", protocol.probe_images)):
            ids = table["image_id"].astype(str).tolist()
            sides[role] = table[selection.sample(ids, selection.passes(role, ids))].reset_index(drop=True)
        refs, probes = sides["reference"], sides["probe"]
        total = protocol_counts(protocol)
        detail = {"references": len(refs), "references_total": len(protocol.reference_images), "probes": len(probes),
                  "probes_total": len(protocol.probe_images)}
        if not len(refs) or not len(probes):
            empty, of = ("reference", len(protocol.reference_images)) if not len(refs) else ("probe", len(protocol.probe_images))
            raise SubsetError(f"{protocol.name}: {selection.request.text()} keeps no {empty} image (of {of:,}); "
                              "loosen --where (the conditions apply to each image's manifest row)")
        same = protocol.manifest("reference").fingerprint() == protocol.manifest("probe").fingerprint()
        allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
        counts = count_comparisons(refs, probes, same_images=same, allow_same_source=allow)
        require_both_labels(protocol, counts["genuine"], counts["impostor"], "comparisons")
        detail.update(comparisons=counts["comparisons"], comparisons_total=total["comparisons"])
        one_set = bool(total.get("symmetric"))
        kept = len(refs) if one_set else len(refs) + len(probes)
        of = len(protocol.reference_images) + (0 if one_set else len(protocol.probe_images))
        return Chosen({"reference_images": refs, "probe_images": probes}, "images", kept, of, detail)

    def evaluate(self, run: ProtocolRun) -> Outcome:
        s, cfg = run.sides, run.settings
        options = AllPairsOptions(far_targets=cfg.far_targets, fta_policy=cfg.fta_policy, device=cfg.search_device,
                                  seed=cfg.seed, confidence=cfg.confidence)
        tiles = max(1, int(np.ceil(len(s.left) / 2048)) * int(np.ceil(len(s.right) / 2048)))
        with run.progress(tiles, f"all-pairs scores of {run.protocol.name}") as advance:
            out = evaluate_all_pairs(
                run.protocol, AllPairsSide(s.left, run.ref, run.attributes(s.left)),
                AllPairsSide(s.right, run.probe, run.attributes(s.right)), options, transfer_far=run.transfer_far,
                thresholds=[] if run.transfer_threshold is None else [run.transfer_threshold], log=run.log,
                progress=advance,
            )  # fmt: skip
        write_csv(run.folder / "genuine.csv", out.genuine)
        write_csv(run.folder / "histogram.csv", out.histogram)
        write_csv(run.folder / "images.csv", out.images)
        if cfg.plots:
            plot_roc_det(run.folder, *out.roc, run.title)
        return Outcome(out.metrics, out.breakdowns, out.device, out)
