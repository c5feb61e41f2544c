"""One model on one all-pairs protocol: streaming scores -> exact metrics and breakdowns.

An all-pairs protocol (:mod:`mfrkit.protocols.all_pairs`) compares every reference
image with every probe image. :func:`evaluate_all_pairs` scores them with
:func:`mfrkit.bench.streaming.score_all_pairs` and returns the same metrics a pair list
gets (:func:`mfrkit.bench.evaluate.verification_metrics`), computed without the score
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
groups follow :mod:`mfrkit.bench.evaluate`: a comparison belongs to the group named by
the non-null values of its two images (per mask type, coverage and region).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..protocols.all_pairs import count_comparisons, protocol_counts
from . import metrics as M
from .evaluate import BREAKDOWN_COLUMNS, _group_key
from .streaming import Side, View, resolve_device, same_identity_pairs, score_all_pairs

ALL_PAIRS = "all-pairs"


@dataclass
class AllPairsOutcome:
    """What :func:`evaluate_all_pairs` returns.

    Attributes
    ----------
    metrics : dict, the overall metrics (keys of :func:`~mfrkit.bench.evaluate.verification_metrics`
        plus ``auc_max_error`` and ``all_pairs``: exclusions, passes, timings, what is exact).
    breakdowns : dict column -> group -> metrics (with ``at_overall_threshold``).
    genuine : DataFrame ``left_id, right_id, score, fta``: every genuine comparison.
    images : DataFrame ``role, image_id, identity, unit, fta``: the protocol's images.
    histogram : DataFrame of :meth:`~mfrkit.bench.binned_scores.BinnedScores.histogram`.
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


