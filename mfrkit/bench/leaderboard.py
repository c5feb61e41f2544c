"""The leaderboard: one row per (model, protocol) gathered from run folders' metrics.json.

``mfrkit leaderboard`` gathers every ``metrics.json`` under a folder into one table,
one row per (model, protocol, preprocessing, FtA policy), the latest run winning.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..atomic import atomic_write_text
from .result_notes import provenance_status
from .results import METRICS_NAME, ReportError, as_float, read_result, write_csv


#: Protocol kinds scored as 1:1 comparisons (IJB templates also hold 1:N figures).
VERIFICATION_KINDS = ("verification", "1:1", "all-pairs", "ijb-templates")


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
        # trained, untrained or unknown (a foreign model): an untrained model's numbers are no result
        "weights": provenance_status(model),
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
    if proto.get("kind") in VERIFICATION_KINDS:
        rules = settings.get("rules") or "mfrkit"
        chosen = m if rules == "mfrkit" else (m.get(rules) or {})
        row["rules"] = rules
        row.update(n_pairs=m.get("n_pairs"), fta_comparisons=m.get("n_fta"), auc=as_float(m.get("auc")))
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
        # IJB templates: the 1:N figures of each gallery beside the 1:1 ones (mfrkit's open-set rule)
        for g, block in (m.get("identification") or {}).items():
            row[f"rank1_{g}"] = as_float(block.get("rank1"))
            for r in block.get("tpir_at_fpir", []):
                t = _target(r["far_target"])
                row[f"tpir@fpir={t}_{g}"] = as_float(r["tar"])
                row[f"insufficient@fpir={t}_{g}"] = bool(r["insufficient_negatives"])
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


def metrics_files(roots: Sequence[str | os.PathLike]) -> list[Path]:
    """Every ``metrics.json`` under each root (a run folder or a folder of runs), resolved,
    each once, in order; a root that is not a folder or holds none is an error."""
    files: list[Path] = []
    for p in roots:
        root = Path(p)
        if not root.is_dir():
            raise ReportError(f"no results folder at {root}")
        found = sorted(root.rglob(METRICS_NAME))
        if not found:
            raise ReportError(f"no {METRICS_NAME} under {root}; run `mfrkit bench` first")
        files += found
    return list(dict.fromkeys(f.resolve() for f in files))


def _checked_row(path: Path) -> dict:
    """The leaderboard row of one ``metrics.json``; ReportError naming the file when it is
    not one mfrkit wrote (``[]``, ``{}``, a field of the wrong type)."""
    result = read_result(path)
    sections = ("model", "protocol", "metrics")
    if not isinstance(result, dict) or not all(isinstance(result.get(k), dict) for k in sections):
        raise ReportError(f"{path} is not a metrics.json written by mfrkit bench (expected a JSON object with "
                          f"{', '.join(sections)}); move it out of the results folder")
    try:
        row = leaderboard_row(result)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise ReportError(f"{path} is malformed ({type(exc).__name__}: {exc}); move it out of the results folder") from None
    if not row.get("model") or not row.get("protocol"):
        raise ReportError(f"{path} names no model or protocol; move it out of the results folder")
    return row


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


# --- results and headline metrics (the report and the comparison table) -------------------------------



@dataclass(frozen=True)
class Result:
    """One model x protocol result of a run: its ``metrics.json`` and its folder."""

    data: dict
    folder: Path

    @property
    def model(self) -> str:
        return str(self.data.get("model", {}).get("name"))

    @property
    def protocol(self) -> str:
        return str(self.data.get("protocol", {}).get("name"))

    @property
    def spec(self) -> str | None:
        spec = self.data.get("protocol", {}).get("spec")
        return str(spec) if spec else None

    @property
    def kind(self) -> str:
        return str(self.data.get("protocol", {}).get("kind"))

    @property
    def verification(self) -> bool:
        return self.kind in VERIFICATION_KINDS


def collect_results(paths: Sequence[str | os.PathLike]) -> list[Result]:
    """Every ``metrics.json`` under ``paths`` (run folders, or folders of runs), one per
    model x protocol entry as :func:`collect_leaderboard` keeps them (the latest run of
    the same model, protocol, preprocessing, FtA policy and mfrkit version), sorted by
    protocol then model."""
    latest: dict[tuple, Result] = {}
    for f in metrics_files(paths):
        data = read_result(f)
        row = leaderboard_row(data)
        key = tuple(row.get(k) for k in ("model_sha256", "protocol_sha256", "preprocessing", "fta_policy", "mfrkit_version"))
        key += ((data.get("settings") or {}).get("rules"),)
        if key not in latest or str(row.get("created")) >= str(latest[key].data.get("created")):
            latest[key] = Result(data, f.parent)
    return sorted(latest.values(), key=lambda r: (r.protocol, r.model, str(r.data.get("created"))))


#: Reading order of protocol specs in tables and reports: the unmasked baseline first,
#: then what masks do to it, then partial faces.
SPEC_ORDER = ("umr-ump", "umr-mp", "mr-ump", "mr-mp", "partial-same", "partial-holistic", "partial-cross")


def protocol_order(results: Sequence["Result"]) -> list[str]:
    """Protocol names of ``results`` in reading order: by spec (:data:`SPEC_ORDER`), then
    name; protocols of other specs last."""
    spec_of = {}
    for r in results:
        spec_of.setdefault(r.protocol, r.spec)
    rank = {s: i for i, s in enumerate(SPEC_ORDER)}
    return sorted(spec_of, key=lambda name: (rank.get(spec_of[name], len(SPEC_ORDER)), name))


def rule_set(result: dict, wanted: str | None = None) -> str:
    """The rule set whose numbers are shown: ``wanted``, else the run's (``settings.rules``),
    else ``mfrkit``."""
    return wanted or (result.get("settings") or {}).get("rules") or "mfrkit"


def _rule_block(result: dict, rules: str) -> dict:
    m = result.get("metrics") or {}
    return m if rules == "mfrkit" else (m.get(rules) or {})


@dataclass(frozen=True)
class MetricValue:
    """A headline number with its interval (None where the metric has none) and a flag
    (``insufficient``: the FAR target cannot be resolved with that many impostors)."""

    value: float
    low: float | None = None
    high: float | None = None
    flag: str | None = None


@dataclass(frozen=True)
class MetricSpec:
    """How to read one comparison-table metric from a result."""

    name: str
    label: str
    higher_is_better: bool
    verification: bool  # a 1:1 metric (else 1:N)


def short_target(t: float) -> str:
    """``1e-3`` rather than ``0.001``; ``0.1`` stays."""
    if t >= 0.01:
        return f"{t:g}"
    mantissa, exponent = f"{t:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _num(v) -> float | None:
    f = as_float(v)
    return None if math.isnan(f) else f


def parse_metric(name: str) -> MetricSpec:
    """A metric name: ``tar@far=1e-3``, ``auc``, ``eer``, ``acc``, ``transfer_fnmr``,
    ``transfer_fmr`` (1:1); ``rank1``, ``rank5``, ``rank10``, ``tpir@fpir=1e-2`` (1:N)."""
    key = name.strip().lower()
    for prefix, label, verif in (("tar@far=", "TAR@FAR", True), ("tpir@fpir=", "TPIR@FPIR", False)):
        if key.startswith(prefix):
            try:
                t = float(key[len(prefix) :])
            except ValueError:
                break
            return MetricSpec(f"{prefix}{_target(t)}", f"{label}={short_target(t)}", True, verif)
    fixed = {
        "auc": MetricSpec("auc", "AUC", True, True),
        "eer": MetricSpec("eer", "EER", False, True),
        "acc": MetricSpec("acc", "accuracy", True, True),
        "transfer_fnmr": MetricSpec("transfer_fnmr", "FNMR at the transferred threshold", False, True),
        "transfer_fmr": MetricSpec("transfer_fmr", "FMR at the transferred threshold", False, True),
        "rank1": MetricSpec("rank1", "rank-1", True, False),
        "rank5": MetricSpec("rank5", "rank-5", True, False),
        "rank10": MetricSpec("rank10", "rank-10", True, False),
    }
    if key in fixed:
        return fixed[key]
    raise ReportError(
        f"unknown metric {name!r}; choose tar@far=<FAR>, auc, eer, acc, transfer_fnmr, transfer_fmr (1:1) or "
        "rank1, rank5, rank10, tpir@fpir=<FPIR> (1:N)"
    )


#: The headline of each kind when no metric is chosen.
DEFAULT_METRICS = ("tar@far=1e-3", "rank1")


def metric_value(result: dict, spec: MetricSpec, rules: str | None = None) -> MetricValue | None:
    """``spec``'s value in ``result`` (a metrics.json dict) by rule set ``rules`` (see
    :func:`rule_set`); None when the result does not hold it (another kind of protocol,
    a target not computed, no transfer)."""
    kind = (result.get("protocol") or {}).get("kind")
    if (kind in VERIFICATION_KINDS) != spec.verification:
        return None
    m = result.get("metrics") or {}
    block = _rule_block(result, rule_set(result, rules))
    name = spec.name
    if name.startswith(("tar@far=", "tpir@fpir=")):
        target = float(name.split("=", 1)[1])
        rows = block.get("tar_at_far", []) if spec.verification else m.get("tpir_at_fpir", [])
        for r in rows:
            if math.isclose(float(r["far_target"]), target, rel_tol=1e-9):
                v = _num(r.get("tar"))
                if v is None:
                    return None
                flag = "insufficient" if r.get("insufficient_negatives") else None
                return MetricValue(v, _num(r.get("tar_ci_low")), _num(r.get("tar_ci_high")), flag)
        return None
    if name == "auc":
        v = _num(m.get("auc"))
        return None if v is None else MetricValue(v)
    if name == "eer":
        v = _num((m.get("eer") or {}).get("eer"))
        return None if v is None else MetricValue(v)
    if name == "acc":
        acc = block.get("accuracy") or {}
        v = _num(acc.get("mean"))
        boot = (block.get("bootstrap") or {}).get("accuracy") or {}
        return None if v is None else MetricValue(v, _num(boot.get("low")), _num(boot.get("high")))
    if name.startswith("transfer_"):
        tr = result.get("transfer") or {}
        rate = name.split("_", 1)[1]
        v = _num(tr.get(rate))
        return None if v is None else MetricValue(v, _num(tr.get(f"{rate}_ci_low")), _num(tr.get(f"{rate}_ci_high")))
    v = _num(m.get(name))
    if v is None:
        return None
    lo, hi = (m.get("rank1_ci") or [None, None]) if name == "rank1" else (None, None)
    return MetricValue(v, _num(lo), _num(hi))


def model_labels(results: Sequence[Result]) -> dict[str, str]:
    """A row label per model sha256: its name, with the sha256's first 8 characters when
    two different models share a name."""
    names: dict[str, set] = {}
    for r in results:
        names.setdefault(r.model, set()).add(r.data.get("model", {}).get("sha256"))
    out = {}
    for r in results:
        sha = r.data.get("model", {}).get("sha256")
        out[sha] = r.model if len(names[r.model]) == 1 else f"{r.model} ({str(sha)[:8]})"
    return out


def pivot_table(
    results: Sequence[Result], metrics: Sequence[str] = DEFAULT_METRICS, *, rules: str | None = None
) -> tuple[pd.DataFrame, dict[tuple[str, str], MetricValue]]:
    """The comparison table: one row per model, one column per (protocol, metric) that
    some result holds. Returns the values (DataFrame, NaN where missing; ``attrs["specs"]``
    maps each column to its :class:`MetricSpec`) and the :class:`MetricValue` of each
    (model label, column label) cell."""
    specs = [parse_metric(m) for m in metrics]
    labels = model_labels(results)
    cells: dict[tuple[str, str], MetricValue] = {}
    columns: list[str] = []
    col_spec: dict[str, MetricSpec] = {}
    for proto in protocol_order(results):
        for spec in specs:
            col = f"{proto} {spec.label}" if len(specs) > 1 else proto
            for r in results:
                if r.protocol != proto:
                    continue
                mv = metric_value(r.data, spec, rules)
                if mv is not None:
                    cells[(labels[r.data.get("model", {}).get("sha256")], col)] = mv
                    if col not in columns:
                        columns.append(col)
                        col_spec[col] = spec
    rows = list(dict.fromkeys(labels[r.data.get("model", {}).get("sha256")] for r in results))
    table = pd.DataFrame(
        [[cells[(m, c)].value if (m, c) in cells else math.nan for c in columns] for m in rows],
        index=pd.Index(rows, name="model"), columns=columns,
    )  # fmt: skip
    table.attrs["specs"] = col_spec  # column -> MetricSpec (direction of "best")
    return table, cells


def _fmt(v: float | None, digits: int) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table_text(
    table: pd.DataFrame, cells: dict, *, fmt: str, intervals: bool = True, digits: int = 4, caption: str = ""
) -> str:
    """The comparison table as ``md``, ``csv`` or ``tex``. With ``intervals`` each value
    is followed by its interval (``[low, high]``; CSV: ``_low`` / ``_high`` columns); a
    value whose FAR target is not resolvable with the impostors at hand gets ``†``."""
    if fmt == "csv":
        out = pd.DataFrame(index=table.index)
        for col in table.columns:
            out[col] = table[col]
            if intervals:
                out[f"{col}_low"] = [getattr(cells.get((m, col)), "low", None) for m in table.index]
                out[f"{col}_high"] = [getattr(cells.get((m, col)), "high", None) for m in table.index]
            out[f"{col}_insufficient"] = [getattr(cells.get((m, col)), "flag", None) == "insufficient" for m in table.index]
        return out.reset_index().to_csv(index=False)

    def cell(m: str, col: str, tex: bool) -> str:
        mv = cells.get((m, col))
        if mv is None:
            return "--" if tex else "–"
        text = _fmt(mv.value, digits)
        if intervals and mv.low is not None and mv.high is not None:
            text += f" [{_fmt(mv.low, digits)}, {_fmt(mv.high, digits)}]"
        if mv.flag == "insufficient":
            text += r"$^\dagger$" if tex else " †"
        return text

    flagged = any(c.flag == "insufficient" for c in cells.values())
    if fmt == "md":
        lines = ["| model | " + " | ".join(c.replace("|", "\\|") for c in table.columns) + " |"]
        lines.append("|---|" + "---|" * len(table.columns))
        for m in table.index:
            lines.append(f"| {m} | " + " | ".join(cell(m, c, False) for c in table.columns) + " |")
        notes = [caption] if caption else []
        if flagged:
            notes.append("† FAR target below 1 / (impostor comparisons): not resolvable with this protocol.")
        return "\n".join(lines) + "\n" + "".join(f"\n{n}\n" for n in notes)
    if fmt == "tex":
        def esc(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
                s = s.replace(a, b)
            return s

        lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\hline"]
        lines.append("model & " + " & ".join(esc(c) for c in table.columns) + r" \\")
        lines.append(r"\hline")
        for m in table.index:
            lines.append(esc(m) + " & " + " & ".join(cell(m, c, True) for c in table.columns) + r" \\")
        lines += [r"\hline", r"\end{tabular}"]
        cap = esc(caption) + (r" $^\dagger$FAR target not resolvable with this many impostor comparisons." if flagged else "")
        if cap.strip():
            lines.append(r"\caption{" + cap.strip() + "}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"
    raise ReportError(f"unknown table format {fmt!r}; choose md, csv or tex")


def table_caption(results: Sequence[Result], rules: str | None = None) -> str:
    """What the table's numbers follow: the rule set(s) and the intervals' kind and level."""
    used = sorted({rule_set(r.data, rules) for r in results if r.verification})
    levels = sorted({float((r.data.get("settings") or {}).get("confidence") or 0.95) for r in results})
    level = "/".join(f"{c:.0%}" for c in levels)
    text = f"1:1 numbers by the {' and '.join(used)} rule set{'s' if len(used) > 1 else ''}. " if used else ""
    return text + f"Intervals: {level} Clopper-Pearson (TAR, rank-1, error rates), identity bootstrap (accuracy)."


def write_table(
    results: Sequence[Result], path: str | os.PathLike, *, metrics: Sequence[str] = DEFAULT_METRICS,
    intervals: bool = True, rules: str | None = None,
) -> Path:
    """Write the comparison table (:func:`pivot_table`) to ``path``; the format comes from
    its extension (``.md``, ``.csv``, ``.tex``)."""
    path = Path(path)
    fmt = {".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "tex"}.get(path.suffix.lower())
    if fmt is None:
        raise ReportError(f"cannot tell the table format of {path}: name it .md, .csv or .tex")
    table, cells = pivot_table(results, metrics, rules=rules)
    if table.empty or not len(table.columns):
        raise ReportError(f"no result holds the metric(s) {', '.join(metrics)}")
    caption = table_caption(results, rules)
    atomic_write_text(path, table_text(table, cells, fmt=fmt, intervals=intervals, caption=caption))
    return path


def write_leaderboards(
    results: Sequence[str | os.PathLike], *, csv=None, md=None, table=None, metrics: Sequence[str] = DEFAULT_METRICS,
    intervals: bool = True, rules: str | None = None,
) -> tuple[pd.DataFrame, list[Path]]:
    """``mfrkit leaderboard``: the leaderboard of ``results`` and the files asked for
    (``csv`` / ``md``: the leaderboard; ``table``: the comparison table, see :func:`write_table`)."""
    board = collect_leaderboard(results)
    written = write_leaderboard(board, csv=csv, md=md)
    if table is not None:
        written.append(write_table(collect_results(results), table, metrics=metrics, intervals=intervals, rules=rules))
    return board, written
