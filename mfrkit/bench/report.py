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

A 1:1 result is read through :mod:`mfrkit.bench.report_scores`: a pair list from its
``scores.csv``; an all-pairs protocol, which has no score list, from its exact
``histogram.csv`` (curves through the exact points at the bin edges, histograms),
``genuine.csv`` (the hardest genuine comparisons) and ``metrics.json`` (thresholds and
error counts), its highest-scoring impostor pairs found again from the run's
``embeddings.parquet`` when it was saved (:mod:`mfrkit.bench.report_impostors`), else
a note saying why they are missing and how to get them.

No script, no stylesheet or font from elsewhere: figures are inline SVG and faces inline
JPEG (``data:`` URIs), so the file opens offline, can be mailed, and shows the same
everywhere. ``mfrkit bench`` writes one into every run folder (``report.html``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import atomic_write_text
from ..errors import MfrkitError
from . import report_figures as F
from .leaderboard import (
    DEFAULT_METRICS,
    MetricValue,
    Result,
    collect_results,
    model_labels,
    parse_metric,
    pivot_table,
    protocol_order,
    rule_set,
    short_target,
    table_caption,
)
from .report_gallery import (
    MANIFEST_ROLE,
    Comparison,
    ImageSource,
    Picture,
    finite,
    read_table,
)
from .result_notes import provenance_status, rule_differences, size_warning
from .report_scores import (
    GALLERY_FAR,
    AllPairsScores,
    Errors,
    Missing,
    PairListScores,
    display_edges,
)
from .results import ReportError

REPORT_NAME = "report.html"
#: Comparisons per gallery, failure-to-acquire images per result.
GALLERY_SIZE, FTA_SHOWN = 8, 24
#: Breakdown columns of metrics.json, with their headings.
BREAKDOWNS = {"mask_type": "mask type", "coverage": "mask coverage", "region": "partial region"}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(svg: bytes, alt: str, cls: str = "fig") -> str:
    return f'<img class="{cls}" alt="{_e(alt)}" src="{_data_uri(svg, "image/svg+xml")}">'


def _picture(p: Picture, alt: str) -> str:
    if p.data is None:
        return f'<div class="noimg" title="{_e(p.note)}">{_e(p.note or "no image")}</div>'
    return f'<img class="face" alt="{_e(alt)}" src="{_data_uri(p.data, p.mime)}">'


def _input_text(spec: dict) -> str:
    size = spec.get("input_size")
    size = "x".join(str(v) for v in size) if isinstance(size, (list, tuple)) else str(size)
    return f"{size}, {spec.get('color')}, {spec.get('align')}"


def model_family_and_input(model: dict) -> tuple[str, str]:
    """(family, input) cells of the models table for a run.json ``model`` entry.

    A heterogeneous pair has no ``spec`` of its own: its halves' (``reference``,
    ``probe``) are shown, once when they agree.
    """
    spec = model.get("spec")
    if spec:
        return spec.get("family") or "–", _input_text(spec)
    halves = [(k, (model.get(k) or {}).get("spec")) for k in ("reference", "probe")]
    halves = [(k, h) for k, h in halves if h]
    if not halves:
        return "–", "–"
    families = list(dict.fromkeys(h.get("family") or "–" for _, h in halves))
    texts = list(dict.fromkeys(_input_text(h) for _, h in halves))
    inputs = texts[0] if len(texts) == 1 else "; ".join(f"{k}: {_input_text(h)}" for k, h in halves)
    return " / ".join(families), inputs


def _count(v) -> str:
    return "?" if v is None else f"{int(v):,}"


def _fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or not finite(v) else f"{float(v):.{digits}f}"


def _interval(lo, hi, digits: int = 4) -> str:
    return "" if lo is None or hi is None or not finite(lo) or not finite(hi) else f" [{float(lo):.{digits}f}, {float(hi):.{digits}f}]"


def _rule_description(name: str) -> str:
    try:
        from .metrics import (
            RULE_SETS,  # the rule-set registry, where this mfrkit has it
        )

        return RULE_SETS.get(name).description
    except (ImportError, MfrkitError):
        if name == "mfrkit":
            return ("TAR@FAR: at most floor(FAR x N) false accepts, achieved FAR never above the target; accuracy: "
                    "midpoint thresholds fitted on the other folds, std with ddof=1")
        return ""


#: The mark an untrained model's name carries in the report.
UNTRAINED = " (untrained)"


@dataclass
class _Protocol:
    """The results of one protocol, in model order."""

    name: str
    kind: str
    results: list[Result] = field(default_factory=list)

    @property
    def verification(self) -> bool:
        return self.results[0].verification


class _Builder:
    """Assembles the page; one instance per report."""

    def __init__(self, results: list[Result], metrics: Sequence[str], rules: str | None,
                 impostor_pass_limit: float | None = None) -> None:
        self.results = results
        self.metrics = list(metrics)
        self.rules = rules
        self.impostor_pass_limit = impostor_pass_limit
        self._embeddings: dict = {}  # embeddings.parquet files read for the impostor pass, by path
        self.labels = model_labels(results)
        for r in results:  # an untrained model is marked wherever it is named
            sha = r.data.get("model", {}).get("sha256")
            if provenance_status(r.data.get("model") or {}) == "untrained" and not self.labels[sha].endswith(UNTRAINED):
                self.labels[sha] += UNTRAINED
        shas = list(dict.fromkeys(r.data.get("model", {}).get("sha256") for r in results))
        self.colour = dict(zip(shas, F.model_colours(len(shas))))
        self.images = ImageSource()
        self._sources: dict[str, PairListScores | AllPairsScores | None] = {}
        protocols: dict[str, _Protocol] = {}
        for r in results:
            protocols.setdefault(r.protocol, _Protocol(r.protocol, r.kind)).results.append(r)
        order = {sha: i for i, sha in enumerate(shas)}
        for p in protocols.values():
            p.results.sort(key=lambda r: order[r.data.get("model", {}).get("sha256")])
        self.protocols = [protocols[name] for name in protocol_order(results)]

    def label(self, r: Result) -> str:
        return self.labels[r.data.get("model", {}).get("sha256")]

    def colour_of(self, r: Result) -> str:
        return self.colour[r.data.get("model", {}).get("sha256")]

    # --- sections ------------------------------------------------------------------------------

    def header(self) -> str:
        runs = sorted({(r.data.get("run_id"), r.data.get("created")) for r in self.results}, key=lambda x: str(x[1]))
        versions = sorted({str(r.data.get("mfrkit_version")) for r in self.results})
        used = sorted({rule_set(r.data, self.rules) for r in self.results if r.verification})
        rules = "".join(f"<li><b>{_e(u)}</b>: {_e(_rule_description(u))}</li>" for u in used)
        run_list = ", ".join(f"<code>{_e(i)}</code>" for i, _ in runs)
        return (
            "<header><h1>mfrkit report</h1>"
            f"<p>{len(self.labels)} model(s) on {len(self.protocols)} protocol(s) from {len(runs)} run(s): {run_list}. "
            f"mfrkit {', '.join(_e(v) for v in versions)}; report written {_e(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))} "
            f"by mfrkit {_e(__version__)}.</p>"
            + (f'<div class="rules">Rule set of the 1:1 numbers:<ul>{rules}</ul></div>' if used else "")
            + self._untrained_note()
            + "".join(f'<p class="note missing">{_e(n)}</p>' for n in getattr(self, "page_notes", []))
            + "</header>"
        )

    def _untrained_note(self) -> str:
        names = sorted({self.label(r) for r in self.results if provenance_status(r.data.get("model") or {}) == "untrained"})
        if not names:
            return ""
        return (f'<p class="note missing">Untrained: {_e(", ".join(names))}: the weights were never trained (their export '
                "says so); their numbers measure a random network, not a method.</p>")

    def nav(self) -> str:
        items = [("comparison", "Comparison"), ("models", "Models")]
        items += [(f"protocol-{_slug(p.name)}", f"Protocol {p.name}") for p in self.protocols]
        items += [("drift", "Threshold drift")]
        return "<nav>" + " · ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in items) + "</nav>"

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
        head = "<tr><th>model</th>" + "".join(f"<th>{_e(c)}</th>" for c in table.columns) + "</tr>"
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
                tds.append(f'<td class="{"best" if is_best else ""}">{_fmt(mv.value)}<span class="ci">{_interval(mv.low, mv.high)}</span>{flag}{star}</td>')
            rows.append(f"<tr><th>{_e(m)}</th>{''.join(tds)}</tr>")
        chosen = ", ".join(f"{s.label} ({'higher' if s.higher_is_better else 'lower'} is better)" for s in specs)
        notes = f"<p class=note>Cells: {_e(chosen)}, with the interval in brackets; ★ best of the column (only with two or more models). " \
                f"{_e(table_caption(self.results, self.rules))}"
        if any(c.flag == "insufficient" for c in cells.values()):
            notes += " † the protocol has fewer than 1 / FAR impostor comparisons: the target cannot be resolved."
        notes += "</p>"
        return f'<section id="comparison"><h2>Comparison</h2><table class="cmp">{head}{"".join(rows)}</table>{notes}</section>'

    def models(self) -> str:
        seen, rows = set(), []
        for r in self.results:
            sha = r.data.get("model", {}).get("sha256")
            if sha in seen:
                continue
            seen.add(sha)
            model = r.data.get("model") or {}
            family, inputs = model_family_and_input(model)
            prep = (r.data.get("preprocessing") or {}).get("reference") or {}
            ips = (r.data.get("throughput") or {}).get("images_per_second")
            rows.append(
                f'<tr><th><span class="swatch" style="background:{self.colour[sha]}"></span>{_e(self.label(r))}</th>'
                f"<td>{_e(family)}</td><td><code>{_e(str(sha)[:12])}</code></td>"
                f"<td>{_e(inputs)}</td>"
                f"<td>{_e(prep.get('landmarks') or '–')}</td><td>{_e(prep.get('tta') or 'none')}</td>"
                f"<td>{_e(model.get('provider'))}</td><td>{_fmt(ips, 1) if ips is not None else '–'}</td>"
                f"<td>{'yes' if model.get('heterogeneous') else 'no'}</td><td>{_e(provenance_status(model))}</td>"
                f"<td><code>{_e(r.data.get('run_id'))}</code></td></tr>"
            )
        head = ("<tr><th>model</th><th>family</th><th>sha256</th><th>input</th><th>landmarks</th><th>TTA</th><th>provider</th>"
                "<th>images/s</th><th>two halves</th><th>weights</th><th>run</th></tr>")
        return f'<section id="models"><h2>Models</h2><table>{head}{"".join(rows)}</table></section>'

    def protocol(self, p: _Protocol) -> str:
        first = p.results[0].data.get("protocol") or {}
        counts = first.get("counts") or {}
        if p.kind == "all-pairs":
            what = (f"1:1 all-pairs, every one of {_count(counts.get('references'))} reference images x every one of "
                    f"{_count(counts.get('probes'))} probe images: {_count(first.get('n_pairs'))} comparisons "
                    f"({_count(counts.get('genuine'))} genuine, {_count(counts.get('impostor'))} impostor; left out: "
                    f"{_count(counts.get('excluded_self'))} of an image with itself, {_count(counts.get('excluded_same_source'))} "
                    "of copies of one source photo)")
        elif p.verification:
            what = f"1:1, {_count(first.get('n_pairs'))} comparisons"
        else:
            what = f"1:N, {_count(first.get('n_gallery'))} gallery images, {_count(first.get('n_probes'))} probes"
        parts = [f'<section class="protocol" id="protocol-{_slug(p.name)}"><h2>Protocol {_e(p.name)}</h2>',
                 f"<p>{_e(what)}; spec {_e(first.get('spec') or '–')}; sha256 <code>{_e(str(first.get('sha256'))[:12])}</code>.</p>"]
        parts.append(self._number_notes(p))
        if p.verification:
            parts.append(self._curves(p))
            parts.append(self._histograms(p))
        else:
            parts.append(self._cmc(p))
        parts.append(self._breakdowns(p))
        parts.append(self._galleries(p))
        parts.append(self._fta(p))
        parts.append("</section>")
        return "".join(parts)

    def _number_notes(self, p: _Protocol) -> str:
        """What the protocol's numbers rest on: one size warning, and per model where the
        two rule sets differ by more than the interval (:mod:`.result_notes`)."""
        notes = [size_warning(p.results[0].data)] if size_warning(p.results[0].data) else []
        notes += [f"{self.label(r)}: {d}" for r in p.results for d in rule_differences(r.data)]
        return "".join(f'<p class="note missing">{_e(n)}</p>' for n in notes)

    def source(self, r: Result) -> PairListScores | AllPairsScores | None:
        """What the report reads of a 1:1 result's comparisons (read once); None when the
        run folder lacks its files."""
        key = str(r.folder)
        if key not in self._sources:
            if r.kind == "all-pairs":
                self._sources[key] = AllPairsScores.read(r.data, r.folder, impostor_pass_limit=self.impostor_pass_limit,
                                                         embeddings_cache=self._embeddings)
            else:
                self._sources[key] = PairListScores.read(r.data, r.folder, self.images)
            if self._sources[key] is not None:  # the galleries' threshold follows the page's rule set
                self._sources[key].rules = rule_set(r.data, self.rules)
        return self._sources[key]

    def _curves(self, p: _Protocol) -> str:
        curves, missing, binned = [], [], False
        for r in p.results:
            src = self.source(r)
            roc = None if src is None else src.roc()
            if roc is None:
                missing.append(self.label(r))
                continue
            binned |= not src.exact_curve
            curves.append((self.label(r), self.colour_of(r), *roc))
        note = f'<p class="note">No per-comparison scores for: {_e(", ".join(missing))}.</p>' if missing else ""
        if binned:
            width = next((((r.data.get("metrics") or {}).get("all_pairs") or {}).get("bin_width") for r in p.results
                          if r.kind == "all-pairs"), None)
            note += ('<p class="note">All-pairs protocol: the impostor scores were reduced to exact counts per score bin '
                     f"(histogram.csv, bins {_fmt(width, 7) if width else '1.5e-5'} wide), so each curve is drawn through "
                     "its exact ROC points at the bin edges (accept iff score ≥ edge): every drawn point is exact, and "
                     "between two of them the true curve moves by at most one bin's comparisons. The TAR@FAR values "
                     "and thresholds above are exact.</p>")
        if not curves:
            return '<div class="curves"><h3>ROC and DET</h3>' + note + "</div>"
        return ('<div class="curves"><h3>ROC and DET</h3><div class="row">'
                + _figure(F.roc_figure(curves, p.name), f"ROC of {p.name}") + _figure(F.det_figure(curves, p.name), f"DET of {p.name}")
                + "</div>" + note + "</div>")

    def _histograms(self, p: _Protocol) -> str:
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
        note = f'<p class="note">Comparisons scored −∞ (failures to acquire) are not drawn: {_e("; ".join(fta))}.</p>' if fta else ""
        if binned:
            note += ('<p class="note">All-pairs protocol: the bars add up the exact counts of histogram.csv (each fine bin '
                     "counted in the bar holding its lower edge); the legend gives the totals.</p>")
        return ('<div class="hist"><h3>Score distributions</h3>'
                + _figure(F.score_histograms(panels, f"{p.name}: genuine and impostor scores"), f"score histograms of {p.name}", "fig wide")
                + note + "</div>")

    def _cmc(self, p: _Protocol) -> str:
        curves = [(self.label(r), self.colour_of(r), (r.data.get("metrics") or {}).get("cmc")) for r in p.results]
        curves = [c for c in curves if c[2]]
        if not curves:
            return '<div class="curves"><h3>CMC</h3><p class="note">No mated probes: no CMC.</p></div>'
        return '<div class="curves"><h3>CMC</h3><div class="row">' + _figure(F.cmc_figure(curves, p.name), f"CMC of {p.name}") + "</div></div>"

    def _breakdowns(self, p: _Protocol) -> str:
        out = []
        for col, heading in BREAKDOWNS.items():
            per_model = [(r, ((r.data.get("breakdowns") or {}).get(col) or {})) for r in p.results]
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
            out.append(_figure(F.bar_figure(groups, series, ylabel=ylabel, title=title), title))
        if not out:
            return ""
        what = ("A comparison belongs to the group of its two images' values (e.g. cloth+surgical); bars: FNMR at the "
                "threshold that gives FAR = 1e-3 over the whole protocol by the mfrkit rule (the breakdowns are computed "
                "at that rule's thresholds, whatever the page's rule set), with Clopper-Pearson intervals; n/a: the group "
                "has no genuine comparisons.") if p.verification else "Bars: rank-1 identification rate of the group's mated probes, with Clopper-Pearson intervals."
        return f'<div class="breakdowns"><h3>Breakdowns</h3><div class="row">{"".join(out)}</div><p class="note">{_e(what)}</p></div>'

    @staticmethod
    def _group_value(p: _Protocol, g: dict | None) -> tuple[float | None, float | None, float | None]:
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

    def _galleries(self, p: _Protocol) -> str:
        blocks = []
        for r in p.results:
            blocks.append(self._gallery_verif(r) if p.verification else self._gallery_ident(r))
        title = "Hardest comparisons" if p.verification else "Hardest probes"
        return f'<div class="galleries"><h3>{title}</h3>{"".join(blocks)}</div>'

    def _gallery_verif(self, r: Result) -> str:
        src = self.source(r)
        name = _e(self.label(r))
        if src is None:
            return f'<h4>{name}</h4><p class="note">No per-comparison scores in {_e(r.folder)}.</p>'
        e = src.errors()
        if isinstance(e, Missing):
            return f'<h4>{name}</h4><p class="note">No FAR = 1e-3 threshold: {_e(e.reason)}.</p>'
        genuine, impostor = src.hardest(GALLERY_SIZE)
        head = (f'<h4><span class="swatch" style="background:{self.colour_of(r)}"></span>{name}</h4>'
                f'<p class="note">Threshold {e.threshold:.4f} (FAR = 1e-3 by the {_e(src.rules)} rule, accept iff score ≥ threshold): '
                f"{e.false_rejects:,} false reject(s) of {e.n_genuine:,} genuine, {e.false_accepts:,} false accept(s) of "
                f"{e.n_impostor:,} impostor comparisons.</p>")
        out = head + self._pair_grid(r, "Lowest-scoring genuine pairs", genuine, "false reject", "accepted")
        if isinstance(impostor, Missing):
            return out + (f'<h5>Highest-scoring impostor pairs</h5><p class="note missing">Not available: {_e(impostor.reason)}.</p>')
        note = ("Found by scoring the protocol again from the run's embeddings.parquet (an all-pairs run keeps impostor "
                "scores only as counts per bin); these scores may differ from the run's in the last float32 bits."
                if r.kind == "all-pairs" else "")
        return out + self._pair_grid(r, "Highest-scoring impostor pairs", impostor, "false accept", "rejected", note)

    def _pair_grid(self, r: Result, title: str, pairs: list[Comparison], bad: str, good: str, note: str = "") -> str:
        if not pairs:
            return f'<p class="note">{_e(title)}: none.</p>'
        tiles = []
        for c in pairs:
            left = self.images.crop(r.data, "reference", MANIFEST_ROLE["left_id"], c.left_id)
            right = self.images.crop(r.data, "probe", MANIFEST_ROLE["right_id"], c.right_id)
            badge = f'<span class="badge {"bad" if c.error else "ok"}">{bad if c.error else good}</span>'
            tiles.append(
                f'<figure class="pair">{_picture(left, c.left_id)}{_picture(right, c.right_id)}'
                f"<figcaption>{badge} score {c.score:.4f}<br><code>{_e(c.left_id)}</code> ({_e(c.left_identity)})<br>"
                f"<code>{_e(c.right_id)}</code> ({_e(c.right_identity)})</figcaption></figure>"
            )
        note = f'<p class="note">{_e(note)}</p>' if note else ""
        return f'<h5>{_e(title)}</h5>{note}<div class="grid">{"".join(tiles)}</div>'

    def _gallery_ident(self, r: Result) -> str:
        name = _e(self.label(r))
        df = read_table(r.folder, "probes.csv")
        if df is None:
            return f'<h4>{name}</h4><p class="note">No probes.csv in {_e(r.folder)}.</p>'
        df = df[~df["fta"].astype(str).str.lower().isin(["true", "1"])] if "fta" in df else df
        mated = df[df["mated"].astype(str).str.lower().isin(["true", "1"])].copy()
        mated["rank_sort"] = pd.to_numeric(mated["rank"], errors="coerce").fillna(np.inf)
        misses = mated.sort_values(["rank_sort", "mated_score", "probe_id"], ascending=[False, True, True], kind="stable").head(GALLERY_SIZE)
        non = df[~df["mated"].astype(str).str.lower().isin(["true", "1"])].sort_values(["best_score", "probe_id"], ascending=[False, True], kind="stable").head(GALLERY_SIZE)
        tiles = []
        for row in misses.itertuples(index=False):
            pic = self.images.crop(r.data, "probe", "probe", str(row.probe_id))
            rank = "not in the candidate list" if not finite(row.rank_sort) else f"rank {int(row.rank_sort)}"
            badge = f'<span class="badge {"bad" if row.rank_sort > 1 else "ok"}">{rank}</span>'
            tiles.append(f'<figure class="single">{_picture(pic, row.probe_id)}<figcaption>{badge}<br>mated score {_fmt(row.mated_score)}'
                         f"<br><code>{_e(row.probe_id)}</code> ({_e(row.identity)})<br>top-1: {_e(row.top1)}</figcaption></figure>")
        tiles_non = []
        for row in non.itertuples(index=False):
            pic = self.images.crop(r.data, "probe", "probe", str(row.probe_id))
            tiles_non.append(f'<figure class="single">{_picture(pic, row.probe_id)}<figcaption>best score {_fmt(row.best_score)}'
                             f"<br><code>{_e(row.probe_id)}</code> ({_e(row.identity)})<br>top-1: {_e(row.top1)}</figcaption></figure>")
        out = f'<h4><span class="swatch" style="background:{self.colour_of(r)}"></span>{name}</h4>'
        out += f'<h5>Mated probes ranked worst</h5><div class="grid">{"".join(tiles)}</div>' if tiles else ""
        out += f'<h5>Non-mated probes scoring highest</h5><div class="grid">{"".join(tiles_non)}</div>' if tiles_non else ""
        return out

    def _fta(self, p: _Protocol) -> str:
        blocks = []
        for r in p.results:
            df = read_table(r.folder, "fta.csv")
            n = 0 if df is None else len(df)
            reasons = (r.data.get("fta") or {}).get("by_reason") or {}
            if not n:
                blocks.append(f'<p class="note">{_e(self.label(r))}: every image acquired.</p>')
                continue
            # One tile per image file: a protocol drawing both sides from one manifest lists
            # a failed image once per role.
            manifests = ((r.data.get("protocol") or {}).get("manifests") or {})
            images: dict[tuple, dict] = {}
            for row in df.itertuples(index=False):
                role = MANIFEST_ROLE.get(str(row.role), "probe")
                key = ((manifests.get(role) or {}).get("path"), str(row.image_id))
                entry = images.setdefault(key, {"role": role, "id": str(row.image_id), "roles": [], "reasons": []})
                entry["roles"].append(str(row.role))
                entry["reasons"].append(str(row.reason))
            tiles = []
            for entry in list(images.values())[:FTA_SHOWN]:
                pic = self.images.thumbnail(r.data, entry["role"], entry["id"])
                reasons_text = ", ".join(dict.fromkeys(entry["reasons"]))
                tiles.append(f'<figure class="single fta">{_picture(pic, entry["id"])}<figcaption><span class="badge bad">{_e(reasons_text)}</span>'
                             f"<br><code>{_e(entry['id'])}</code> ({_e(', '.join(entry['roles']))})</figcaption></figure>")
            more = f'<p class="note">… and {len(images) - FTA_SHOWN} more image(s) (see fta.csv).</p>' if len(images) > FTA_SHOWN else ""
            summary = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
            policy = (r.data.get("fta") or {}).get("policy") or "reject"
            blocks.append(f"<h4>{_e(self.label(r))}: {len(images)} image(s), {n} failure(s) to acquire by role "
                          f"({_e(summary)}; policy {_e(policy)})</h4><div class=\"grid\">{''.join(tiles)}</div>{more}")
        return f'<div class="fta-section"><h3>Failures to acquire</h3>{"".join(blocks)}</div>'

    def drift(self) -> str:
        verif = [p for p in self.protocols if p.verification]
        sources = {r.data["transfer"]["from"] for p in verif for r in p.results if r.data.get("transfer")}
        if not sources:
            return ('<section id="drift"><h2>Threshold drift</h2><p class="note">No threshold transfer in these runs: the bench '
                    "applies the threshold of the protocol named by --transfer-from (default umr-ump) to the run's other 1:1 "
                    "protocols when that protocol is in the run.</p></section>")
        parts = ['<section id="drift"><h2>Threshold drift</h2>']
        for source in sorted(sources):
            targets = [p for p in verif if any((r.data.get("transfer") or {}).get("from") == source for r in p.results)]
            src = next((p for p in verif if p.name == source), None)
            groups = ([source] if src else []) + [p.name for p in targets]
            series, rows, far = [], [], None
            for sha, label in self.labels.items():
                vals, lows, highs, cells = [], [], [], []
                for name in groups:
                    r = next((x for p in verif if p.name == name for x in p.results if x.data.get("model", {}).get("sha256") == sha), None)
                    e = self._drift_entry(r, source) if r is not None else None
                    if e is None:
                        vals.append(None), lows.append(None), highs.append(None)
                        cells.append("<td>–</td>")
                        continue
                    far = e.get("far_target", far)
                    vals.append(e.get("fnmr")), lows.append(e.get("fnmr_ci_low")), highs.append(e.get("fnmr_ci_high"))
                    cells.append(f"<td>{_fmt(e.get('fnmr'))}<span class=ci>{_interval(e.get('fnmr_ci_low'), e.get('fnmr_ci_high'))}</span>"
                                 f"<br><small>FMR {_fmt(e.get('fmr'))}<span class=ci>{_interval(e.get('fmr_ci_low'), e.get('fmr_ci_high'))}</span>"
                                 f", t = {_fmt(e.get('threshold'))}</small></td>")
                if any(v is not None for v in vals):
                    series.append((label, self.colour[sha], vals, lows, highs))
                    rows.append(f"<tr><th>{_e(label)}</th>{''.join(cells)}</tr>")
            title = f"FNMR at the {source} threshold" + (f" (FAR={short_target(far)})" if far else "")
            parts.append(f"<h3>From {_e(source)}</h3>")
            parts.append(_figure(F.bar_figure(groups, series, ylabel="FNMR", title=title), title))
            head = "<tr><th>model</th>" + "".join(f"<th>{_e(g)}</th>" for g in groups) + "</tr>"
            parts.append(f'<table class="cmp">{head}{"".join(rows)}</table>')
            parts.append('<p class="note">The threshold is chosen on the first protocol (where FMR stays within the target) and '
                         "applied unchanged to the others: a masked protocol's FNMR above the first one's is the drift a deployed "
                         "threshold would suffer. Intervals: Clopper-Pearson.</p>")
        parts.append("</section>")
        return "".join(parts)

    def _drift_entry(self, r: Result, source: str) -> dict | None:
        """FNMR/FMR at the transferred threshold: the result's ``transfer`` for a target
        protocol; for the source itself, its rates at its own threshold."""
        if (r.data.get("transfer") or {}).get("from") == source:
            return r.data["transfer"]
        ts = r.data.get("transfer_source")
        if r.protocol == source and ts and finite(ts.get("threshold")):
            src = self.source(r)
            rates = None if src is None else src.rates_at(float(ts["threshold"]), ts)
            if rates is None:
                return None
            return {**rates, "far_target": ts.get("far_target"), "threshold": ts["threshold"]}
        return None

    def page(self) -> str:
        body = [self.header(), self.nav(), self.comparison(), self.models()]
        body += [self.protocol(p) for p in self.protocols]
        body.append(self.drift())
        body.append(f"<footer>mfrkit {_e(__version__)}: every number above comes from the runs' metrics.json and CSV files.</footer>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>mfrkit report: {_e(', '.join(p.name for p in self.protocols))}</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
        )


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 48px;color:#222;background:#fff}
h1{margin:24px 0 8px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}h3{margin-top:28px}h4{margin:18px 0 6px}h5{margin:10px 0 6px;color:#555}
nav{position:sticky;top:0;background:#fafafa;border-bottom:1px solid #ddd;padding:8px 0;font-size:14px;z-index:2}
nav a{color:#1f5fa8;text-decoration:none}
table{border-collapse:collapse;margin:8px 0;font-size:14px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.best{background:#e8f5e9;font-weight:600}td.na{color:#999;text-align:center}
.ci{color:#666;font-weight:normal;font-size:12px}.star{color:#2e7d32}.flag{color:#b26a00}
.note{color:#555;font-size:13px;max-width:1100px}.note.missing{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px;color:#5d4300}.rules{font-size:13px;color:#444}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
img.fig{max-width:100%;height:auto;border:1px solid #eee}img.wide{max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;background:#fcfcfc;font-size:11px;max-width:260px}
figure.pair img,figure.pair .noimg{width:112px;height:112px;object-fit:contain;margin-right:4px}
figure.single img,figure.single .noimg{width:112px;height:112px;object-fit:contain}
.noimg{display:inline-flex;align-items:center;justify-content:center;background:#eee;color:#777;font-size:10px;text-align:center;overflow:hidden;vertical-align:top}
figcaption{margin-top:4px;line-height:1.35;word-break:break-all}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-weight:600;font-size:10px}
.badge.bad{background:#fdecea;color:#b71c1c}.badge.ok{background:#e8f5e9;color:#1b5e20}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
footer{margin-top:48px;color:#777;font-size:12px}code{font-size:12px}
"""


def build_report(results: Sequence[Result], *, metrics: Sequence[str] = DEFAULT_METRICS, rules: str | None = None,
                 impostor_pass_limit: float | None = None) -> str:
    """The HTML page of ``results`` (see the module docstring).

    ``impostor_pass_limit``: the largest all-pairs protocol (comparisons) whose
    highest-scoring impostor pairs are found by scoring it again from the run's
    ``embeddings.parquet`` (None: :data:`~mfrkit.bench.report_impostors.DEFAULT_LIMIT`;
    0: never).
    """
    results = list(results)
    if not results:
        raise ReportError("no results to report")
    for m in metrics:
        parse_metric(m)  # an unknown metric fails before any figure is drawn
    results, left_out = one_run_per_model(results)
    used = sorted({rule_set(r.data) for r in results if r.verification})
    page_rules = rules or (used[0] if len(used) == 1 else None)
    if page_rules is None and used:  # runs of both rule sets: the page shows one (metrics.json holds both)
        page_rules = rule_set(max(results, key=lambda r: str(r.data.get("created"))).data)
        left_out.append(f"the runs used the {' and '.join(used)} rule sets; every 1:1 number on this page follows the "
                        f"{page_rules} rule set (mfrkit report --rules picks the other)")
    builder = _Builder(results, metrics, page_rules, impostor_pass_limit)
    builder.page_notes = left_out
    return builder.page()


def one_run_per_model(results: Sequence[Result]) -> tuple[list[Result], list[str]]:
    """The results of each model from one run only (the run holding most of its results,
    the latest of those on a tie), so a page never sets one run's figures of a model
    beside another's; the notes say what was left out."""
    by_model: dict = {}
    for r in results:
        by_model.setdefault(r.data.get("model", {}).get("sha256"), []).append(r)
    kept, notes = [], []
    for rs in by_model.values():
        runs: dict = {}
        for r in rs:
            runs.setdefault(r.data.get("run_id"), []).append(r)
        best = max(runs, key=lambda k: (len(runs[k]), max(str(r.data.get("created")) for r in runs[k])))
        chosen = {}
        for r in sorted(runs[best], key=lambda r: str(r.data.get("created"))):
            chosen[r.protocol] = r  # one rule set's copy per protocol: the latest
        kept += list(chosen.values())
        others = sorted({(k, r.protocol) for k, v in runs.items() if k != best for r in v})
        if others:
            notes.append(f"{rs[0].model}: its figures come from run {best}; results of other runs left out "
                         f"({', '.join(f'{p} in {k}' for k, p in others)}): report those runs on their own")
    order = {id(r): i for i, r in enumerate(results)}
    return sorted(kept, key=lambda r: order[id(r)]), notes


def write_report(
    runs: Sequence[str | os.PathLike], out: str | os.PathLike, *, metrics: Sequence[str] = DEFAULT_METRICS,
    rules: str | None = None, impostor_pass_limit: float | None = None,
) -> Path:
    """Write the report of every result under ``runs`` (run folders, or folders of runs)
    to ``out``, atomically. Returns ``out``."""
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"{out} is a folder: give the HTML file to write (e.g. {out / REPORT_NAME})")
    text = build_report(collect_results(runs), metrics=metrics, rules=rules, impostor_pass_limit=impostor_pass_limit)
    atomic_write_text(out, text)
    return out