def evaluate_all_pairs(
    protocol,
    ref_uids: list,
    probe_uids: list,
    ref,
    probe,
    attributes: tuple[pd.DataFrame, pd.DataFrame],
    *,
    far_targets=M.DEFAULT_FAR_TARGETS,
    fta_policy: str = "reject",
    device: str = "auto",
    seed: int = 0,
    confidence: float = 0.95,
    transfer_far: float | None = None,
    thresholds=(),
    tile: int | None = None,
    collect_all: int = 4_000_000,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> AllPairsOutcome:
    """Score an all-pairs protocol and compute its metrics (see the module docstring).

    Parameters
    ----------
    protocol : Protocol of kind ``all-pairs``.
    ref_uids, probe_uids : uids of ``protocol.reference_images`` / ``probe_images`` rows
        in the embeddings.
    ref, probe : Embeddings (the reference and probe models' embeddings; the same
        object for an ordinary model).
    attributes : (reference, probe) DataFrames of the images' breakdown attributes
        (columns of :data:`~mfrkit.bench.evaluate.BREAKDOWN_COLUMNS`), one row per image.
    far_targets, confidence : metric settings.
    fta_policy : ``reject`` or ``exclude``.
    device : ``auto`` | ``cuda`` | ``cpu`` (where the tiles are scored).
    transfer_far : also find the threshold for this FAR (this protocol is the transfer source).
    thresholds : thresholds whose exact error rates are wanted (threshold transfer).
    tile : tile side (default: 2048 on the CPU, 16384 on a GPU, where each tile's kernel
        launches must be amortised); collect_all : see :func:`~mfrkit.bench.streaming.score_all_pairs`.
    """
    if tile is None:
        tile = 16384 if resolve_device(device) == "cuda" else 2048
    refs = protocol.reference_images.reset_index(drop=True)
    probes = protocol.probe_images.reset_index(drop=True)
    same_images = protocol.manifest("reference").fingerprint() == protocol.manifest("probe").fingerprint()
    allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
    ok_r = ref.ok[ref.rows(ref_uids)]
    ok_q = probe.ok[probe.rows(probe_uids)]
    ident_r, ident_q = _codes(refs["identity"], probes["identity"])
    unit_r, unit_q = _codes(refs["unit"], probes["unit"])
    image_r, image_q = _codes(refs["image_id"], probes["image_id"]) if same_images else (None, None)
    # One set of images and one model for both sides: scores are symmetric, each unordered
    # comparison is scored once (a heterogeneous model's two towers are not: ordered).
    triangle = bool(protocol_counts(protocol)["symmetric"]) and ref is probe

    # breakdown classes: columns with a value on some image
    attr_r, attr_q = (a.reset_index(drop=True) for a in attributes)
    columns = [c for c in BREAKDOWN_COLUMNS if c in attr_r and c in attr_q
               and (attr_r[c].notna().any() or attr_q[c].notna().any())]
    class_r, table_r = _classes(attr_r, columns)
    class_q, table_q = _classes(attr_q, columns)
    n_qc = max(len(table_q), 1)
    cells = list(range(max(len(table_r), 1) * n_qc))

    # FtA comparisons per cell (closed form): all images minus the usable ones
    fta_imp, fta_gen, totals = {}, {}, {}
    for cell in cells:
        rc, qc = divmod(cell, n_qc)
        r_sel, q_sel = class_r == rc, class_q == qc
        if triangle and rc > qc:
            # a pair of images of two classes is counted once, in the cell (lower class, higher
            # class); breakdown groups are unordered in the two classes, so sums are right
            r_sel = q_sel = np.zeros(len(refs), bool)
        sym = triangle and rc == qc
        full = count_comparisons(refs[r_sel], probes[q_sel], same_images=same_images, allow_same_source=allow,
                                 symmetric=sym)
        usable = count_comparisons(refs[r_sel & ok_r], probes[q_sel & ok_q], same_images=same_images,
                                   allow_same_source=allow, symmetric=sym)
        fta_imp[cell] = full["impostor"] - usable["impostor"]
        fta_gen[cell] = full["genuine"] - usable["genuine"]
        totals[cell] = full
    reject = fta_policy == "reject"

    def view(cs, extra=()) -> View:
        return View(list(cs), fta_impostor=sum(fta_imp[c] for c in cs) if reject else 0,
                    fta_genuine=sum(fta_gen[c] for c in cs) if reject else 0, thresholds=list(extra))

    views = {"overall": view(cells, thresholds)}
    groups: dict[str, dict[str, list[int]]] = {}
    for col in columns:
        names = {}
        for cell in cells:
            rc, qc = divmod(cell, n_qc)
            vr = table_r[col].iloc[rc] if len(table_r) else None
            vq = table_q[col].iloc[qc] if len(table_q) else None
            names.setdefault(_group_key([vr, vq]), []).append(cell)
        if set(names) == {"none"}:
            continue
        groups[col] = names
        for g, cs in names.items():
            views[f"{col}\x1f{g}"] = view(cs)
    targets = np.atleast_1d(np.asarray(far_targets, np.float64))
    all_targets = np.unique(np.r_[targets, [transfer_far] if transfer_far is not None else []])[::-1]

    def thresholds_of(name: str, resolved: dict):
        if name == "overall":
            return []
        if "overall" not in resolved:
            return None
        return resolved["overall"]["tar_at_far"].threshold[np.isin(all_targets, targets)].tolist()

    # usable images only, in a stable order
    rr, qq = np.flatnonzero(ok_r), np.flatnonzero(ok_q)
    ref_side = Side(ref.vectors[ref.rows([ref_uids[i] for i in rr])], ident_r[rr], unit_r[rr],
                    None if image_r is None else image_r[rr], class_r[rr])
    probe_side = Side(probe.vectors[probe.rows([probe_uids[i] for i in qq])], ident_q[qq], unit_q[qq],
                      None if image_q is None else image_q[qq], class_q[qq])
    # a class may have no usable image left (all failed): give the cell counts explicitly
    n_cells_r = max(len(table_r), 1)
    binned, resolved, scan = score_all_pairs(
        ref_side, probe_side, views, far_targets=all_targets, allow_same_source=allow, device=device,
        tile_rows=tile, tile_cols=tile, collect_all=collect_all, seed=seed, thresholds_of=thresholds_of,
        log=log, progress=progress, n_cells=(n_cells_r, n_qc), triangle=triangle,
        # two scoring threads overlap one tile's element-wise work with another's product
        # (1.33x the bare product against 1.59x with one, on 2 shared cores)
        workers=min(2, os.cpu_count() or 1),
    )  # fmt: skip

    keep_t = np.isin(all_targets, targets)

    def metrics_of(name: str) -> dict:
        b, r = binned[name], resolved[name]
        auc, auc_err = b.auc()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            m = {
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
        return m

    metrics = metrics_of("overall")
    counts = {k: sum(totals[c][k] for c in cells) for k in ("cross", "excluded_self", "excluded_same_source")}
    metrics["n_fta_excluded"] = 0 if reject else int(sum(fta_imp.values()) + sum(fta_gen.values()))
    metrics["skipped"] = {
        "accuracy": "an all-pairs protocol has no folds: k-fold accuracy is not defined",
        "bootstrap": "not computed for all-pairs protocols (it would need a histogram per identity)",
    }
    ordered = {k: sum(totals[c]["ordered"][k] for c in cells) for k in ("genuine", "impostor", "comparisons")}
    if triangle:  # the ordered counts of the whole grid, as references x probes (N^2 with self pairs)
        ordered = {**protocol_counts(protocol)["ordered"]}
    metrics["all_pairs"] = {
        **counts,
        "unordered": triangle,
        "ordered": ordered,
        "device": scan.device,
        "passes": scan.passes,
        "pilot_rows": scan.pilot_rows,
        "tiles": len(range(0, len(rr), tile)) * len(range(0, len(qq), tile)),
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
    overall_thr = {float(t): float(x) for t, x in zip(targets, resolved["overall"]["tar_at_far"].threshold[keep_t])}
    breakdowns: dict = {}
    for col, names in groups.items():
        breakdowns[col] = {}
        for g in sorted(names):
            name = f"{col}\x1f{g}"
            m = metrics_of(name)
            m["at_overall_threshold"] = [{"far_target": far, **rate.as_dict()}
                                         for far, rate in zip(overall_thr, resolved[name]["rates"])]
            breakdowns[col][g] = m

    outcome = AllPairsOutcome(
        metrics=metrics, breakdowns=breakdowns, genuine=_genuine_table(scan, refs, probes, rr, qq, ok_r, ok_q,
                                                                       ident_r, ident_q, unit_r, unit_q, image_r,
                                                                       image_q, allow, reject, triangle),
        images=pd.concat([
            pd.DataFrame({"role": "reference", **{c: refs[c] for c in ("image_id", "identity", "unit")}, "fta": ~ok_r}),
            pd.DataFrame({"role": "probe", **{c: probes[c] for c in ("image_id", "identity", "unit")}, "fta": ~ok_q}),
        ], ignore_index=True),
        histogram=binned["overall"].histogram(),
        roc=binned["overall"].roc_points()[:2],
        device=scan.device,
    )  # fmt: skip
    if transfer_far is not None:
        taf = resolved["overall"]["tar_at_far"]
        k = int(np.flatnonzero(all_targets == transfer_far)[0])
        outcome.transfer_threshold = {"far_target": float(transfer_far), "threshold": float(taf.threshold[k]),
                                      "far": float(taf.far[k])}
    outcome.rates = {float(t): r for t, r in zip(thresholds, resolved["overall"]["rates"])}
    return outcome


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
