"""The console's results table: every number with what it rests on.

:func:`results_tables` turns a run's results (``metrics.json`` dicts) into plain tables
(:class:`ConsoleTable`: text cells with a style word) that the CLI draws with rich, and
the notes printed under them. One 1:1 table (IJB templates included) and one 1:N table
(IJB galleries S1 / S2 as extra rows) at most; each row is one model x protocol:

* the model, marked ``untrained`` or ``provenance unknown`` where it is not a trained
  model (:func:`~mfrkit.bench.report.notes.provenance_status`);
* the counts the numbers rest on: ``N genuine / N impostor`` (1:1), ``N mated / N
  non-mated`` probes (1:N);
* AUC, EER, TAR@FAR (1:1) or rank-1 and TPIR@FPIR (1:N) **by the run's rule set** (named
  in the title), each with its interval (Clopper-Pearson), and ``insufficient`` where the
  protocol has fewer impostors (non-mated probes) than ``1 / FAR``;
* failures to acquire, named as what they count: ``images`` (distinct images that
  could not be embedded) and ``comparisons`` (comparisons or probes they touch);
* the threshold transfer's FNMR / FMR where the run made one, and images per second
  (with the onnxruntime provider; ``cached`` when every embedding came from the cache).

Notes: one line per subset protocol (``bench --where/--limit``: its numbers are not the
full protocol's), one warning per protocol too small for its numbers, the untrained models, and
where the two rule sets differ by more than the interval (:mod:`~mfrkit.bench.report.notes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ...protocols.kinds import is_one_to_one
from ..results import RunResult
from .notes import count_of, provenance_status, rule_differences, short_far, size_warning, subset_note
from .table import MetricValue, metric_value, parse_metric

#: FAR targets the 1:1 table shows (all are in metrics.json and the CSV).
CONSOLE_FAR = (1e-3, 1e-4)
#: FPIR target the 1:N table shows.
CONSOLE_FPIR = 1e-2


@dataclass
class ConsoleTable:
    """A table to draw: ``columns`` (name, right-aligned?) and rows of (text, style) cells;
    style is None, ``warn`` (a flagged number) or ``bad`` (an untrained model)."""

    title: str
    columns: list[tuple[str, bool]]
    rows: list[list[tuple[str, str | None]]] = field(default_factory=list)


def _num(v, digits: int = 4) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(f) else f"{f:.{digits}f}"


def _value(mv: MetricValue | None) -> tuple[str, str | None]:
    if mv is None:
        return "", None
    text = _num(mv.value)
    if mv.low is not None and mv.high is not None:
        text += f" [{_num(mv.low, 3)}, {_num(mv.high, 3)}]"
    if mv.flag == "insufficient":
        return text + " insufficient", "warn"
    return text, None


def _model_cell(result: dict) -> tuple[str, str | None]:
    model = result.get("model") or {}
    status = provenance_status(model)
    name = str(model.get("name"))
    if status == "untrained":
        return f"{name} (untrained)", "bad"
    if status == "unknown":
        return f"{name} (provenance unknown)", None
    return name, None


def _fta_cell(result: dict, comparisons) -> str:
    images = count_of((result.get("fta") or {}).get("images"))
    if not images and not comparisons:
        return "0"
    return f"{images:,} images / {count_of(comparisons):,} comparisons"


def _transfer_cell(result: dict) -> str:
    tr = result.get("transfer")
    if not tr:
        return ""
    return f"FNMR {_num(tr.get('fnmr'), 3)}, FMR {_num(tr.get('fmr'), 5)} ({tr.get('from')} @ {short_far(float(tr['far_target']))})"


def _speed_cell(result: dict) -> str:
    rate = (result.get("throughput") or {}).get("images_per_second")
    provider = (result.get("model") or {}).get("provider") or "?"
    text = _num(rate, 1)
    return f"{text} ({provider})" if text else f"cached ({provider})"


def _verification_row(r: dict, rules: str | None) -> list[tuple[str, str | None]]:
    m = r.get("metrics") or {}
    counts = f"{count_of(m.get('n_genuine')):,} / {count_of(m.get('n_impostor')):,}"
    cells = [_model_cell(r), (str((r.get("protocol") or {}).get("name")), None), (counts, None),
             (_num(m.get("auc")), None), (_num((m.get("eer") or {}).get("eer")), None)]
    cells += [_value(metric_value(r, parse_metric(f"tar@far={t:g}"), rules)) for t in CONSOLE_FAR]
    cells += [(_fta_cell(r, m.get("n_fta")), None), (_transfer_cell(r), None), (_speed_cell(r), None)]
    return cells


def _identification_rows(r: dict) -> list[list[tuple[str, str | None]]]:
    m = r.get("metrics") or {}
    proto = str((r.get("protocol") or {}).get("name"))
    blocks = [(proto, m)] if not is_one_to_one((r.get("protocol") or {}).get("kind")) else \
        [(f"{proto} gallery {g}", b) for g, b in (m.get("identification") or {}).items()]
    rows = []
    for label, b in blocks:
        counts = f"{count_of(b.get('n_mated')):,} / {count_of(b.get('n_nonmated')):,}"
        rank1 = MetricValue(float(b["rank1"]), *(b.get("rank1_ci") or (None, None))) if b.get("rank1") is not None else None
        tpir = next((x for x in b.get("tpir_at_fpir") or [] if math.isclose(float(x["far_target"]), CONSOLE_FPIR)), None)
        tv = None if tpir is None else MetricValue(float(tpir["tar"]), tpir.get("tar_ci_low"), tpir.get("tar_ci_high"),
                                                   "insufficient" if tpir.get("insufficient_negatives") else None)
        fta = b.get("n_fta") or 0
        rows.append([_model_cell(r), (label, None), (counts, None), _value(rank1), _value(tv), (_fta_cell(r, fta), None),
                     (_speed_cell(r), None)])
    return rows


def results_tables(results: Sequence[dict], *, rules: str | None = None) -> tuple[list[ConsoleTable], list[str]]:
    """The console tables and notes of a run's results (see the module docstring).

    Parameters
    ----------
    results : RunResults (or metrics.json dicts), one per model x protocol.
    rules : rule set of the 1:1 numbers (default: each result's, ``settings.rules``).
    """
    results = [RunResult.of(r).data for r in results]
    one, many = [], []
    for r in results:
        one_to_one = is_one_to_one((r.get("protocol") or {}).get("kind"))
        if one_to_one:
            one.append(_verification_row(r, rules))
        if not one_to_one or (r.get("metrics") or {}).get("identification"):  # IJB templates: its galleries' 1:N
            many += _identification_rows(r)
    used = sorted({RunResult(r).rules(rules) for r in results if is_one_to_one((r.get("protocol") or {}).get("kind"))})
    tables = []
    if one:
        cols = [("model", False), ("protocol", False), ("genuine / impostor", True), ("AUC", True), ("EER", True)]
        cols += [(f"TAR@FAR={short_far(t)} [interval]", True) for t in CONSOLE_FAR]
        cols += [("failed to acquire", True), ("threshold transfer", False), ("images/s", True)]
        tables.append(ConsoleTable(f"1:1 results ({' and '.join(used)} rule set{'s' if len(used) > 1 else ''})", cols, one))
    if many:
        cols = [("model", False), ("protocol", False), ("mated / non-mated probes", True), ("rank-1 [interval]", True),
                (f"TPIR@FPIR={short_far(CONSOLE_FPIR)} [interval]", True), ("failed to acquire", True), ("images/s", True)]
        tables.append(ConsoleTable("1:N results (mfrkit open-set rule)", cols, many))
    return tables, result_notes(results)


def result_notes(results: Sequence[dict]) -> list[str]:
    """The notes under the tables: untrained models, small protocols (once each), and
    rule-set differences beyond the interval."""
    notes, seen = [], set()
    for r in (RunResult.of(x).data for x in results):
        model = r.get("model") or {}
        if provenance_status(model) == "untrained" and ("model", model.get("sha256")) not in seen:
            seen.add(("model", model.get("sha256")))
            notes.append(f"{model.get('name')} is untrained: its numbers measure a random network, not a method")
        proto = (r.get("protocol") or {}).get("name")
        subset = subset_note(r)
        if subset and ("subset", proto) not in seen:
            seen.add(("subset", proto))
            notes.append(subset)
        warning = size_warning(r)
        if warning and ("size", proto) not in seen:
            seen.add(("size", proto))
            notes.append(warning)
        for d in rule_differences(r):
            notes.append(f"{model.get('name')} on {proto}: {d}")
    return notes
