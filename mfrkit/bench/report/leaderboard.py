"""The leaderboard: one row per (model, protocol) gathered from run folders' metrics.json.

``mfrkit leaderboard`` gathers every ``metrics.json`` under a folder into one table,
one row per (model, protocol, preprocessing, FtA policy, rule set, mfrkit version), the
latest run winning (a subset run, ``bench --where/--limit``, is another protocol:
``<protocol>@subset-<tag>``, its own sha256, a ``subset`` column saying which part, so
it never replaces the full protocol's row); :func:`collect_results` keeps the same results for the comparison
table (:mod:`.table`) and the report (:mod:`.page`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from ...atomic import atomic_write_text, check_new_file
from ...names import markdown_cell
from ..results import ReportError, RunResult, as_float, metrics_files, write_csv
from .notes import provenance_status
from .table import DEFAULT_METRICS, check_table_choice, target_key, write_table


def leaderboard_row(result: RunResult | dict) -> dict:
    """One flat leaderboard row from a result (or a ``metrics.json`` dict)."""
    r = RunResult.of(result)
    model, proto, settings, prep = r.model_info, r.protocol_info, r.settings, r.preprocessing
    m = r.metrics
    row = {
        "model": model.name,
        "protocol": proto.name,
        "kind": proto.kind,
        # bench --where/--limit: which part of the protocol (the name says <protocol>@subset-<tag>)
        "subset": None if proto.subset is None else proto.subset.text(),
        # trained, untrained or unknown (a foreign model): an untrained model's numbers are no result
        "weights": provenance_status(r.data.get("model") or {}),
        "model_sha256": model.sha256,
        "protocol_sha256": proto.sha256,
        "provider": model.provider,
        "search_device": settings.search_device,
        "batch_size": settings.batch_size,
        "tta": settings.tta or "none",
        "landmarks": prep.reference.get("landmarks"),
        "preprocessing": prep.key,
        "fta_policy": settings.fta_policy,
        "images_per_second": as_float(r.throughput.images_per_second),
        "fta_images": r.fta.images,
        "mfrkit_version": r.mfrkit_version,
        "run_id": r.run_id,
        "created": r.created,
    }
    if r.verification:
        row.update(_one_to_one_columns(r, m))
    else:
        row.update(n_probes=m.get("n_probes"), fta_probes=m.get("n_fta"))
        for k in (1, 5, 10):
            if f"rank{k}" in m:
                row[f"rank{k}"] = as_float(m[f"rank{k}"])
        for e in m.get("tpir_at_fpir", []):
            t = target_key(e["far_target"])
            row[f"tpir@fpir={t}"] = as_float(e["tar"])
            row[f"insufficient@fpir={t}"] = bool(e["insufficient_negatives"])
    return row


def _one_to_one_columns(r: RunResult, m: dict) -> dict:
    """The 1:1 columns: the run's rule set's TAR@FAR and accuracy, AUC, EER, the transfer."""
    rules = r.rules()
    chosen = r.rule_block(rules)
    row: dict = {"rules": rules}
    row.update(n_pairs=m.get("n_pairs"), fta_comparisons=m.get("n_fta"), auc=as_float(m.get("auc")))
    row.update(eer=as_float(m.get("eer", {}).get("eer")), eer_threshold=as_float(m.get("eer", {}).get("threshold")))
    acc = chosen.get("accuracy")
    if acc:
        row.update(acc_mean=as_float(acc.get("mean")), acc_std=as_float(acc.get("std")), acc_std_ddof=acc.get("ddof"),
                   acc_sem=as_float(acc.get("sem")))
    for e in chosen.get("tar_at_far", []):
        t = target_key(e["far_target"])
        row[f"tar@far={t}"] = as_float(e["tar"])
        row[f"threshold@far={t}"] = as_float(e["threshold"])
        row[f"insufficient@far={t}"] = bool(e["insufficient_negatives"])
        if rules != "mfrkit":
            row[f"far@far={t}"] = as_float(e["far"])  # the nearest point's FAR may exceed the target
    tr = r.transfer
    if tr:
        row.update(
            transfer_from=tr["from"], transfer_far=as_float(tr["far_target"]),
            transfer_fmr=as_float(tr["fmr"]), transfer_fnmr=as_float(tr["fnmr"]),
        )  # fmt: skip
    # IJB templates: the 1:N figures of each gallery beside the 1:1 ones (mfrkit's open-set rule)
    for g, block in (m.get("identification") or {}).items():
        row[f"rank1_{g}"] = as_float(block.get("rank1"))
        for e in block.get("tpir_at_fpir", []):
            t = target_key(e["far_target"])
            row[f"tpir@fpir={t}_{g}"] = as_float(e["tar"])
            row[f"insufficient@fpir={t}_{g}"] = bool(e["insufficient_negatives"])
    return row


def _checked_row(path: Path) -> dict:
    """The leaderboard row of one ``metrics.json``; ReportError naming the file when it is
    not one mfrkit wrote (``[]``, ``{}``, a field of the wrong type)."""
    return checked_result(path)[1]


def checked_result(path: Path) -> tuple[RunResult, dict]:
    """``(result, its leaderboard row)`` of one ``metrics.json``, checked as
    :func:`_checked_row` says: the one reader of a result for the leaderboard, the
    comparison table and the report."""
    result = RunResult.read(path)
    for k in ("settings", "transfer", "transfer_source"):
        if result.data.get(k) is not None and not isinstance(result.data[k], dict):
            raise ReportError(f"{path} is malformed ({k} is not a JSON object); move it out of the results folder")
    try:
        row = leaderboard_row(result)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise ReportError(f"{path} is malformed ({type(exc).__name__}: {exc}); move it out of the results folder") from None
    if not row.get("model") or not row.get("protocol"):
        raise ReportError(f"{path} names no model or protocol; move it out of the results folder")
    return result, row


def collect_leaderboard(results: str | os.PathLike) -> pd.DataFrame:
    """Every ``metrics.json`` under ``results`` as leaderboard rows.

    Rows with the same model sha256, protocol sha256, preprocessing (input size, colour,
    mean/std, alignment, landmark backend, TTA), FtA policy, rule set and mfrkit version
    are one entry: the latest (by ``created``) is kept. Sorted by protocol, then model.
    1:1 rows show the numbers of the run's rule set (``rules`` column: ``mfrkit`` or
    ``insightface``); metrics.json holds both.
    """
    files = metrics_files([results] if isinstance(results, (str, os.PathLike)) else results)
    df = pd.DataFrame([_checked_row(f) for f in files])
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
    return s[:12] if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else markdown_cell(s)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (sha256 columns shortened to 12 characters)."""
    cols = [c for c in df.columns if not c.startswith(("threshold@", "insufficient@", "far@"))]
    lines = ["| " + " | ".join(markdown_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df[cols].iterrows():
        lines.append("| " + " | ".join(_md_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_leaderboard(df: pd.DataFrame, *, csv: str | os.PathLike | None = None, md: str | os.PathLike | None = None,
                      replace: bool = True) -> list[Path]:
    """Write the leaderboard as CSV and/or Markdown, atomically (``replace=False``: an
    existing file is refused, never replaced). The CSV's text cells are made safe for a
    spreadsheet (:func:`mfrkit.names.csv_cell`)."""
    written = []
    if csv is not None:
        write_csv(csv, df, spreadsheet=True, replace=replace)
        written.append(Path(csv))
    if md is not None:
        atomic_write_text(md, to_markdown(df), replace=replace)
        written.append(Path(md))
    return written


# --- results and headline metrics (the report and the comparison table) -------------------------------


def collect_results(paths: Sequence[str | os.PathLike]) -> list[RunResult]:
    """Every ``metrics.json`` under ``paths`` (run folders, or folders of runs), one per
    model x protocol entry as :func:`collect_leaderboard` keeps them (the latest run of
    the same model, protocol, preprocessing, FtA policy and mfrkit version), sorted by
    protocol then model."""
    latest: dict[tuple, RunResult] = {}
    for f in metrics_files(paths):
        result, row = checked_result(f)
        key = tuple(row.get(k) for k in ("model_sha256", "protocol_sha256", "preprocessing", "fta_policy", "mfrkit_version"))
        key += (result.settings.rules,)
        if key not in latest or str(row.get("created")) >= str(latest[key].created):
            latest[key] = result
    return sorted(latest.values(), key=lambda r: (r.protocol, r.model, str(r.created)))


def one_run_per_model(results: Sequence[RunResult]) -> tuple[list[RunResult], list[str]]:
    """The results of each model from one run only (the run holding most of its results,
    the latest of those on a tie), so a page never sets one run's figures of a model
    beside another's; the notes say what was left out."""
    by_model: dict = {}
    for r in results:
        by_model.setdefault(r.model_sha256, []).append(r)
    kept, notes = [], []
    for rs in by_model.values():
        runs: dict = {}
        for r in rs:
            runs.setdefault(r.run_id, []).append(r)
        best = max(runs, key=lambda k: (len(runs[k]), max(str(r.created) for r in runs[k])))
        chosen = {}
        for r in sorted(runs[best], key=lambda r: str(r.created)):
            chosen[r.protocol] = r  # one rule set's copy per protocol: the latest
        kept += list(chosen.values())
        others = sorted({(k, r.protocol) for k, v in runs.items() if k != best for r in v})
        if others:
            notes.append(f"{rs[0].model}: its figures come from run {best}; results of other runs left out "
                         f"({', '.join(f'{p} in {k}' for k, p in others)}): report those runs on their own")
    order = {id(r): i for i, r in enumerate(results)}
    return sorted(kept, key=lambda r: order[id(r)]), notes


def write_leaderboards(
    results: Sequence[str | os.PathLike], *, csv=None, md=None, table=None, metrics: Sequence[str] = DEFAULT_METRICS,
    intervals: bool = True, rules: str | None = None, force: bool = False,
) -> tuple[pd.DataFrame, list[Path]]:
    """``mfrkit leaderboard``: the leaderboard of ``results`` and the files asked for
    (``csv`` / ``md``: the leaderboard; ``table``: the comparison table, see
    :func:`write_table`). An existing file is replaced only with ``force``: every one is
    checked before anything is read or written."""
    check_table_choice(None, metrics, rules)  # --metric / --rules are checked even without --table
    for path in (csv, md, table):
        if path is not None:
            check_new_file(path, force=force)
    board = collect_leaderboard(results)
    written = write_leaderboard(board, csv=csv, md=md, replace=force)
    if table is not None:
        written.append(write_table(collect_results(results), table, metrics=metrics, intervals=intervals, rules=rules,
                                   replace=force))
    return board, written
