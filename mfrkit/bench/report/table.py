"""The comparison table: one row per model, one column per (protocol, headline metric).

``mfrkit leaderboard --table`` writes it as Markdown, CSV or LaTeX; the report shows it
as its first section. Each cell is a :class:`MetricValue` (the value, its interval, a
flag when the FAR target cannot be resolved) read from a result by a :class:`MetricSpec`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ...atomic import atomic_write_text
from ...names import latex_text, markdown_cell
from ..results import ReportError, RunResult, as_float
from ..results.files import spreadsheet_frame


def target_key(t) -> str:
    """A FAR target as the leaderboard's column names write it (``1e-03``)."""
    return f"{float(t):.0e}"


#: Reading order of protocol specs in tables and reports: the unmasked baseline first,
#: then what masks do to it, then partial faces.
SPEC_ORDER = ("umr-ump", "umr-mp", "mr-ump", "mr-mp", "partial-same", "partial-holistic", "partial-cross")


def protocol_order(results: Sequence[RunResult]) -> list[str]:
    """Protocol names of ``results`` in reading order: by spec (:data:`SPEC_ORDER`), then
    name; protocols of other specs last."""
    spec_of = {}
    for r in results:
        spec_of.setdefault(r.protocol, r.spec)
    rank = {s: i for i, s in enumerate(SPEC_ORDER)}
    return sorted(spec_of, key=lambda name: (rank.get(spec_of[name], len(SPEC_ORDER)), name))


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
    ``transfer_fmr`` (1:1); ``rank1``, ``rank5``, ``rank10``, ``tpir@fpir=1e-2`` (1:N).
    A target must be a rate in (0, 1] (``nan``, ``-1`` or ``2`` are refused)."""
    key = name.strip().lower()
    for prefix, label, verif in (("tar@far=", "TAR@FAR", True), ("tpir@fpir=", "TPIR@FPIR", False)):
        if key.startswith(prefix):
            try:
                t = float(key[len(prefix) :])
            except ValueError:
                break
            if not (math.isfinite(t) and 0 < t <= 1):
                raise ReportError(f"metric {name!r}: the {label.split('@')[1]} target must be a rate in (0, 1], "
                                  f"e.g. {prefix}1e-3")
            return MetricSpec(f"{prefix}{target_key(t)}", f"{label}={short_target(t)}", True, verif)
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


def check_rules(rules: str | None) -> str | None:
    """``rules`` if it names a rule set (or is None: each run's own); ReportError listing
    the rule sets otherwise."""
    from ..metrics import RULE_SETS

    if rules is not None and rules not in RULE_SETS.names():
        raise ReportError(f"unknown rule set {rules!r}; choose {' or '.join(RULE_SETS.names())}")
    return rules


def check_table_choice(results: Sequence[RunResult] | None, metrics: Sequence[str], rules: str | None) -> list[MetricSpec]:
    """The one check of ``--metric`` and ``--rules`` for the leaderboard, its comparison
    table and the report: every metric parses, the rule set exists, and (given
    ``results``) at least one result holds one of the metrics, so nothing answers an
    impossible request with an empty table. Returns the parsed metrics.

    Raises
    ------
    ReportError
        Naming the bad value, or the metrics the results do hold.
    """
    specs = [parse_metric(m) for m in metrics]
    check_rules(rules)
    if results is not None and not any(metric_value(r, spec, rules) is not None for r in results for spec in specs):
        held = sorted({t for r in results for t in _targets_held(RunResult.of(r).data)})
        hint = f"; the results hold {', '.join(held)}" if held else ""
        raise ReportError(f"no result holds the metric(s) {', '.join(metrics)}{hint}")
    return specs


def _targets_held(result: dict) -> list[str]:
    m = result.get("metrics") or {}
    if not isinstance(m, dict):
        return []
    out = [f"tar@far={short_target(float(r['far_target']))}" for r in m.get("tar_at_far") or [] if isinstance(r, dict) and "far_target" in r]
    # TPIR@FPIR rows are TarAtFar records too (far_target holds the FPIR)
    out += [f"tpir@fpir={short_target(float(r['far_target']))}" for r in m.get("tpir_at_fpir") or [] if isinstance(r, dict) and "far_target" in r]
    return out + [k for k in ("auc", "rank1", "rank5", "rank10") if isinstance(m.get(k), (int, float))]


#: Said wherever an insightface-rule TAR of 0 is shown (faithful to insightface, easy to misread).
INSIGHTFACE_ZERO_NOTE = ("insightface rule: a TAR of 0 can mean perfect separation, not failure: it takes the first ROC "
                         "point nearest the FAR target, and where no impostor passes any threshold that is the (FAR 0, "
                         "TAR 0) point; the mfrkit rule set gives such a model its TAR.")


def insightface_zero_shown(results: Sequence[RunResult], specs: Sequence[MetricSpec], rules: str | None = None) -> bool:
    """Whether a TAR@FAR of 0 by the insightface rule set is among the numbers shown."""
    for r in map(RunResult.of, results):
        if not r.verification or r.rules(rules) != "insightface":
            continue
        for spec in specs:
            if spec.name.startswith("tar@far="):
                mv = metric_value(r, spec, rules)
                if mv is not None and mv.value == 0:
                    return True
    return False


#: The headline of each kind when no metric is chosen.
DEFAULT_METRICS = ("tar@far=1e-3", "rank1")


def metric_value(result: RunResult | dict, spec: MetricSpec, rules: str | None = None) -> MetricValue | None:
    """``spec``'s value in ``result`` (or a metrics.json dict) by rule set ``rules`` (see
    :meth:`RunResult.rules`); None when the result does not hold it (another kind of
    protocol, a target not computed, no transfer)."""
    result = RunResult.of(result)
    if result.verification != spec.verification:
        return None
    m = result.metrics
    block = result.rule_block(result.rules(rules))
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
        tr = result.transfer or {}
        rate = name.split("_", 1)[1]
        v = _num(tr.get(rate))
        return None if v is None else MetricValue(v, _num(tr.get(f"{rate}_ci_low")), _num(tr.get(f"{rate}_ci_high")))
    v = _num(m.get(name))
    if v is None:
        return None
    lo, hi = (m.get("rank1_ci") or [None, None]) if name == "rank1" else (None, None)
    return MetricValue(v, _num(lo), _num(hi))


def model_labels(results: Sequence[RunResult]) -> dict[str, str]:
    """A row label per model sha256: its name, with the sha256's first 8 characters when
    two different models share a name."""
    names: dict[str, set] = {}
    for r in results:
        names.setdefault(r.model, set()).add(r.model_sha256)
    out = {}
    for r in results:
        sha = r.model_sha256
        out[sha] = r.model if len(names[r.model]) == 1 else f"{r.model} ({str(sha)[:8]})"
    return out


def pivot_table(
    results: Sequence[RunResult], metrics: Sequence[str] = DEFAULT_METRICS, *, rules: str | None = None
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
                mv = metric_value(r, spec, rules)
                if mv is not None:
                    cells[(labels[r.model_sha256], col)] = mv
                    if col not in columns:
                        columns.append(col)
                        col_spec[col] = spec
    rows = list(dict.fromkeys(labels[r.model_sha256] for r in results))
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
        return spreadsheet_frame(out.reset_index()).to_csv(index=False)

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
        lines = ["| model | " + " | ".join(markdown_cell(c) for c in table.columns) + " |"]
        lines.append("|---|" + "---|" * len(table.columns))
        for m in table.index:
            lines.append(f"| {markdown_cell(m)} | " + " | ".join(cell(m, c, False) for c in table.columns) + " |")
        notes = [markdown_cell(caption)] if caption else []
        if flagged:
            notes.append("† FAR target below 1 / (impostor comparisons): not resolvable with this protocol.")
        return "\n".join(lines) + "\n" + "".join(f"\n{n}\n" for n in notes)
    if fmt == "tex":
        lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\hline"]
        lines.append("model & " + " & ".join(latex_text(c) for c in table.columns) + r" \\")
        lines.append(r"\hline")
        for m in table.index:
            lines.append(latex_text(m) + " & " + " & ".join(cell(m, c, True) for c in table.columns) + r" \\")
        lines += [r"\hline", r"\end{tabular}"]
        cap = latex_text(caption) + (r" $^\dagger$FAR target not resolvable with this many impostor comparisons." if flagged else "")
        if cap.strip():
            lines.append(r"\caption{" + cap.strip() + "}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"
    raise ReportError(f"unknown table format {fmt!r}; choose md, csv or tex")


def table_caption(results: Sequence[RunResult], rules: str | None = None) -> str:
    """What the table's numbers follow: the rule set(s) and the intervals' kind and level."""
    used = sorted({r.rules(rules) for r in results if r.verification})
    levels = sorted({float(r.settings.confidence or 0.95) for r in results})
    level = "/".join(f"{c:.0%}" for c in levels)
    text = f"1:1 numbers by the {' and '.join(used)} rule set{'s' if len(used) > 1 else ''}. " if used else ""
    return text + f"Intervals: {level} Clopper-Pearson (TAR, rank-1, error rates), identity bootstrap (accuracy)."


def write_table(
    results: Sequence[RunResult], path: str | os.PathLike, *, metrics: Sequence[str] = DEFAULT_METRICS,
    intervals: bool = True, rules: str | None = None, replace: bool = True,
) -> Path:
    """Write the comparison table (:func:`pivot_table`) to ``path``; the format comes from
    its extension (``.md``, ``.csv``, ``.tex``). ``replace=False``: an existing file is
    refused."""
    path = Path(path)
    fmt = {".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "tex"}.get(path.suffix.lower())
    if fmt is None:
        raise ReportError(f"cannot tell the table format of {path}: name it .md, .csv or .tex")
    specs = check_table_choice(results, metrics, rules)
    table, cells = pivot_table(results, metrics, rules=rules)
    caption = table_caption(results, rules)
    if insightface_zero_shown(results, specs, rules):
        caption += " " + INSIGHTFACE_ZERO_NOTE
    atomic_write_text(path, table_text(table, cells, fmt=fmt, intervals=intervals, caption=caption), replace=replace)
    return path
