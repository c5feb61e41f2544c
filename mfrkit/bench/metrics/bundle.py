"""From scores to a metrics bundle: overall, per mask type / coverage / region, and
threshold transfer between protocols. Pure functions over arrays and DataFrames; the
numbers come from the metric functions of this package.

Breakdown groups
----------------
A comparison belongs to the group named by the set of non-null values of the attribute
over its images: an unmasked reference against a ``surgical`` probe is in
``surgical``; two ``surgical`` images are in ``surgical``; a ``cloth`` against a
``surgical`` image is in ``cloth+surgical``; a pair with no value on either side is in
``none``. 1:N probes are grouped by their own value. Every group gets the full metrics
computed on its own comparisons, and, at the overall thresholds for each FAR target,
its FMR and FNMR (how the overall operating point behaves on that group).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .. import metrics as M

BREAKDOWN_COLUMNS = ("mask_type", "coverage", "region")


def _group_key(values: list) -> str:
    vals = sorted({str(v) for v in values if not pd.isna(v) and str(v) != ""})
    return "+".join(vals) if vals else "none"


def pair_groups(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Group name of each pair from its two images' values of one attribute (see module doc).

    Examples
    --------
    >>> import pandas as pd
    >>> from mfrkit.bench.metrics.bundle import pair_groups
    >>> pair_groups(pd.Series([None, "surgical", "cloth"]), pd.Series(["surgical", "surgical", "surgical"])).tolist()
    ['surgical', 'surgical', 'cloth+surgical']
    """
    return np.array([_group_key([a, b]) for a, b in zip(left.tolist(), right.tolist())], dtype=object)


def verification_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    folds: np.ndarray | None = None,
    clusters: np.ndarray | None = None,
    *,
    far_targets=M.DEFAULT_FAR_TARGETS,
    n_boot: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Every 1:1 metric of one set of comparisons, as a JSON-ready dict, by both rule sets.

    Keys: ``n_pairs``, ``n_genuine``, ``n_impostor``, ``n_fta`` (comparisons scored -inf),
    ``auc``, ``eer`` (dict), then the rule-dependent metrics by the ``mfrkit`` rules at the
    top level and by the ``insightface`` rules under ``"insightface"`` (see
    :data:`~mfrkit.bench.metrics.RULE_SETS` and :func:`rule_metrics`): ``tar_at_far``
    (one dict per target), ``accuracy`` (k-fold, when ``folds`` has >= 2 values; else
    ``skipped`` maps ``accuracy`` to the reason) and, with ``n_boot`` > 0, ``bootstrap``
    (identity bootstrap intervals of TAR per target and of the k-fold mean accuracy; one
    resampling serves both rule sets).

    Examples
    --------
    >>> from mfrkit.bench.metrics.bundle import verification_metrics
    >>> m = verification_metrics([1, 1, 0, 0, 1, 1, 0, 0], [0.9, 0.7, 0.3, 0.6, 0.8, 0.4, 0.2, 0.5],
    ...                          folds=[0, 0, 0, 0, 1, 1, 1, 1], far_targets=(0.5,))
    >>> sorted(m)
    ['accuracy', 'auc', 'eer', 'insightface', 'n_fta', 'n_genuine', 'n_impostor', 'n_pairs', 'tar_at_far']
    >>> m["tar_at_far"][0]["tar"], m["insightface"]["tar_at_far"][0]["tar"], m["accuracy"]["mean"]
    (1.0, 0.75, 0.875)
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    out: dict = {
        "n_pairs": int(len(y)),
        "n_genuine": int(y.sum()),
        "n_impostor": int((~y).sum()),
        "n_fta": int(np.isneginf(s).sum()),
    }
    if len(y) == 0:
        return out
    rules = [M.RULE_SETS.get(name) for name in RULE_ORDER]
    blocks: dict[str, dict] = {r.name: {} for r in rules}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        out["auc"] = M.roc_auc(y, s)
        out["eer"] = M.eer(y, s).as_dict()
        use_folds = folds is not None and len(np.unique(folds)) >= 2
        if not use_folds:
            n_folds = 0 if folds is None else len(np.unique(folds))
            out["skipped"] = {"accuracy": f"k-fold accuracy needs at least 2 folds; the protocol has {n_folds}"}
        for r in rules:
            blocks[r.name]["tar_at_far"] = r.tar_at_far(y, s, far_targets, confidence=confidence).records()
            if use_folds:
                blocks[r.name]["accuracy"] = r.kfold_accuracy(y, s, folds).as_dict()
        if n_boot > 0 and clusters is not None and len(np.unique(clusters)) >= 2:
            n_t = len(np.atleast_1d(far_targets))
            tar = M.bootstrap_interval(
                lambda w: np.concatenate([r.tar_at_far(y, s, far_targets, sample_weight=w).tar for r in rules]),
                clusters, n_boot=n_boot, seed=seed, confidence=confidence,
            )  # fmt: skip
            acc = None
            if use_folds:
                acc = M.bootstrap_interval(
                    lambda w: np.array([r.kfold_accuracy(y, s, folds, sample_weight=w).mean for r in rules]),
                    clusters, n_boot=n_boot, seed=seed, confidence=confidence,
                )  # fmt: skip
            for k, r in enumerate(rules):
                boot = {"tar": _part(tar, slice(k * n_t, (k + 1) * n_t))}
                if acc is not None:
                    boot["accuracy"] = _part(acc, k)
                boot["unit"] = "identity of the left image"
                blocks[r.name]["bootstrap"] = boot
    out.update(blocks.pop("mfrkit"))
    out.update(blocks)
    return out


