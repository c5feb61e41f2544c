"""Run folders, plots and the leaderboard.

A run writes ``<out>/<run_id>/``::

    run.json                        settings, models, protocols, environment
    leaderboard.csv / .md           this run's rows
    <model>/<protocol>/metrics.json every metric, breakdowns, FtA, throughput
    <model>/<protocol>/scores.csv   1:1: fold,left_id,right_id,label,score,fta
    <model>/<protocol>/probes.csv   1:N: one row per probe (rank, scores, FtA)
    <model>/<protocol>/candidates.csv  1:N: top-k list of each probe
    <model>/<protocol>/fta.csv      image_id,role,reason of every failure to acquire
    <model>/<protocol>/roc.png, det.png (1:1) or cmc.png (1:N)

JSON is strict: NaN is written as null, infinities as the strings "inf" / "-inf".
``mfrkit leaderboard`` gathers every ``metrics.json`` under a folder into one table,
one row per (model, protocol, preprocessing, FtA policy), the latest run winning.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path, atomic_write_text
from ..errors import MfrkitError

METRICS_NAME = "metrics.json"


class ReportError(MfrkitError):
    """A results folder cannot be read or written."""


# --- JSON ------------------------------------------------------------------------------------------


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    """Strict JSON, atomically (see the module docstring for NaN and infinities)."""
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _float(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """``df`` as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


# --- plots -----------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_verification(folder: Path, labels, scores, title: str) -> list[Path]:
    """``roc.png`` (TAR against log FAR) and ``det.png`` (FNMR against FMR, normal-deviate axes)."""
    import warnings

    from scipy.stats import norm

    from .metrics import UndefinedMetricWarning, roc_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return []
    plt = _pyplot()
    written = []
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    pos = fpr > 0
    ax.semilogx(fpr[pos], tpr[pos])
    ax.set(xlabel="FAR (false accept rate)", ylabel="TAR (true accept rate)", title=title, ylim=(0, 1.01))
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(folder / "roc.png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    written.append(folder / "roc.png")
    fnr = 1 - tpr
    # normal-deviate axes from 1e-6 to 0.6; rates outside are drawn on the border
    lo, hi = 5e-7, 0.6
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(norm.ppf(np.clip(fpr, lo, hi)), norm.ppf(np.clip(fnr, lo, hi)))
    ticks = np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks], rotation=45)
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.set(xlabel="FMR", ylabel="FNMR", title=f"DET: {title}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(folder / "det.png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    written.append(folder / "det.png")
    return written


def plot_cmc(folder: Path, cmc: list[float], title: str) -> Path:
    """``cmc.png``: identification rate against rank."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ranks = np.arange(1, len(cmc) + 1)
    ax.plot(ranks, cmc, marker="o", ms=3)
    ax.set(xlabel="rank", ylabel="identification rate", title=title, ylim=(0, 1.01))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(folder / "cmc.png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return folder / "cmc.png"


# --- leaderboard -----------------------------------------------------------------------------------


def _target(t) -> str:
    return f"{float(t):.0e}"


def leaderboard_row(result: dict) -> dict:
    """One flat leaderboard row from a ``metrics.json`` dict."""
    model, proto, settings = result.get("model", {}), result.get("protocol", {}), result.get("settings", {})
    m = result.get("metrics", {})
    row = {
        "model": model.get("name"),
        "protocol": proto.get("name"),
        "kind": proto.get("kind"),
        "model_sha256": model.get("sha256"),
        "protocol_sha256": proto.get("sha256"),
        "provider": model.get("provider"),
        "search_device": settings.get("search_device"),
        "batch_size": settings.get("batch_size"),
        "tta": settings.get("tta") or "none",
        "landmarks": (result.get("preprocessing", {}).get("reference") or {}).get("landmarks"),
        "preprocessing": result.get("preprocessing", {}).get("key"),
        "fta_policy": settings.get("fta_policy"),
        "images_per_second": _float(result.get("throughput", {}).get("images_per_second")),
        "fta_images": result.get("fta", {}).get("images"),
        "mfrkit_version": result.get("mfrkit_version"),
        "run_id": result.get("run_id"),
        "created": result.get("created"),
    }
    if proto.get("kind") in ("verification", "1:1"):
        row.update(n_pairs=m.get("n_pairs"), fta_pairs=m.get("n_fta"), auc=_float(m.get("auc")))
        row.update(eer=_float(m.get("eer", {}).get("eer")), eer_threshold=_float(m.get("eer", {}).get("threshold")))
        acc = m.get("accuracy")
        if acc:
            row.update(acc_mean=_float(acc.get("mean")), acc_std=_float(acc.get("std")), acc_std_ddof=acc.get("ddof"))
        for r in m.get("tar_at_far", []):
            t = _target(r["far_target"])
            row[f"tar@far={t}"] = _float(r["tar"])
            row[f"threshold@far={t}"] = _float(r["threshold"])
            row[f"insufficient@far={t}"] = bool(r["insufficient_negatives"])
        tr = result.get("transfer")
        if tr:
            row.update(
                transfer_from=tr["from"], transfer_far=_float(tr["far_target"]),
                transfer_fmr=_float(tr["fmr"]), transfer_fnmr=_float(tr["fnmr"]),
            )  # fmt: skip
    else:
        row.update(n_probes=m.get("n_probes"), fta_probes=m.get("n_fta"))
        for r in (1, 5, 10):
            if f"rank{r}" in m:
                row[f"rank{r}"] = _float(m[f"rank{r}"])
        for r in m.get("tpir_at_fpir", []):
            t = _target(r["far_target"])
            row[f"tpir@fpir={t}"] = _float(r["tar"])
            row[f"insufficient@fpir={t}"] = bool(r["insufficient_negatives"])
    return row


def read_result(path: str | os.PathLike) -> dict:
    """A ``metrics.json`` as a dict; ReportError when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None


def collect_leaderboard(results: str | os.PathLike) -> pd.DataFrame:
    """Every ``metrics.json`` under ``results`` as leaderboard rows.

    Rows with the same model sha256, protocol sha256, preprocessing (input size, colour,
    mean/std, alignment, landmark backend, TTA), FtA policy and mfrkit version are one
    entry: the latest (by ``created``) is kept. Sorted by protocol, then model.
    """
    root = Path(results)
    if not root.is_dir():
        raise ReportError(f"no results folder at {root}")
    files = sorted(root.rglob(METRICS_NAME))
    if not files:
        raise ReportError(f"no {METRICS_NAME} under {root}; run `mfrkit bench` first")
    df = pd.DataFrame([leaderboard_row(read_result(f)) for f in files])
    key = ["model_sha256", "protocol_sha256", "preprocessing", "fta_policy", "mfrkit_version"]
    df = df.sort_values("created", kind="stable").drop_duplicates(key, keep="last")
    return df.sort_values(["protocol", "model"], kind="stable").reset_index(drop=True)


def _md_cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"
    s = str(v)
    return s[:12] if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s.replace("|", "\\|")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (sha256 columns shortened to 12 characters)."""
    cols = [c for c in df.columns if not c.startswith(("threshold@", "insufficient@"))]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df[cols].iterrows():
        lines.append("| " + " | ".join(_md_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_leaderboard(df: pd.DataFrame, *, csv: str | os.PathLike | None = None, md: str | os.PathLike | None = None) -> list[Path]:
    """Write the leaderboard as CSV and/or Markdown, atomically."""
    written = []
    if csv is not None:
        write_csv(csv, df)
        written.append(Path(csv))
    if md is not None:
        atomic_write_text(md, to_markdown(df))
        written.append(Path(md))
    return written
