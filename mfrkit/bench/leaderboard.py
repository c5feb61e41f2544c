"""The leaderboard: one row per (model, protocol) gathered from run folders' metrics.json.

``mfrkit leaderboard`` gathers every ``metrics.json`` under a folder into one table,
one row per (model, protocol, preprocessing, FtA policy), the latest run winning.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ..atomic import atomic_write_text
from .results import METRICS_NAME, ReportError, as_float, read_result, write_csv


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
        "images_per_second": as_float(result.get("throughput", {}).get("images_per_second")),
        "fta_images": result.get("fta", {}).get("images"),
        "mfrkit_version": result.get("mfrkit_version"),
        "run_id": result.get("run_id"),
        "created": result.get("created"),
    }
    if proto.get("kind") in ("verification", "1:1", "all-pairs"):
        rules = settings.get("rules") or "mfrkit"
        chosen = m if rules == "mfrkit" else (m.get(rules) or {})
        row["rules"] = rules
        row.update(n_pairs=m.get("n_pairs"), fta_pairs=m.get("n_fta"), auc=as_float(m.get("auc")))
        row.update(eer=as_float(m.get("eer", {}).get("eer")), eer_threshold=as_float(m.get("eer", {}).get("threshold")))
        acc = chosen.get("accuracy")
        if acc:
            row.update(acc_mean=as_float(acc.get("mean")), acc_std=as_float(acc.get("std")), acc_std_ddof=acc.get("ddof"),
                       acc_sem=as_float(acc.get("sem")))
        for r in chosen.get("tar_at_far", []):
            t = _target(r["far_target"])
            row[f"tar@far={t}"] = as_float(r["tar"])
            row[f"threshold@far={t}"] = as_float(r["threshold"])
            row[f"insufficient@far={t}"] = bool(r["insufficient_negatives"])
            if rules != "mfrkit":
                row[f"far@far={t}"] = as_float(r["far"])  # the nearest point's FAR may exceed the target
        tr = result.get("transfer")
        if tr:
            row.update(
                transfer_from=tr["from"], transfer_far=as_float(tr["far_target"]),
                transfer_fmr=as_float(tr["fmr"]), transfer_fnmr=as_float(tr["fnmr"]),
            )  # fmt: skip
    else:
        row.update(n_probes=m.get("n_probes"), fta_probes=m.get("n_fta"))
        for r in (1, 5, 10):
            if f"rank{r}" in m:
                row[f"rank{r}"] = as_float(m[f"rank{r}"])
        for r in m.get("tpir_at_fpir", []):
            t = _target(r["far_target"])
            row[f"tpir@fpir={t}"] = as_float(r["tar"])
            row[f"insufficient@fpir={t}"] = bool(r["insufficient_negatives"])
    return row


def collect_leaderboard(results: str | os.PathLike) -> pd.DataFrame:
    """Every ``metrics.json`` under ``results`` as leaderboard rows.

    Rows with the same model sha256, protocol sha256, preprocessing (input size, colour,
    mean/std, alignment, landmark backend, TTA), FtA policy, rule set and mfrkit version
    are one entry: the latest (by ``created``) is kept. Sorted by protocol, then model.
    1:1 rows show the numbers of the run's rule set (``rules`` column: ``mfrkit`` or
    ``insightface``); metrics.json holds both.
    """
    root = Path(results)
    if not root.is_dir():
        raise ReportError(f"no results folder at {root}")
    files = sorted(root.rglob(METRICS_NAME))
    if not files:
        raise ReportError(f"no {METRICS_NAME} under {root}; run `mfrkit bench` first")
    df = pd.DataFrame([leaderboard_row(read_result(f)) for f in files])
    key = ["model_sha256", "protocol_sha256", "preprocessing", "fta_policy", "rules", "mfrkit_version"]
    if "rules" not in df.columns:
        df["rules"] = None
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
    cols = [c for c in df.columns if not c.startswith(("threshold@", "insufficient@", "far@"))]
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