#: Rule sets in metrics.json: ``mfrkit`` at the top level, the others under their name.
RULE_ORDER = ("mfrkit", "insightface")
#: The keys of a metrics dict that depend on the rule set.
RULE_KEYS = ("tar_at_far", "accuracy", "bootstrap")


def _part(b: M.BootstrapInterval, index) -> dict:
    """One statistic's share of a bootstrap over several stacked statistics, as a dict."""
    d = b.as_dict()
    for key in ("low", "high", "std"):
        d[key] = M._py(np.asarray(getattr(b, key))[index])
    return d


def rule_metrics(metrics: dict, rules: str = "mfrkit") -> dict:
    """The rule-dependent part of a :func:`verification_metrics` dict for one rule set:
    ``{"tar_at_far": ..., "accuracy": ..., "bootstrap": ...}`` (keys present in the dict only).

    Examples
    --------
    >>> from mfrkit.bench.metrics.bundle import rule_metrics, verification_metrics
    >>> m = verification_metrics([1, 1, 0, 0, 1, 1, 0, 0], [0.9, 0.7, 0.3, 0.6, 0.8, 0.4, 0.2, 0.5],
    ...                          folds=[0, 0, 0, 0, 1, 1, 1, 1], far_targets=(0.5,))
    >>> sorted(rule_metrics(m, "insightface"))
    ['accuracy', 'tar_at_far']
    """
    M.RULE_SETS.get(rules)
    block = metrics if rules == "mfrkit" else metrics.get(rules, {})
    return {k: block[k] for k in RULE_KEYS if k in block}


def verification_breakdowns(
    pairs: pd.DataFrame,
    *,
    thresholds: dict[float, float],
    far_targets=M.DEFAULT_FAR_TARGETS,
    columns=BREAKDOWN_COLUMNS,
) -> dict:
    """Per-group metrics of scored pairs.

    ``pairs`` has ``label``, ``score``, ``fold`` and ``left_<col>`` / ``right_<col>`` for
    each breakdown column; ``thresholds`` maps FAR target -> overall threshold. Returns
    ``{column: {group: metrics}}`` for columns with at least one non-null value.
    """
    out: dict = {}
    for col in columns:
        lc, rc = f"left_{col}", f"right_{col}"
        if lc not in pairs or rc not in pairs:
            continue
        groups = pair_groups(pairs[lc], pairs[rc])
        if set(groups) == {"none"}:
            continue
        out[col] = {}
        for g in sorted(set(groups)):
            sel = groups == g
            sub = pairs[sel]
            m = verification_metrics(sub["label"].to_numpy(), sub["score"].to_numpy(), sub["fold"].to_numpy(), far_targets=far_targets)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", M.UndefinedMetricWarning)
                m["at_overall_threshold"] = [
                    {"far_target": far, **M.rates_at_threshold(sub["label"].to_numpy(), sub["score"].to_numpy(), t).as_dict()}
                    for far, t in thresholds.items()
                ]
            out[col][g] = m
    return out


