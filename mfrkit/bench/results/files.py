"""A run folder's files: strict JSON, CSV, and reading a metrics.json back.

A run writes ``<out>/<run_id>/``::

    run.json                        settings, models, protocols, environment
    leaderboard.csv / .md           this run's rows
    <model>/<protocol>/metrics.json every metric, breakdowns, FtA, throughput
    <model>/<protocol>/scores.csv   1:1: fold,left_id,right_id,label,score,fta
    <model>/<protocol>/probes.csv   1:N: one row per probe (rank, scores, FtA)
    <model>/<protocol>/candidates.csv  1:N: top-k list of each probe
    <model>/<protocol>/fta.csv      image_id,role,reason of every failure to acquire
    <model>/<protocol>/roc.png, det.png (1:1) or cmc.png (1:N)
    report.html                     the run's HTML report (mfrkit.bench.report.page)

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

from ...atomic import atomic_path, atomic_write_text
from ...errors import MfrkitError
from ...names import csv_cell
from ...userfiles import UserFileError, read_user_json


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


def as_float(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def spreadsheet_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell (and column name) made safe for a spreadsheet
    (:func:`mfrkit.names.csv_cell`: no cell starting with ``= + - @`` runs as a formula)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):  # pandas 3 infers "str", not object
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(str(c)) for c in out.columns]
    return out


def write_csv(path: str | os.PathLike, df: pd.DataFrame, *, spreadsheet: bool = False, replace: bool = True) -> None:
    """``df`` as CSV (no index), atomically. ``spreadsheet``: a table people open in a
    spreadsheet (the leaderboard), its text cells neutralised by :func:`spreadsheet_frame`;
    the run's data files (scores.csv, ...) are read back by mfrkit and stay exact."""
    with atomic_path(path, replace=replace) as tmp:
        (spreadsheet_frame(df) if spreadsheet else df).to_csv(tmp, index=False)


def read_result(path: str | os.PathLike) -> dict:
    """A ``metrics.json`` as a dict; ReportError when it cannot be read or is not a JSON
    object (a list, a number: not a result mfrkit wrote)."""
    try:
        data = read_user_json(path, "json")
    except UserFileError as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is not a bench result (a JSON object); it holds a JSON {type(data).__name__}")
    return data
