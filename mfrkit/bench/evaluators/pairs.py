"""The evaluator of pair-list protocols (kind ``verification``): ``pairs.csv`` gives
``fold, left_id, right_id, label``; each pair is scored once (cosine of its two
embeddings, -inf for a failure to acquire), then every 1:1 metric by both rule sets
(:func:`~mfrkit.bench.metrics.bundle.verification_metrics`) with breakdowns.

Writes ``scores.csv`` (``fold, left_id, right_id, label, score, fta``) and the ROC / DET
plots.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import metrics as M
from ..embed.images import ImageTable, Sides
from ..metrics import bundle as E
from ..results.files import write_csv
from ..results.plots import plot_verification
from ..score.search import pair_scores
from ..results import ProtocolInfo
from .base import Evaluator, Outcome, ProtocolRun, count_text, protocol_uids
from .subset import Chosen, Selection, require_both_labels


@dataclass
class PairScores:
    """The scored pairs a 1:1 metric counts (FtA pairs left out under ``exclude``)."""

    labels: np.ndarray
    scores: np.ndarray

    def source_threshold(self, far_target: float) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            taf = M.tar_at_far(self.labels, self.scores, [far_target])
        return {"far_target": far_target, "threshold": float(taf.threshold[0]), "far": float(taf.far[0])}

    def transfer(self, source: str, threshold: float, far_target: float) -> dict:
        return E.transfer(source, threshold, far_target, self.labels, self.scores)


class PairsEvaluator(Evaluator):
    """Pair lists: see the module docstring."""

    kind = "verification"

    def sides(self, protocol, images: ImageTable) -> Sides:
        ref, prb, uids = protocol.manifests["reference"], protocol.manifests["probe"], protocol_uids(images, protocol)
        return Sides(left=uids(ref, protocol.pairs["left_id"].tolist()),
                     right=uids(prb, protocol.pairs["right_id"].tolist()))

    def describe(self, protocol) -> dict:
        return {"n_pairs": int(len(protocol.pairs)), "n_folds": int(protocol.pairs["fold"].nunique())}

    def summary(self, protocol: ProtocolInfo) -> str:
        return f"1:1, {count_text(protocol.n_pairs)} comparisons"

    def select(self, protocol, selection: Selection) -> Chosen:
        """A pair iff both its images pass ``--where``; ``--limit N``: N of those pairs."""
        p = protocol.pairs
        keep = selection.passes("reference", p["left_id"]) & selection.passes("probe", p["right_id"])
        keys = (p["fold"].astype(str) + "\t" + p["left_id"].astype(str) + "\t" + p["right_id"].astype(str)).tolist()
        kept = p[selection.sample(keys, keep)].reset_index(drop=True)
        genuine = int((pd.to_numeric(kept["label"]) == 1).sum())
        if len(kept):
            require_both_labels(protocol, genuine, len(kept) - genuine, "pairs")
        return Chosen({"pairs": kept}, "pairs", len(kept), len(p), {"genuine": genuine, "impostor": len(kept) - genuine})

    def evaluate(self, run: ProtocolRun) -> Outcome:
        cfg, s, ref, probe = run.settings, run.sides, run.ref, run.probe
        pairs = run.protocol.pairs[["fold", "left_id", "right_id", "label"]].reset_index(drop=True).copy()
        pairs["label"] = pd.to_numeric(pairs["label"]).astype(int)
        li, ri = ref.rows(s.left), probe.rows(s.right)
        scores = pair_scores(ref.vectors, probe.vectors, left_index=li, right_index=ri, left_ok=ref.ok, right_ok=probe.ok)
        pairs["score"] = scores
        pairs["fta"] = np.isneginf(scores)
        pairs = pd.concat([pairs, run.attributes(s.left, "left_"), run.attributes(s.right, "right_")], axis=1)
        use = pairs if cfg.fta_policy == "reject" else pairs[~pairs["fta"]]
        clusters = use["left_identity"].where(use["left_identity"].notna(), use["left_id"]).astype(str).to_numpy()
        metrics = E.verification_metrics(
            use["label"].to_numpy(), use["score"].to_numpy(), use["fold"].to_numpy(), clusters,
            far_targets=cfg.far_targets, n_boot=cfg.n_boot, seed=cfg.seed, confidence=cfg.confidence,
        )  # fmt: skip
        metrics["n_fta_excluded"] = int(len(pairs) - len(use))
        breakdowns = E.verification_breakdowns(use, thresholds=E.overall_thresholds(metrics), far_targets=cfg.far_targets)
        write_csv(run.folder / "scores.csv", pairs[["fold", "left_id", "right_id", "label", "score", "fta"]])
        if cfg.plots:
            plot_verification(run.folder, use["label"].to_numpy(), use["score"].to_numpy(), run.title)
        return Outcome(metrics, breakdowns, None, PairScores(use["label"].to_numpy(), use["score"].to_numpy()))