def identification_metrics(
    ranks: np.ndarray,
    mated_scores: np.ndarray,
    best_scores: np.ndarray,
    mated: np.ndarray,
    *,
    max_rank: int = 20,
    fpir_targets=M.DEFAULT_FAR_TARGETS,
    confidence: float = 0.95,
) -> dict:
    """Every 1:N metric as a JSON-ready dict: ``n_probes``, ``n_mated``, ``n_nonmated``,
    ``n_fta``, ``cmc`` (list, rank 1..max_rank), ``rank1``, ``rank5``, ``rank10`` (where
    ``<= max_rank``), ``tpir_at_fpir`` (rank 1, one dict per FPIR target; needs non-mated probes).

    Examples
    --------
    >>> import numpy as np
    >>> from mfrkit.bench.metrics.bundle import identification_metrics
    >>> m = identification_metrics(np.array([1.0, 3.0, np.nan]), np.array([0.9, 0.5, np.nan]),
    ...                            np.array([0.9, 0.7, 0.6]), np.array([True, True, False]), max_rank=5)
    >>> m["n_mated"], m["cmc"], m["rank1"], m["rank5"]
    (2, [0.5, 0.5, 1.0, 1.0, 1.0], 0.5, 1.0)
    """
    mated = np.asarray(mated, bool)
    out: dict = {
        "n_probes": int(len(mated)),
        "n_mated": int(mated.sum()),
        "n_nonmated": int((~mated).sum()),
        "n_fta": int(np.isneginf(best_scores).sum()),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        if mated.any():
            c = M.cmc(ranks[mated], max_rank=max_rank)
            out["cmc"] = c.tolist()
            for r in (1, 5, 10):
                if r <= max_rank:
                    out[f"rank{r}"] = float(c[r - 1])
            lo, hi = M.clopper_pearson(round(c[0] * mated.sum()), mated.sum(), confidence=confidence)
            out["rank1_ci"] = [float(lo), float(hi)]
        if mated.any() and (~mated).any():
            out["tpir_at_fpir"] = M.tpir_at_fpir(
                mated_scores[mated], ranks[mated], best_scores[~mated], fpir_targets, confidence=confidence
            ).records()
    return out


def identification_breakdowns(probes: pd.DataFrame, *, max_rank: int, fpir_targets, columns=BREAKDOWN_COLUMNS) -> dict:
    """Per-group 1:N metrics; ``probes`` has ``rank``, ``mated_score``, ``best_score``,
    ``mated`` and the breakdown columns."""
    out: dict = {}
    for col in columns:
        if col not in probes:
            continue
        groups = np.array([_group_key([v]) for v in probes[col].tolist()], dtype=object)
        if set(groups) == {"none"}:
            continue
        out[col] = {}
        for g in sorted(set(groups)):
            sub = probes[groups == g]
            out[col][g] = identification_metrics(
                sub["rank"].to_numpy(float), sub["mated_score"].to_numpy(float), sub["best_score"].to_numpy(float),
                sub["mated"].to_numpy(bool), max_rank=max_rank, fpir_targets=fpir_targets,
            )  # fmt: skip
    return out


def overall_thresholds(metrics: dict) -> dict[float, float]:
    """FAR target -> threshold, from a :func:`verification_metrics` result.

    Examples
    --------
    >>> from mfrkit.bench.metrics.bundle import overall_thresholds, verification_metrics
    >>> m = verification_metrics([1, 1, 0, 0, 1, 1, 0, 0], [0.9, 0.7, 0.3, 0.6, 0.8, 0.4, 0.2, 0.5], far_targets=(0.5,))
    >>> overall_thresholds(m)
    {0.5: 0.4}
    """
    return {r["far_target"]: r["threshold"] for r in metrics.get("tar_at_far", [])}


def transfer(source: str, threshold: float, far_target: float, labels, scores) -> dict:
    """Fixed-threshold transfer: a threshold chosen on protocol ``source`` (for
    ``far_target``) applied to other comparisons; their FMR and FNMR with intervals.

    Examples
    --------
    >>> from mfrkit.bench.metrics.bundle import transfer
    >>> t = transfer("umr-ump", 0.55, 1e-3, [1, 1, 0, 0], [0.9, 0.5, 0.6, 0.1])
    >>> t["from"], t["fmr"], t["fnmr"], t["false_accepts"]
    ('umr-ump', 0.5, 0.5, 1.0)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        r = M.rates_at_threshold(labels, scores, threshold)
    return {"from": source, "far_target": far_target, **r.as_dict()}
