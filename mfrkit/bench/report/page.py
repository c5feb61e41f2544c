"""``mfrkit report``: one self-contained HTML file comparing bench results.

The page holds, for every result found under the given run folders (the latest run of
each model x protocol, as the leaderboard keeps them):

- the comparison table: models x protocols, the headline metric of each cell with its
  interval, the best of each column marked, the rule set named;
- the models (family, input contract, provider, throughput);
- per protocol: the ROC and DET curves of every model overlaid (log FAR axis) or the CMC
  (1:N), the genuine / impostor score histograms, bar charts per mask type, coverage and
  partial region (FNMR at the overall FAR = 1e-3 threshold for 1:1, rank-1 for 1:N, with
  intervals), the hardest comparisons of each model at that threshold as the aligned
  crops the model saw, and the images that failed to acquire, with their reasons;
- threshold drift: the FNMR of each masked protocol at the threshold chosen on the
  unmasked one (the bench's threshold transfer).

A 1:1 result is read through :mod:`mfrkit.bench.report.scores`: a pair list from its
``scores.csv``; an all-pairs protocol, which has no score list, from its exact
``histogram.csv`` (curves through the exact points at the bin edges, histograms),
``genuine.csv`` (the hardest genuine comparisons) and ``metrics.json`` (thresholds and
error counts), its highest-scoring impostor pairs found again from the run's
``embeddings.parquet`` when it was saved (:mod:`mfrkit.bench.report.impostors`), else
a note saying why they are missing and how to get them.

No script, no stylesheet or font from elsewhere: figures are inline SVG and faces inline
JPEG (``data:`` URIs), so the file opens offline, can be mailed, and shows the same
everywhere. ``mfrkit bench`` writes one into every run folder (``report.html``).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ... import __version__
from ...atomic import atomic_write_text, check_new_file
from ...errors import MfrkitError
from ..evaluators import known_evaluator, streamed
from ..results import ModelInfo, ReportError, RunResult
from . import figures as F
from .drift import drift
from .tiles import fta_section, galleries
from .gallery import ImageSource, finite
from .html import CSS, esc, figure, fmt, interval, slug
from .leaderboard import collect_results, one_run_per_model
from .notes import provenance_status, rule_differences, size_warning, subset_note
from .scores import GALLERY_FAR, AllPairsScores, Errors, PairListScores, display_edges
from .table import (
    DEFAULT_METRICS,
    INSIGHTFACE_ZERO_NOTE,
    MetricValue,
    check_table_choice,
    insightface_zero_shown,
    model_labels,
    parse_metric,
    pivot_table,
    protocol_order,
    table_caption,
)

REPORT_NAME = "report.html"
#: Breakdown columns of metrics.json, with their headings.
BREAKDOWNS = {"mask_type": "mask type", "coverage": "mask coverage", "region": "partial region"}


def _input_text(spec: dict) -> str:
    size = spec.get("input_size")
    size = "x".join(str(v) for v in size) if isinstance(size, (list, tuple)) else str(size)
    return f"{size}, {spec.get('color')}, {spec.get('align')}"


def model_family_and_input(model: ModelInfo | dict) -> tuple[str, str]:
    """(family, input) cells of the models table for a result's model (or a run.json
    ``model`` entry).

    A heterogeneous pair has no ``spec`` of its own: its halves' (``reference``,
    ``probe``) are shown, once when they agree.
    """
    model = model if isinstance(model, ModelInfo) else ModelInfo.from_dict(model)
    spec = model.spec
    if spec:
        return spec.get("family") or "–", _input_text(spec)
    halves = [(k, (getattr(model, k) or {}).get("spec")) for k in ("reference", "probe")]
    halves = [(k, h) for k, h in halves if h]
    if not halves:
        return "–", "–"
    families = list(dict.fromkeys(h.get("family") or "–" for _, h in halves))
    texts = list(dict.fromkeys(_input_text(h) for _, h in halves))
    inputs = texts[0] if len(texts) == 1 else "; ".join(f"{k}: {_input_text(h)}" for k, h in halves)
    return " / ".join(families), inputs


def _rule_description(name: str) -> str:
    try:
        from ..metrics import (
            RULE_SETS,  # the rule-set registry, where this mfrkit has it
        )

        return RULE_SETS.get(name).description
    except (ImportError, MfrkitError):
        if name == "mfrkit":
            return ("TAR@FAR: at most floor(FAR x N) false accepts, achieved FAR never above the target; accuracy: "
                    "midpoint thresholds fitted on the other folds, std with ddof=1")
        return ""


@dataclass
class ProtocolResults:
    """The results of one protocol, in model order."""

    name: str
    kind: str
    results: list[RunResult] = field(default_factory=list)

    @property
    def verification(self) -> bool:
        return self.results[0].verification


#: The mark an untrained model's name carries in the report.
UNTRAINED = " (untrained)"


class ReportBuilder:
    """Assembles the page; one instance per report."""

    def __init__(self, results: list[RunResult], metrics: Sequence[str], rules: str | None,
                 impostor_pass_limit: float | None = None) -> None:
        self.results = results
        self.metrics = list(metrics)
        self.rules = rules
        self.impostor_pass_limit = impostor_pass_limit
        self._embeddings: dict = {}  # embeddings.parquet files read for the impostor pass, by path
        self.labels = model_labels(results)
        self.page_notes: list[str] = []  # what the page left out or chose, said in its header
        for r in results:  # an untrained model is marked wherever it is named
            if self.untrained(r) and not self.labels[r.model_sha256].endswith(UNTRAINED):
                self.labels[r.model_sha256] += UNTRAINED
        shas = list(dict.fromkeys(r.model_sha256 for r in results))
        self.colour = dict(zip(shas, F.model_colours(len(shas))))
        self.images = ImageSource()
        self._sources: dict[str, PairListScores | AllPairsScores | None] = {}
        protocols: dict[str, ProtocolResults] = {}
        for r in results:
            protocols.setdefault(r.protocol, ProtocolResults(r.protocol, r.kind)).results.append(r)
        order = {sha: i for i, sha in enumerate(shas)}
        for p in protocols.values():
            p.results.sort(key=lambda r: order[r.model_sha256])
        self.protocols = [protocols[name] for name in protocol_order(results)]

    @staticmethod
    def untrained(r: RunResult) -> bool:
        return provenance_status(r.data.get("model") or {}) == "untrained"

    def label(self, r: RunResult) -> str:
        return self.labels[r.model_sha256]

    def colour_of(self, r: RunResult) -> str:
        return self.colour[r.model_sha256]

    # --- sections ------------------------------------------------------------------------------

    def header(self) -> str:
        runs = sorted({(r.run_id, r.created) for r in self.results}, key=lambda x: str(x[1]))
        versions = sorted({str(r.mfrkit_version) for r in self.results})
        used = sorted({r.rules(self.rules) for r in self.results if r.verification})
        rules = "".join(f"<li><b>{esc(u)}</b>: {esc(_rule_description(u))}</li>" for u in used)
        run_list = ", ".join(f"<code>{esc(i)}</code>" for i, _ in runs)
        return (
            "<header><h1>mfrkit report</h1>"
            f"<p>{len(self.labels)} model(s) on {len(self.protocols)} protocol(s) from {len(runs)} run(s): {run_list}. "
            f"mfrkit {', '.join(esc(v) for v in versions)}; report written {esc(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))} "
            f"by mfrkit {esc(__version__)}.</p>"
            + (f'<div class="rules">Rule set of the 1:1 numbers:<ul>{rules}</ul></div>' if used else "")
            + self._untrained_note()
            + "".join(f'<p class="note missing">{esc(n)}</p>' for n in self.page_notes)
            + "</header>"
        )

    def _untrained_note(self) -> str:
        names = sorted({self.label(r) for r in self.results if self.untrained(r)})
        if not names:
            return ""
        return (f'<p class="note missing">Untrained: {esc(", ".join(names))}: the weights were never trained (their export '
                "says so); their numbers measure a random network, not a method.</p>")

    def nav(self) -> str:
        items = [("comparison", "Comparison"), ("models", "Models")]
        items += [(f"protocol-{slug(p.name)}", f"Protocol {p.name}") for p in self.protocols]
        items += [("drift", "Threshold drift")]
        return "<nav>" + " · ".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in items) + "</nav>"

    def comparison(self) -> str:
        table, cells = pivot_table(self.results, self.metrics, rules=self.rules)
        if table.empty or not len(table.columns):
            return '<section id="comparison"><h2>Comparison</h2><p>No result holds the chosen metric(s).</p></section>'
        specs = [parse_metric(m) for m in self.metrics]
        higher = {col: spec.higher_is_better for col, spec in table.attrs["specs"].items()}
        best = {}
        for col in table.columns:
            vals = table[col].dropna()
            if len(vals) > 1:
                best[col] = vals.max() if higher[col] else vals.min()
        head = "<tr><th>model</th>" + "".join(f"<th>{esc(c)}</th>" for c in table.columns) + "</tr>"
        rows = []
        for m in table.index:
            tds = []
            for col in table.columns:
                mv: MetricValue | None = cells.get((m, col))
                if mv is None:
                    tds.append('<td class="na">–</td>')
                    continue
                is_best = col in best and math.isclose(mv.value, best[col], rel_tol=0, abs_tol=1e-12)
                flag = ' <span class="flag" title="FAR target below 1 / (impostor comparisons)">†</span>' if mv.flag == "insufficient" else ""
                star = ' <span class="star" title="best of the column">★</span>' if is_best else ""
                tds.append(f'<td class="{"best" if is_best else ""}">{fmt(mv.value)}<span class="ci">{interval(mv.low, mv.high)}</span>{flag}{star}</td>')
            rows.append(f"<tr><th>{esc(m)}</th>{''.join(tds)}</tr>")
        chosen = ", ".join(f"{s.label} ({'higher' if s.higher_is_better else 'lower'} is better)" for s in specs)
        notes = f"<p class=note>Cells: {esc(chosen)}, with the interval in brackets; ★ best of the column (only with two or more models). " \
                f"{esc(table_caption(self.results, self.rules))}"
        if insightface_zero_shown(self.results, specs, self.rules):
            notes += " " + esc(INSIGHTFACE_ZERO_NOTE)
        if any(c.flag == "insufficient" for c in cells.values()):
            notes += " † the protocol has fewer than 1 / FAR impostor comparisons: the target cannot be resolved."
        notes += "</p>"
        return f'<section id="comparison"><h2>Comparison</h2><table class="cmp">{head}{"".join(rows)}</table>{notes}</section>'

    def models(self) -> str:
        seen, rows = set(), []
        for r in self.results:
            sha = r.model_sha256
            if sha in seen:
                continue
            seen.add(sha)
            model = r.model_info
            family, inputs = model_family_and_input(model)
            prep = r.preprocessing.reference
            ips = r.throughput.images_per_second
            rows.append(
                f'<tr><th><span class="swatch" style="background:{self.colour[sha]}"></span>{esc(self.label(r))}</th>'
                f"<td>{esc(family)}</td><td><code>{esc(str(sha)[:12])}</code></td>"
                f"<td>{esc(inputs)}</td>"
                f"<td>{esc(prep.get('landmarks') or '–')}</td><td>{esc(prep.get('tta') or 'none')}</td>"
                f"<td>{esc(model.provider)}</td><td>{fmt(ips, 1) if ips is not None else '–'}</td>"
                f"<td>{'yes' if model.heterogeneous else 'no'}</td><td>{esc(provenance_status(r.data.get('model') or {}))}</td>"
                f"<td><code>{esc(r.run_id)}</code></td></tr>"
            )
        head = ("<tr><th>model</th><th>family</th><th>sha256</th><th>input</th><th>landmarks</th><th>TTA</th><th>provider</th>"
                "<th>images/s</th><th>two halves</th><th>weights</th><th>run</th></tr>")
        return f'<section id="models"><h2>Models</h2><table>{head}{"".join(rows)}</table></section>'

    def protocol(self, p: ProtocolResults) -> str:
        first = p.results[0]
        evaluator = known_evaluator(p.kind)
        info = first.protocol_info
        what = evaluator.summary(info) if evaluator else f"{p.kind} protocol"
        parts = [f'<section class="protocol" id="protocol-{slug(p.name)}"><h2>Protocol {esc(p.name)}</h2>',
                 f"<p>{esc(what)}; spec {esc(info.spec or '–')}; sha256 <code>{esc(str(info.sha256)[:12])}</code>.</p>"]
        parts.append(self._number_notes(p))
        if p.verification:
            parts.append(self._curves(p))
            parts.append(self._histograms(p))
        else:
            parts.append(self._cmc(p))
        parts.append(self._breakdowns(p))
        parts.append(galleries(self, p))
        parts.append(fta_section(self, p))
        parts.append("</section>")
        return "".join(parts)

    def _number_notes(self, p: ProtocolResults) -> str:
        """What the protocol's numbers rest on: the part of it a subset run took, one size
        warning, and per model where the two rule sets differ by more than the interval
        (:mod:`.notes`)."""
        notes = [n for n in (subset_note(p.results[0]), size_warning(p.results[0].data)) if n]
        notes += [f"{self.label(r)}: {d}" for r in p.results for d in rule_differences(r.data)]
        return "".join(f'<p class="note missing">{esc(n)}</p>' for n in notes)

    def source(self, r: RunResult) -> PairListScores | AllPairsScores | None:
        """What the report reads of a 1:1 result's comparisons (read once); None when the
        run folder lacks its files."""
        key = str(r.folder)
        if key not in self._sources:
            if streamed(r.kind):
                self._sources[key] = AllPairsScores.read(r, r.folder, impostor_pass_limit=self.impostor_pass_limit,
                                                         embeddings_cache=self._embeddings)
            else:
                self._sources[key] = PairListScores.read(r, r.folder, self.images)
            if self._sources[key] is not None:  # the galleries' threshold follows the page's rule set
                self._sources[key].rules = r.rules(self.rules)
        return self._sources[key]

    def _curves(self, p: ProtocolResults) -> str:
        curves, missing, binned = [], [], False
        for r in p.results:
            src = self.source(r)
            roc = None if src is None else src.roc()
            if roc is None:
                missing.append(self.label(r))
                continue
            binned |= not src.exact_curve
            curves.append((self.label(r), self.colour_of(r), *roc))
        note = f'<p class="note">No per-comparison scores for: {esc(", ".join(missing))}.</p>' if missing else ""
        if binned:
            width = next(((r.metrics.get("all_pairs") or {}).get("bin_width") for r in p.results if streamed(r.kind)),
                         None)
            note += ('<p class="note">All-pairs protocol: the impostor scores were reduced to exact counts per score bin '
                     f"(histogram.csv, bins {fmt(width, 7) if width else '1.5e-5'} wide), so each curve is drawn through "
                     "its exact ROC points at the bin edges (accept iff score ≥ edge): every drawn point is exact, and "
                     "between two of them the true curve moves by at most one bin's comparisons. The TAR@FAR values "
                     "and thresholds above are exact.</p>")
        if not curves:
            return '<div class="curves"><h3>ROC and DET</h3>' + note + "</div>"
        return ('<div class="curves"><h3>ROC and DET</h3><div class="row">'
                + figure(F.roc_figure(curves, p.name), f"ROC of {p.name}") + figure(F.det_figure(curves, p.name), f"DET of {p.name}")
                + "</div>" + note + "</div>")

    def _histograms(self, p: ProtocolResults) -> str:
        panels, fta, binned = [], [], False
        for r in p.results:
            src = self.source(r)
            rng = None if src is None else src.score_range()
            if rng is None:
                continue
            binned |= not src.exact_curve
            edges = display_edges(*rng)
            gen, imp = src.histogram(edges)
            e = src.errors()
            panels.append((self.label(r), edges, gen, imp, e.threshold if isinstance(e, Errors) else None))
            if src.n_minus_inf:
                fta.append(f"{self.label(r)}: {src.n_minus_inf:,}")
        if not panels:
            return ""
        note = f'<p class="note">Comparisons scored −∞ (failures to acquire) are not drawn: {esc("; ".join(fta))}.</p>' if fta else ""
        if binned:
            note += ('<p class="note">All-pairs protocol: the bars add up the exact counts of histogram.csv (each fine bin '
                     "counted in the bar holding its lower edge); the legend gives the totals.</p>")
        return ('<div class="hist"><h3>Score distributions</h3>'
                + figure(F.score_histograms(panels, f"{p.name}: genuine and impostor scores"), f"score histograms of {p.name}", "fig wide")
                + note + "</div>")

    def _cmc(self, p: ProtocolResults) -> str:
        curves = [(self.label(r), self.colour_of(r), r.metrics.get("cmc")) for r in p.results]
        curves = [c for c in curves if c[2]]
        if not curves:
            return '<div class="curves"><h3>CMC</h3><p class="note">No mated probes: no CMC.</p></div>'
        return '<div class="curves"><h3>CMC</h3><div class="row">' + figure(F.cmc_figure(curves, p.name), f"CMC of {p.name}") + "</div></div>"

    def _breakdowns(self, p: ProtocolResults) -> str:
        out = []
        for col, heading in BREAKDOWNS.items():
            per_model = [(r, (r.breakdowns.get(col) or {})) for r in p.results]
            groups = sorted({g for _, b in per_model for g in b})
            if not groups:
                continue
            series = []
            for r, b in per_model:
                vals, lows, highs = [], [], []
                for g in groups:
                    v, lo, hi = self._group_value(p, b.get(g))
                    vals.append(v), lows.append(lo), highs.append(hi)
                series.append((self.label(r), self.colour_of(r), vals, lows, highs))
            if p.verification:
                ylabel, title = "FNMR at the FAR=1e-3 threshold (mfrkit rule)", f"{p.name}: FNMR per {heading}"
            else:
                ylabel, title = "rank-1 rate", f"{p.name}: rank-1 per {heading}"
            out.append(figure(F.bar_figure(groups, series, ylabel=ylabel, title=title), title))
        if not out:
            return ""
        what = ("A comparison belongs to the group of its two images' values (e.g. cloth+surgical); bars: FNMR at the "
                "threshold that gives FAR = 1e-3 over the whole protocol by the mfrkit rule (the breakdowns are computed "
                "at that rule's thresholds, whatever the page's rule set), with Clopper-Pearson intervals; n/a: the group "
                "has no genuine comparisons.") if p.verification else "Bars: rank-1 identification rate of the group's mated probes, with Clopper-Pearson intervals."
        return f'<div class="breakdowns"><h3>Breakdowns</h3><div class="row">{"".join(out)}</div><p class="note">{esc(what)}</p></div>'

    @staticmethod
    def _group_value(p: ProtocolResults, g: dict | None) -> tuple[float | None, float | None, float | None]:
        if not g:
            return None, None, None
        if p.verification:
            for e in g.get("at_overall_threshold") or []:
                if math.isclose(float(e.get("far_target", 0)), GALLERY_FAR, rel_tol=1e-9):
                    v = e.get("fnmr")
                    return (float(v), e.get("fnmr_ci_low"), e.get("fnmr_ci_high")) if finite(v) else (None, None, None)
            return None, None, None
        v = g.get("rank1")
        ci = g.get("rank1_ci") or [None, None]
        return (float(v), ci[0], ci[1]) if finite(v) else (None, None, None)

    def page(self) -> str:
        body = [self.header(), self.nav(), self.comparison(), self.models()]
        body += [self.protocol(p) for p in self.protocols]
        body.append(drift(self))
        body.append(f"<footer>mfrkit {esc(__version__)}: every number above comes from the runs' metrics.json and CSV files.</footer>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>mfrkit report: {esc(', '.join(p.name for p in self.protocols))}</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
        )


def build_report(results: Sequence[RunResult], *, metrics: Sequence[str] = DEFAULT_METRICS, rules: str | None = None,
                 impostor_pass_limit: float | None = None) -> str:
    """The HTML page of ``results`` (see the module docstring).

    ``impostor_pass_limit``: the largest all-pairs protocol (comparisons) whose
    highest-scoring impostor pairs are found by scoring it again from the run's
    ``embeddings.parquet`` (None: :data:`~mfrkit.bench.report.impostors.DEFAULT_LIMIT`;
    0: never).
    """
    results = list(results)
    if not results:
        raise ReportError("no results to report")
    check_table_choice(results, metrics, rules)  # as the leaderboard: before any figure is drawn
    results, left_out = one_run_per_model(results)
    used = sorted({r.rules() for r in results if r.verification})
    page_rules = rules or (used[0] if len(used) == 1 else None)
    if page_rules is None and used:  # runs of both rule sets: the page shows one (metrics.json holds both)
        page_rules = max(results, key=lambda r: str(r.created)).rules()
        left_out.append(f"the runs used the {' and '.join(used)} rule sets; every 1:1 number on this page follows the "
                        f"{page_rules} rule set (mfrkit report --rules picks the other)")
    builder = ReportBuilder(results, metrics, page_rules, impostor_pass_limit)
    builder.page_notes = left_out
    return builder.page()


def write_report(
    runs: Sequence[str | os.PathLike], out: str | os.PathLike, *, metrics: Sequence[str] = DEFAULT_METRICS,
    rules: str | None = None, impostor_pass_limit: float | None = None, force: bool = True,
) -> Path:
    """Write the report of every result under ``runs`` (run folders, or folders of runs)
    to ``out``, atomically. Returns ``out``. ``force=False`` (``mfrkit report`` without
    ``--force``): an existing ``out`` is refused before anything is read."""
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"{out} is a folder: give the HTML file to write (e.g. {out / REPORT_NAME})")
    check_new_file(out, force=force, what="report")
    text = build_report(collect_results(runs), metrics=metrics, rules=rules, impostor_pass_limit=impostor_pass_limit)
    atomic_write_text(out, text, replace=force)
    return out
